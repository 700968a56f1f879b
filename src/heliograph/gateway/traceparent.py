"""W3C Trace Context: the gateway's span as the child of a client's ``traceparent``.

A client that traces its own work (OpenTelemetry, or any W3C propagator) sends
``traceparent: 00-<trace id>-<its span id>-<flags>``. The gateway's record of the call becomes a
span in that trace: a new span id, sent upstream in the client's header's place so the
provider's own tracing (vLLM, a proxy) nests under the gateway, and recorded with the trace id
and the client's span as its parent. Malformed headers are passed on untouched and not recorded,
as the specification asks of a participant that cannot parse them.
"""

from __future__ import annotations

import os

_HEX = frozenset("0123456789abcdef")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


def parse(value: str) -> tuple[str, str, str] | None:
    """``(trace id, parent span id, flags)`` of a valid ``traceparent``, else None.

    Version ``00`` is exactly 55 characters; a later version may append fields after a dash,
    which are ignored (its first four fields keep their meaning); ``ff`` is invalid."""
    value = value.strip()
    if len(value) < 55 or (len(value) > 55 and value[55] != "-"):
        return None
    version, trace, parent, flags = value[:2], value[3:35], value[36:52], value[53:55]
    if value[2] != "-" or value[35] != "-" or value[52] != "-":
        return None
    if version == "ff" or (version == "00" and len(value) != 55):
        return None
    if not _HEX.issuperset(version + trace + parent + flags):
        return None  # upper case is invalid too
    if trace == _ZERO_TRACE or parent == _ZERO_SPAN:
        return None
    return trace, parent, flags


def new_span_id() -> str:
    """A random, non-zero 64-bit span id in lower-case hex."""
    while True:
        span = os.urandom(8).hex()
        if span != _ZERO_SPAN:
            return span


def child(value: str) -> tuple[list[str], str] | None:
    """For a client's ``traceparent``: the metadata to record (trace, parent, our span, flags)
    and the header to send upstream in its place; None when it is not valid."""
    parsed = parse(value)
    if parsed is None:
        return None
    trace, parent, flags = parsed
    span = new_span_id()
    return [trace, parent, span, flags], f"00-{trace}-{span}-{flags}"
