"""Mock Anthropic API server for Heliograph's tests, byte-faithful to api.anthropic.com.

Checked against the real ``anthropic`` SDK. Serves ``POST /v1/messages`` (stream and not),
``POST /v1/messages/count_tokens``, ``GET /v1/models`` and ``GET /v1/models/{id}``.

In-process use (background thread with its own event loop)::

    with MockAnthropic() as m:          # or m = MockAnthropic(); m.start(); ...; m.stop()
        Anthropic(base_url=m.base_url, api_key="sk-ant-test")
        m.wait_for(1); m.requests[-1].headers["x-api-key"]; m.reset()

Subprocess use: ``python tests/mock_anthropic.py --port 0`` prints ``READY <port>``.
``GET /__mock/requests`` returns the recorded requests as JSON, ``DELETE`` clears them.
The harness at the end (``MockServer``, ``record``, ``parse_controls``) serves ``mock_ollama``
too; requests are ``mock_upstream.Received`` records, as with the OpenAI mock.

Wire format (as Anthropic sends it)
-----------------------------------
Compact JSON. Non-stream: ``application/json``, keys ``model, id, type, role, content,
stop_reason, stop_sequence, usage``. Stream: ``text/event-stream; charset=utf-8``, each event
``event: <type>\\ndata: <json>\\n\\n`` written separately, in the order ``message_start`` →
per block ``content_block_start`` (``ping`` after the first one; its data is
``{"type": "ping"}``, with a space, as the real API writes it) → ``content_block_delta``* →
``content_block_stop`` → ``message_delta`` → ``message_stop``. ``message_start`` usage has
``output_tokens: 1``; ``message_delta`` usage repeats the input and cache counts and carries
the final ``output_tokens`` (cumulative). Every response has ``request-id`` and
``anthropic-organization-id``; ``/v1/messages*`` responses also ``anthropic-ratelimit-*``.
Requests need a key, in ``x-api-key`` or ``Authorization: Bearer`` (anthropic SDK 2.x sends
the API key as a bearer token), else 401 ``authentication_error``; and ``anthropic-version``
(else 400). ``model``, ``max_tokens`` and ``messages`` are required (else 400).

Deterministic token counts
--------------------------
``chars`` = characters of text in ``system`` and ``messages`` (strings, block ``text`` and
``content``), as in ``mock_upstream.text_chars``.

* ``input_tokens`` = ``chars // 4 + 7`` (the uncached part, as Anthropic reports it)
* ``cache_read_input_tokens`` = ``x-mock-cache-read`` (default 0);
  ``cache_creation_input_tokens`` = ``x-mock-cache-write`` (default 0, also given as
  ``cache_creation.ephemeral_5m_input_tokens``)
* ``output_tokens`` = number of non-empty content deltas (text, thinking, tool input pieces)

Replies: ``DEFAULT_TEXT`` in 5 word pieces (``"Hello", " from", " the", " mock", " Claude."``);
``max_tokens`` below the piece count truncates with ``stop_reason: "max_tokens"``.
With ``thinking: {"type": "enabled" | "adaptive", ...}`` a thinking block (``THINKING_TEXT``, 5 pieces, then
one ``signature_delta``) comes first: 10 output tokens. With ``x-mock-tool-call: 1`` and
``tools``: a text block (``TOOL_INTRO``, 4 pieces) and a ``tool_use`` block calling the first
tool with ``TOOL_INPUT`` streamed as ``TOOL_INPUT_FRAGMENTS`` (an empty one first, as Anthropic
does; 3 non-empty): 7 output tokens, ``stop_reason: "tool_use"``.

Behaviour controls (request headers)
------------------------------------
* ``x-mock-status: N`` (N >= 400): that status with an Anthropic error body: 400
  invalid_request_error, 401 authentication_error, 403 permission_error, 404 not_found_error,
  413 request_too_large, 429 rate_limit_error, 500 api_error, 529 overloaded_error.
  ``x-mock-retry-after: S`` adds ``retry-after``.
* ``x-mock-delay-ms: N``: wait before the response headers.
* ``x-mock-first-token-delay-ms: N``: stream: start events at once, then wait before the first
  content delta. ``x-mock-chunk-delay-ms: N``: wait between content deltas.
* ``x-mock-break-after: N``: stream: close the connection after N content deltas.
* ``x-mock-error-event-after: N``: stream: after N content deltas send ``event: error``
  (``overloaded_error``) and end.
* ``x-mock-chunks: N``: reply ``"tok0 tok1 ..."`` in N pieces.
* ``x-mock-echo-auth: 1``: reply text is ``"x-api-key: <value>"`` (or
  ``"authorization: <value>"`` when no ``x-api-key`` came).
* ``x-mock-tool-call: 1``; ``x-mock-cache-read: N``; ``x-mock-cache-write: N`` (see above).
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import dataclasses
import hashlib
import json
import random
import re
import string
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from mock_upstream import MockServer, Received, Recorder, run_main, split_pieces, text_chars

DEFAULT_TEXT = "Hello from the mock Claude."
THINKING_TEXT = "The user wants a greeting."
TOOL_INTRO = "I'll check the weather."
TOOL_INPUT = {"location": "Paris", "unit": "celsius"}
TOOL_INPUT_FRAGMENTS = ["", '{"location": "Par', 'is", "unit": "cel', 'sius"}']
ORGANIZATION_ID = "0f6a2b1c-5d4e-4f3a-9b8c-7d6e5f4a3b2c"
MID_STREAM_ERROR = {"type": "overloaded_error", "message": "Overloaded"}
MODELS = [  # (id, display name, created_at, max_input_tokens, max_tokens)
    ("claude-sonnet-4-6", "Claude Sonnet 4.6", "2026-02-17T00:00:00Z", 1000000, 64000),
    ("claude-opus-4-6", "Claude Opus 4.6", "2026-02-05T00:00:00Z", 1000000, 128000),
    ("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-15T00:00:00Z", 200000, 64000),
]
_ERRORS: dict[int, tuple[str, str]] = {  # status -> (error type, message)
    400: ("invalid_request_error", "Mock bad request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: (
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    404: ("not_found_error", "Not found"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: (
        "rate_limit_error",
        "This request would exceed the rate limit for your organization of 50 requests per "
        "minute. For details, refer to: https://docs.claude.com/en/api/rate-limits.",
    ),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}
_ALNUM = string.ascii_letters + string.digits
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
C = TypeVar("C")
Json = dict[str, Any]
_CTL: contextvars.ContextVar[Controls] = contextvars.ContextVar("anthropic_ctl")
_SSE: contextvars.ContextVar[web.StreamResponse | None] = contextvars.ContextVar("anthropic_sse")


@dataclass
class Controls:
    """The ``x-mock-*`` request headers (field ``foo_bar`` <- header ``x-mock-foo-bar``)."""

    status: int | None = None
    retry_after: str | None = None
    delay_ms: int = 0
    first_token_delay_ms: int = 0
    chunk_delay_ms: int = 0
    chunks: int | None = None
    break_after: int | None = None
    error_event_after: int | None = None
    echo_auth: bool = False
    tool_call: bool = False
    cache_read: int = 0
    cache_write: int = 0

    @classmethod
    def parse(cls, request: web.Request) -> Controls:
        return parse_controls(cls(), request)


# ---------------------------------------------------------------- helpers


def _id(prefix: str, n: int = 22) -> str:
    return prefix + "".join(random.choices(_ALNUM, k=n))


def dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status, body=dumps(data).encode(), content_type="application/json", headers=headers
    )


def error_response(
    status: int, type_: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = {"type": "error", "error": {"type": type_, "message": message}}
    body["request_id"] = _id("req_011C", 20)
    return json_response(body, status, headers)


def status_error(status: int, retry_after: str | None) -> web.Response:
    fallback = ("api_error" if status >= 500 else "invalid_request_error", "Mock error.")
    type_, message = _ERRORS.get(status, fallback)
    headers = {"retry-after": retry_after} if retry_after is not None else None
    return error_response(status, type_, message, headers)


def event(name: str, payload: Json) -> bytes:
    return f"event: {name}\ndata: {dumps(payload)}\n\n".encode()


PING = b'event: ping\ndata: {"type": "ping"}\n\n'


def signature_for(text: str) -> str:
    return base64.b64encode(hashlib.sha512(text.encode()).digest() * 2).decode()


def prompt_chars(body: Json) -> int:
    return text_chars(body.get("system")) + text_chars(body.get("messages"))


def input_tokens_for(body: Json) -> int:
    return prompt_chars(body) // 4 + 7


def reply_pieces(request: web.Request, ctl: Controls) -> list[str]:
    if ctl.chunks is not None:
        return [f"tok{i}" if i == 0 else f" tok{i}" for i in range(max(ctl.chunks, 0))]
    if ctl.echo_auth:
        name = "x-api-key" if "x-api-key" in request.headers else "authorization"
        return split_pieces(f"{name}: " + request.headers.get(name, "<none>"))
    return split_pieces(DEFAULT_TEXT)


@dataclass
class Block:
    """One content block of the reply: its final form and the deltas that stream it."""

    start: Json
    final: Json
    deltas: list[Json]

    @property
    def tokens(self) -> int:
        return sum(1 for d in self.deltas if any(d.get(k) for k in _PIECE_KEYS))


_PIECE_KEYS = ("text", "thinking", "partial_json")
_DELTA_TYPES = ("text_delta", "thinking_delta", "input_json_delta")  # what the controls count


def text_block(pieces: list[str]) -> Block:
    deltas = [{"type": "text_delta", "text": p} for p in pieces]
    return Block({"type": "text", "text": ""}, {"type": "text", "text": "".join(pieces)}, deltas)


def thinking_block() -> Block:
    pieces = split_pieces(THINKING_TEXT)
    sig = signature_for(THINKING_TEXT)
    deltas: list[Json] = [{"type": "thinking_delta", "thinking": p} for p in pieces]
    deltas.append({"type": "signature_delta", "signature": sig})
    start = {"type": "thinking", "thinking": "", "signature": ""}
    return Block(start, {"type": "thinking", "thinking": THINKING_TEXT, "signature": sig}, deltas)


def tool_block(name: str) -> Block:
    tid = _id("toolu_01")
    deltas = [{"type": "input_json_delta", "partial_json": p} for p in TOOL_INPUT_FRAGMENTS]
    start = {"type": "tool_use", "id": tid, "name": name, "input": {}}
    return Block(start, {**start, "input": TOOL_INPUT}, deltas)


def plan_reply(request: web.Request, body: Json, ctl: Controls) -> tuple[list[Block], str]:
    """The content blocks of the reply and its stop reason."""
    blocks: list[Block] = []
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"):
        blocks.append(thinking_block())
    tools = body.get("tools") or []
    if tools and ctl.tool_call:
        name = str(tools[0].get("name", "tool")) if isinstance(tools[0], dict) else "tool"
        blocks += [text_block(split_pieces(TOOL_INTRO)), tool_block(name)]
        return blocks, "tool_use"
    pieces, stop = reply_pieces(request, ctl), "end_turn"
    limit = body.get("max_tokens")
    if isinstance(limit, int) and len(pieces) > limit:
        pieces, stop = pieces[:limit], "max_tokens"
    blocks.append(text_block(pieces))
    return blocks, stop


def usage_for(body: Json, ctl: Controls, output: int) -> Json:
    return {
        "input_tokens": input_tokens_for(body),
        "cache_creation_input_tokens": ctl.cache_write,
        "cache_read_input_tokens": ctl.cache_read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": ctl.cache_write,
            "ephemeral_1h_input_tokens": 0,
        },
        "output_tokens": output,
        "service_tier": "standard",
    }


async def read_body(request: web.Request) -> Json | web.Response:
    try:
        body = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        return error_response(
            400,
            "invalid_request_error",
            "There was an error parsing the body of your request. Ensure it is valid JSON.",
        )
    if not isinstance(body, dict):
        return error_response(400, "invalid_request_error", "Input should be an object")
    return body


def missing_field(body: Json, names: tuple[str, ...]) -> web.Response | None:
    for name in names:
        if name not in body:
            return error_response(400, "invalid_request_error", f"{name}: Field required")
    return None


# ---------------------------------------------------------------- /v1/messages


async def messages(request: web.Request) -> web.StreamResponse:
    body = await read_body(request)
    if isinstance(body, web.Response):
        return body
    problem = missing_field(body, ("model", "max_tokens", "messages"))
    if problem is not None:
        return problem
    ctl = _CTL.get()
    blocks, stop_reason = plan_reply(request, body, ctl)
    output = sum(b.tokens for b in blocks)
    head = {"model": body["model"], "id": _id("msg_01"), "type": "message", "role": "assistant"}
    if not body.get("stream"):
        out = {**head, "content": [b.final for b in blocks]}
        out.update(stop_reason=stop_reason, stop_sequence=None)
        out["usage"] = usage_for(body, ctl, output)
        return json_response(out)

    start = {**head, "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = usage_for(body, ctl, 1)
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
    )
    _SSE.set(resp)
    await resp.prepare(request)
    await resp.write(event("message_start", {"type": "message_start", "message": start}))
    frames: list[tuple[bytes, bool]] = []  # (frame, is a content delta)
    for index, block in enumerate(blocks):
        frame = {"type": "content_block_start", "index": index, "content_block": block.start}
        frames.append((event("content_block_start", frame), False))
        if index == 0:
            frames.append((PING, False))
        for delta in block.deltas:
            frame = {"type": "content_block_delta", "index": index, "delta": delta}
            frames.append((event("content_block_delta", frame), delta["type"] in _DELTA_TYPES))
        frame = {"type": "content_block_stop", "index": index}
        frames.append((event("content_block_stop", frame), False))
    sent = 0
    for frame_bytes, is_delta in frames:
        if is_delta:
            if not await gate(request, resp, ctl, sent):
                return resp
            sent += 1
        await resp.write(frame_bytes)
    if not await gate(request, resp, ctl, sent, delay=False):
        return resp
    usage = {k: v for k, v in usage_for(body, ctl, output).items() if k.endswith("_tokens")}
    delta = {"stop_reason": stop_reason, "stop_sequence": None}
    frame = {"type": "message_delta", "delta": delta, "usage": usage}
    await resp.write(event("message_delta", frame))
    await resp.write(event("message_stop", {"type": "message_stop"}))
    await resp.write_eof()
    return resp


async def gate(
    request: web.Request, resp: web.StreamResponse, ctl: Controls, sent: int, delay: bool = True
) -> bool:
    """Apply the stream controls before content delta number ``sent``; False to stop."""
    if delay and sent == 0 and ctl.first_token_delay_ms:
        await asyncio.sleep(ctl.first_token_delay_ms / 1000)
    elif delay and sent > 0 and ctl.chunk_delay_ms:
        await asyncio.sleep(ctl.chunk_delay_ms / 1000)
    if ctl.break_after is not None and sent >= ctl.break_after:
        if request.transport is not None:
            request.transport.close()
        return False
    if ctl.error_event_after is not None and sent >= ctl.error_event_after:
        await resp.write(event("error", {"type": "error", "error": MID_STREAM_ERROR}))
        await resp.write_eof()
        return False
    return True


async def count_tokens(request: web.Request) -> web.StreamResponse:
    body = await read_body(request)
    if isinstance(body, web.Response):
        return body
    problem = missing_field(body, ("model", "messages"))
    if problem is not None:
        return problem
    return json_response({"input_tokens": input_tokens_for(body)})


# ---------------------------------------------------------------- models


def model_entry(mid: str, name: str, created: str, max_input: int, max_out: int) -> Json:
    return {
        "type": "model",
        "id": mid,
        "display_name": name,
        "created_at": created,
        "lifecycle": "active",
        "max_input_tokens": max_input,
        "max_tokens": max_out,
    }


async def list_models(request: web.Request) -> web.StreamResponse:
    data = [model_entry(*m) for m in MODELS]
    return json_response(
        {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}
    )


async def get_model(request: web.Request) -> web.StreamResponse:
    mid = request.match_info["model"]
    for m in MODELS:
        if m[0] == mid:
            return json_response(model_entry(*m))
    return error_response(404, "not_found_error", f"model: {mid}")


# ---------------------------------------------------------------- app and runners


def _rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def ratelimit_headers() -> dict[str, str]:
    reset = _rfc3339(time.time() + 60)
    headers = {}
    for kind, limit in (("requests", 50), ("input-tokens", 30000), ("output-tokens", 8000)):
        headers[f"anthropic-ratelimit-{kind}-limit"] = str(limit)
        headers[f"anthropic-ratelimit-{kind}-remaining"] = str(limit - 1)
        headers[f"anthropic-ratelimit-{kind}-reset"] = reset
    headers["anthropic-ratelimit-tokens-limit"] = "38000"
    headers["anthropic-ratelimit-tokens-remaining"] = "37990"
    headers["anthropic-ratelimit-tokens-reset"] = reset
    return headers


def build_app(recorder: Recorder) -> web.Application:
    @web.middleware
    async def controls_mw(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/__mock"):
            return await handler(request)
        headers = (await record(recorder, request)).headers
        ctl = Controls.parse(request)
        _CTL.set(ctl)
        _SSE.set(None)
        try:
            if ctl.delay_ms:
                await asyncio.sleep(ctl.delay_ms / 1000)
            if not headers.get("x-api-key") and not headers.get("authorization"):
                return error_response(401, "authentication_error", "x-api-key header is required")
            if not headers.get("anthropic-version"):
                return error_response(
                    400, "invalid_request_error", "anthropic-version: header is required"
                )
            if ctl.status is not None and ctl.status >= 400:
                return status_error(ctl.status, ctl.retry_after)
            return await handler(request)
        except ConnectionError:  # the client went away mid-stream
            resp = _SSE.get()
            return resp if resp is not None else web.Response(status=499)

    async def add_headers(request: web.Request, resp: web.StreamResponse) -> None:
        if request.path.startswith("/__mock"):
            return
        resp.headers.setdefault("request-id", _id("req_011C", 20))
        resp.headers.setdefault("anthropic-organization-id", ORGANIZATION_ID)
        if request.path.startswith("/v1/messages"):
            for name, value in ratelimit_headers().items():
                resp.headers.setdefault(name, value)

    app = web.Application(middlewares=[controls_mw])
    app.on_response_prepare.append(add_headers)
    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model}", get_model)
    add_mock_routes(app, recorder)
    return app


# ---------------------------------------------------------------- harness (mock_ollama uses it too)


def parse_controls(ctl: C, request: web.Request) -> C:
    """Fill a controls dataclass from the ``x-mock-*`` headers (``foo_bar`` <- ``x-mock-foo-bar``)."""
    for f in dataclasses.fields(ctl):  # type: ignore[arg-type]
        value = request.headers.get("x-mock-" + f.name.replace("_", "-"))
        if value is None:
            continue
        value = value.strip()
        kind = str(f.type)
        if "bool" in kind:
            setattr(ctl, f.name, value.lower() in ("1", "true", "yes"))
        elif "str" in kind:
            setattr(ctl, f.name, value)
        elif re.fullmatch(r"-?\d+", value):
            setattr(ctl, f.name, int(value))
    return ctl


async def record(recorder: Recorder, request: web.Request) -> Received:
    """Log a request (header names lower-cased, repeated headers joined) and return it."""
    raw = await request.read()
    try:
        parsed = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError):
        parsed = None
    headers: dict[str, str] = {}
    for k, v in request.headers.items():
        key = k.lower()
        headers[key] = f"{headers[key]}, {v}" if key in headers else v
    item = Received(request.method, request.path, request.query_string, headers, raw, parsed)
    recorder.add(item)
    return item


def add_mock_routes(
    app: web.Application, recorder: Recorder, on_clear: Callable[[], None] | None = None
) -> None:
    """``GET /__mock/requests`` lists what was recorded; ``DELETE`` forgets it."""

    async def get_requests(request: web.Request) -> web.StreamResponse:
        return web.json_response([r.to_dict() for r in recorder.snapshot()])

    async def delete_requests(request: web.Request) -> web.StreamResponse:
        recorder.clear()
        if on_clear is not None:
            on_clear()
        return web.json_response({"cleared": True})

    app.router.add_get("/__mock/requests", get_requests)
    app.router.add_delete("/__mock/requests", delete_requests)


class MockAnthropic(MockServer):
    """The mock Anthropic server; give ``base_url`` (no ``/v1``) to ``anthropic.Anthropic``."""

    thread_name = "mock-anthropic"

    @staticmethod
    def make_app(recorder: Recorder) -> web.Application:
        return build_app(recorder)


def main(argv: list[str] | None = None) -> None:
    run_main(build_app, "Mock Anthropic API server", argv)


if __name__ == "__main__":
    main()
