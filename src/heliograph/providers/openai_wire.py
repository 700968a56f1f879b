"""OpenAI wire handling that must happen on the request path, kept as small as possible.

Only two things: asking the upstream for a usage chunk when a streaming client did not, and
hiding that extra chunk from the client again. Everything else about the protocol is done by
the writer (see ``providers.openai``).
"""

from __future__ import annotations

import re

import orjson

# Also under /v1 (Ollama, Anthropic's compatibility layer) and Azure's deployment paths.
USAGE_ENDPOINTS = ("/chat/completions", "/completions")
_BOUNDARY = re.compile(rb"\r\n\r\n|\n\n")
_EMPTY_CHOICES = re.compile(rb'"choices"\s*:\s*\[\s*\]')


def inject_stream_usage(rest: str, body: bytes) -> bytes | None:
    """The body with ``stream_options.include_usage`` set, or None when nothing changes."""
    if not rest.endswith(USAGE_ENDPOINTS) or b'"stream"' not in body:
        return None
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict) or doc.get("stream") is not True:
        return None
    if "stream_options" not in doc and b'"stream_options"' not in body:
        # Insert the option textually: the client's bytes stay exactly as they were
        # (re-serialising would turn integers beyond 64 bits into floats).
        start = body.index(b"{") + 1
        return body[:start] + b'"stream_options":{"include_usage":true},' + body[start:]
    options = doc.get("stream_options")
    if options is None:
        options = {}
    elif not isinstance(options, dict):
        return None
    if options.get("include_usage") is True:
        return None
    options["include_usage"] = True
    doc["stream_options"] = options
    return orjson.dumps(doc)


class UsageChunkStripper:
    """Removes the ``choices: []`` usage event we asked for from an SSE stream.

    Complete events pass through at once, exactly as received; only a partial event at the
    end of a read waits for the rest of itself.
    """

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._pending + chunk if self._pending else chunk
        lf, crlf = data.rfind(b"\n\n"), data.rfind(b"\r\n\r\n")
        cut = max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)
        if cut == 0:
            self._pending = data
            return b""
        complete, self._pending = data[:cut], data[cut:]
        if b'"usage"' not in complete or not _EMPTY_CHOICES.search(complete):
            return complete
        return self._drop_usage_events(complete)

    def flush(self) -> bytes:
        rest, self._pending = self._pending, b""
        return rest

    @staticmethod
    def _drop_usage_events(complete: bytes) -> bytes:
        kept = []
        pos = 0
        for match in _BOUNDARY.finditer(complete):
            event = complete[pos : match.end()]
            pos = match.end()
            if b'"usage"' in event and _EMPTY_CHOICES.search(event) and _is_usage_only(event):
                continue
            kept.append(event)
        return b"".join(kept)


def _is_usage_only(event: bytes) -> bool:
    for line in event.splitlines():
        if line.startswith(b"data:"):
            try:
                doc = orjson.loads(line[5:].strip())
            except orjson.JSONDecodeError:
                return False
            return (
                isinstance(doc, dict)
                and doc.get("choices") == []
                and isinstance(doc.get("usage"), dict)
            )
    return False
