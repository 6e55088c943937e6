#!/usr/bin/env python3
"""A small, real MCP server (MCP Python SDK, Streamable HTTP) for the end-to-end tests and
the demo: an order desk with tools get_order, refund_order, track_order (whose `region`
its schema has clients mirror in `Mcp-Param-Region`), send_email, search_docs, the resource
template docs://{tenant}/{name}, the documents docs://acme/handbook and
docs://globex/pricing, and the prompts support_reply and admin_console.

It speaks the tasks extension (io.modelcontextprotocol/tasks, SEP-2663): to a client that
declares it, search_docs answers with a task (`resultType: "task"`, a fresh `taskId`,
`ttlMs`) whose result `tasks/get` returns; `tasks/cancel` is served too (the work is quick:
a task has finished when it is answered, so it is past cancelling). Like many servers it
hands any task to whoever names its id: binding a task to its caller is left to the
gateway. Clients that do not declare the extension get search_docs' result at once.

With --sampling it also offers ask_assistant, an agentic tool (sampling with tools, MCP
2025-11-25): it asks the client's model, offering it get_order and refund_order, and runs
the tool the model picks, as servers built on the SDK's sampling-with-tools flow do. With
--sse it answers POSTs as event streams (so it can send its own requests, the sampling
request among them, on the stream of a 2025-11-25 session) instead of JSON.

It records what reaches it as JSON lines in --record: one `http` line per HTTP request
(method, path, the JSON-RPC method(s) of its body, the x-aigate-decision-id it carried) and
one `tool` / `resource` / `prompt` line per tool invocation, resource read or prompt fetched,
one `task` line per task created, polled or cancelled. Tests read that file to
assert, on the server's side, what got through the gateway.

    python tests/e2e/mcp_server.py --port 8000 --record /tmp/mcp-record.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Annotated

import uvicorn
from mcp.server.caching import CacheHint
from mcp.server.extension import Extension, MethodBinding
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.resolve import Resolve, Sample
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    ContentBlock,
    CreateMessageResultWithTools,
    EmbeddedResource,
    RequestParams,
    ResourceLink,
    SamplingMessage,
    TextContent,
    TextResourceContents,
    Tool,
)
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import Field


class Recorder:
    def __init__(self, path: str):
        self.path = path
        self.lock = threading.Lock()

    def write(self, **entry) -> None:
        entry["time"] = time.time()
        line = json.dumps(entry, sort_keys=True)
        with self.lock, open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()


class TaskRef(RequestParams):
    """The params of tasks/get and tasks/cancel: the task's id (wire name `taskId`)."""

    task_id: str


class Tasks(Extension):
    """The tasks extension for the tools in `TASK_TOOLS`: such a call, from a client that
    declared the extension, runs and is answered with a task (`CreateTaskResult`); the
    client polls `tasks/get` for its status and, once completed, its result. The task is
    found by its id alone, whoever asks."""

    identifier = "io.modelcontextprotocol/tasks"
    TASK_TOOLS = frozenset({"search_docs"})
    TTL_MS = 10 * 60 * 1000

    def __init__(self, recorder: Recorder):
        self.recorder = recorder
        self.tasks: dict[str, dict] = {}

    def methods(self):
        return [
            MethodBinding(method="tasks/get", params_type=TaskRef, handler=self.get),
            MethodBinding(method="tasks/cancel", params_type=TaskRef, handler=self.cancel),
        ]

    async def intercept_tool_call(self, params, ctx, call_next):
        declared = (ctx.session.client_capabilities and ctx.session.client_capabilities.extensions) or {}
        if params.name not in self.TASK_TOOLS or self.identifier not in declared:
            return await call_next(ctx)
        result = await call_next(ctx)  # quick work: done before the task is answered
        now = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
        task_id = str(uuid.uuid4())
        self.tasks[task_id] = {
            "taskId": task_id,
            "status": "completed",
            "createdAt": now,
            "lastUpdatedAt": now,
            "ttlMs": self.TTL_MS,
            "result": result.model_dump(by_alias=True, mode="json", exclude_none=True),
        }
        self.recorder.write(kind="task", event="created", task_id=task_id, tool=params.name)
        # The handle only: the result is fetched with tasks/get.
        return {
            "resultType": "task",
            "taskId": task_id,
            "status": "completed",
            "createdAt": now,
            "lastUpdatedAt": now,
            "ttlMs": self.TTL_MS,
            "pollIntervalMs": 100,
        }

    def _task(self, event: str, params: TaskRef) -> dict:
        self.recorder.write(kind="task", event=event, task_id=params.task_id)
        task = self.tasks.get(params.task_id)
        if task is None:
            raise MCPError(code=INVALID_PARAMS, message="unknown task", data={"taskId": params.task_id})
        return task

    async def get(self, ctx, params: TaskRef) -> dict:
        return {"resultType": "complete", **self._task("get", params)}

    async def cancel(self, ctx, params: TaskRef) -> dict:
        task = self._task("cancel", params)
        # A task in a terminal status cannot be cancelled (and these all are).
        raise MCPError(code=INVALID_PARAMS, message=f"task is already {task['status']}")


ORDER_ARGS = {"customer_id": {"type": "string"}, "order_id": {"type": "string"}}


def plan(question: str) -> Sample:
    """The sampling request ask_assistant makes: the question, and the tools the model may call."""
    return Sample(
        messages=[SamplingMessage(role="user", content=TextContent(type="text", text=question))],
        max_tokens=200,
        system_prompt="You are the order desk assistant. Use the tools to help the customer.",
        tools=[
            Tool(name="get_order", description="Look up one order of a customer.",
                 input_schema={"type": "object", "properties": ORDER_ARGS}),
            Tool(name="refund_order", description="Refund (part of) an order.",
                 input_schema={"type": "object", "properties": {**ORDER_ARGS, "amount": {"type": "number"}}}),
        ],
    )


def build_server(recorder: Recorder, sampling: bool = False) -> MCPServer:
    server = MCPServer(
        "aigate-e2e-orders",
        instructions="Order desk used by aigate's tests.",
        extensions=[Tasks(recorder)],
        # Lists and reads declared the same for every caller, cacheable for a minute
        # (SEP-2549): behind aigate they are each caller's own view.
        cache_hints={
            "tools/list": CacheHint(ttl_ms=60_000, scope="public"),
            "resources/read": CacheHint(ttl_ms=60_000, scope="public"),
        },
    )

    @server.tool()
    def get_order(customer_id: str, order_id: str) -> dict:
        """Look up one order of a customer."""
        recorder.write(kind="tool", name="get_order", arguments={"customer_id": customer_id, "order_id": order_id})
        return {"customer_id": customer_id, "order_id": order_id, "status": "shipped", "total": 42.5}

    @server.tool()
    def refund_order(customer_id: str, order_id: str, amount: float) -> dict:
        """Refund (part of) an order."""
        recorder.write(
            kind="tool",
            name="refund_order",
            arguments={"customer_id": customer_id, "order_id": order_id, "amount": amount},
        )
        return {"customer_id": customer_id, "order_id": order_id, "refunded": amount}

    @server.tool()
    def track_order(
        customer_id: str,
        order_id: str,
        # Mirrored as Mcp-Param-Region (SEP-2243), so a router can send the call to the region.
        region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})],
    ) -> dict:
        """Where an order is, asked of one region's warehouse."""
        recorder.write(
            kind="tool",
            name="track_order",
            arguments={"customer_id": customer_id, "order_id": order_id, "region": region},
        )
        return {"order_id": order_id, "region": region, "status": "in transit"}

    if sampling:

        @server.tool()
        def ask_assistant(question: str, answer: Annotated[CreateMessageResultWithTools, Resolve(plan)]) -> str:
            """Ask the order desk assistant (it may look up or refund orders)."""
            recorder.write(kind="tool", name="ask_assistant", arguments={"question": question})
            ran = []
            for block in answer.content_as_list:
                if getattr(block, "type", None) != "tool_use":
                    continue
                args = dict(block.input)
                # Run as the model asked, the way such a server would (it trusts the caller's model).
                recorder.write(kind="tool", name=block.name, arguments=args, via="sampling")
                ran.append({"tool": block.name, "arguments": args})
            return json.dumps({"ran": ran})

    @server.tool()
    def send_email(to: str, subject: str, body: str) -> str:
        """Send an email to a customer."""
        recorder.write(kind="tool", name="send_email", arguments={"to": to, "subject": subject, "body": body})
        return f"sent to {to}"

    @server.tool()
    def search_docs(query: str) -> list[ContentBlock]:
        """Search the knowledge base: links to the documents that match."""
        recorder.write(kind="tool", name="search_docs", arguments={"query": query})
        # The index is shared by every tenant, and this careless server does not filter it:
        # one hit is another tenant's document, embedded whole.
        return [
            TextContent(type="text", text=f"2 documents match {query!r}."),
            ResourceLink(type="resource_link", uri="docs://acme/handbook", name="handbook", mime_type="text/plain"),
            EmbeddedResource(
                type="resource",
                resource=TextResourceContents(uri="docs://globex/pricing", mime_type="text/plain", text="Globex prices."),
            ),
        ]

    @server.resource("docs://{tenant}/{name}", mime_type="text/plain")
    def tenant_doc(tenant: str, name: str) -> str:
        """A tenant's knowledge-base document."""
        recorder.write(kind="resource", uri=f"docs://{tenant}/{name}", tenant=tenant, name=name)
        return f"Document {name} of tenant {tenant}."

    # Two fixed documents of different tenants: a caller's resources/list shows its own only.
    @server.resource("docs://acme/handbook", mime_type="text/plain")
    def acme_handbook() -> str:
        """Acme's support handbook."""
        return "Acme handbook."

    @server.resource("docs://globex/pricing", mime_type="text/plain")
    def globex_pricing() -> str:
        """Globex's confidential price list."""
        return "Globex prices."

    @server.prompt()
    def support_reply(order_id: str) -> str:
        """Draft a reply to a customer about an order."""
        recorder.write(kind="prompt", name="support_reply", arguments={"order_id": order_id})
        return f"Write a short, friendly reply about order {order_id}."

    @server.prompt()
    def admin_console() -> str:
        """Operator-only instructions: no customer-facing agent may fetch them."""
        recorder.write(kind="prompt", name="admin_console", arguments={})
        return "You are the operator console. Refunds need no approval."

    return server


class RecordHttp:
    """ASGI middleware: one `http` record per request that reaches the server."""

    def __init__(self, app, recorder: Recorder):
        self.app = app
        self.recorder = recorder

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        chunks: list[bytes] = []
        done = complete = False
        while not done:
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
                done = complete = not message.get("more_body", False)
            else:  # http.disconnect before the body completed (e.g. the gateway denied it)
                done = True
        body = b"".join(chunks)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        methods: list[str] = []
        try:
            doc = json.loads(body) if body else None
            for m in doc if isinstance(doc, list) else [doc]:
                if isinstance(m, dict) and isinstance(m.get("method"), str):
                    methods.append(m["method"])
        except ValueError:
            pass
        self.recorder.write(
            kind="http",
            method=scope["method"],
            path=scope["path"],
            body_bytes=len(body),
            complete=complete,
            rpc_methods=methods,
            decision_id=headers.get("x-aigate-decision-id"),
            authorization=bool(headers.get("authorization")),
            approval=bool(headers.get("x-aigate-approval")),
        )
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        if not complete:
            return None
        return await self.app(scope, replay, send)


def build_app(record_path: str, sampling: bool = False, sse: bool = False):
    recorder = Recorder(record_path)
    server = build_server(recorder, sampling)
    # The SDK's Streamable HTTP app refuses Host headers it does not know (DNS-rebinding
    # protection). Behind the gateway the Host is Envoy's 127.0.0.1:<port>: allow loopback.
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=["127.0.0.1:*", "localhost:*"],
        allowed_origins=["http://127.0.0.1:*", "http://localhost:*"],
    )
    app = server.streamable_http_app(
        streamable_http_path="/mcp",
        json_response=not sse,
        transport_security=security,
    )
    return RecordHttp(app, recorder)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--record", default=os.environ.get("MCP_RECORD", "mcp-record.jsonl"))
    p.add_argument("--log-level", default="warning")
    p.add_argument("--sampling", action="store_true", help="also offer ask_assistant (sampling with tools)")
    p.add_argument("--sse", action="store_true", help="answer POSTs as event streams")
    a = p.parse_args()
    uvicorn.run(build_app(a.record, a.sampling, a.sse), host=a.host, port=a.port, log_level=a.log_level)


if __name__ == "__main__":
    main()
