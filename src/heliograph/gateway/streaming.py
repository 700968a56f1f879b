"""Two pieces of the request path that keep it honest and bounded.

``ClientWatch`` notices a client that leaves before its answer is complete, at any stage
(while the upstream is still thinking, between retries, mid-stream), cancels the work done
for it - which closes the upstream connection - and lets the gateway record it as cancelled.

``ResponseTap`` keeps what the spool needs of a response: all of it up to the stored-body
cap, then only its head and a bounded tail (streams put their usage at the end), and the
arrival time of the bytes in a bounded list of marks. The client still gets every byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from heliograph.capture.frames import EndFrame

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

ARM_AFTER_S = 0.02
TAIL_BYTES = 256 * 1024
MAX_MARKS = 8192


class ClientWatch:
    """Cancels the request's task when the client disconnects before the response ends.

    Once the body is read, the next ``receive()`` only returns when the client goes away or
    the response is complete; a done-callback turns the first into a cancellation. Sending
    the response's last message disarms it, so a finished response never cancels anything.
    The ``receive()`` task is only started once the request is ``ARM_AFTER_S`` old (by the
    :class:`Watches` sweep): that task is most of a watch's cost, and an answer faster than
    that needs none (a client that left meanwhile is seen at once when the watch starts).
    """

    __slots__ = ("_future", "_receive", "_send", "_watches", "armed", "born", "gone", "task")

    def __init__(self, watches: Watches, receive: Receive, send: Send) -> None:
        self.task = asyncio.current_task()
        self.gone = False
        self.armed = True
        self._receive = receive
        self._send = send
        self._future: asyncio.Future[Message] | None = None
        self._watches = watches
        self.born = watches.add(self)

    def start(self) -> None:
        if self.armed and self._future is None:
            self._future = asyncio.ensure_future(self._receive())
            self._future.add_done_callback(self._left)

    def _left(self, future: asyncio.Future[Message]) -> None:
        if future.cancelled() or not self.armed:
            return
        self.gone = True
        if self.task is not None:
            self.task.cancel()

    async def send(self, message: Message) -> None:
        """The ASGI send, disarming the watch before the response's last message."""
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            self.armed = False
        await self._send(message)

    def absorb(self) -> bool:
        """After a CancelledError: True (and the cancellation undone) when it was ours."""
        if not self.gone:
            return False
        self.armed = False
        if self.task is not None:
            self.task.uncancel()
        return True

    def close(self) -> None:
        self.armed = False
        self._watches.discard(self)
        if self._future is not None:
            self._future.remove_done_callback(self._left)
            self._future.cancel()


class Watches:
    """Starts the watches of requests older than ``ARM_AFTER_S``, in one sweep for all.

    One timer per request would cost more than the watch it saves; the sweep runs every
    ``ARM_AFTER_S`` while requests are waiting, and only looks at the young ones (watches
    leave the table when started or closed, and the table is in age order).
    """

    def __init__(self) -> None:
        self._pending: dict[ClientWatch, None] = {}
        self._sweeper: asyncio.Task[None] | None = None

    def add(self, watch: ClientWatch) -> float:
        self._pending[watch] = None
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        return asyncio.get_running_loop().time()

    def discard(self, watch: ClientWatch) -> None:
        self._pending.pop(watch, None)

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            await asyncio.sleep(ARM_AFTER_S)
            due = loop.time() - ARM_AFTER_S
            for watch in list(self._pending):
                if watch.born > due:
                    break
                del self._pending[watch]
                watch.start()

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper


class ResponseTap:
    """The spooled copy of a response, bounded: head up to ``cap``, then a tail window."""

    __slots__ = ("cap", "head", "marks", "size", "t0", "tail", "tail_marks")

    def __init__(self, t0: float, cap: int) -> None:
        self.t0 = t0
        self.cap = cap
        self.size = 0
        self.head: list[bytes] = []
        self.marks: list[tuple[int, float]] = []
        self.tail: bytearray | None = None  # set once the head is full
        self.tail_marks: list[tuple[int, float]] = []

    @property
    def cut(self) -> bool:
        """Whether some of the response is not kept (the middle of it)."""
        return self.tail is not None and self.size - len(self.tail) > self.cap

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        mark = (self.size, round((time.perf_counter() - self.t0) * 1000.0, 3))
        if self.tail is None:
            if self.size <= self.cap:
                self.head.append(chunk)
                self.marks.append(mark)
                if len(self.marks) > MAX_MARKS:
                    self.marks = _thin(self.marks)
                return
            room = self.cap - (self.size - len(chunk))
            if room > 0:
                self.head.append(chunk[:room])
                self.marks.append((self.cap, mark[1]))
            self.tail = bytearray(chunk[room:])
        else:
            self.tail += chunk
        self.tail_marks.append(mark)
        excess = len(self.tail) - 2 * TAIL_BYTES
        if excess > 0:  # trim in big steps: amortised O(1) per byte
            del self.tail[: len(self.tail) - TAIL_BYTES]
            start = self.size - len(self.tail)
            self.tail_marks = [m for m in self.tail_marks if m[0] > start]
        if len(self.tail_marks) > MAX_MARKS:
            self.tail_marks = _thin(self.tail_marks)

    def last_bytes(self, n: int = 64) -> bytes:
        """The last ``n`` bytes received (where a stream's end-of-stream marker is)."""
        if self.tail is not None and len(self.tail) >= n:
            return bytes(self.tail[-n:])
        return self.body()[-n:]

    def body(self) -> bytes:
        """What was kept: the head, then the tail (see :meth:`fill`)."""
        head = b"".join(self.head)
        return head if self.tail is None else head + bytes(self.tail)

    def fill(self, end: EndFrame) -> None:
        """Put the marks in the end frame, and where the kept bytes sit when the middle of
        the response was cut (``cut`` = [head bytes, total bytes])."""
        if self.tail is None:
            end["ch"] = self.marks
            return
        end["ch"] = self.marks + self.tail_marks
        if self.cut:
            end["cut"] = [min(self.cap, self.size), self.size]


def _thin(marks: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """Every other mark, keeping the first and the last (first and last token times)."""
    out = marks[::2]
    if out[-1] is not marks[-1]:
        out.append(marks[-1])
    return out
