"""Regenerate the Anthropic wire samples from the mock (byte-faithful to api.anthropic.com).

Run ``.venv/bin/python tests/samples/anthropic/capture.py`` from the repository root. Ids and
timestamps change on every run, which is why the tests read the committed files. Hand-written
samples (``*.handmade.*``) are not touched.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent.parent))

from mock_anthropic import MockAnthropic  # noqa: E402

MODEL = "claude-sonnet-4-6"
MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]
TOOLS = [
    {
        "name": "get_weather",
        "description": "Current weather",
        "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}},
    }
]
BASE: dict[str, Any] = {"model": MODEL, "max_tokens": 1024, "messages": MESSAGES}
THINKING = {"type": "enabled", "budget_tokens": 512}

# file name -> (method, path, JSON body or None, extra headers)
REQUESTS: dict[str, tuple[str, str, dict[str, Any] | None, dict[str, str]]] = {
    "messages.json": ("POST", "/v1/messages", BASE, {"x-mock-cache-read": "3"}),
    "messages_tool_use.json": (
        "POST",
        "/v1/messages",
        {**BASE, "tools": TOOLS, "thinking": THINKING},
        {"x-mock-tool-call": "1"},
    ),
    "messages_stream.sse": (
        "POST",
        "/v1/messages",
        {**BASE, "stream": True, "metadata": {"user_id": "user-42"}},
        {"x-mock-cache-read": "3", "x-mock-cache-write": "5"},
    ),
    "messages_stream_tool_use.sse": (
        "POST",
        "/v1/messages",
        {**BASE, "stream": True, "tools": TOOLS},
        {"x-mock-tool-call": "1"},
    ),
    "messages_stream_thinking.sse": (
        "POST",
        "/v1/messages",
        {**BASE, "stream": True, "thinking": THINKING},
        {},
    ),
    "messages_stream_error_event.sse": (
        "POST",
        "/v1/messages",
        {**BASE, "stream": True},
        {"x-mock-error-event-after": "2"},
    ),
    "messages_stream_truncated.sse": (
        "POST",
        "/v1/messages",
        {**BASE, "stream": True},
        {"x-mock-break-after": "2"},
    ),
    "error_429.json": ("POST", "/v1/messages", BASE, {"x-mock-status": "429"}),
    "error_529.json": ("POST", "/v1/messages", BASE, {"x-mock-status": "529"}),
    "count_tokens.json": ("POST", "/v1/messages/count_tokens", BASE, {}),
    "models.json": ("GET", "/v1/models", None, {}),
}


def capture(mock: MockAnthropic) -> None:
    headers = {"x-api-key": "sk-ant-capture", "anthropic-version": "2023-06-01"}
    with httpx.Client(base_url=mock.base_url, headers=headers, timeout=10) as client:
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
    with MockAnthropic() as upstream:
        capture(upstream)
    print("samples written to", HERE)
