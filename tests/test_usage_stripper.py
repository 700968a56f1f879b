"""include_usage injection and the stripper that hides the injected usage chunk again.

The stripper sits on the hot path between the upstream and the client, so the tests check
bytes, not parsed JSON: everything but the injected ``choices: []`` usage event must reach the
client unchanged and as soon as it is complete, however the upstream splits its reads.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import orjson
import pytest

from heliograph.providers.openai_wire import UsageChunkStripper, inject_stream_usage

SAMPLES = Path(__file__).parent / "samples"
_SEP = re.compile(rb"\r\n\r\n|\n\n")


def events_of(raw: bytes) -> list[bytes]:
    """The stream cut after each event separator (the separator stays with its event)."""
    out, pos = [], 0
    for m in _SEP.finditer(raw):
        out.append(raw[pos : m.end()])
        pos = m.end()
    assert pos == len(raw), "samples end with a complete event"
    return out


def is_usage_event(event: bytes) -> bool:
    data = event.strip()[len(b"data:") :]
    if data.strip() == b"[DONE]":
        return False
    doc = orjson.loads(data)
    return doc.get("choices") == [] and isinstance(doc.get("usage"), dict)


def without_usage(raw: bytes) -> bytes:
    kept = [e for e in events_of(raw) if not is_usage_event(e)]
    assert len(kept) == len(events_of(raw)) - 1, "each stream sample has one usage event"
    return b"".join(kept)


def run(stripper: UsageChunkStripper, reads: list[bytes]) -> bytes:
    return b"".join(stripper.feed(r) for r in reads) + stripper.flush()


def chunk(choices: list[object] | str, **extra: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "id": "chatcmpl-x",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-mini",
    }
    doc["choices"] = choices
    doc.update(extra)
    return doc


def sse(doc: object) -> bytes:
    return b"data: " + orjson.dumps(doc) + b"\n\n"


USAGE = {"prompt_tokens": 14, "completion_tokens": 5, "total_tokens": 19}
CONTENT = [{"index": 0, "delta": {"content": "Hi"}, "logprobs": None, "finish_reason": None}]
STREAMS = ["chat_stream_usage.sse", "chat_stream_tool_call.sse", "completions_stream.sse"]


# ------------------------------------------------------------------------------ injection


def test_inject_adds_include_usage_and_keeps_everything_else() -> None:
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "héllo ✓ \u2028"}],
        "stream": True,
        "temperature": 0.1,
        "n": 2,
    }
    new = inject_stream_usage("/chat/completions", orjson.dumps(body))
    assert new is not None
    assert orjson.loads(new) == {**body, "stream_options": {"include_usage": True}}


def test_inject_keeps_other_stream_options() -> None:
    body = {"model": "m", "stream": True, "stream_options": {"include_obfuscation": False}}
    new = inject_stream_usage("/completions", orjson.dumps(body))
    assert new is not None
    assert orjson.loads(new)["stream_options"] == {
        "include_obfuscation": False,
        "include_usage": True,
    }


@pytest.mark.parametrize(
    "options",
    [None, {}, {"include_usage": False}, {"include_usage": None}],
    ids=["null", "empty", "false", "usage-null"],
)
def test_inject_when_usage_was_not_asked_for(options: object) -> None:
    body = {"model": "m", "messages": [], "stream": True, "stream_options": options}
    new = inject_stream_usage("/chat/completions", orjson.dumps(body))
    assert new is not None
    assert orjson.loads(new)["stream_options"]["include_usage"] is True


@pytest.mark.parametrize(
    ("rest", "body"),
    [
        (
            "/chat/completions",
            b'{"model":"m","stream":true,"stream_options":{"include_usage":true}}',
        ),
        ("/chat/completions", b'{"model":"m","stream":false}'),
        ("/chat/completions", b'{"model":"m"}'),
        ("/chat/completions", b'{"model":"m","stream":"true"}'),
        ("/chat/completions", b'{"model":"m","stream":1}'),
        ("/chat/completions", b'{"model":"m","stream":true,"stream_options":"yes"}'),
        ("/chat/completions", b'{"model":"m","stream":true,'),
        ("/chat/completions", b'[{"stream":true}]'),
        ("/chat/completions", b'\x89PNG not json "stream"'),
        ("/chat/completions", b""),
        ("/embeddings", b'{"model":"m","stream":true}'),
        ("/responses", b'{"model":"m","stream":true}'),
        ("/chat/completions/chatcmpl-1", b'{"model":"m","stream":true}'),
        ("/models", b'{"stream":true}'),
    ],
    ids=[
        "already-included",
        "not-stream",
        "no-stream-key",
        "stream-string",
        "stream-int",
        "options-not-object",
        "invalid-json",
        "json-array",
        "binary",
        "empty",
        "embeddings",
        "responses",
        "stored-completion",
        "models",
    ],
)
def test_inject_leaves_the_body_alone(rest: str, body: bytes) -> None:
    assert inject_stream_usage(rest, body) is None


# ------------------------------------------------------------------------------ the stripper


@pytest.mark.parametrize("name", STREAMS)
def test_stripper_removes_exactly_the_usage_event(name: str) -> None:
    raw = (SAMPLES / name).read_bytes()
    expected = without_usage(raw)
    assert run(UsageChunkStripper(), [raw]) == expected
    assert b'"usage":{' not in expected and b"data: [DONE]\n\n" in expected


@pytest.mark.parametrize("name", STREAMS)
def test_complete_events_are_forwarded_at_once_and_unchanged(name: str) -> None:
    raw = (SAMPLES / name).read_bytes()
    stripper = UsageChunkStripper()
    for event in events_of(raw):
        out = stripper.feed(event)
        assert out == (b"" if is_usage_event(event) else event)
    assert stripper.flush() == b""


@pytest.mark.parametrize("name", [*STREAMS, "chat_stream_crlf.handmade.sse"])
def test_one_byte_at_a_time(name: str) -> None:
    raw = (SAMPLES / name).read_bytes()
    if name.endswith("crlf.handmade.sse"):  # no usage event in this one: add one, CRLF-framed
        raw = raw.replace(
            b"data: [DONE]", sse(chunk([], usage=USAGE)).replace(b"\n", b"\r\n") + b"data: [DONE]"
        )
    events = events_of(raw)
    stripper = UsageChunkStripper()
    forwarded = b""
    for i, event in enumerate(events):
        for b in range(len(event)):
            forwarded += stripper.feed(event[b : b + 1])
        # an event is forwarded as soon as its last byte has arrived, not later
        assert forwarded == b"".join(e for e in events[: i + 1] if not is_usage_event(e))
    assert forwarded + stripper.flush() == without_usage(raw)


def test_random_read_boundaries() -> None:
    rng = random.Random(20241128)
    for name in STREAMS:
        raw = (SAMPLES / name).read_bytes()
        for _ in range(50):
            cuts = sorted(rng.sample(range(1, len(raw)), rng.randint(1, 30)))
            reads = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
            assert run(UsageChunkStripper(), reads) == without_usage(raw)


def test_a_read_ending_mid_event_forwards_the_complete_part() -> None:
    first, second = sse(chunk(CONTENT)), sse(chunk(CONTENT, usage=None))
    stripper = UsageChunkStripper()
    assert stripper.feed(first + second[:25]) == first
    assert stripper.feed(second[25:-1]) == b""
    assert stripper.feed(second[-1:]) == second


@pytest.mark.parametrize(
    "usage_event",
    [
        b'data: {"id":"x","choices": [],"usage":{"prompt_tokens":1,"completion_tokens":2,'
        b'"total_tokens":3}}\n\n',
        b'data: {"id": "x", "choices" : [ ], "usage": {"prompt_tokens": 1, '
        b'"completion_tokens": 2, "total_tokens": 3}}\n\n',
        b'data:{"usage":{"total_tokens":3},"choices":[]}\n\n',
        b'data: {"id":"x","choices":[],"usage":{"prompt_tokens":1}}\r\n\r\n',
    ],
    ids=["space-after-colon", "spaces-everywhere", "usage-first-no-space", "crlf"],
)
def test_usage_event_spellings_are_removed(usage_event: bytes) -> None:
    before, after = sse(chunk(CONTENT)), b"data: [DONE]\n\n"
    assert run(UsageChunkStripper(), [before, usage_event, after]) == before + after
    assert run(UsageChunkStripper(), [before + usage_event + after]) == before + after


@pytest.mark.parametrize(
    "event",
    [
        # usage on a chunk that still has choices (DeepSeek, vLLM continuous usage stats)
        sse(chunk(CONTENT, usage=USAGE)),
        # Azure's first chunk: no choices, no usage
        sse(chunk([], prompt_filter_results=[{"prompt_index": 0, "content_filter_results": {}}])),
        # empty choices with a null usage
        sse(chunk([], usage=None)),
        # text that talks about usage and empty choices
        sse(
            chunk(
                [{"index": 0, "delta": {"content": 'a "usage" with "choices": [] inside'}}],
                usage=None,
            )
        ),
        # an error event
        b'data: {"error":{"message":"boom","type":"server_error","param":null,"code":null}}\n\n',
        b"data: [DONE]\n\n",
        b": keep-alive comment\n\n",
    ],
    ids=["usage-with-choices", "azure-filter", "usage-null", "quoted", "error", "done", "comment"],
)
def test_other_events_pass_untouched(event: bytes) -> None:
    stripper = UsageChunkStripper()
    assert stripper.feed(event) == event
    stream = sse(chunk(CONTENT)) + event + sse(chunk([], usage=USAGE)) + b"data: [DONE]\n\n"
    expected = sse(chunk(CONTENT)) + event + b"data: [DONE]\n\n"
    assert run(UsageChunkStripper(), [stream]) == expected


def test_flush_returns_a_trailing_partial_event() -> None:
    stripper = UsageChunkStripper()
    complete = sse(chunk(CONTENT))
    assert stripper.feed(complete + b'data: {"id":"cut') == complete
    assert stripper.flush() == b'data: {"id":"cut'
    assert stripper.flush() == b""
    assert stripper.feed(b"data: [DONE]\n") == b""
    assert stripper.flush() == b"data: [DONE]\n"


def test_flush_after_a_complete_stream_is_empty() -> None:
    stripper = UsageChunkStripper()
    raw = (SAMPLES / "chat_stream_usage.sse").read_bytes()
    stripper.feed(raw)
    assert stripper.flush() == b""


def test_injection_keeps_the_clients_bytes_including_huge_integers() -> None:
    body = b'{"model":"m","stream":true,"seed":123456789012345678901234567890,"messages":[]}'
    out = inject_stream_usage("/chat/completions", body)
    assert out is not None
    assert b"123456789012345678901234567890" in out
    assert out.replace(b'"stream_options":{"include_usage":true},', b"") == body
