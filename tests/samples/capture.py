"""Regenerate the recorded wire samples that come from the mock upstream and the openai SDK.

Run ``.venv/bin/python tests/samples/capture.py`` from the repository root. The mock upstream
is byte-faithful to OpenAI, so these are the exact bytes an OpenAI server sends; ids and
timestamps change on every run, which is why the tests read them from the committed files.
The hand-written samples (``*.handmade.*``) are not touched, except
``chat_stream_crlf.handmade.sse``: ``chat_stream_no_usage.sse`` re-framed with CRLF line ends.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx
import openai

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from mock_upstream import MockUpstream  # noqa: E402

CHAT = [{"role": "user", "content": "What is the weather in Paris?"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
        },
    }
]

# file name -> (path, JSON body, extra headers)
REQUESTS: dict[str, tuple[str, dict[str, Any], dict[str, str]]] = {
    "chat_stream_usage.sse": (
        "/chat/completions",
        {
            "model": "gpt-4o-mini",
            "messages": CHAT,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        {"x-mock-cached-tokens": "3", "x-mock-reasoning-tokens": "2"},
    ),
    "chat_stream_no_usage.sse": (
        "/chat/completions",
        {"model": "gpt-4o-mini", "messages": CHAT, "stream": True},
        {},
    ),
    "chat_stream_tool_call.sse": (
        "/chat/completions",
        {
            "model": "gpt-4o-mini",
            "messages": CHAT,
            "tools": TOOLS,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        {"x-mock-tool-call": "1"},
    ),
    "chat_stream_error_event.sse": (
        "/chat/completions",
        {"model": "gpt-4o-mini", "messages": CHAT, "stream": True},
        {"x-mock-error-event-after": "2"},
    ),
    "chat.json": ("/chat/completions", {"model": "gpt-4o-mini", "messages": CHAT}, {}),
    "completions_stream.sse": (
        "/completions",
        {
            "model": "gpt-3.5-turbo-instruct",
            "prompt": "Say hello",
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        {},
    ),
    "responses_stream.sse": (
        "/responses",
        {"model": "gpt-4o-mini", "input": "Say hello", "stream": True},
        {"x-mock-reasoning-tokens": "4", "x-mock-cached-tokens": "1"},
    ),
    "responses_stream_truncated.sse": (
        "/responses",
        {"model": "gpt-4o-mini", "input": "Say hello", "stream": True},
        {"x-mock-break-after": "2"},
    ),
    "responses.json": ("/responses", {"model": "gpt-4o-mini", "input": "Say hello"}, {}),
    "embeddings.json": (
        "/embeddings",
        {"model": "text-embedding-3-small", "input": "hello world"},
        {},
    ),
}


def capture_mock(mock: MockUpstream) -> None:
    with httpx.Client(base_url=mock.url, timeout=10) as client:
        for name, (path, body, headers) in REQUESTS.items():
            with client.stream("POST", path, json=body, headers=headers) as resp:
                raw = b""
                try:
                    for part in resp.iter_raw():
                        raw += part
                except httpx.RemoteProtocolError:  # x-mock-break-after closes mid-stream
                    pass
            (HERE / name).write_bytes(raw)
    crlf = (HERE / "chat_stream_no_usage.sse").read_bytes().replace(b"\n", b"\r\n")
    (HERE / "chat_stream_crlf.handmade.sse").write_bytes(crlf)


def capture_transcription_uploads() -> None:
    """The multipart bodies the openai SDK sends for audio transcriptions."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"text": "hello"})

    audio = b"RIFF\x24\x08\x00\x00WAVEfmt " + bytes(range(256)) * 8
    transport = httpx.MockTransport(handler)
    with (
        httpx.Client(transport=transport) as http,
        openai.OpenAI(api_key="sk-x", base_url="http://up/v1", http_client=http) as client,
    ):
        client.audio.transcriptions.create(
            file=("speech.wav", audio, "audio/wav"),
            model="whisper-1",
            language="en",
            response_format="json",
        )
        client.audio.transcriptions.create(
            file=("speech.wav", audio, "audio/wav"), model="gpt-4o-mini-transcribe"
        )
    for name, request in zip(
        ("audio_transcription", "audio_transcription_minimal"), seen, strict=True
    ):
        (HERE / f"{name}.multipart").write_bytes(request.read())
        (HERE / f"{name}.content-type").write_text(request.headers["content-type"])


if __name__ == "__main__":
    with MockUpstream() as upstream:
        capture_mock(upstream)
    capture_transcription_uploads()
    print("samples written to", HERE)
