"""Server-sent events: split a byte stream into events (used off the request path)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

_EVENT_BOUNDARY = re.compile(rb"\r\n\r\n|\n\n|\r\r")


@dataclass(slots=True)
class Event:
    event: str | None
    data: str
    end: int  # byte offset just past this event in the stream


def iter_events(raw: bytes) -> Iterator[Event]:
    """Events of a complete (or truncated) SSE body; a trailing partial event is dropped."""
    pos = 0
    for match in _EVENT_BOUNDARY.finditer(raw):
        block = raw[pos : match.start()]
        pos = match.end()
        event = _parse_block(block, pos)
        if event is not None:
            yield event


def iter_data(raw: bytes) -> Iterator[tuple[bytes, int]]:
    """Fast path for streams whose events are single ``data:`` lines (OpenAI's framing).

    Yields (data, end offset). Blocks in any other shape fall back to the full parser.
    """
    pos = 0
    size = len(raw)
    while pos < size:
        nxt = raw.find(b"\n\n", pos)
        if nxt < 0:
            return
        block = raw[pos:nxt]
        end = nxt + 2
        if block.startswith(b"data: ") and b"\n" not in block and b"\r" not in block:
            yield block[6:], end
        elif block.strip():
            event = _parse_block(block, end)
            if event is not None:
                yield event.data.encode(), end
        pos = end


def _parse_block(block: bytes, end: int) -> Event | None:
    name: str | None = None
    data: list[str] = []
    # Split on CR/LF only: str.splitlines() would also split on U+2028 inside JSON strings.
    for raw_line in re.split(rb"\r\n|\r|\n", block):
        line = raw_line.decode("utf-8", "replace")
        if not line or line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            data.append(value)
        elif field == "event":
            name = value
    if not data and name is None:
        return None
    return Event(name, "\n".join(data), end)
