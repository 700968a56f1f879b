"""The uniform-stream shortcut gives exactly what the general path gives, or stands aside.

``uniform_events`` strips the head fields every chunk repeats before parsing; each stream
here is analysed with it and without it (the general path: every event parsed whole), and
every field of the analysis and the reassembled body must be the same.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import orjson
import pytest

from heliograph.providers import openai_streams
from heliograph.providers.analysis import Analysis
from heliograph.providers.openai_stream_parse import data_array, uniform_events

SAMPLES = Path(__file__).parent / "samples"
HEAD = b'"id":"chatcmpl-1","object":"chat.completion.chunk","created":7,"model":"m-1",'


def chunk(choices: str, head: bytes = HEAD, tail: str = ',"usage":null') -> bytes:
    return b"data: {" + head + b'"choices":' + choices.encode() + tail.encode() + b"}\n\n"


def content(text: str, head: bytes = HEAD) -> bytes:
    delta = orjson.dumps({"content": text}).decode()
    return chunk(f'[{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":null}}]', head)


USAGE = b'"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}'
ROLE = chunk('[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]')
FINISH = chunk('[{"index":0,"delta":{},"finish_reason":"stop"}]')
LAST = b"data: {" + HEAD + b'"choices":[],' + USAGE + b"}\n\n"
DONE = b"data: [DONE]\n\n"


def uniform() -> bytes:
    return ROLE + content("Hello") + content(' "world"\n') + content("") + FINISH + LAST + DONE


def analysed(body: bytes, general: bool, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    with monkeypatch.context() as patch:
        if general:
            patch.setattr(openai_streams, "uniform_events", lambda body: None)
        out = Analysis()
        marks = [(i + 1, float(i)) for i in range(0, len(body), 97)]
        openai_streams.chat_stream(body, marks, out)
    return asdict(out)


STREAMS = {
    "uniform": uniform(),
    "uniform, no [DONE]": uniform()[: -len(DONE)],
    "one event": ROLE,
    "model changes mid-stream": ROLE + content("a") + content("b", HEAD.replace(b"m-1", b"m-2")),
    "a later event repeats a head field": ROLE
    + chunk('[{"index":0,"delta":{"content":"x"}}]', tail=',"model":"other"')
    + LAST,
    "empty head fields first (Azure)": chunk(
        '[{"index":0,"delta":{"content":"x"}}]', head=b'"id":"","model":"",'
    )
    + content("y"),
    "error event": ROLE + content("a") + b'data: {"error":{"message":"boom"}}\n\n' + DONE,
    "two values in one event": ROLE + content("a")[:-2] + b',{"choices":[]}\n\n' + DONE,
    "a comment line": ROLE + b": keep-alive\n\n" + content("a") + DONE,
    "an extra blank line": ROLE + b"\n" + content("a") + DONE,
    "a number event": ROLE + b"data: 5\n\n" + content("a") + DONE,
    "a nested head in the first event": chunk("[]", head=b'"x":{"model":"n"},') + content("a"),
    "tool calls": ROLE
    + chunk(
        '[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function",'
        '"function":{"name":"f","arguments":"{\\"a\\""}}]}}]'
    )
    + chunk('[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]}}]')
    + FINISH
    + LAST
    + DONE,
    "CRLF framing": uniform().replace(b"\n", b"\r\n"),
    "torn last event": uniform()[:-20],
}
SAMPLE_FILES = sorted(p.name for p in SAMPLES.glob("*.sse") if "responses" not in p.name)


@pytest.mark.parametrize("name", [*STREAMS, *SAMPLE_FILES])
def test_the_shortcut_changes_nothing(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    body = STREAMS[name] if name in STREAMS else (SAMPLES / name).read_bytes()
    assert analysed(body, False, monkeypatch) == analysed(body, True, monkeypatch)


def test_a_uniform_stream_is_parsed_without_its_repeated_head() -> None:
    docs, head = uniform_events(uniform()) or ([], {})
    assert head == {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 7} | {
        "model": "m-1"
    }
    assert len(docs) == 6
    assert docs[1:] == [
        {k: v for k, v in d.items() if k not in head} for d in data_array(uniform())[1:]
    ]
    assert "id" in docs[0] and all("id" not in d for d in docs[1:])
    assert docs[2]["choices"][0]["delta"]["content"] == ' "world"\n'
    sample = (SAMPLES / "openwebui_chat_stream.sse").read_bytes()
    assert uniform_events(sample) is not None


@pytest.mark.parametrize(
    "name",
    [
        "model changes mid-stream",
        "a later event repeats a head field",
        "two values in one event",
        "a comment line",
        "an extra blank line",
        "a number event",
        "a nested head in the first event",
        "CRLF framing",
        "torn last event",
        "one event",
    ],
)
def test_other_streams_take_the_general_path(name: str) -> None:
    assert uniform_events(STREAMS[name]) is None
