"""A very fast mock OpenAI upstream, so the benchmark measures the gateway and not the mock.

It is a raw ``asyncio.Protocol`` HTTP/1.1 server (on uvloop when importable) that speaks just
enough of the protocol for a proxy benchmark: keep-alive, pipelining, request bodies framed by
``Content-Length`` or ``Transfer-Encoding: chunked`` and split across any number of reads.

Routes (any path prefix is accepted, the query string is ignored):

* ``POST .../chat/completions`` -- a small ``chat.completion`` JSON with usage; with
  ``"stream": true`` in the body an SSE stream in OpenAI's exact chunk format instead: a role
  chunk, N content chunks, a finish chunk, a usage chunk (``"choices":[]``) when
  ``stream_options.include_usage`` is true, then ``data: [DONE]`` and the terminating zero-length
  chunk. Each event is written on its own, ``--chunk-delay-ms`` apart.
* ``GET .../models`` -- a small model list.

Per-request overrides (headers): ``x-mock-chunk-delay-ms`` and ``x-mock-chunks``.
With ``--timestamps`` (or the request header ``x-mock-timestamps: 1``) every stream chunk carries
the mock's ``time.monotonic_ns()`` at send time in ``system_fingerprint`` (``fp_mock_<ns>``), so a
client on the same machine can measure exactly how long each chunk took to reach it.

Usage: ``python bench/fastmock.py --port 0`` prints ``READY <port>`` once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, cast

import orjson

MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024
WORDS = [b"Hello", b"!", b" How", b" can", b" I", b" help", b" you", b" today", b"?"]
REPLY = "Hi! How can I help you today?"
MODELS_BODY = orjson.dumps(
    {
        "object": "list",
        "data": [
            {"id": m, "object": "model", "created": 1700000000, "owned_by": "mock"}
            for m in ("gpt-4o-mini", "gpt-4o", "gpt-3.5-turbo")
        ],
    }
)
REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed"}


@dataclass(slots=True)
class Options:
    """Server-wide defaults, overridable per request by headers."""

    chunks: int = 20
    chunk_delay_ms: float = 0.0
    timestamps: bool = False


@dataclass(slots=True)
class Request:
    """One parsed HTTP request."""

    method: bytes
    path: bytes
    headers: dict[bytes, bytes]
    body: bytes
    keep_alive: bool


class BadRequest(Exception):
    """The bytes on the connection are not HTTP we understand; answer 400 and close."""


_ids = itertools.count(1)


def _head(status: int, content_type: bytes, length: int | None, keep_alive: bool) -> bytes:
    framing = b"Transfer-Encoding: chunked" if length is None else b"Content-Length: %d" % length
    conn = b"" if keep_alive else b"Connection: close\r\n"
    return b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%s\r\n%sx-request-id: req_mock\r\n\r\n" % (
        status,
        REASONS.get(status, b"Error"),
        content_type,
        framing,
        conn,
    )


def _json_response(status: int, body: bytes, keep_alive: bool) -> bytes:
    return _head(status, b"application/json", len(body), keep_alive) + body


def _error(status: int, message: str, keep_alive: bool) -> bytes:
    body = orjson.dumps({"error": {"message": message, "type": "mock_error", "code": status}})
    return _json_response(status, body, keep_alive)


def _completion(model: bytes) -> bytes:
    return b"".join(
        (
            b'{"id":"chatcmpl-mock%d","object":"chat.completion","created":%d,"model":'
            % (next(_ids), int(time.time())),
            model,
            b',"system_fingerprint":"fp_mock","choices":[{"index":0,"message":'
            b'{"role":"assistant","content":"Hi! How can I help you today?","refusal":null},'
            b'"logprobs":null,"finish_reason":"stop"}],'
            b'"usage":{"prompt_tokens":9,"completion_tokens":9,"total_tokens":18}}',
        )
    )


def _frame(payload: bytes) -> bytes:
    """Wrap bytes in one HTTP/1.1 chunk."""
    return b"%x\r\n%s\r\n" % (len(payload), payload)


class StreamBuilder:
    """Builds the SSE events of one streamed completion, in OpenAI's chunk format."""

    def __init__(self, model: bytes, include_usage: bool, stamped: bool) -> None:
        self.prefix = b'data: {"id":"chatcmpl-mock%d","object":"chat.completion.chunk",' % next(
            _ids
        ) + b'"created":%d,"model":%s,"system_fingerprint":"fp_mock' % (int(time.time()), model)
        self.suffix = b',"usage":null}\n\n' if include_usage else b"}\n\n"
        self.stamped = stamped

    def event(self, choices: bytes) -> bytes:
        stamp = b"_%d" % time.monotonic_ns() if self.stamped else b""
        return self.prefix + stamp + b'","choices":[' + choices + b"]" + self.suffix

    def role(self) -> bytes:
        return self.event(
            b'{"index":0,"delta":{"role":"assistant","content":"","refusal":null},'
            b'"logprobs":null,"finish_reason":null}'
        )

    def content(self, i: int) -> bytes:
        return self.event(
            b'{"index":0,"delta":{"content":"%s"},"logprobs":null,"finish_reason":null}'
            % WORDS[i % len(WORDS)]
        )

    def finish(self) -> bytes:
        return self.event(b'{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}')

    def usage(self, completion_tokens: int) -> bytes:
        stamp = b"_%d" % time.monotonic_ns() if self.stamped else b""
        return (
            self.prefix
            + stamp
            + b'","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":%d,'
            b'"total_tokens":%d}}\n\n' % (completion_tokens, completion_tokens + 9)
        )


class MockProtocol(asyncio.Protocol):
    """One client connection: parses pipelined requests and answers them in order."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.queue: deque[Request] = deque()
        self.busy = False  # a streamed response is being written; later requests wait
        self.closing = False
        self.continued = False  # "100 Continue" already sent for the request being read
        self.task: asyncio.Task[None] | None = None
        self.can_write: asyncio.Event | None = None

    # -- asyncio callbacks ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.can_write = asyncio.Event()
        self.can_write.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        if self.task is not None:
            self.task.cancel()
        if self.can_write is not None:
            self.can_write.set()

    def pause_writing(self) -> None:
        assert self.can_write is not None
        self.can_write.clear()

    def resume_writing(self) -> None:
        assert self.can_write is not None
        self.can_write.set()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.buf += data
        try:
            while not self.closing:
                request = self._parse_one()
                if request is None:
                    break
                if self.busy:
                    self.queue.append(request)
                else:
                    self._dispatch(request)
        except BadRequest as exc:
            self._write(_error(400, str(exc), False))
            self._close()

    # -- parsing ----------------------------------------------------------------------------

    def _parse_one(self) -> Request | None:
        """Take one complete request off the buffer, or return None if more bytes are needed."""
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEAD:
                raise BadRequest("request head too large")
            return None
        lines = bytes(buf[:end]).split(b"\r\n")
        try:
            method, path, version = lines[0].split(b" ", 2)
        except ValueError:
            raise BadRequest("bad request line") from None
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise BadRequest("bad header line")
            headers[name.strip().lower()] = value.strip()
        start = end + 4
        if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
            parsed = _dechunk(buf, start)
            if parsed is None:
                return None
            body, stop = parsed
        else:
            try:
                length = int(headers.get(b"content-length", b"0"))
            except ValueError:
                raise BadRequest("bad content-length") from None
            if length < 0 or length > MAX_BODY:
                raise BadRequest("bad content-length")
            stop = start + length
            if len(buf) < stop:
                expect = headers.get(b"expect", b"").lower()
                if expect == b"100-continue" and not self.continued:
                    self.continued = True
                    self._write(b"HTTP/1.1 100 Continue\r\n\r\n")
                return None
            body = bytes(buf[start:stop])
        del buf[:stop]
        self.continued = False
        conn = headers.get(b"connection", b"").lower()
        keep_alive = b"close" not in conn if version == b"HTTP/1.1" else b"keep-alive" in conn
        return Request(method, path.split(b"?", 1)[0], headers, body, keep_alive)

    # -- answering ----------------------------------------------------------------------------

    def _dispatch(self, req: Request) -> None:
        """Answer a request now, or start a task for a streamed answer."""
        answer = self._answer(req)
        if isinstance(answer, bytes):
            self._finish(req, answer)
        else:
            self.busy = True
            self.task = asyncio.get_running_loop().create_task(self._run_streams(req, answer))

    def _answer(self, req: Request) -> bytes | dict[str, Any]:
        """The whole response for a simple request, or the parsed body if it wants a stream."""
        keep_alive = req.keep_alive
        if req.path.endswith(b"/chat/completions"):
            if req.method != b"POST":
                return _error(405, "use POST", keep_alive)
            try:
                payload = orjson.loads(req.body)
            except orjson.JSONDecodeError:
                return _error(400, "body is not JSON", keep_alive)
            if not isinstance(payload, dict):
                return _error(400, "body is not an object", keep_alive)
            if payload.get("stream") is True:
                return payload
            model = orjson.dumps(payload.get("model") or "gpt-4o-mini")
            return _json_response(200, _completion(model), keep_alive)
        if req.path.endswith(b"/models") and req.method == b"GET":
            return _json_response(200, MODELS_BODY, keep_alive)
        return _error(404, "no such route", keep_alive)

    def _finish(self, req: Request, response: bytes) -> None:
        self._write(response)
        if not req.keep_alive:
            self._close()

    async def _run_streams(self, req: Request, payload: dict[str, Any]) -> None:
        """Write a streamed answer, then answer whatever was pipelined behind it, in order."""
        try:
            await self._stream(req, payload)
            while self.queue and not self.closing:
                nxt = self.queue.popleft()
                answer = self._answer(nxt)
                if isinstance(answer, bytes):
                    self._finish(nxt, answer)
                else:
                    await self._stream(nxt, answer)
        except asyncio.CancelledError:
            pass
        finally:
            self.busy = False
            self.task = None

    async def _stream(self, req: Request, payload: dict[str, Any]) -> None:
        opts = self.options
        delay = _header_float(req, b"x-mock-chunk-delay-ms", opts.chunk_delay_ms) / 1000.0
        chunks = int(_header_float(req, b"x-mock-chunks", opts.chunks))
        stamped = opts.timestamps or req.headers.get(b"x-mock-timestamps") == b"1"
        stream_options = payload.get("stream_options")
        include_usage = isinstance(stream_options, dict) and (
            stream_options.get("include_usage") is True
        )
        model = orjson.dumps(payload.get("model") or "gpt-4o-mini")
        sse = StreamBuilder(model, include_usage, stamped)
        head = _head(200, b"text/event-stream", None, req.keep_alive)
        self._write(head + _frame(sse.role()))
        for i in range(chunks + 2):
            await self._pause(delay)
            if i < chunks:
                event = sse.content(i)
            elif i == chunks:
                event = sse.finish()
            elif include_usage:
                event = sse.usage(chunks)
            else:
                continue
            self._write(_frame(event))
        await self._pause(delay)
        self._write(_frame(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        if not req.keep_alive:
            self._close()

    async def _pause(self, delay: float) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        assert self.can_write is not None
        if not self.can_write.is_set():
            await self.can_write.wait()
        if self.closing:
            raise asyncio.CancelledError

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.closing:
            self.transport.write(data)

    def _close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()


def _header_float(req: Request, name: bytes, default: float) -> float:
    raw = req.headers.get(name)
    if raw is None:
        return default
    try:
        return max(0.0, float(raw))
    except ValueError:
        return default


def _dechunk(buf: bytearray, pos: int) -> tuple[bytes, int] | None:
    """Decode a chunked body starting at ``pos``: (body, end offset), or None if incomplete."""
    parts: list[bytes] = []
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        try:
            size = int(bytes(buf[pos:eol]).split(b";", 1)[0], 16)
        except ValueError:
            raise BadRequest("bad chunk size") from None
        pos = eol + 2
        if size == 0:
            while True:  # skip trailers up to the empty line
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    return None
                if eol == pos:
                    return b"".join(parts), eol + 2
                pos = eol + 2
        if len(buf) < pos + size + 2:
            return None
        parts.append(bytes(buf[pos : pos + size]))
        pos += size + 2


async def serve(host: str, port: int, options: Options) -> None:
    """Listen until SIGINT/SIGTERM, printing ``READY <port>`` once the socket is bound."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: MockProtocol(options), host, port, backlog=4096, reuse_address=True
    )
    bound = server.sockets[0].getsockname()[1]
    print(f"READY {bound}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--chunks", type=int, default=20, help="content chunks per stream")
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0, help="delay between events")
    parser.add_argument(
        "--timestamps", action="store_true", help="stamp each chunk with its send time"
    )
    parser.add_argument("--no-uvloop", action="store_true", help="use the stock asyncio loop")
    args = parser.parse_args(argv)
    options = Options(args.chunks, args.chunk_delay_ms, args.timestamps)
    if not args.no_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            uvloop.run(serve(args.host, args.port, options))
            return
    asyncio.run(serve(args.host, args.port, options))


if __name__ == "__main__":
    main()
