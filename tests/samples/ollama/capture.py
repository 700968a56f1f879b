"""Regenerate the Ollama wire samples from the mock (byte-faithful to ``ollama serve``).

Run ``.venv/bin/python tests/samples/ollama/capture.py`` from the repository root. Timestamps
change on every run, which is why the tests read the committed files. Hand-written samples
(``*.handmade.*``) are not touched.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent.parent))

from mock_ollama import MockOllama  # noqa: E402

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
CHAT_BODY: dict[str, Any] = {"model": "llama3.2", "messages": CHAT}
GENERATE_BODY: dict[str, Any] = {"model": "llama3.2", "prompt": "Say hello"}

# file name -> (method, path, JSON body or None, extra headers)
REQUESTS: dict[str, tuple[str, str, dict[str, Any] | None, dict[str, str]]] = {
    "chat.json": ("POST", "/api/chat", {**CHAT_BODY, "stream": False}, {}),
    "chat_stream.ndjson": ("POST", "/api/chat", CHAT_BODY, {}),
    "chat_stream_thinking.ndjson": (
        "POST",
        "/api/chat",
        {"model": "qwen3:8b", "messages": CHAT, "think": True},
        {},
    ),
    "chat_stream_tool_call.ndjson": (
        "POST",
        "/api/chat",
        {**CHAT_BODY, "tools": TOOLS},
        {"x-mock-tool-call": "1"},
    ),
    "chat_stream_error.ndjson": ("POST", "/api/chat", CHAT_BODY, {"x-mock-error-event-after": "2"}),
    "chat_stream_truncated.ndjson": ("POST", "/api/chat", CHAT_BODY, {"x-mock-break-after": "3"}),
    "chat_stream_cold.ndjson": ("POST", "/api/chat", CHAT_BODY, {"x-mock-cold-ms": "1500"}),
    "generate.json": ("POST", "/api/generate", {**GENERATE_BODY, "stream": False}, {}),
    "generate_stream.ndjson": ("POST", "/api/generate", GENERATE_BODY, {}),
    "embed.json": (
        "POST",
        "/api/embed",
        {"model": "nomic-embed-text", "input": ["hello world", "goodbye"]},
        {},
    ),
    "embeddings_legacy.json": (
        "POST",
        "/api/embeddings",
        {"model": "nomic-embed-text", "prompt": "hello world"},
        {},
    ),
    "error_404.json": ("POST", "/api/chat", {**CHAT_BODY, "model": "missing-model"}, {}),
    "tags.json": ("GET", "/api/tags", None, {}),
    "compat_chat_stream.sse": (
        "POST",
        "/v1/chat/completions",
        {**CHAT_BODY, "stream": True, "stream_options": {"include_usage": True}},
        {},
    ),
}


def capture(mock: MockOllama) -> None:
    with httpx.Client(base_url=mock.base_url, timeout=10) as client:
        for name, (method, path, body, extra) in REQUESTS.items():
            with client.stream(method, path, json=body, headers=extra) as resp:
                raw = b""
                try:
                    for part in resp.iter_raw():
                        raw += part
                except httpx.RemoteProtocolError:  # x-mock-break-after closes mid-stream
                    pass
            (HERE / name).write_bytes(raw)


if __name__ == "__main__":
    with MockOllama() as upstream:
        capture(upstream)
    print("samples written to", HERE)
