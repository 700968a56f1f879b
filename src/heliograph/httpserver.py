"""The HTTP server's connection protocol, with the limits a public gateway needs.

uvicorn's httptools protocol puts no bound on a request's header block and never closes a
connection that sends its headers or body too slowly (slowloris): four connections with 150 MB
of headers once took the process to 800 MB and stalled every other request. This subclass
adds three bounds, all settings:

- the header block (request line and headers) is at most ``max_header_bytes``: 431 beyond;
- the header block must arrive within ``header_timeout`` seconds of the connection or of the
  previous request: 408 beyond;
- a body that stops arriving for ``body_timeout`` seconds closes the connection; the app
  sees the client leave (the gateway records the request as cancelled).

Bytes are counted as they are read, before the parser buffers them, so memory stays bounded
by the limit plus one socket read.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from heliograph.config import Settings

log = logging.getLogger(__name__)
SWEEP_S = 0.5


class HeadersTooLarge(Exception):
    """Raised from a parser callback to stop parsing a request whose headers are too large."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header-size, header-time and body-idle limits."""

    def __init__(
        self,
        *args: Any,
        max_header_bytes: int,
        header_timeout: float,
        body_timeout: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.max_header_bytes = max_header_bytes
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self._in_headers = True
        self._header_bytes = 0  # bytes read while a header block is incomplete
        self._in_body = False
        self._deadline: float | None = None  # when the current phase must be over
        self._refused = False

    # -- deadlines ------------------------------------------------------------------------
    # One timer per request would cost more than the rest of this class: each connection
    # notes a deadline (a float), and one sweep per server process looks at them every
    # SWEEP_S seconds, so a limit is enforced up to SWEEP_S late.
    def _watch(self, seconds: float) -> None:
        self._deadline = self.loop.time() + seconds
        state = self.server_state
        sweeper: asyncio.Task[None] | None = getattr(state, "heliograph_sweeper", None)
        if sweeper is None or sweeper.done():
            state.heliograph_sweeper = self.loop.create_task(  # type: ignore[attr-defined]
                _sweep(state.connections, self.loop)
            )

    def expire_if_due(self, now: float) -> None:
        """Called by the sweep: end a phase that ran out of time."""
        if self._deadline is None or now < self._deadline:
            return
        self._deadline = None
        if self.transport is None or self.transport.is_closing():
            return
        if self._in_headers:
            log.info("closing a connection whose request headers did not arrive in time")
            if self._header_bytes:
                self._refuse(408, b"Request headers did not arrive in time.")
            else:
                self.transport.close()  # a connection that never sent anything
            return
        if self._in_body:
            if self.flow.read_paused:  # the app has not taken what it has: not the client's
                self._deadline = now + self.body_timeout
                return
            log.info("closing a connection whose request body stopped arriving")
            self.transport.close()

    def _refuse(self, status: int, message: bytes) -> None:
        reason = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}[status]
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s"
            % (status, reason, len(message), message)
        )
        self.transport.close()

    # -- protocol -----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch(self.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._deadline = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_headers:
            self._header_bytes += len(data)
        elif self._in_body:  # the body is still coming: its idle time starts again
            self._deadline = self.loop.time() + self.body_timeout
        super().data_received(data)
        if self._in_headers and self._header_bytes > self.max_header_bytes:
            self._refused = True
            if not self.transport.is_closing():
                self._refuse(431, b"Request headers too large.")

    def send_400_response(self, msg: str) -> None:
        if self._refused:  # our refusal, raised from a parser callback
            if not self.transport.is_closing():
                self._refuse(431, b"Request headers too large.")
            return
        super().send_400_response(msg)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_headers:  # a pipelined request right after the previous one
            self._in_headers = True
            self._header_bytes = 0
        if self._deadline is None:  # the first request's deadline runs from the connection
            self._deadline = self.loop.time() + self.header_timeout

    def on_headers_complete(self) -> None:
        # Bytes read in the header phase bound the block's size; only a read that went past
        # the limit (the block may have come whole, with body bytes after it) needs a count.
        if self._header_bytes > self.max_header_bytes:
            size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
            if size > self.max_header_bytes:
                self._refused = True
                raise HeadersTooLarge
        self._in_headers = False
        self._in_body = True
        self._deadline = self.loop.time() + self.body_timeout
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_body = False
        self._deadline = None
        super().on_message_complete()

    def on_response_complete(self) -> None:
        # The next request's headers may start now; uvicorn's keep-alive timer bounds the
        # wait for its first byte, and ours the wait for the rest of its header block.
        self._in_headers = True
        self._header_bytes = 0
        super().on_response_complete()


async def _sweep(connections: set[Any], loop: asyncio.AbstractEventLoop) -> None:
    """Expire the connections whose phase ran out of time, while there are connections."""
    while connections:
        await asyncio.sleep(SWEEP_S)
        now = loop.time()
        for conn in list(connections):
            if isinstance(conn, GuardedHttpToolsProtocol):
                conn.expire_if_due(now)


def guarded_protocol(
    max_header_bytes: int, header_timeout: float, body_timeout: float
) -> functools.partial[GuardedHttpToolsProtocol]:
    """The protocol class uvicorn takes as ``http=`` (a partial pickles to worker processes)."""
    return functools.partial(
        GuardedHttpToolsProtocol,
        max_header_bytes=max_header_bytes,
        header_timeout=header_timeout,
        body_timeout=body_timeout,
    )


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn options every Heliograph server uses: our protocol with its limits, and no
    Server header of uvicorn's (the gateway passes the upstream's on)."""
    return {
        "http": guarded_protocol(
            settings.max_header_bytes, settings.header_timeout, settings.body_timeout
        ),
        "server_header": False,
    }
