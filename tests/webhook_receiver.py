"""A real webhook receiver for tests: an aiohttp server on loopback, in its own thread.

It records every request it gets (path, headers, raw body, what it answered) and can
misbehave: answer 500 to its first ``fail_first`` requests, or hold its first ``stall_first``
requests for ``stall_s`` seconds (past the sender's timeout) before answering.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from conftest import free_port


@dataclass(frozen=True)
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int | None  # None: stalled past the sender's patience

    def json(self) -> dict[str, Any]:
        doc: dict[str, Any] = orjson.loads(self.body)
        return doc

    @property
    def key(self) -> str:
        return self.headers["Idempotency-Key"]


class Receiver:
    def __init__(
        self,
        *,
        fail_first: int = 0,
        stall_first: int = 0,
        stall_s: float = 0.0,
        redirect_to: str | None = None,
    ) -> None:
        self.port = free_port()
        self.redirect_to = redirect_to
        self.fail_first = fail_first
        self.stall_first = stall_first
        self.stall_s = stall_s
        self.hits: list[Hit] = []
        self.seen = 0
        self.lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop_event: asyncio.Event | None = None
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def url(self, path: str = "hook") -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def start(self) -> Receiver:
        self.thread.start()
        assert self.ready.wait(10), "receiver did not start"
        return self

    def stop(self) -> None:
        if self.loop is not None and self.stop_event is not None:
            self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(10)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.stop_event = asyncio.Event()
        app = web.Application()
        app.router.add_post("/{path:.*}", self._handle)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        self.ready.set()
        await self.stop_event.wait()
        await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        with self.lock:
            self.seen += 1
            n = self.seen
        headers = dict(request.headers)
        path = request.path.lstrip("/")
        if n <= self.stall_first:
            self._record(Hit(path, headers, body, None))
            await asyncio.sleep(self.stall_s)
            return web.Response(status=200)
        if self.redirect_to is not None:
            self._record(Hit(path, headers, body, 307))
            return web.Response(status=307, headers={"Location": self.redirect_to})
        status = 500 if n <= self.stall_first + self.fail_first else 200
        self._record(Hit(path, headers, body, status))
        return web.Response(status=status, text="down for a while" if status == 500 else "ok")

    def _record(self, hit: Hit) -> None:
        with self.lock:
            self.hits.append(hit)

    def taken(self, path: str | None = None) -> dict[str, list[Hit]]:
        """Requests answered 2xx, by idempotency key (optionally only those to ``path``)."""
        out: dict[str, list[Hit]] = {}
        with self.lock:
            hits = list(self.hits)
        for hit in hits:
            if hit.answered == 200 and (path is None or hit.path == path):
                out.setdefault(hit.key, []).append(hit)
        return out

    def all_hits(self) -> list[Hit]:
        with self.lock:
            return list(self.hits)
