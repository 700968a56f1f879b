"""Prompt and output as plain text (the export's text columns), for every stored wire format."""

from __future__ import annotations

from typing import Any

import pytest

from heliograph.providers.transcript import output_text, prompt_text

CALL = {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"q":1}'}}

PROMPTS: list[tuple[Any, str]] = [
    (None, ""),
    ("raw text", "raw text"),
    (
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,x"}},
                    ],
                },
                {"role": "assistant", "content": None, "tool_calls": [CALL]},
                {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            ]
        },
        "system: Be brief.\n\nuser: What is this?\n[image]\n\n"
        'assistant: [tool call weather: {"q":1}]\n\ntool: sunny',
    ),
    (  # Anthropic: top-level system, tool_use and tool_result blocks
        {
            "system": [{"type": "text", "text": "Sys"}],
            "messages": [
                {"role": "user", "content": "Hi"},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "name": "calc", "input": {"x": 2}}],
                },
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "t", "content": "4"}],
                },
            ],
        },
        'system: Sys\n\nuser: Hi\n\nassistant: [tool call calc: {"x":2}]\n\nuser: 4',
    ),
    (  # Responses API
        {"instructions": "Terse.", "input": [{"role": "user", "content": "Q"}]},
        "system: Terse.\n\nuser: Q",
    ),
    ({"input": "just a string"}, "user: just a string"),
    ({"input": [1, 2, 3]}, "user: [3 token ids]"),
    ({"prompt": "Once upon"}, "user: Once upon"),  # completions, Ollama generate
    ({"model": "m", "messages": [{"role": "user", "content": ""}]}, ""),
]


@pytest.mark.parametrize(("body", "text"), PROMPTS)
def test_prompt_text(body: Any, text: str) -> None:
    assert prompt_text(body) == text


OUTPUTS: list[tuple[Any, str]] = [
    (None, ""),
    ({"choices": [{"message": {"role": "assistant", "content": "Hello"}}]}, "Hello"),
    (
        {"choices": [{"message": {"content": None, "tool_calls": [CALL]}}]},
        '[tool call weather: {"q":1}]',
    ),
    ({"choices": [{"text": "completion"}]}, "completion"),
    ({"type": "message", "content": [{"type": "text", "text": "Claude"}]}, "Claude"),
    ({"message": {"role": "assistant", "content": "llama"}}, "llama"),  # Ollama chat
    ({"response": "generated"}, "generated"),  # Ollama generate
    (
        {"output": [{"type": "message", "content": [{"type": "output_text", "text": "R"}]}]},
        "R",
    ),
    ({"error": {"message": "rate limited"}}, "error: rate limited"),
    ("not json", "not json"),
    ({"object": "list", "data": [{"embedding": [0.1]}]}, ""),
]


@pytest.mark.parametrize(("body", "text"), OUTPUTS)
def test_output_text(body: Any, text: str) -> None:
    assert output_text(body) == text
