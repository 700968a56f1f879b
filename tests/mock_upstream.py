"""Mock OpenAI-compatible upstream server for Heliograph's tests.

Speaks the OpenAI wire format (checked against the real ``openai`` SDK) on ``/v1``:
``POST /chat/completions``, ``POST /completions``, ``POST /embeddings``, ``POST /responses``,
``POST /moderations``, ``GET /models`` and ``GET /models/{id}``.

In-process use (background thread with its own event loop)::

    with MockUpstream() as m:          # or m = MockUpstream(); m.start(); ...; m.stop()
        OpenAI(base_url=m.url, api_key="sk-test")   # m.url == m.base_url + "/v1"
        m.wait_for(1); m.requests[-1].json; m.reset()

Subprocess use: ``python tests/mock_upstream.py --port 0`` prints ``READY <port>`` once
listening. ``GET /__mock/requests`` returns the recorded requests as JSON (body as utf-8 text),
``DELETE /__mock/requests`` clears them. ``/__mock`` requests are never recorded.

Deterministic token counts
--------------------------
``chars`` = characters of the request's text: chat ``messages[].content`` (a string, or the
``text`` of content parts), completions ``prompt``, embeddings ``input``, responses
``instructions`` + ``input`` (strings, item ``content`` and part ``text``); an integer token id
counts as 4 characters.

* ``prompt_tokens`` (``input_tokens``) = ``chars // 4 + 7``
* ``completion_tokens`` (``output_tokens``) = number of content pieces emitted (for a tool call:
  the number of ``arguments`` fragments, always 5) + ``x-mock-reasoning-tokens``
* ``total_tokens`` = prompt + completion; embeddings: ``total_tokens == prompt_tokens``.
* ``cached_tokens`` = ``x-mock-cached-tokens`` (default 0); ``reasoning_tokens`` likewise.

The default reply is ``"Hello from the mock upstream."`` emitted one word per piece with the
spaces kept: ``"Hello", " from", " the", " mock", " upstream."`` (5 pieces). ``max_tokens`` /
``max_completion_tokens`` truncate the pieces and give ``finish_reason: "length"``.
Embeddings have ``dimensions`` (default 8) values that are multiples of 1/256 (exact in float32).

Behaviour controls (request headers)
------------------------------------
* ``x-mock-status: N`` (N >= 400): that status with ``{"error": {message, type, param, code}}``:
  400 invalid_request_error; 401 code invalid_api_key; 404 code model_not_found; 429 type
  requests, code rate_limit_exceeded; 5xx server_error. ``x-mock-retry-after: S`` adds
  ``Retry-After``.
* ``x-mock-delay-ms: N``: wait before sending the response headers (any endpoint).
* ``x-mock-first-token-delay-ms: N``: stream: headers and role chunk at once, then wait.
* ``x-mock-chunk-delay-ms: N``: stream: wait between content chunks.
* ``x-mock-chunks: N``: reply ``"tok0 tok1 ..."`` in N pieces instead of the default text.
* ``x-mock-break-after: N``: stream: close the connection after N content chunks.
* ``x-mock-error-event-after: N``: stream: after N content chunks send
  ``data: {"error": {...}}`` and end (the Responses API gets an ``event: error`` instead).
* ``x-mock-no-usage: 1``: never send usage (no ``usage`` key, even with include_usage).
* ``x-mock-echo-auth: 1``: reply text is ``"Authorization: <received header value>"``.
* ``x-mock-tool-call: 1`` (or a model name containing ``tool``) with ``tools`` in a chat request:
  call the first tool with ``TOOL_ARGUMENTS`` (streamed in ``TOOL_ARGUMENT_FRAGMENTS``).
* ``x-mock-cached-tokens: N`` / ``x-mock-reasoning-tokens: N``: usage details.
* ``x-mock-fail-first: N`` with ``x-mock-fail-key: K``: the first N requests carrying key K
  fail with ``x-mock-fail-status`` (default 503); later ones succeed (a flaky upstream).
* ``x-mock-title: T`` (percent-decoded): a chat request whose text is a title-generation task
  (``is_title_prompt``: a ``### Task:`` prompt asking for ``{ "title": ... }``, as Open WebUI
  sends) is answered ``{"title": "T"}``; every other request gets the usual reply.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextvars
import dataclasses
import hashlib
import json
import re
import signal
import struct
import threading
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from aiohttp import web

DEFAULT_TEXT = "Hello from the mock upstream."
TOOL_ARGUMENTS = '{"location": "Paris", "unit": "celsius"}'
TOOL_ARGUMENT_FRAGMENTS = ['{"location', '": "Paris', '", "unit', '": "celsius', '"}']
SYSTEM_FINGERPRINT = "fp_mock0000"
SERVICE_TIER = "default"
MID_STREAM_ERROR = {
    "message": "mock mid-stream failure",
    "type": "server_error",
    "param": None,
    "code": None,
}
MODELS = [  # (id, created, owned_by)
    ("gpt-4o-mini", 1721172741, "system"),
    ("gpt-4o", 1715367049, "system"),
    ("gpt-3.5-turbo-instruct", 1692901427, "system"),
    ("text-embedding-3-small", 1705948997, "system"),
    ("omni-moderation-latest", 1731689265, "system"),
]
_ERRORS: dict[int, tuple[str, str | None, str]] = {  # status -> (type, code, message)
    400: ("invalid_request_error", None, "Mock bad request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided: sk-mock."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Not supported."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests (mock)."),
    500: ("server_error", None, "The server had an error while processing your request."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}
_JSON_HINT = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent "
    "was not valid JSON.)"
)
_MOD_CATEGORIES = [
    *("harassment", "harassment/threatening", "hate", "hate/threatening", "illicit"),
    *("illicit/violent", "self-harm", "self-harm/instructions", "self-harm/intent", "sexual"),
    *("sexual/minors", "violence", "violence/graphic"),
]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Json = dict[str, Any]
# per-request state, shared by the middleware and the handler (same task)
_CTL: contextvars.ContextVar[Controls] = contextvars.ContextVar("mock_ctl")
_SSE: contextvars.ContextVar[web.StreamResponse | None] = contextvars.ContextVar("mock_sse")
_SCRIPT: contextvars.ContextVar[str | None] = contextvars.ContextVar("mock_script", default=None)


@dataclass(frozen=True)
class Received:
    """One request as received by the mock (header names lower-cased)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    json: Any | None

    def to_dict(self) -> Json:
        return {**dataclasses.asdict(self), "body": self.body.decode("utf-8", "replace")}


class Recorder:
    """Thread-safe log of received requests, and the in-process script of answers.

    ``replies``: (needle, text) pairs; a chat or completion request whose raw body contains a
    needle is answered ``text`` (the first match wins). ``delay_ms``: the delay of every
    request without its own ``x-mock-delay-ms``. ``calls(needle)`` counts received requests
    whose body contains ``needle`` (a per-request call counter for resume tests).
    ``throttles``: (needle, n, retry_after_s): the first n requests whose body contains the
    needle are answered 429 with ``Retry-After`` (callers that cannot send mock headers).
    """

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.items: list[Received] = []
        self.replies: list[tuple[str, str]] = []
        self.delay_ms = 0
        self.throttles: list[tuple[str, int, int]] = []
        self.throttled: dict[str, int] = {}

    def throttle(self, body: bytes) -> int | None:
        """The Retry-After seconds to answer 429 with, when a throttle still applies."""
        with self.cond:
            for needle, times, retry_after in self.throttles:
                if needle.encode() in body:
                    seen = self.throttled.get(needle, 0)
                    if seen < times:
                        self.throttled[needle] = seen + 1
                        return retry_after
        return None

    def scripted(self, body: bytes) -> str | None:
        for needle, text in list(self.replies):
            if needle.encode() in body:
                return text
        return None

    def calls(self, needle: str) -> int:
        with self.cond:
            return sum(needle.encode() in r.body for r in self.items)

    def add(self, item: Received) -> None:
        with self.cond:
            self.items.append(item)
            self.cond.notify_all()

    def clear(self) -> None:
        with self.cond:
            self.items.clear()

    def snapshot(self) -> list[Received]:
        with self.cond:
            return list(self.items)

    def wait_for(self, n: int, timeout: float) -> list[Received]:
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.items) >= n, timeout):
                raise TimeoutError(f"expected {n} requests, got {len(self.items)}")
            return list(self.items)


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
    no_usage: bool = False
    echo_auth: bool = False
    tool_call: bool = False
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    fail_first: int = 0  # the first N requests with the same x-mock-fail-key fail...
    fail_key: str | None = None
    fail_status: int = 503  # ...with this status (a flaky upstream, for retry tests)
    title: str | None = None  # answer title-generation prompts with {"title": <this>}

    @classmethod
    def parse(cls, request: web.Request) -> Controls:
        ctl = cls()
        for f in dataclasses.fields(cls):
            value = request.headers.get("x-mock-" + f.name.replace("_", "-"))
            if value is None:
                continue
            value = value.strip()
            kind = str(f.type)  # "bool", "str | None", "int", "int | None"
            if "bool" in kind:
                setattr(ctl, f.name, value.lower() in ("1", "true", "yes"))
            elif "str" in kind:
                setattr(ctl, f.name, value)
            elif re.fullmatch(r"-?\d+", value):
                setattr(ctl, f.name, int(value))
        return ctl


# ---------------------------------------------------------------- helpers


def _id(prefix: str, n: int = 24) -> str:
    return prefix + uuid.uuid4().hex[:n]


def text_chars(value: Any) -> int:
    """Characters of text in a request value (see the module docstring)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, bool) or value is None:
        return 0
    if isinstance(value, int):
        return 4
    if isinstance(value, list):
        return sum(text_chars(v) for v in value)
    if isinstance(value, dict):
        return text_chars(value.get("content")) + text_chars(value.get("text"))
    return 0


def prompt_tokens_for(chars: int) -> int:
    return chars // 4 + 7


def split_pieces(text: str) -> list[str]:
    """Split into words keeping the spaces in front: concatenation gives ``text`` back."""
    pieces = re.findall(r"\s*\S+", text)
    rest = text[len("".join(pieces)) :]
    return [*pieces, rest] if rest else pieces


def all_text(value: Any) -> str:
    """The text of a request value (what ``text_chars`` counts), joined."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(all_text(v) for v in value)
    if isinstance(value, dict):
        return all_text(value.get("content")) + all_text(value.get("text"))
    return ""


def is_title_prompt(value: Any) -> bool:
    """Whether a prompt is a title-generation task (Open WebUI's template and the like)."""
    text = all_text(value)
    return "### Task:" in text and '"title"' in text


def title_pieces(title: str | None, prompt: Any) -> list[str] | None:
    """The ``x-mock-title`` answer to a title-generation prompt (None: not one, or not asked)."""
    if title is None or not is_title_prompt(prompt):
        return None
    return split_pieces(json.dumps({"title": urllib.parse.unquote(title)}, ensure_ascii=False))


def reply_pieces(request: web.Request, ctl: Controls, prompt: Any = None) -> list[str]:
    scripted = _SCRIPT.get()
    if scripted is not None:
        return split_pieces(scripted)
    titled = title_pieces(ctl.title, prompt)
    if titled is not None:
        return titled
    if ctl.chunks is not None:
        return [f"tok{i}" if i == 0 else f" tok{i}" for i in range(max(ctl.chunks, 0))]
    if ctl.echo_auth:
        return split_pieces("Authorization: " + request.headers.get("authorization", "<none>"))
    return split_pieces(DEFAULT_TEXT)


def limit_pieces(body: Json, pieces: list[str]) -> tuple[list[str], str]:
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if isinstance(limit, int) and len(pieces) > limit:
        return pieces[:limit], "length"
    return pieces, "stop"


def chat_usage(prompt: int, completion: int, ctl: Controls) -> Json:
    completion += ctl.reasoning_tokens
    details = {"reasoning_tokens": ctl.reasoning_tokens, "audio_tokens": 0}
    details.update(accepted_prediction_tokens=0, rejected_prediction_tokens=0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {
            "cached_tokens": min(ctl.cached_tokens, prompt),
            "audio_tokens": 0,
        },
        "completion_tokens_details": details,
    }


def responses_usage(prompt: int, completion: int, ctl: Controls) -> Json:
    completion += ctl.reasoning_tokens
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": min(ctl.cached_tokens, prompt)},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": ctl.reasoning_tokens},
        "total_tokens": prompt + completion,
    }


def obfuscation(seed: str, seq: int) -> str:
    return hashlib.sha1(f"{seed}:{seq}".encode()).hexdigest()[: 2 + seq % 11]


def error_body(message: str, type_: str, code: str | None = None, param: str | None = None) -> Json:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    body = json.dumps(data, indent=2, ensure_ascii=False).encode()
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


def status_error(status: int, retry_after: str | None) -> web.Response:
    fallback = ("server_error" if status >= 500 else "invalid_request_error", None, "Mock error.")
    type_, code, message = _ERRORS.get(status, fallback)
    headers = {"Retry-After": retry_after} if retry_after is not None else None
    return json_response(error_body(message, type_, code), status, headers)


def bad_request(message: str, param: str | None = None) -> web.Response:
    return json_response(error_body(message, "invalid_request_error", None, param), 400)


def sse(payload: Any, event: str | None = None) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {data}\n\n".encode()


async def read_json(request: web.Request, need_model: bool = True) -> Json | web.Response:
    try:
        body = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        return bad_request(_JSON_HINT)
    if not isinstance(body, dict):
        return bad_request(_JSON_HINT)
    if need_model and not body.get("model"):
        return bad_request("you must provide a model parameter", "model")
    return body


def wants_usage(body: Json, ctl: Controls) -> bool:
    return bool((body.get("stream_options") or {}).get("include_usage")) and not ctl.no_usage


class Streamer:
    """Writes SSE frames one ``write`` (hence one HTTP chunk) each; applies the stream controls."""

    def __init__(self, request: web.Request, ctl: Controls) -> None:
        self.request, self.ctl = request, ctl
        headers = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
        self.resp = web.StreamResponse(headers=headers)
        self.broken = False

    async def start(self) -> None:
        _SSE.set(self.resp)
        await self.resp.prepare(self.request)

    async def send(self, frame: bytes) -> None:
        await self.resp.write(frame)

    async def pieces(
        self, pieces: list[str], frame: Callable[[str], bytes], error: Callable[[], bytes]
    ) -> bool:
        """Send one frame per content piece; False if the stream was broken / errored."""
        ctl = self.ctl
        for i in range(len(pieces) + 1):
            if i == 0 and ctl.first_token_delay_ms:
                await asyncio.sleep(ctl.first_token_delay_ms / 1000)
            elif 0 < i < len(pieces) and ctl.chunk_delay_ms:
                await asyncio.sleep(ctl.chunk_delay_ms / 1000)
            if ctl.break_after is not None and i >= ctl.break_after:
                if self.request.transport is not None:
                    self.request.transport.close()
                self.broken = True
                return False
            if ctl.error_event_after is not None and i >= ctl.error_event_after:
                await self.send(error())
                return False
            if i < len(pieces):
                await self.send(frame(pieces[i]))
        return True

    async def finish(self) -> web.StreamResponse:
        if not self.broken:
            await self.resp.write_eof()
        return self.resp


def chat_error_frame() -> bytes:
    return sse({"error": MID_STREAM_ERROR})


# ---------------------------------------------------------------- chat / completions


async def chat_completions(request: web.Request) -> web.StreamResponse:
    body = await read_json(request)
    if isinstance(body, web.Response):
        return body
    ctl = _CTL.get()
    cid, created, model = _id("chatcmpl-", 29), int(time.time()), body["model"]
    prompt = prompt_tokens_for(text_chars(body.get("messages")))
    tools = body.get("tools") or []
    call: Json | None = None
    if tools and (ctl.tool_call or "tool" in str(model).lower()):
        name = (tools[0].get("function") or {}).get("name", "tool")
        call = {"id": _id("call_"), "type": "function", "function": {"name": name}}
        pieces, finish = TOOL_ARGUMENT_FRAGMENTS, "tool_calls"
    else:
        pieces = reply_pieces(request, ctl, body.get("messages"))
        pieces, finish = limit_pieces(body, pieces)
    usage = chat_usage(prompt, len(pieces), ctl)
    head = {"id": cid, "object": "chat.completion", "created": created, "model": model}
    tail = {"service_tier": SERVICE_TIER, "system_fingerprint": SYSTEM_FINGERPRINT}

    if not body.get("stream"):
        message: Json = {"role": "assistant", "content": "".join(pieces)}
        if call is not None:
            message["content"] = None
            fn_done = {**call["function"], "arguments": TOOL_ARGUMENTS}
            message["tool_calls"] = [{**call, "function": fn_done}]
        message.update(refusal=None, annotations=[])
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
        out: Json = {**head, "choices": [choice], "usage": usage, **tail}
        if ctl.no_usage:
            del out["usage"]
        return json_response(out)

    head["object"] = "chat.completion.chunk"
    include_usage = wants_usage(body, ctl)
    obfuscate = (body.get("stream_options") or {}).get("include_obfuscation", True)
    seq = 0

    def chunk(delta: Json | None, finish_reason: str | None = None) -> bytes:
        nonlocal seq
        seq += 1
        c: Json = {**head, **tail, "choices": []}
        if delta is not None:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            c["choices"] = [choice]
        if include_usage:
            c["usage"] = usage if delta is None else None
        if obfuscate:
            c["obfuscation"] = obfuscation(cid, seq)
        return sse(c)

    def piece_chunk(piece: str) -> bytes:
        if call is None:
            return chunk({"content": piece})
        return chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})

    s = Streamer(request, ctl)
    await s.start()
    first: Json = {"role": "assistant", "content": "", "refusal": None}
    if call is not None:
        fn = {**call["function"], "arguments": ""}
        first = {"role": "assistant", "content": None}
        first.update(tool_calls=[{"index": 0, **call, "function": fn}], refusal=None)
    await s.send(chunk(first))
    if await s.pieces(pieces, piece_chunk, chat_error_frame):
        await s.send(chunk({}, finish))
        if include_usage:
            await s.send(chunk(None))
        await s.send(sse("[DONE]"))
    return await s.finish()


async def completions(request: web.Request) -> web.StreamResponse:
    body = await read_json(request)
    if isinstance(body, web.Response):
        return body
    ctl = _CTL.get()
    head = {"id": _id("cmpl-", 29), "object": "text_completion", "created": int(time.time())}
    model = body["model"]
    prompt = prompt_tokens_for(text_chars(body.get("prompt")))
    pieces, finish = limit_pieces(body, reply_pieces(request, ctl))
    usage = chat_usage(prompt, len(pieces), ctl)

    def chunk(text: str | None, finish_reason: str | None = None) -> Json:
        choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": finish_reason}
        c = {**head, "choices": [] if text is None else [choice], "model": model}
        c["system_fingerprint"] = SYSTEM_FINGERPRINT
        return c

    if not body.get("stream"):
        out = chunk("".join(pieces), finish)
        if not ctl.no_usage:
            out["usage"] = usage
        return json_response(out)

    include_usage = wants_usage(body, ctl)

    def frame(text: str | None, finish_reason: str | None = None) -> bytes:
        c = chunk(text, finish_reason)
        if include_usage:
            c["usage"] = usage if text is None else None
        return sse(c)

    s = Streamer(request, ctl)
    await s.start()
    if await s.pieces(pieces, frame, chat_error_frame):
        await s.send(frame("", finish))
        if include_usage:
            await s.send(frame(None))
        await s.send(sse("[DONE]"))
    return await s.finish()


# ---------------------------------------------------------------- responses API


def response_object(
    rid: str, created: int, body: Json, status: str, output: list[Any], usage: Any
) -> Json:
    nulls = ["error", "incomplete_details", "max_tool_calls", "prompt_cache_key"]
    obj: Json = {"id": rid, "object": "response", "created_at": created, "status": status}
    obj.update(background=False, **dict.fromkeys(nulls, None))
    obj.update(
        instructions=body.get("instructions"),
        max_output_tokens=body.get("max_output_tokens"),
        model=body["model"],
        output=output,
        parallel_tool_calls=True,
        previous_response_id=body.get("previous_response_id"),
        reasoning={"effort": None, "summary": None},
        safety_identifier=None,
        service_tier=SERVICE_TIER,
        store=body.get("store", True),
        temperature=body.get("temperature", 1.0),
        text={"format": {"type": "text"}, "verbosity": "medium"},
        tool_choice="auto",
        tools=[],
        top_logprobs=0,
        top_p=body.get("top_p", 1.0),
        truncation="disabled",
        usage=usage,
        user=None,
        metadata=body.get("metadata") or {},
    )
    return obj


async def responses(request: web.Request) -> web.StreamResponse:
    body = await read_json(request)
    if isinstance(body, web.Response):
        return body
    ctl = _CTL.get()
    rid, mid, created = _id("resp_", 48), _id("msg_", 48), int(time.time())
    prompt = prompt_tokens_for(text_chars(body.get("instructions")) + text_chars(body.get("input")))
    pieces = reply_pieces(request, ctl)
    text = "".join(pieces)
    usage = None if ctl.no_usage else responses_usage(prompt, len(pieces), ctl)

    def part(t: str) -> Json:
        return {"type": "output_text", "annotations": [], "logprobs": [], "text": t}

    def message(status: str, content: list[Any]) -> Json:
        return {
            "id": mid,
            "type": "message",
            "status": status,
            "content": content,
            "role": "assistant",
        }

    done_msg = message("completed", [part(text)])
    if not body.get("stream"):
        return json_response(response_object(rid, created, body, "completed", [done_msg], usage))

    seq = -1

    def event(type_: str, **fields: Any) -> bytes:
        nonlocal seq
        seq += 1
        return sse({"type": type_, "sequence_number": seq, **fields}, event=type_)

    loc = {"item_id": mid, "output_index": 0, "content_index": 0}

    def delta(piece: str) -> bytes:
        obf = obfuscation(rid, seq + 1)
        return event("response.output_text.delta", **loc, delta=piece, logprobs=[], obfuscation=obf)

    def error() -> bytes:
        msg = MID_STREAM_ERROR["message"]
        return event("error", code="server_error", message=msg, param=None)

    s = Streamer(request, ctl)
    await s.start()
    in_progress = response_object(rid, created, body, "in_progress", [], None)
    await s.send(event("response.created", response=in_progress))
    await s.send(event("response.in_progress", response=in_progress))
    await s.send(
        event("response.output_item.added", output_index=0, item=message("in_progress", []))
    )
    await s.send(event("response.content_part.added", **loc, part=part("")))
    if await s.pieces(pieces, delta, error):
        await s.send(event("response.output_text.done", **loc, text=text, logprobs=[]))
        await s.send(event("response.content_part.done", **loc, part=part(text)))
        await s.send(event("response.output_item.done", output_index=0, item=done_msg))
        final = response_object(rid, created, body, "completed", [done_msg], usage)
        await s.send(event("response.completed", response=final))
    return await s.finish()


# ---------------------------------------------------------------- embeddings, moderations, models


def embedding_vector(item: Any, dims: int) -> list[float]:
    digest = hashlib.sha256(json.dumps(item).encode()).digest()
    return [(digest[j % len(digest)] - 128) / 256 for j in range(dims)]


async def embeddings(request: web.Request) -> web.StreamResponse:
    body = await read_json(request)
    if isinstance(body, web.Response):
        return body
    raw = body.get("input")
    if raw is None or raw == "" or raw == []:
        return bad_request("'input' is a required property", "input")
    single = isinstance(raw, str) or all(isinstance(x, int) for x in raw)
    items: list[Any] = [raw] if single else list(raw)
    dims = body.get("dimensions") or 8
    data = []
    for i, item in enumerate(items):
        emb: Any = embedding_vector(item, dims)
        if body.get("encoding_format") == "base64":
            emb = base64.b64encode(struct.pack(f"<{dims}f", *emb)).decode()
        data.append({"object": "embedding", "index": i, "embedding": emb})
    out: Json = {"object": "list", "data": data, "model": body["model"]}
    if not _CTL.get().no_usage:
        prompt = prompt_tokens_for(text_chars(raw))
        out["usage"] = {"prompt_tokens": prompt, "total_tokens": prompt}
    return json_response(out)


async def moderations(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, need_model=False)
    if isinstance(body, web.Response):
        return body
    raw = body.get("input")
    result = {
        "flagged": False,
        "categories": dict.fromkeys(_MOD_CATEGORIES, False),
        "category_scores": dict.fromkeys(_MOD_CATEGORIES, 1e-06),
        "category_applied_input_types": {c: ["text"] for c in _MOD_CATEGORIES},
    }
    results = [result] * (len(raw) if isinstance(raw, list) else 1)
    model = body.get("model") or "omni-moderation-latest"
    return json_response({"id": _id("modr-"), "model": model, "results": results})


def model_entry(mid: str, created: int = 1715367049, owner: str = "system") -> Json:
    return {"id": mid, "object": "model", "created": created, "owned_by": owner}


async def list_models(request: web.Request) -> web.StreamResponse:
    return json_response({"object": "list", "data": [model_entry(*m) for m in MODELS]})


async def get_model(request: web.Request) -> web.StreamResponse:
    known = {m[0]: m for m in MODELS}
    mid = request.match_info["model"]
    return json_response(model_entry(*known.get(mid, (mid,))))


# ---------------------------------------------------------------- app and runners


def build_app(recorder: Recorder) -> web.Application:
    failures: dict[str, int] = {}

    @web.middleware
    async def controls_mw(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/__mock"):
            return await handler(request)
        raw = await request.read()
        try:
            parsed = json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError):
            parsed = None
        headers: dict[str, str] = {}
        for k, v in request.headers.items():
            key = k.lower()
            headers[key] = f"{headers[key]}, {v}" if key in headers else v
        query = request.query_string
        recorder.add(Received(request.method, request.path, query, headers, raw, parsed))
        ctl = Controls.parse(request)
        if recorder.delay_ms and "x-mock-delay-ms" not in headers:
            ctl.delay_ms = recorder.delay_ms
        _CTL.set(ctl)
        _SSE.set(None)
        _SCRIPT.set(recorder.scripted(raw))
        try:
            if ctl.delay_ms:
                await asyncio.sleep(ctl.delay_ms / 1000)
            if ctl.status is not None and ctl.status >= 400:
                return status_error(ctl.status, ctl.retry_after)
            throttled = recorder.throttle(raw)
            if throttled is not None:
                return status_error(429, str(throttled))
            if ctl.fail_first:
                key = ctl.fail_key or ""
                failures[key] = failures.get(key, 0) + 1
                if failures[key] <= ctl.fail_first:
                    return status_error(ctl.fail_status, ctl.retry_after)
            return await handler(request)
        except ConnectionError:  # the client went away mid-stream
            resp = _SSE.get()
            return resp if resp is not None else web.Response(status=499)

    async def add_headers(request: web.Request, resp: web.StreamResponse) -> None:
        if not request.path.startswith("/__mock"):
            resp.headers.setdefault("x-request-id", _id("req_", 32))
            resp.headers.setdefault("openai-processing-ms", "1")

    async def get_requests(request: web.Request) -> web.StreamResponse:
        return web.json_response([r.to_dict() for r in recorder.snapshot()])

    async def delete_requests(request: web.Request) -> web.StreamResponse:
        recorder.clear()
        return web.json_response({"cleared": True})

    app = web.Application(middlewares=[controls_mw])
    app.on_response_prepare.append(add_headers)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_post("/v1/responses", responses)
    app.router.add_post("/v1/moderations", moderations)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model}", get_model)
    app.router.add_get("/__mock/requests", get_requests)
    app.router.add_delete("/__mock/requests", delete_requests)
    from mock_azure import add_azure_routes  # here: mock_azure builds on this module

    add_azure_routes(app)
    return app


async def start_runner(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner, int(runner.addresses[0][1])


class MockServer:
    """A mock's app served in a background thread with its own event loop.

    Subclasses give ``make_app``; ``start()``/``stop()`` or a ``with`` block run it.
    """

    thread_name = "mock-server"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self.app: web.Application | None = None
        self._recorder = Recorder()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @staticmethod
    def make_app(recorder: Recorder) -> web.Application:
        raise NotImplementedError

    @property
    def requests(self) -> list[Received]:
        """The live list of received requests (appended under a lock)."""
        return self._recorder.items

    @property
    def recorder(self) -> Recorder:
        """The received requests and the answer script (``replies``, ``delay_ms``)."""
        return self._recorder

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def reset(self) -> None:
        self._recorder.clear()

    def wait_for(self, n: int, timeout: float = 5) -> list[Received]:
        """Block until ``n`` requests were received and return them; ``TimeoutError`` if not."""
        return self._recorder.wait_for(n, timeout)

    def call_soon(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the server's loop (for state the handlers own)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(callback)

    async def _main(self) -> None:
        try:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            self.app = self.make_app(self._recorder)
            runner, self.port = await start_runner(self.app, self.host, self.port)
        except BaseException as exc:
            self._error = exc
            raise
        finally:
            self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self._error = self._error or exc

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self._error is not None:
            self._thread.join(1)
            self._thread = None
            raise RuntimeError(f"{type(self).__name__} failed to start: {self._error!r}")
        return self

    def stop(self) -> None:
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None:
            return
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        self._thread = None
        self._ready.clear()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


async def serve(make_app: Callable[[Recorder], web.Application], host: str, port: int) -> None:
    """Subprocess mode: serve until SIGINT/SIGTERM, after printing ``READY <port>``."""
    runner, real_port = await start_runner(make_app(Recorder()), host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY {real_port}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def run_main(
    make_app: Callable[[Recorder], web.Application], description: str, argv: list[str] | None
) -> None:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    asyncio.run(serve(make_app, args.host, args.port))


class MockUpstream(MockServer):
    """The mock OpenAI-compatible server; ``url`` (with ``/v1``) goes to ``openai.OpenAI``."""

    thread_name = "mock-upstream"

    @staticmethod
    def make_app(recorder: Recorder) -> web.Application:
        return build_app(recorder)

    @property
    def url(self) -> str:
        return self.base_url + "/v1"


def main(argv: list[str] | None = None) -> None:
    run_main(build_app, "Mock OpenAI-compatible upstream server", argv)


if __name__ == "__main__":
    main()
