"""The gateway's bounded copy of a response, and how the writer reads a cut one back.

A response longer than the stored-body cap is forwarded whole but kept as its head and a tail
window; the writer splices a cut stream back to whole events so its usage (in the last
events) is still read. Also: dot segments and special characters in upstream paths.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from heliograph.capture.frames import EndFrame
from heliograph.capture.record import build_record, splice
from heliograph.gateway.routing import upstream_path
from heliograph.gateway.streaming import MAX_MARKS, TAIL_BYTES, ResponseTap

START = {
    "id": "01a23b19-7233-721a-8b62-d732bc798b46",
    "ts": 1_700_000_000.0,
    "org": "6f1c2a9e-0000-4000-8000-000000000001",
    "key": None,
    "up": "openai",
    "pr": "openai",
    "pv": "openai",
    "m": "POST",
    "p": "/chat/completions",
    "q": "",
    "h": [["content-type", "application/json"]],
}
REQUEST = orjson.dumps(
    {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
)


def _event(content: str) -> bytes:
    chunk = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}],
    }
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def _usage_event(completion: int) -> bytes:
    usage = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [],
        "usage": {
            "prompt_tokens": 5,
            "completion_tokens": completion,
            "total_tokens": 5 + completion,
        },
    }
    return b"data: " + orjson.dumps(usage) + b"\n\ndata: [DONE]\n\n"


def _tap(chunks: list[bytes], cap: int) -> ResponseTap:
    tap = ResponseTap(time.perf_counter(), cap)
    for chunk in chunks:
        tap.add(chunk)
    return tap


def _end(tap: ResponseTap) -> dict[str, Any]:
    end: EndFrame = {
        "id": START["id"],
        "st": 200,
        "state": "ok",
        "lat": 10.0,
        "ttfb": 1.0,
        "ct": "text/event-stream",
    }
    tap.fill(end)
    return dict(end)


def test_a_response_under_the_cap_is_kept_whole_with_a_mark_per_chunk() -> None:
    chunks = [_event(f"w{i} ") for i in range(10)] + [_usage_event(10)]
    tap = _tap(chunks, 1 << 20)
    assert tap.body() == b"".join(chunks)
    assert not tap.cut and "cut" not in _end(tap)
    assert [m[0] for m in tap.marks] == [sum(map(len, chunks[: i + 1])) for i in range(11)]


def test_a_long_stream_keeps_its_head_and_tail_and_the_writer_reads_its_usage() -> None:
    words = [_event("x" * 500) for _ in range(20_000)]  # ~10 MB
    chunks = [*words, _usage_event(20_000)]
    total = sum(map(len, chunks))
    cap = 64 * 1024
    tap = _tap(chunks, cap)
    kept = tap.body()
    assert tap.cut and len(kept) <= cap + 2 * TAIL_BYTES
    assert kept.endswith(b"data: [DONE]\n\n")
    assert _end(tap)["cut"] == [cap, total]
    body, marks, cut = splice(kept, _end(tap))
    assert cut
    # whole events only, on both sides of the gap
    for line in body.split(b"\n\n"):
        if line:
            assert line.startswith(b"data: ") and (line.endswith(b"}") or line.endswith(b"]"))
    assert all(m[0] <= len(body) for m in marks)
    rows = build_record(START, REQUEST, _end(tap), kept, provider="openai", body_cap=cap)
    assert rows.request["prompt_tokens"] == 5
    assert rows.request["completion_tokens"] == 20_000
    assert rows.request["tokens_estimated"] is False
    assert rows.body["truncated"] is True


def test_marks_stay_bounded_for_a_stream_of_tiny_chunks() -> None:
    chunks = [b"data: {}\n\n"] * 100_000
    tap = _tap(chunks, 4 * 1024 * 1024)
    assert len(tap.marks) <= MAX_MARKS + 1
    assert tap.marks[-1][0] == tap.size  # the last byte's time is kept
    assert tap.marks[0][0] == len(chunks[0])  # and the first chunk's


def test_a_cut_json_body_is_kept_as_its_head() -> None:
    body = b'{"a": "' + b"y" * 1_500_000 + b'"}'
    tap = _tap([body[i : i + 8192] for i in range(0, len(body), 8192)], 100_000)
    end = {**_end(tap), "ct": "application/json"}
    spliced, _marks, cut = splice(tap.body(), end)
    assert cut and spliced == body[:100_000]


def test_upstream_paths_cannot_climb_above_the_base() -> None:
    assert upstream_path("/chat/completions") == "/chat/completions"
    assert upstream_path("/../../admin") is None
    assert upstream_path("/a/../../b") is None
    assert upstream_path("/a/./b/../c") == "/a/c"
    # an encoded "?" or "#" (decoded by the server) stays part of the path
    assert upstream_path("/models/x?key=1#f") == "/models/x%3Fkey=1%23f"
    assert upstream_path("/%2e%2e/x") == "/%252e%252e/x"
    assert upstream_path("/models/ft:gpt-4o-mini:acme") == "/models/ft:gpt-4o-mini:acme"
