"""A raw-socket streaming client that timestamps every read, for the streaming benchmark.

wrk cannot see inside a response, so streamed requests are driven by this client instead: one
keep-alive connection, one request at a time. An ``asyncio.Protocol`` stamps each
``data_received`` call with ``time.monotonic_ns()`` and an incremental parser (HTTP/1.1 head,
chunked / Content-Length / close-delimited body, SSE events) records, for every SSE event, when
the read that completed it arrived and which read that was. That gives the time to first body
byte, each chunk's arrival time, and whether chunks were coalesced into one read (held back).

When the mock stamps its chunks (``fastmock.py --timestamps``) the send time of each chunk is
read back from ``system_fingerprint`` ("fp_mock_<monotonic ns>"), so the exact delay between
the mock writing a chunk and the client reading it is known too.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import orjson

STAMP_MARK = b'"system_fingerprint":"fp_mock_'
REQUEST_BODY = orjson.dumps(
    {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Say hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
)


class StreamClientError(RuntimeError):
    """The server answered something that is not a well-formed streamed response."""


@dataclass
class Event:
    """One SSE event as the client saw it."""

    arrived_ns: int  # when the read completing this event arrived
    read_index: int  # which read (0-based, within the response) completed it
    sent_ns: int | None  # the mock's send stamp, when present
    data: bytes


@dataclass
class StreamResult:
    """Timings of one streamed request; ``*_ns`` are ``time.monotonic_ns()`` values."""

    status: int
    started_ns: int
    first_byte_ns: int  # first byte of the body
    events: list[Event] = field(default_factory=list)
    reads: int = 0
    leftover: bytes = b""  # body bytes not terminated as an SSE event (e.g. an error JSON)

    @property
    def ttfb_ms(self) -> float:
        return (self.first_byte_ns - self.started_ns) / 1e6

    def offsets_ms(self) -> list[float]:
        """Each event's arrival relative to the first body byte."""
        return [(e.arrived_ns - self.first_byte_ns) / 1e6 for e in self.events]

    def max_events_per_read(self) -> int:
        counts: dict[int, int] = {}
        for e in self.events:
            counts[e.read_index] = counts.get(e.read_index, 0) + 1
        return max(counts.values(), default=0)


class _ResponseParser:
    """Incremental HTTP/1.1 response parser that records SSE event arrival times."""

    def __init__(self, started_ns: int) -> None:
        self.started_ns = started_ns
        self.buf = bytearray()
        self.state = "head"  # head -> size/data/crlf/trailer (chunked) | length | close -> done
        self.status = 0
        self.keep_alive = True
        self.remaining = 0
        self.first_byte_ns = 0
        self.sse = bytearray()
        self.events: list[Event] = []
        self.reads = 0

    @property
    def done(self) -> bool:
        return self.state == "done"

    def feed(self, data: bytes, now_ns: int) -> None:
        self.buf += data
        read_index = self.reads
        self.reads += 1
        while self.buf and self.state != "done":
            if not self._step(now_ns, read_index):
                break

    def eof(self, now_ns: int) -> None:
        if self.state == "close":
            self.state = "done"
        elif self.state != "done":
            raise StreamClientError(f"connection closed mid-response (state {self.state})")

    def _step(self, now_ns: int, read_index: int) -> bool:
        """Consume what the current state can; False if more bytes are needed."""
        buf = self.buf
        if self.state == "head":
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return False
            self._parse_head(bytes(buf[:end]))
            del buf[: end + 4]
            if self.status == 100:
                self.state = "head"
            return True
        if self.state in ("size", "trailer"):
            eol = buf.find(b"\r\n")
            if eol < 0:
                return False
            line = bytes(buf[:eol])
            del buf[: eol + 2]
            if self.state == "trailer":
                if not line:
                    self.state = "done"
                return True
            self.remaining = int(line.split(b";", 1)[0], 16)
            self.state = "data" if self.remaining else "trailer"
            return True
        if self.state == "crlf":
            if len(buf) < 2:
                return False
            del buf[:2]
            self.state = "size"
            return True
        if self.state in ("data", "length"):
            take = min(self.remaining, len(buf))
            self._body(bytes(buf[:take]), now_ns, read_index)
            del buf[:take]
            self.remaining -= take
            if self.remaining == 0:
                self.state = "crlf" if self.state == "data" else "done"
            return True
        # close-delimited body
        self._body(bytes(buf), now_ns, read_index)
        buf.clear()
        return True

    def _parse_head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise StreamClientError(f"bad status line {lines[0]!r}")
        self.status = int(parts[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()
        self.keep_alive = b"close" not in headers.get(b"connection", b"")
        if b"chunked" in headers.get(b"transfer-encoding", b""):
            self.state = "size"
        elif b"content-length" in headers:
            self.remaining = int(headers[b"content-length"])
            self.state = "length" if self.remaining else "done"
        else:
            self.state = "close"
            self.keep_alive = False

    def _body(self, data: bytes, now_ns: int, read_index: int) -> None:
        if not data:
            return
        if not self.first_byte_ns:
            self.first_byte_ns = now_ns
        self.sse += data
        while True:
            end = self.sse.find(b"\n\n")
            if end < 0:
                return
            raw = bytes(self.sse[:end])
            del self.sse[: end + 2]
            self.events.append(Event(now_ns, read_index, _stamp(raw), raw))


def _stamp(event: bytes) -> int | None:
    at = event.find(STAMP_MARK)
    if at < 0:
        return None
    start = at + len(STAMP_MARK)
    end = event.find(b'"', start)
    try:
        return int(event[start:end])
    except ValueError:
        return None


class _ClientProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser: _ResponseParser | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        parser = self.parser
        if parser is None:
            return
        try:
            parser.feed(data, now)
        except (StreamClientError, ValueError) as exc:
            self._finish(exc)
            return
        if parser.done:
            self._finish(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.parser is not None and not self.parser.done:
            try:
                self.parser.eof(time.monotonic_ns())
            except StreamClientError as err:
                self._finish(err)
                return
        self._finish(None)

    def _finish(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            if exc is None:
                self.waiter.set_result(None)
            else:
                self.waiter.set_exception(exc)


class StreamClient:
    """Sends streamed chat requests one at a time over a keep-alive connection."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"only http:// URLs are supported: {url}")
        self.host = parts.hostname
        self.port = parts.port or 80
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.request = (
            f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Type: application/json\r\nAccept: text/event-stream\r\n{extra}"
            f"Content-Length: {len(REQUEST_BODY)}\r\n\r\n"
        ).encode() + REQUEST_BODY
        self.protocol: _ClientProtocol | None = None

    async def _connect(self) -> _ClientProtocol:
        if self.protocol is None or self.protocol.closed:
            loop = asyncio.get_running_loop()
            _, protocol = await loop.create_connection(_ClientProtocol, self.host, self.port)
            self.protocol = protocol
        return self.protocol

    async def send(self, timeout_s: float = 30.0) -> StreamResult:
        """Send one request and wait for the whole streamed response."""
        protocol = await self._connect()
        loop = asyncio.get_running_loop()
        protocol.waiter = loop.create_future()
        started = time.monotonic_ns()
        parser = protocol.parser = _ResponseParser(started)
        assert protocol.transport is not None
        protocol.transport.write(self.request)
        try:
            await asyncio.wait_for(protocol.waiter, timeout_s)
        finally:
            protocol.parser = None
        if not parser.keep_alive:
            self.close()
        if not parser.first_byte_ns:
            parser.first_byte_ns = time.monotonic_ns()
        return StreamResult(
            parser.status,
            started,
            parser.first_byte_ns,
            parser.events,
            parser.reads,
            bytes(parser.sse),
        )

    def close(self) -> None:
        if self.protocol is not None and self.protocol.transport is not None:
            self.protocol.transport.close()
        self.protocol = None


async def run_many(
    url: str, count: int, headers: dict[str, str] | None = None, warmup: int = 0
) -> list[StreamResult]:
    """Send ``warmup`` + ``count`` requests sequentially; return the last ``count`` results."""
    client = StreamClient(url, headers)
    results: list[StreamResult] = []
    try:
        for i in range(warmup + count):
            result = await client.send()
            if result.status != 200:
                body = result.leftover or b"".join(e.data for e in result.events)
                raise StreamClientError(f"HTTP {result.status} from {url}: {body[:500]!r}")
            if i >= warmup:
                results.append(result)
    finally:
        client.close()
    return results
