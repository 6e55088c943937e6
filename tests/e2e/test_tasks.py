"""MCP tasks through a real Envoy (V8, the real aigate.wasm), the MCP SDK server and the MCP
SDK client, in both hold variants: (a) `headers` and (b) `body`.

To a client declaring the tasks extension (io.modelcontextprotocol/tasks) the order desk
(tests/e2e/mcp_server.py) answers search_docs with a task, and it hands any task to whoever
names its id. aigate binds the task to the caller it was created for (issuer, subject,
tenant, workload): another caller's tasks/get or tasks/cancel is refused before it reaches
the server, and the finished task's result is held to the caller's data boundary.
"""

from __future__ import annotations

import json
import uuid
from typing import Literal

import anyio
from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from mcp_types import CallToolResult, Request, RequestParams, Result
from pydantic import ConfigDict

import aigate_e2e as e2e
from test_mcp_gateway import assert_audit, assert_jsonrpc_deny

WITHHELD = "aigate: a resource outside the caller's data boundary was withheld"
TASKS_RULE = "routes.support-mcp.tasks"


# --------------------------------------------------------------------------- a task-capable agent


class TaskRef(RequestParams):
    task_id: str


class TaskRequest(Request[TaskRef, str]):
    """tasks/get or tasks/cancel, naming one task."""


class CreatedTask(Result):
    """The handle a tools/call is answered with in place of its result."""

    result_type: Literal["task"]
    task_id: str


class TaskState(Result):
    model_config = ConfigDict(extra="allow")
    task_id: str
    status: str
    result: CallToolResult | None = None


async def ask(session, method: str, task_id: str) -> Result:
    answer = TaskState if method == "tasks/get" else Result
    return await session.send_request(TaskRequest(method=method, params=TaskRef(task_id=task_id)), answer)


class Tasks(ClientExtension):
    """The client's half of the tasks extension: a tool call answered with a task is
    followed with tasks/get until the task is done, and its result is the call's."""

    identifier = "io.modelcontextprotocol/tasks"

    def claims(self):
        return [ResultClaim(result_type="task", model=CreatedTask, resolve=self.follow)]

    @staticmethod
    async def follow(created: CreatedTask, ctx: ClaimContext) -> CallToolResult:
        while (state := await ask(ctx.session, "tasks/get", created.task_id)).status == "working":
            await anyio.sleep(0.1)
        assert state.result is not None, f"task {state.status}"
        return state.result


def search_docs_as_a_task(gateway: e2e.Envoy, token: str) -> e2e.Outcome:
    return e2e.mcp_client_call(gateway.url, token, lambda c: c.call_tool("search_docs", {"query": "returns"}),
                               extensions=[Tasks()])


def task_requests(entries: list[dict]) -> list[dict]:
    """What of the server's record shows a task request got through (with hold=body a
    refused request's headers may reach it, never its body)."""
    return [e for e in entries if e["kind"] == "task"
            or (e["kind"] == "http" and e["complete"] and any(m.startswith("tasks/") for m in e["rpc_methods"]))]


# --------------------------------------------------------------------------- tests


def test_the_caller_follows_her_task_to_a_result_inside_her_boundary(gateway, mint, record):
    out = search_docs_as_a_task(gateway, mint())
    assert out.error is None, f"{out.error!r}; wire: {[(e.rpc_method, e.status, e.body) for e in out.wire.exchanges]}"
    created = out.wire.last("tools/call")
    assert created.status == 200 and created.body["result"]["resultType"] == "task", created.body
    task_id = created.body["result"]["taskId"]

    polled = out.wire.last("tasks/get")
    assert polled.status == 200, polled.body
    state = polled.body["result"]
    assert (state["taskId"], state["status"]) == (task_id, "completed"), state
    # The finished task's result: acme's handbook linked, globex's price list withheld.
    content = state["result"]["content"]
    assert [b["type"] for b in content] == ["text", "resource_link", "text"], content
    assert content[1]["uri"] == "docs://acme/handbook"
    assert content[2] == {"type": "text", "text": WITHHELD}
    assert "globex" not in json.dumps(polled.body).lower()
    # ...which the agent gets as its call's result.
    assert [b.type for b in out.result.content] == ["text", "resource_link", "text"]
    assert str(out.result.content[1].uri) == "docs://acme/handbook"
    assert out.result.content[2].text == WITHHELD

    # The server ran search_docs once, as a task, and answered alice's poll.
    assert [t["name"] for t in record.tools()] == ["search_docs"]
    assert [(e["event"], e["task_id"]) for e in record.new() if e["kind"] == "task"] == [
        ("created", task_id), ("get", task_id)]
    did = polled.decision_id
    answer = gateway.audit_lines_until(lambda a: a.get("stage") == "answer" and a["decision_id"] == did, count=1)
    assert [(a["decision"], a["hidden"], a["method"]) for a in answer] == [("allow", 1, "tasks/get")], answer


def test_another_caller_can_neither_follow_nor_cancel_the_task(gateway, mint, mcp_server):
    out = search_docs_as_a_task(gateway, mint())
    assert out.error is None, out.error
    task_id = out.wire.last("tools/call").body["result"]["taskId"]

    bob = mint(sub="bob")  # alice's colleague: same tenant, same agent
    mark = mcp_server.record.mark()
    for method in ("tasks/get", "tasks/cancel"):
        out = e2e.mcp_client_call(gateway.url, bob, lambda c, method=method: ask(c.session, method, task_id))
        did = assert_jsonrpc_deny(out, "data_boundary", rpc_method=method)
        assert out.error.data["rule"] == TASKS_RULE, out.error.data
        # Whose task it is goes unsaid.
        assert "alice" not in json.dumps(out.wire.last(method).body)
        assert_audit(gateway, did, decision="deny", reason="data_boundary", rule=TASKS_RULE,
                     method=method, subject="bob", tenant="acme", workload="support-agent")
    assert task_requests(mcp_server.record.since(mark)) == [], "bob's task requests reached the server"


def test_a_task_never_created_for_the_caller_is_refused(gateway, mint, mcp_server):
    mark = mcp_server.record.mark()
    out = e2e.mcp_client_call(gateway.url, mint(), lambda c: ask(c.session, "tasks/get", str(uuid.uuid4())))
    did = assert_jsonrpc_deny(out, "data_boundary", rpc_method="tasks/get")
    assert out.error.data["rule"] == TASKS_RULE, out.error.data
    assert_audit(gateway, did, decision="deny", reason="data_boundary", subject="alice")
    assert task_requests(mcp_server.record.since(mark)) == []
