"""An upstream written on raw sockets, for what a framework would hide from a test.

It answers OpenAI-style chat requests in three modes, chosen by the ``x-raw-mode`` header:
- ``slow``: waits ``x-raw-delay`` seconds before answering, and notes when the caller closed
  the connection (so a test can see that the gateway cancelled the upstream call);
- ``huge-sse``: streams ``x-raw-mb`` MB of chat chunks, then a usage chunk and ``[DONE]``;
- ``huge-json``: one non-stream JSON answer of ``x-raw-mb`` MB, with a Content-Length;
- ``echo``: answers with the last message's content (hostile text in the output);
- ``done-hold``: streams a short answer with usage and ``[DONE]``, then keeps the connection
  open for ``x-raw-delay`` seconds before closing it (an upstream slow to send its EOF), and
  notes whether the caller closed first.
Every request line it receives is kept (``paths``), so a test can prove what reached it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass, field

import orjson

CHUNK_TEXT = "x" * 1000


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    arrived: float
    closed: float | None = None  # when the caller closed the connection, if it did
    body: bytes = b""


@dataclass
class RawUpstream:
    host: str = "127.0.0.1"
    port: int = 0
    seen: list[Seen] = field(default_factory=list)

    def start(self) -> RawUpstream:
        ready = threading.Event()

        def run() -> None:
            self.loop = asyncio.new_event_loop()
            server = self.loop.run_until_complete(
                asyncio.start_server(self._serve, self.host, self.port)
            )
            self.port = server.sockets[0].getsockname()[1]
            self.server = server
            ready.set()
            self.loop.run_forever()
            server.close()
            self.loop.run_until_complete(server.wait_closed())
            self.loop.close()

        self.thread = threading.Thread(target=run, name="raw-upstream", daemon=True)
        self.thread.start()
        assert ready.wait(10)
        return self

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        seen = Seen(method, path, headers, time.monotonic())
        self.seen.append(seen)
        length = int(headers.get("content-length", "0") or 0)
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            seen.body = await reader.readexactly(length)
        mode = headers.get("x-raw-mode", "")
        try:
            if mode == "slow":
                await self._slow(reader, writer, seen, float(headers.get("x-raw-delay", "5")))
            elif mode == "huge-sse":
                await self._huge_sse(writer, int(headers.get("x-raw-mb", "1")))
            elif mode == "done-hold":
                await self._done_hold(reader, writer, seen, float(headers.get("x-raw-delay", "5")))
            elif mode == "huge-json":
                await self._huge_json(writer, int(headers.get("x-raw-mb", "1")))
            elif mode == "echo":
                doc = orjson.loads(seen.body)
                await self._answer(writer, _completion(doc["messages"][-1]["content"]))
            else:
                await self._answer(writer, b'{"ok": true}')
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _slow(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen, delay: float
    ) -> None:
        try:
            data = await asyncio.wait_for(reader.read(1), delay)
        except TimeoutError:
            await self._answer(writer, _completion("slow answer"))
            return
        if not data:  # EOF: the caller went away before the answer
            seen.closed = time.monotonic()

    async def _answer(self, writer: asyncio.StreamWriter, body: bytes) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body) + body
        )
        await writer.drain()

    async def _huge_sse(self, writer: asyncio.StreamWriter, megabytes: int) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
        )
        event = b"data: " + orjson.dumps(_chunk({"content": CHUNK_TEXT})) + b"\n\n"
        batch = event * (1024 * 1024 // len(event) + 1)
        sent = 0
        while sent < megabytes * 1024 * 1024:
            writer.write(batch)
            sent += len(batch)
            await writer.drain()
        count = sent // len(event)
        usage = _chunk(None)
        usage["choices"] = []
        usage["usage"] = {
            "prompt_tokens": 11,
            "completion_tokens": count,
            "total_tokens": 11 + count,
        }
        writer.write(b"data: " + orjson.dumps(usage) + b"\n\ndata: [DONE]\n\n")
        await writer.drain()

    async def _done_hold(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen, delay: float
    ) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
        )
        for word in ("The ", "whole ", "answer."):
            writer.write(b"data: " + orjson.dumps(_chunk({"content": word})) + b"\n\n")
        usage = _chunk(None)
        usage["choices"] = []
        usage["usage"] = {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}
        writer.write(b"data: " + orjson.dumps(usage) + b"\n\ndata: [DONE]\n\n")
        await writer.drain()
        try:  # hold the connection open: no EOF until the delay, unless the caller leaves
            data = await asyncio.wait_for(reader.read(1), delay)
        except TimeoutError:
            return
        if not data:
            seen.closed = time.monotonic()

    async def _huge_json(self, writer: asyncio.StreamWriter, megabytes: int) -> None:
        text = "y" * (megabytes * 1024 * 1024)
        await self._answer(writer, _completion(text))


def _chunk(delta: dict[str, str] | None) -> dict[str, object]:
    return {
        "id": "chatcmpl-raw",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": delta or {}, "finish_reason": None}],
        "usage": None,
    }


def _completion(text: str) -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-raw",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
        }
    )
