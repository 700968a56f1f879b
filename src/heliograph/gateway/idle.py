"""The upstream idle timeout, in one sweep for all requests.

aiohttp's ``sock_read`` timeout re-arms a timer for every chunk it receives (a ``call_later``
and a ``cancel``): 9 % of the gateway's time with 2,000 slow streams open. Instead one sweep,
a few times per ``upstream_timeout`` and at most once a second, ends the waits that have had
no byte from their upstream for that long: a wait for the response headers is cancelled
(:meth:`Relay.open` answers 504), a body being read gets aiohttp's own read-timeout error, as
``sock_read`` raised it. Time the gateway spends on its own side (sending to a slow client,
storing a cache entry) is not the upstream's silence: the reader marks it ``busy``.
"""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp

MAX_SWEEP_S = 1.0
SWEEPS_PER_TIMEOUT = 4


class UpstreamWait:
    """One request's wait on its upstream, tracked between :meth:`expect` and the response's
    end (or :meth:`close`)."""

    __slots__ = ("_waits", "busy", "fired", "resp", "seen", "since", "task")

    def __init__(self, waits: UpstreamWaits, task: asyncio.Task[object] | None) -> None:
        self._waits = waits
        self.task = task
        self.resp: aiohttp.ClientResponse | None = None
        self.busy = False
        self.fired = False
        self.seen = -1  # the body's byte count at the last sweep
        self.since = 0.0  # loop time of the last sign of life

    def expect(self, resp: aiohttp.ClientResponse | None = None) -> None:
        """From now the upstream owes bytes: its response headers, or ``resp``'s body."""
        self.resp = resp
        self.busy = False
        self.seen = -1
        self.since = self._waits.now()
        self._waits.track(self)

    def absorb(self) -> bool:
        """After a CancelledError: True (and the cancellation undone) when the sweep made it."""
        if not self.fired:
            return False
        self.fired = False
        if self.task is not None:
            self.task.uncancel()
        return True

    def close(self) -> None:
        self._waits.discard(self)

    def _expire(self) -> None:
        resp = self.resp
        if resp is not None:
            resp.content.set_exception(
                aiohttp.SocketTimeoutError("Timeout on reading data from socket")
            )
            return
        task = self.task
        if task is None or task.done() or task.cancelling():
            return  # already on its way out (the client left)
        self.fired = True
        task.cancel()


class UpstreamWaits:
    """The waits of one gateway process, and the sweep that ends the silent ones."""

    def __init__(self, idle_s: float) -> None:
        self.idle_s = idle_s
        self.every = min(MAX_SWEEP_S, idle_s / SWEEPS_PER_TIMEOUT)
        self._open: dict[UpstreamWait, None] = {}
        self._sweeper: asyncio.Task[None] | None = None

    def start(self) -> UpstreamWait:
        """A wait for the current request, not yet tracked."""
        return UpstreamWait(self, asyncio.current_task())

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def track(self, wait: UpstreamWait) -> None:
        self._open[wait] = None
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    def discard(self, wait: UpstreamWait) -> None:
        self._open.pop(wait, None)

    def __len__(self) -> int:
        return len(self._open)

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while self._open:
            await asyncio.sleep(self.every)
            now = loop.time()
            due = now - self.idle_s
            for wait in list(self._open):
                if wait.task is not None and wait.task.done():
                    del self._open[wait]  # a request that ended without closing its wait
                    continue
                resp = wait.resp
                if resp is not None:
                    if resp.closed or resp.content.is_eof():
                        del self._open[wait]  # nothing more is owed
                        continue
                    got = resp.content.total_bytes
                    if got != wait.seen:
                        wait.seen, wait.since = got, now
                        continue
                if wait.busy:
                    wait.since = now
                elif wait.since <= due:
                    del self._open[wait]
                    wait._expire()

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
