"""Mock Ollama server for Heliograph's tests, byte-faithful to what ``ollama serve`` writes.

Checked against the real ``ollama`` and ``openai`` SDKs. Native API: ``POST /api/chat``,
``/api/generate``, ``/api/embed``, ``/api/embeddings``, ``/api/show``; ``GET /api/tags``,
``/api/ps``, ``/api/version``. OpenAI compatibility layer: ``POST /v1/chat/completions``,
``/v1/embeddings``; ``GET /v1/models``, ``/v1/models/{id}``.

In-process use (background thread with its own event loop)::

    with MockOllama() as m:             # or m = MockOllama(); m.start(); ...; m.stop()
        ollama.Client(host=m.base_url)
        OpenAI(base_url=m.url, api_key="ollama")   # m.url == m.base_url + "/v1"
        m.wait_for(1); m.requests[-1].json; m.reset()

Subprocess use: ``python tests/mock_ollama.py --port 0`` prints ``READY <port>``.
``GET /__mock/requests`` returns the recorded requests as JSON, ``DELETE`` clears them.

Wire format (as Ollama, a Go server, writes it)
-----------------------------------------------
Go's ``encoding/json``: compact, struct field order, ``omitempty`` fields left out when zero,
``<``, ``>`` and ``&`` escaped as ``\\u003c`` etc. Streams are ``application/x-ndjson``, one
object and ``\\n`` per write, never a blank line; ``stream`` defaults to true. Non-stream and
error bodies are ``application/json; charset=utf-8`` without a trailing newline.
``created_at`` is RFC 3339 UTC with nanoseconds, trailing zeros cut (Go's ``RFC3339Nano``).
Chat lines: ``{"model","created_at","message":{"role","content"[,"thinking"][,"tool_calls"]},
"done":false}``; the final line has ``"done_reason","done":true`` and the durations (ns).
Generate lines carry ``response`` (and ``thinking``); the final one ``context`` (token ids).
The ``model`` field echoes the request's name (``llama3.2``, not ``llama3.2:latest``).
Errors: ``{"error":"model \\"x\\" not found, try pulling it first"}`` with 404 for unknown
models (see ``MODELS``); mid-stream failures are an ``{"error":"..."}`` line.
OpenAI layer: ``chatcmpl-<0..998>`` ids, ``"system_fingerprint":"fp_ollama"``, one chunk per
native line (``delta`` always has ``role`` and ``content``; thinking goes in ``reasoning``), a
usage chunk with ``choices: []`` when ``stream_options.include_usage``; stream content type
``text/event-stream`` (no charset); JSON bodies end with ``\\n`` (Go's ``json.Encoder``).

Deterministic counts and timings
--------------------------------
``chars`` = characters of text in ``messages`` (chat), ``system`` + ``prompt`` (generate) or
``input`` (embed), as in ``mock_upstream.text_chars``.

* ``prompt_eval_count`` = ``chars // 4 + 7``
* ``eval_count`` = content lines (text and thinking pieces) + ``TOOL_CALL_TOKENS`` per call
* ``prompt_eval_duration`` = ``prompt_eval_count * PROMPT_NS_PER_TOKEN`` (500 tokens/s)
* ``eval_duration`` = ``eval_count * EVAL_NS_PER_TOKEN`` (50 tokens/s)
* ``load_duration`` = ``x-mock-cold-ms * 1e6`` if given, else ``WARM_LOAD_NS`` (20 ms)
* ``total_duration`` = the sum of the three

Reply: ``DEFAULT_TEXT`` in 5 pieces (``"Hello", " from", " the", " mock", " Ollama."``),
cut to ``options.num_predict`` pieces with ``done_reason: "length"``. With ``think`` true (or
``"low"|"medium"|"high"``; OpenAI layer: ``reasoning_effort``) the 5 pieces of
``THINKING_TEXT`` come first. With ``x-mock-tool-call: 1`` and ``tools`` (chat), one line calls
the first tool with ``TOOL_ARGUMENTS`` instead of the text.

Behaviour controls (request headers)
------------------------------------
* ``x-mock-status: N`` (N >= 400): ``{"error": ...}`` with that status.
* ``x-mock-delay-ms: N``: wait before the response headers.
* ``x-mock-cold-ms: N``: a cold model: wait N ms before the first line (Go sends the headers
  with it) and report ``load_duration`` = N ms.
* ``x-mock-chunk-delay-ms: N``: wait between content lines.
* ``x-mock-break-after: N``: stream: close the connection after N content lines.
* ``x-mock-error-event-after: N``: stream: after N content lines write ``MID_STREAM_ERROR`` as
  an ``{"error": ...}`` line and end (the OpenAI layer, like Ollama's, turns that line into an
  empty chunk and ends without ``[DONE]``).
* ``x-mock-chunks: N``: reply ``"tok0 tok1 ..."`` in N pieces.
* ``x-mock-echo-auth: 1``: reply text is ``"Authorization: <received value>"``.
* ``x-mock-tool-call: 1`` (see above).
* ``x-mock-title: T``: a title-generation prompt is answered ``{"title": "T"}`` (as in
  ``mock_upstream``: Open WebUI's title task; other prompts get the usual reply).
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import random
import string
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from mock_anthropic import add_mock_routes, parse_controls, record
from mock_upstream import MockServer, Recorder, run_main, split_pieces, text_chars, title_pieces

VERSION = "0.12.6"
DEFAULT_TEXT = "Hello from the mock Ollama."
THINKING_TEXT = "The user wants a greeting."
TOOL_ARGUMENTS = {"location": "Paris", "unit": "celsius"}
TOOL_CALL_TOKENS = 5
PROMPT_NS_PER_TOKEN = 2_000_000
EVAL_NS_PER_TOKEN = 20_000_000
WARM_LOAD_NS = 20_000_000
MID_STREAM_ERROR = "an error was encountered while running the model: mock failure"
NDJSON = "application/x-ndjson"
GO_JSON = "application/json; charset=utf-8"


@dataclass(frozen=True)
class Model:
    name: str
    size: int
    family: str
    parameter_size: str
    quantization: str
    capabilities: tuple[str, ...]
    context_length: int
    modified_at: str
    modified_unix: int

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.name.encode()).hexdigest()

    def details(self) -> dict[str, Any]:
        return {
            "parent_model": "",
            "format": "gguf",
            "family": self.family,
            "families": [self.family],
            "parameter_size": self.parameter_size,
            "quantization_level": self.quantization,
        }


MODELS = [
    Model(
        "llama3.2:latest", 2019393189, "llama", "3.2B", "Q4_K_M", ("completion", "tools"),
        131072, "2025-09-14T10:21:07.481235-07:00", 1757870467,
    ),
    Model(
        "qwen3:8b", 5225388164, "qwen3", "8.2B", "Q4_K_M", ("completion", "tools", "thinking"),
        40960, "2025-10-02T08:00:12.5+02:00", 1759384812,
    ),
    Model(
        "nomic-embed-text:latest", 274302450, "nomic-bert", "137M", "F16", ("embedding",),
        2048, "2025-08-30T17:45:00Z", 1756575900,
    ),
]  # fmt: skip
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Json = dict[str, Any]
_CTL: contextvars.ContextVar[Controls] = contextvars.ContextVar("ollama_ctl")
_RESP: contextvars.ContextVar[web.StreamResponse | None] = contextvars.ContextVar("ollama_resp")
_LOADED: web.AppKey[dict[str, float]] = web.AppKey("loaded", dict)


@dataclass
class Controls:
    """The ``x-mock-*`` request headers (field ``foo_bar`` <- header ``x-mock-foo-bar``)."""

    status: int | None = None
    delay_ms: int = 0
    cold_ms: int | None = None
    chunk_delay_ms: int = 0
    chunks: int | None = None
    break_after: int | None = None
    error_event_after: int | None = None
    echo_auth: bool = False
    tool_call: bool = False
    title: str | None = None

    @classmethod
    def parse(cls, request: web.Request) -> Controls:
        return parse_controls(cls(), request)


# ---------------------------------------------------------------- Go-shaped JSON


def go_json(data: Any) -> str:
    """``json.Marshal`` output: compact, HTML characters escaped."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escaped)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def go_time(ns: int | None = None) -> str:
    """``time.Now().UTC()`` marshalled: RFC 3339 with nanoseconds, trailing zeros cut."""
    ns = time.time_ns() if ns is None else ns
    secs, frac = divmod(ns, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    return text + "Z"


def gin_json(data: Any, status: int = 200) -> web.Response:
    """What ``c.JSON`` writes: no trailing newline, charset in the content type."""
    return web.Response(
        status=status, body=go_json(data).encode(), headers={"Content-Type": GO_JSON}
    )


def encoder_json(data: Any, status: int = 200) -> web.Response:
    """What ``json.NewEncoder(w).Encode`` writes (the OpenAI layer): a trailing newline."""
    body = (go_json(data) + "\n").encode()
    return web.Response(status=status, body=body, headers={"Content-Type": "application/json"})


def ollama_error(status: int, message: str) -> web.Response:
    return gin_json({"error": message}, status)


def openai_error(status: int, message: str) -> web.Response:
    kind = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
    return encoder_json(
        {"error": {"message": message, "type": kind, "param": None, "code": None}}, status
    )


def status_message(status: int, model: Any) -> str:
    if status == 404:
        return f"model {json.dumps(str(model or 'unknown'))} not found, try pulling it first"
    if status == 503:
        return "server busy, please try again.  maximum pending requests exceeded"
    if status == 400:
        return "invalid request"
    return "mock error"


# ---------------------------------------------------------------- the model run


def find_model(name: Any) -> Model | None:
    if not isinstance(name, str) or not name:
        return None
    full = name if ":" in name.rsplit("/", 1)[-1] else name + ":latest"
    return next((m for m in MODELS if m.name == full), None)


@dataclass
class Run:
    """What one chat or generate call produces: its content lines and final statistics."""

    model: Model
    prompt_tokens: int
    thinking: list[str]
    pieces: list[str]
    tool_calls: list[Json]
    done_reason: str
    load_ns: int

    @property
    def eval_count(self) -> int:
        return len(self.thinking) + len(self.pieces) + TOOL_CALL_TOKENS * len(self.tool_calls)

    def metrics(self) -> Json:
        prompt_ns = self.prompt_tokens * PROMPT_NS_PER_TOKEN
        eval_ns = self.eval_count * EVAL_NS_PER_TOKEN
        stats = {
            "total_duration": self.load_ns + prompt_ns + eval_ns,
            "load_duration": self.load_ns,
            "prompt_eval_count": self.prompt_tokens,
            "prompt_eval_duration": prompt_ns,
            "eval_count": self.eval_count,
            "eval_duration": eval_ns,
        }
        return {k: v for k, v in stats.items() if v}  # omitempty

    def lines(self) -> list[Json]:
        """The content of each streamed line before the final one: thinking, text or a call."""
        out: list[Json] = [{"thinking": t} for t in self.thinking]
        out += [{"content": p} for p in self.pieces]
        out += [{"tool_calls": [c]} for c in self.tool_calls]
        return out


def wants_thinking(value: Any) -> bool:
    return value is True or value in ("low", "medium", "high")


def plan_run(
    request: web.Request,
    model: Model,
    chars: int,
    think: bool,
    tools: Any,
    options: Any,
    prompt: Any = None,
) -> Run:
    ctl = _CTL.get()
    thinking = split_pieces(THINKING_TEXT) if think else []
    calls: list[Json] = []
    titled = title_pieces(ctl.title, prompt)
    if titled is not None:
        pieces = titled
    elif ctl.chunks is not None:
        pieces = [f"tok{i}" if i == 0 else f" tok{i}" for i in range(max(ctl.chunks, 0))]
    elif ctl.echo_auth:
        pieces = split_pieces("Authorization: " + request.headers.get("authorization", "<none>"))
    else:
        pieces = split_pieces(DEFAULT_TEXT)
    reason = "stop"
    if isinstance(tools, list) and tools and ctl.tool_call:
        fn = tools[0].get("function") if isinstance(tools[0], dict) else None
        name = fn.get("name", "tool") if isinstance(fn, dict) else "tool"
        call_id = "call_" + "".join(random.choices(string.ascii_lowercase + string.digits, k=8))
        calls.append(
            {"id": call_id, "function": {"index": 0, "name": name, "arguments": TOOL_ARGUMENTS}}
        )
        pieces = []
    limit = options.get("num_predict") if isinstance(options, dict) else None
    if isinstance(limit, int) and limit >= 0 and len(thinking) + len(pieces) > limit:
        thinking = thinking[:limit]
        pieces = pieces[: max(limit - len(thinking), 0)]
        reason = "length"
    load = ctl.cold_ms * 1_000_000 if ctl.cold_ms else WARM_LOAD_NS
    return Run(model, chars // 4 + 7, thinking, pieces, calls, reason, load)


async def load_model(request: web.Request, model: Model) -> None:
    """Simulate the scheduler: a cold start holds everything, headers included."""
    ctl = _CTL.get()
    if ctl.cold_ms:
        await asyncio.sleep(ctl.cold_ms / 1000)
    request.app[_LOADED][model.name] = time.time() + 300


async def stream_lines(
    request: web.Request, frames: list[bytes], final: list[bytes], error: bytes | None
) -> web.StreamResponse:
    """Write content frames one per write with the stream controls, then the final frames.

    ``error`` replaces the final frames when ``x-mock-error-event-after`` fires (None: just end).
    """
    ctl = _CTL.get()
    resp = _RESP.get()
    assert resp is not None
    for i in range(len(frames) + 1):
        if 0 < i < len(frames) and ctl.chunk_delay_ms:
            await asyncio.sleep(ctl.chunk_delay_ms / 1000)
        if ctl.break_after is not None and i >= ctl.break_after:
            if request.transport is not None:
                request.transport.close()
            return resp
        if ctl.error_event_after is not None and i >= ctl.error_event_after:
            if error is not None:
                await resp.write(error)
            await resp.write_eof()
            return resp
        if i < len(frames):
            await resp.write(frames[i])
    for frame in final:
        await resp.write(frame)
    await resp.write_eof()
    return resp


async def start_stream(request: web.Request, content_type: str) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": content_type})
    _RESP.set(resp)
    await resp.prepare(request)
    return resp


async def read_body(request: web.Request) -> Json | None:
    try:
        body = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def ndjson(data: Json) -> bytes:
    return (go_json(data) + "\n").encode()


# ---------------------------------------------------------------- native API


async def resolve(request: web.Request, body: Json | None, what: str) -> Model | web.Response:
    if body is None:
        return ollama_error(400, "invalid character looking for beginning of value")
    name = body.get("model")
    if not name:
        return ollama_error(400, "model is required")
    model = find_model(name)
    if model is None:
        return ollama_error(404, status_message(404, name))
    if what != "embed" and "completion" not in model.capabilities:
        return ollama_error(400, f"{json.dumps(name)} does not support {what}")
    return model


async def chat(request: web.Request) -> web.StreamResponse:
    body = await read_body(request)
    model = await resolve(request, body, "chat")
    if isinstance(model, web.Response):
        return model
    assert body is not None
    await load_model(request, model)
    name = body["model"]
    if not body.get("messages"):
        done = {"role": "assistant", "content": ""}
        return gin_json(
            {
                "model": name,
                "created_at": go_time(),
                "message": done,
                "done_reason": "load",
                "done": True,
            }
        )
    run = plan_run(
        request, model, text_chars(body.get("messages")), wants_thinking(body.get("think")),
        body.get("tools"), body.get("options"), body.get("messages"),
    )  # fmt: skip

    def line(content: Json, done: bool = False) -> Json:
        message = {"role": "assistant", "content": content.get("content", "")}
        for key in ("thinking", "tool_calls"):
            if content.get(key):
                message[key] = content[key]
        doc: Json = {"model": name, "created_at": go_time(), "message": message}
        if done:
            return {**doc, "done_reason": run.done_reason, "done": True, **run.metrics()}
        return {**doc, "done": False}

    if body.get("stream") is False:
        whole: Json = {"content": "".join(run.pieces), "thinking": "".join(run.thinking)}
        whole["tool_calls"] = run.tool_calls
        return gin_json(line(whole, done=True))
    await start_stream(request, NDJSON)
    frames = [ndjson(line(c)) for c in run.lines()]
    return await stream_lines(
        request, frames, [ndjson(line({}, done=True))], ndjson({"error": MID_STREAM_ERROR})
    )


def context_ids(n: int) -> list[int]:
    return [(i * 7919 + 128000) % 128256 for i in range(n)]


async def generate(request: web.Request) -> web.StreamResponse:
    body = await read_body(request)
    model = await resolve(request, body, "generate")
    if isinstance(model, web.Response):
        return model
    assert body is not None
    await load_model(request, model)
    name = body["model"]
    if not body.get("prompt"):
        return gin_json(
            {
                "model": name,
                "created_at": go_time(),
                "response": "",
                "done": True,
                "done_reason": "load",
            }
        )
    chars = text_chars(body.get("system")) + text_chars(body.get("prompt"))
    run = plan_run(
        request, model, chars, wants_thinking(body.get("think")), None, body.get("options"),
        body.get("prompt"),
    )  # fmt: skip

    def line(content: Json, done: bool = False) -> Json:
        doc: Json = {"model": name, "created_at": go_time(), "response": content.get("content", "")}
        if content.get("thinking"):
            doc["thinking"] = content["thinking"]
        if not done:
            return {**doc, "done": False}
        doc.update(done=True, done_reason=run.done_reason)
        doc["context"] = context_ids(run.prompt_tokens + run.eval_count)
        return {**doc, **run.metrics()}

    if body.get("stream") is False:
        whole = {"content": "".join(run.pieces), "thinking": "".join(run.thinking)}
        return gin_json(line(whole, done=True))
    await start_stream(request, NDJSON)
    frames = [ndjson(line(c)) for c in run.lines()]
    return await stream_lines(
        request, frames, [ndjson(line({}, done=True))], ndjson({"error": MID_STREAM_ERROR})
    )


def embedding_vector(item: Any, dims: int) -> list[float]:
    """Odd multiples of 1/32: exact in float32 and printed alike by Go and Python."""
    digest = hashlib.sha256(json.dumps(item).encode()).digest()
    return [(2 * (digest[j % len(digest)] % 16) - 15) / 32 for j in range(dims)]


async def embed(request: web.Request) -> web.StreamResponse:
    body = await read_body(request)
    model = await resolve(request, body, "embed")
    if isinstance(model, web.Response):
        return model
    assert body is not None
    await load_model(request, model)
    raw = body.get("input")
    items = raw if isinstance(raw, list) else [raw if raw is not None else ""]
    dims = body.get("dimensions") or 8
    prompt = text_chars(raw) // 4 + 7
    load = _CTL.get().cold_ms
    load_ns = load * 1_000_000 if load else WARM_LOAD_NS
    return gin_json(
        {
            "model": body["model"],
            "embeddings": [embedding_vector(i, dims) for i in items],
            "total_duration": load_ns + prompt * PROMPT_NS_PER_TOKEN,
            "load_duration": load_ns,
            "prompt_eval_count": prompt,
        }
    )


async def embeddings_legacy(request: web.Request) -> web.StreamResponse:
    body = await read_body(request)
    model = await resolve(request, body, "embed")
    if isinstance(model, web.Response):
        return model
    assert body is not None
    await load_model(request, model)
    return gin_json({"embedding": embedding_vector(body.get("prompt") or "", 8)})


async def tags(request: web.Request) -> web.StreamResponse:
    items = [
        {
            "name": m.name,
            "model": m.name,
            "modified_at": m.modified_at,
            "size": m.size,
            "digest": m.digest,
            "details": m.details(),
        }
        for m in MODELS
    ]
    return gin_json({"models": items})


async def ps(request: web.Request) -> web.StreamResponse:
    loaded = request.app[_LOADED]
    items = []
    for m in MODELS:
        if m.name in loaded:
            expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(loaded[m.name]))
            items.append(
                {
                    "name": m.name,
                    "model": m.name,
                    "size": m.size + 1_000_000_000,
                    "digest": m.digest,
                    "details": m.details(),
                    "expires_at": expires,
                    "size_vram": m.size + 1_000_000_000,
                    "context_length": 4096,
                }
            )
    return gin_json({"models": items})


async def version(request: web.Request) -> web.StreamResponse:
    return gin_json({"version": VERSION})


async def show(request: web.Request) -> web.StreamResponse:
    body = await read_body(request) or {}
    name = body.get("model") or body.get("name")
    model = find_model(name)
    if model is None:
        return ollama_error(404, f"model '{name}' not found")
    family = model.family
    info = {
        "general.architecture": family,
        "general.parameter_count": int(float(model.parameter_size[:-1]) * 1e9)
        if model.parameter_size.endswith("B")
        else 137_000_000,
        f"{family}.context_length": model.context_length,
    }
    return gin_json(
        {
            "license": "Mock license text",
            "modelfile": f'# Modelfile generated by "ollama show"\nFROM {model.name}\n',
            "parameters": 'stop                           "<|eot_id|>"',
            "template": "{{ .Prompt }}",
            "details": model.details(),
            "model_info": info,
            "capabilities": list(model.capabilities),
            "modified_at": model.modified_at,
        }
    )


# ---------------------------------------------------------------- OpenAI compatibility layer


async def compat_chat(request: web.Request) -> web.StreamResponse:
    body = await read_body(request)
    if body is None:
        return openai_error(400, "invalid character looking for beginning of value")
    name = body.get("model")
    if not body.get("messages"):
        return openai_error(400, "[] is too short - 'messages'")
    if not name:
        return openai_error(400, "model is required")
    model = find_model(name)
    if model is None:
        return openai_error(404, status_message(404, name))
    await load_model(request, model)
    effort = body.get("reasoning_effort") or (body.get("reasoning") or {}).get("effort")
    options = (
        {"num_predict": body["max_tokens"]} if isinstance(body.get("max_tokens"), int) else None
    )
    messages = body.get("messages")
    run = plan_run(
        request, model, text_chars(messages), bool(effort), body.get("tools"), options, messages
    )
    cid, created = f"chatcmpl-{random.randrange(999)}", int(time.time())
    usage = {
        "prompt_tokens": run.prompt_tokens,
        "completion_tokens": run.eval_count,
        "total_tokens": run.prompt_tokens + run.eval_count,
    }
    calls = [
        {
            "id": c["id"],
            "index": c["function"]["index"],
            "type": "function",
            "function": {
                "name": c["function"]["name"],
                "arguments": go_json(c["function"]["arguments"]),
            },
        }
        for c in run.tool_calls
    ]
    finish = "tool_calls" if calls else run.done_reason

    def message(content: Json) -> Json:
        msg: Json = {"role": "assistant", "content": content.get("content", "")}
        if content.get("thinking"):
            msg["reasoning"] = content["thinking"]
        if content.get("tool_calls"):
            msg["tool_calls"] = content["tool_calls"]
        return msg

    head = {"id": cid, "object": "chat.completion", "created": created, "model": name}
    head["system_fingerprint"] = "fp_ollama"
    if not body.get("stream"):
        whole = {
            "content": "".join(run.pieces),
            "thinking": "".join(run.thinking),
            "tool_calls": calls,
        }
        choice = {"index": 0, "message": message(whole), "finish_reason": finish}
        return encoder_json({**head, "choices": [choice], "usage": usage})

    head["object"] = "chat.completion.chunk"

    def chunk(content: Json, finish_reason: str | None = None, model_name: str = name) -> bytes:
        choice = {"index": 0, "delta": message(content), "finish_reason": finish_reason}
        doc = {**head, "model": model_name, "created": int(time.time()), "choices": [choice]}
        return f"data: {go_json(doc)}\n\n".encode()

    contents = [{"tool_calls": calls}] if calls else run.lines()
    frames = [chunk(c) for c in contents]
    final = [chunk({}, finish)]
    if (body.get("stream_options") or {}).get("include_usage"):
        last = {**head, "created": int(time.time()), "choices": [], "usage": usage}
        final.append(f"data: {go_json(last)}\n\n".encode())
    final.append(b"data: [DONE]\n\n")
    await start_stream(request, "text/event-stream")
    # Ollama's ChatWriter decodes the native error line as an empty ChatResponse.
    swallowed = chunk({}, None, model_name="")
    return await stream_lines(request, frames, final, swallowed)


async def compat_embeddings(request: web.Request) -> web.StreamResponse:
    body = await read_body(request)
    if body is None or body.get("input") in (None, []):
        return openai_error(400, "invalid input")
    model = find_model(body.get("model"))
    if model is None:
        return openai_error(404, status_message(404, body.get("model")))
    await load_model(request, model)
    raw = body["input"]
    items = raw if isinstance(raw, list) else [raw]
    dims = body.get("dimensions") or 8
    data = [
        {"object": "embedding", "embedding": embedding_vector(item, dims), "index": i}
        for i, item in enumerate(items)
    ]
    prompt = text_chars(raw) // 4 + 7
    usage = {"prompt_tokens": prompt, "total_tokens": prompt}
    return encoder_json({"object": "list", "data": data, "model": body["model"], "usage": usage})


def compat_model(name: str, created: int) -> Json:
    owner = name.split("/")[0] if "/" in name else "library"
    return {"id": name, "object": "model", "created": created, "owned_by": owner}


async def compat_models(request: web.Request) -> web.StreamResponse:
    data = [compat_model(m.name, m.modified_unix) for m in MODELS]
    return encoder_json({"object": "list", "data": data})


async def compat_model_get(request: web.Request) -> web.StreamResponse:
    name = request.match_info["model"]
    model = find_model(name)
    if model is None:
        return openai_error(404, f"model '{name}' not found")
    return encoder_json(compat_model(name, model.modified_unix))


# ---------------------------------------------------------------- app and runners


def build_app(recorder: Recorder) -> web.Application:
    @web.middleware
    async def controls_mw(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/__mock"):
            return await handler(request)
        parsed = (await record(recorder, request)).json
        ctl = Controls.parse(request)
        _CTL.set(ctl)
        _RESP.set(None)
        try:
            if ctl.delay_ms:
                await asyncio.sleep(ctl.delay_ms / 1000)
            if ctl.status is not None and ctl.status >= 400:
                model = parsed.get("model") if isinstance(parsed, dict) else None
                message = status_message(ctl.status, model)
                if request.path.startswith("/v1/"):
                    return openai_error(ctl.status, message)
                return ollama_error(ctl.status, message)
            return await handler(request)
        except ConnectionError:  # the client went away mid-stream
            resp = _RESP.get()
            return resp if resp is not None else web.Response(status=499)

    app = web.Application(middlewares=[controls_mw])
    app[_LOADED] = {}
    app.router.add_post("/api/chat", chat)
    app.router.add_post("/api/generate", generate)
    app.router.add_post("/api/embed", embed)
    app.router.add_post("/api/embeddings", embeddings_legacy)
    app.router.add_post("/api/show", show)
    app.router.add_get("/api/tags", tags)
    app.router.add_get("/api/ps", ps)
    app.router.add_get("/api/version", version)
    app.router.add_post("/v1/chat/completions", compat_chat)
    app.router.add_post("/v1/embeddings", compat_embeddings)
    app.router.add_get("/v1/models", compat_models)
    app.router.add_get("/v1/models/{model:.+}", compat_model_get)
    add_mock_routes(app, recorder, app[_LOADED].clear)
    return app


class MockOllama(MockServer):
    """The mock Ollama server; ``base_url`` for ``ollama.Client``, ``url`` for OpenAI SDKs."""

    thread_name = "mock-ollama"

    @staticmethod
    def make_app(recorder: Recorder) -> web.Application:
        return build_app(recorder)

    @property
    def url(self) -> str:
        """The OpenAI-compatible base URL (``base_url + "/v1"``)."""
        return self.base_url + "/v1"

    def reset(self) -> None:
        """Forget the recorded requests and which models are loaded (``/api/ps``)."""
        super().reset()
        if self.app is not None:
            self.call_soon(self.app[_LOADED].clear)


def main(argv: list[str] | None = None) -> None:
    run_main(build_app, "Mock Ollama server", argv)


if __name__ == "__main__":
    main()
