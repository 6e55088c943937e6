#!/usr/bin/env python3
"""A stand-in model server for the end-to-end tests: OpenAI Chat Completions
(`…/chat/completions`), OpenAI Responses (`…/responses`) and Anthropic Messages
(`…/messages`), answering canned completions, plain JSON or server-sent events when the
request says `"stream": true`. Paths are matched by their ending, so a gateway route prefix
such as `/strip/v1/…` reaches it unchanged. Paths under `/api/` stand for REST tool
endpoints (aigate `action` routes) and answer 200; those under `/api/early` answer as soon
as the request head arrives, without reading the body.

A test can steer the model as a prompt injection would: a last user message ending in
`CALL <tool> <JSON arguments>` is answered with that tool call (after a few words of
text when streamed), in each API's shape.

It records every request that reaches it as one JSON line in --record: method, path, the
raw body as received (text), whether the body arrived complete, and the framing and aigate
headers it carried. Tests read that file to assert, on the model's side, what got through.

    python tests/e2e/model_server.py --port 8001 --record /tmp/model-record.jsonl
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time

import uvicorn

REPLY = "Your order o-1 has shipped."


class Recorder:
    def __init__(self, path: str):
        self.path = path
        self.lock = threading.Lock()

    def write(self, **entry) -> None:
        entry["time"] = time.time()
        with self.lock, open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, sort_keys=True) + "\n")


# --------------------------------------------------------------------------- canned replies


def chat(model: str) -> dict:
    return {
        "id": "chatcmpl-e2e", "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": REPLY, "refusal": None},
                     "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17},
    }


def chat_stream(model: str) -> list[bytes]:
    base = {"id": "chatcmpl-e2e", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
    chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
    for word in REPLY.split(" "):
        chunks.append({**base, "choices": [{"index": 0, "delta": {"content": word + " "}, "finish_reason": None}]})
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    return [f"data: {json.dumps(c)}\n\n".encode() for c in chunks] + [b"data: [DONE]\n\n"]


def response(model: str, status: str = "completed") -> dict:
    return {
        "id": "resp_e2e", "object": "response", "created_at": int(time.time()), "status": status, "model": model,
        "output": [] if status != "completed" else [{
            "type": "message", "id": "msg_e2e", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": REPLY, "annotations": []}],
        }],
        "parallel_tool_calls": True, "tool_choice": "auto", "tools": [], "error": None,
        "incomplete_details": None, "instructions": None, "metadata": {}, "temperature": 1.0, "top_p": 1.0,
        "usage": {"input_tokens": 10, "output_tokens": 7, "total_tokens": 17,
                  "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}},
    }


def response_stream(model: str) -> list[bytes]:
    events = [
        {"type": "response.created", "sequence_number": 0, "response": response(model, "in_progress")},
        {"type": "response.output_text.delta", "sequence_number": 1, "item_id": "msg_e2e", "output_index": 0,
         "content_index": 0, "delta": REPLY, "logprobs": []},
        {"type": "response.completed", "sequence_number": 2, "response": response(model)},
    ]
    return [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events]


def message(model: str) -> dict:
    return {
        "id": "msg_e2e", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": REPLY}], "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 7},
    }


def message_stream(model: str) -> list[bytes]:
    start = {**message(model), "content": [], "stop_reason": None, "usage": {"input_tokens": 10, "output_tokens": 0}}
    events = [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": REPLY}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"output_tokens": 7}},
        {"type": "message_stop"},
    ]
    return [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events]


# --------------------------------------------------------------------------- scripted tool calls

SCRIPT = re.compile(r"CALL (\w+) (\{.*\})\s*$", re.S)
PREAMBLE = "Checking that for you."


def last_user_text(doc: dict) -> str:
    """The text of the last user message (Chat and Anthropic `messages`, Responses `input`)."""
    items = doc.get("messages") or doc.get("input") or []
    if isinstance(items, str):
        return items
    for m in reversed(items):
        if isinstance(m, dict) and m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, str):
                return c
            return " ".join(p.get("text", "") for p in c or [] if isinstance(p, dict))
    return ""


def scripted_call(doc: dict) -> tuple[str, dict] | None:
    m = SCRIPT.search(last_user_text(doc))
    return (m.group(1), padded(json.loads(m.group(2)))) if m else None


def padded(args: dict) -> dict:
    """An argument written `"PAD <n>"` becomes n bytes of text: an answer larger than any
    request the gateway lets through can carry."""
    return {k: "x" * int(v[4:]) if isinstance(v, str) and v.startswith("PAD ") else v for k, v in args.items()}


def sse(events: list[dict], named: bool) -> list[bytes]:
    return [(f"event: {e['type']}\n" if named else "").encode() + f"data: {json.dumps(e)}\n\n".encode() for e in events]


def chat_call(model: str, name: str, args: dict) -> dict:
    c = chat(model)
    c["choices"][0]["message"] = {"role": "assistant", "content": None, "refusal": None, "tool_calls": [
        {"id": "call_e2e", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}]}
    c["choices"][0]["finish_reason"] = "tool_calls"
    return c


def chat_call_stream(model: str, name: str, args: dict) -> list[bytes]:
    base = {"id": "chatcmpl-e2e", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
    text = json.dumps(args)
    half = len(text) // 2
    deltas = [
        ({"role": "assistant", "content": PREAMBLE}, None),
        ({"tool_calls": [{"index": 0, "id": "call_e2e", "type": "function",
                          "function": {"name": name, "arguments": text[:half]}}]}, None),
        ({"tool_calls": [{"index": 0, "function": {"arguments": text[half:]}}]}, None),
        ({}, "tool_calls"),
    ]
    chunks = [{**base, "choices": [{"index": 0, "delta": d, "finish_reason": f}]} for d, f in deltas]
    return sse(chunks, named=False) + [b"data: [DONE]\n\n"]


def function_call_item(name: str, args: dict) -> dict:
    return {"type": "function_call", "id": "fc_e2e", "call_id": "call_e2e", "name": name,
            "arguments": json.dumps(args), "status": "completed"}


def response_call(model: str, name: str, args: dict) -> dict:
    r = response(model)
    r["output"] = [function_call_item(name, args)]
    return r


def response_call_stream(model: str, name: str, args: dict) -> list[bytes]:
    item = function_call_item(name, args)
    events = [
        {"type": "response.created", "response": response(model, "in_progress")},
        {"type": "response.output_item.added", "output_index": 0, "item": {**item, "arguments": "", "status": "in_progress"}},
        {"type": "response.function_call_arguments.delta", "item_id": "fc_e2e", "output_index": 0, "delta": item["arguments"]},
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {"type": "response.completed", "response": response_call(model, name, args)},
    ]
    for i, e in enumerate(events):
        e["sequence_number"] = i
    return sse(events, named=True)


def message_call(model: str, name: str, args: dict) -> dict:
    m = message(model)
    m["content"] = [{"type": "text", "text": PREAMBLE},
                    {"type": "tool_use", "id": "toolu_e2e", "name": name, "input": args}]
    m["stop_reason"] = "tool_use"
    return m


def message_call_stream(model: str, name: str, args: dict) -> list[bytes]:
    start = {**message(model), "content": [], "stop_reason": None, "usage": {"input_tokens": 10, "output_tokens": 0}}
    text = json.dumps(args)
    events = [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": PREAMBLE}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1,
         "content_block": {"type": "tool_use", "id": "toolu_e2e", "name": name, "input": {}}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": text[:3]}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": text[3:]}},
        {"type": "content_block_stop", "index": 1},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None}, "usage": {"output_tokens": 9}},
        {"type": "message_stop"},
    ]
    return sse(events, named=True)


# `SHIFT <tool> <shown args> <real args>`: an Anthropic stream that two readers take
# differently (what a compromised model endpoint could send to slip arguments past a check).
SHIFT = re.compile(r"SHIFT (\w+) ")


def shifted_call(doc: dict) -> tuple[str, dict, dict] | None:
    text = last_user_text(doc)
    m = SHIFT.search(text)
    if not m:
        return None
    decoder = json.JSONDecoder()
    shown, end = decoder.raw_decode(text, m.end())
    real, _ = decoder.raw_decode(text, end + 1)
    return m.group(1), shown, real


def message_shifted_stream(model: str, name: str, shown: dict, real: dict) -> list[bytes]:
    """The SDK skips the `ping`-named event, so for it the tool block is content block 0 and
    the piece for block 0 its input (`real`); a reader going by `type` sees a text block 0
    there and the tool block's `shown` input at its start."""
    start = {**message(model), "content": [], "stop_reason": None, "usage": {"input_tokens": 10, "output_tokens": 0}}
    events = [
        ("message_start", {"type": "message_start", "message": start}),
        ("ping", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ("content_block_start", {"type": "content_block_start", "index": 1,
                                 "content_block": {"type": "tool_use", "id": "toolu_e2e", "name": name, "input": shown}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "input_json_delta", "partial_json": json.dumps(real)}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                           "usage": {"output_tokens": 9}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    return [f"event: {name}\ndata: {json.dumps(e)}\n\n".encode() for name, e in events]


# `COMPUTER <members>`: a Responses answer whose one item is a computer_call with these
# members (`action`, `actions`), as a model using the computer tools answers.
COMPUTER = re.compile(r"COMPUTER (\{.*\})\s*$", re.S)


def computer_members(doc: dict) -> dict | None:
    m = COMPUTER.search(last_user_text(doc))
    return json.loads(m.group(1)) if m else None


def computer_item(members: dict) -> dict:
    return {"type": "computer_call", "id": "cu_e2e", "call_id": "call_e2e", "pending_safety_checks": [],
            "status": "completed", **members}


def response_computer(model: str, members: dict) -> dict:
    r = response(model)
    r["output"] = [computer_item(members)]
    return r


def response_computer_stream(model: str, members: dict) -> list[bytes]:
    item = computer_item(members)
    events = [
        {"type": "response.created", "response": response(model, "in_progress")},
        {"type": "response.output_item.added", "output_index": 0,
         "item": {**computer_item({}), "status": "in_progress"}},
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {"type": "response.completed", "response": response_computer(model, members)},
    ]
    for i, e in enumerate(events):
        e["sequence_number"] = i
    return sse(events, named=True)


CALLS = {
    "/chat/completions": (chat_call, chat_call_stream),
    "/responses": (response_call, response_call_stream),
    "/messages": (message_call, message_call_stream),
}

ENDPOINTS = {
    "/chat/completions": (chat, chat_stream),
    "/responses": (response, response_stream),
    "/messages": (message, message_stream),
}


# --------------------------------------------------------------------------- the ASGI app


def build_app(record_path: str):
    recorder = Recorder(record_path)

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                m = await receive()
                if m["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif m["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        if scope["path"].startswith("/api/early"):
            # An endpoint that acts on the request line alone and answers at once, before
            # (and without) reading the body.
            recorder.write(kind="http", method=scope["method"], path=scope["path"], complete=False,
                           body="", body_bytes=0, acted_on_head=True)
            body = json.dumps({"done": True, "path": scope["path"]}).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode()),
                                    (b"set-cookie", b"session=upstream-secret"),
                                    (b"x-upstream-secret", b"42")]})
            await send({"type": "http.response.body", "body": body})
            return
        chunks: list[bytes] = []
        complete = False
        while True:
            m = await receive()
            if m["type"] == "http.request":
                chunks.append(m.get("body", b""))
                if not m.get("more_body", False):
                    complete = True
                    break
            else:  # disconnected before the body completed: the gateway denied it
                break
        body = b"".join(chunks)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        recorder.write(
            kind="http", method=scope["method"], path=scope["path"], complete=complete,
            body=body.decode("utf-8", "replace"), body_bytes=len(body),
            content_length=headers.get("content-length"), transfer_encoding=headers.get("transfer-encoding"),
            decision_id=headers.get("x-aigate-decision-id"), approval=headers.get("x-aigate-approval"),
        )
        if not complete:
            return
        if scope["path"].startswith("/api/"):
            # A REST tool endpoint behind an aigate `action` route: it does what it is told.
            await reply(send, 200, json.dumps({"done": True, "path": scope["path"]}).encode())
            return
        endpoint = next((v for k, v in ENDPOINTS.items() if scope["path"].endswith(k)), None)
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        if endpoint is None or scope["method"] != "POST" or not isinstance(doc, dict):
            await reply(send, 404, b'{"error":{"message":"not found","type":"not_found_error"}}')
            return
        plain, streamed = endpoint
        model = str(doc.get("model", "unknown"))
        call = scripted_call(doc)
        if call:
            calling = next(v for k, v in CALLS.items() if scope["path"].endswith(k))
            plain = lambda m: calling[0](m, *call)  # noqa: E731
            streamed = lambda m: calling[1](m, *call)  # noqa: E731
        computer = computer_members(doc)
        if computer is not None and scope["path"].endswith("/responses"):
            plain = lambda m: response_computer(m, computer)  # noqa: E731
            streamed = lambda m: response_computer_stream(m, computer)  # noqa: E731
        shifted = scripted_call(doc) is None and shifted_call(doc)
        if shifted and scope["path"].endswith("/messages"):
            streamed = lambda m: message_shifted_stream(m, *shifted)  # noqa: E731
        if doc.get("stream") is True:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]})
            for event in streamed(model):
                await send({"type": "http.response.body", "body": event, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        else:
            await reply(send, 200, json.dumps(plain(model)).encode())

    return app


async def reply(send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8001)
    p.add_argument("--record", default="model-record.jsonl")
    p.add_argument("--log-level", default="warning")
    a = p.parse_args()
    uvicorn.run(build_app(a.record), host=a.host, port=a.port, log_level=a.log_level, lifespan="on")


if __name__ == "__main__":
    main()
