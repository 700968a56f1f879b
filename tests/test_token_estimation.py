"""Offline token counts against published tiktoken / OpenAI API numbers.

Expected values come from tiktoken's README and OpenAI's cookbook "How to count tokens with
tiktoken" (whose examples print the prompt_tokens the API reported), and were confirmed with
bpe-openai itself.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

from heliograph.pricing import tokens
from heliograph.pricing.tokens import (
    CL100K,
    O200K,
    count_output_tokens,
    count_text_tokens,
    encoding_for_model,
    estimate_chat_prompt_tokens,
    estimate_prompt_tokens,
)

SAY_TEST = [{"role": "user", "content": "Say this is a test"}]

# The cookbook's few-shot example: the API reported 129 prompt tokens for gpt-3.5-turbo and
# gpt-4 (cl100k_base) and 124 for gpt-4o and gpt-4o-mini (o200k_base).
COOKBOOK_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate "
        "jargon into plain English.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "New synergies will help drive top-line growth.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on opportunities "
        "for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client "
        "deliverable.",
    },
]

# The cookbook's function-calling example: 105 prompt tokens (gpt-3.5-turbo, gpt-4) and
# 101 (gpt-4o, gpt-4o-mini).
WEATHER_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "description": "Get the current weather in a given location",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {
                        "type": "string",
                        "description": "The city and state, e.g. San Francisco, CA",
                    },
                    "unit": {
                        "type": "string",
                        "description": "The unit of temperature to return",
                        "enum": ["celsius", "fahrenheit"],
                    },
                },
                "required": ["location"],
            },
        },
    }
]
WEATHER_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful assistant that can answer to questions about the weather.",
    },
    {"role": "user", "content": "What's the weather like in San Francisco?"},
]


@pytest.mark.parametrize(
    ("text", "model", "expected"),
    [
        ("hello world", "gpt-4o", 2),  # o200k: [24912, 2375]
        ("hello world", "gpt-4", 2),  # cl100k: [15339, 1917]
        ("tiktoken is great!", "gpt-3.5-turbo", 6),  # cl100k: [83, 1609, 5963, 374, 2294, 0]
        ("tiktoken is great!", "gpt-4o", 6),  # o200k: [83, 8251, 2488, 382, 2212, 0]
        ("antidisestablishmentarianism", "gpt-4", 6),  # ant|idis|establish|ment|arian|ism
        ("お誕生日おめでとう", "gpt-4", 9),  # cookbook: 9 tokens in cl100k_base
        ("Say this is a test", "gpt-4o-mini", 5),
        ("", "gpt-4o", 0),
    ],
)
def test_known_counts(text: str, model: str, expected: int) -> None:
    assert count_text_tokens(text, model) == expected


def test_encoding_choice() -> None:
    for model in ["gpt-4o", "gpt-4o-mini-2024-07-18", "gpt-4.1-nano", "gpt-5", "o1", "o3-mini"]:
        assert encoding_for_model(model) == O200K, model
    for model in ["o4-mini", "openai/gpt-4o", "llama3.1:8b", "claude-3-5-sonnet", None]:
        assert encoding_for_model(model) == O200K, model
    for model in ["gpt-4", "gpt-4-turbo", "gpt-4-0613", "gpt-3.5-turbo", "gpt-35-turbo"]:
        assert encoding_for_model(model) == CL100K, model
    for model in ["text-embedding-3-small", "text-embedding-ada-002", "ft:gpt-3.5-turbo:acme::x"]:
        assert encoding_for_model(model) == CL100K, model


def test_say_this_is_a_test_matches_openai_usage() -> None:
    # OpenAI reports prompt_tokens=12 for this request to gpt-4o-mini:
    # 3 (message) + 1 ("user") + 5 (content) + 3 (reply priming)
    assert estimate_chat_prompt_tokens(SAY_TEST, "gpt-4o-mini") == 12
    doc = {"model": "gpt-4o-mini", "messages": SAY_TEST}
    assert estimate_prompt_tokens(doc, "/v1/chat/completions", None) == 12


@pytest.mark.parametrize(
    ("model", "expected"),
    [("gpt-3.5-turbo", 129), ("gpt-4", 129), ("gpt-4o", 124), ("gpt-4o-mini", 124)],
)
def test_cookbook_few_shot_example(model: str, expected: int) -> None:
    assert estimate_chat_prompt_tokens(COOKBOOK_MESSAGES, model) == expected


@pytest.mark.parametrize(
    ("model", "expected"),
    [("gpt-3.5-turbo", 105), ("gpt-4", 105), ("gpt-4o", 101), ("gpt-4o-mini", 101)],
)
def test_cookbook_tools_example(model: str, expected: int) -> None:
    doc = {"model": model, "messages": WEATHER_MESSAGES, "tools": WEATHER_TOOLS}
    assert estimate_prompt_tokens(doc, "/chat/completions", None) == expected


def test_tool_calls_and_multipart_content_are_counted() -> None:
    call = {"id": "c1", "type": "function"}
    call["function"] = {"name": "get_current_weather", "arguments": '{"location":"Paris"}'}  # type: ignore[assignment]
    messages: list[Any] = [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "22 C"},
        {"role": "user", "content": [{"type": "text", "text": "hello world"}]},
    ]
    expected = 3 + count_text_tokens("assistant", "gpt-4o")
    expected += count_text_tokens("get_current_weather", "gpt-4o")
    expected += count_text_tokens('{"location":"Paris"}', "gpt-4o")
    expected += 3 + 1 + count_text_tokens("22 C", "gpt-4o")  # "tool" is one token
    expected += 3 + 1 + 2 + 3
    assert estimate_chat_prompt_tokens(messages, "gpt-4o") == expected


def test_images_use_documented_fixed_estimates() -> None:
    def image(detail: str) -> list[Any]:
        part = {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": detail}}
        return [{"role": "user", "content": [part]}]

    base = 3 + 1 + 3  # message, "user", reply priming
    assert estimate_chat_prompt_tokens(image("low"), "gpt-4o") == base + 85
    assert estimate_chat_prompt_tokens(image("high"), "gpt-4o") == base + 765
    assert estimate_chat_prompt_tokens(image("auto"), "gpt-4o-mini") == base + 25_501
    assert estimate_chat_prompt_tokens(image("low"), "gpt-4o-mini") == base + 2_833


def test_completions_and_embeddings() -> None:
    assert estimate_prompt_tokens({"prompt": "hello world"}, "/v1/completions", "gpt-4") == 2
    doc = {"model": "text-embedding-3-small", "input": ["hello world", "tiktoken is great!"]}
    assert estimate_prompt_tokens(doc, "/v1/embeddings", None) == 2 + 6
    assert estimate_prompt_tokens({"input": [[1, 2, 3], [4]]}, "/v1/embeddings", None) == 4
    assert estimate_prompt_tokens({"prompt": ["a", "b"]}, "/completions", None) == 2
    assert estimate_prompt_tokens({"model": "x"}, "/v1/completions", None) is None


def test_responses_api() -> None:
    # a string input is one user message: the same 12 tokens as the chat request
    assert estimate_prompt_tokens({"input": "Say this is a test"}, "/v1/responses", "gpt-4o") == 12
    doc = {
        "instructions": "hello world",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "Say this is a test"}]},
            {"type": "function_call", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "x", "output": "hello world"},
        ],
    }
    developer = 3 + count_text_tokens("developer", "gpt-4o") + 2
    user = 3 + 1 + 5
    call = 3 + count_text_tokens("f", "gpt-4o") + count_text_tokens("{}", "gpt-4o")
    assert (
        estimate_prompt_tokens(doc, "/responses", "gpt-4o") == 3 + developer + user + call + 3 + 2
    )


def test_anthropic_messages() -> None:
    doc = {
        "model": "claude-3-5-sonnet-20241022",
        "system": [{"type": "text", "text": "hello world"}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Say this is a test"}]},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}}],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t", "content": "hello world"},
                    {"type": "image", "source": {"type": "base64", "data": "..."}},
                ],
            },
        ],
    }
    system = 3 + count_text_tokens("system", None) + 2
    user1 = 3 + 1 + 5
    assistant = 3 + 1 + count_text_tokens("f", None) + count_text_tokens('{"a":1}', None)
    user2 = 3 + 1 + 2 + 1600
    assert (
        estimate_prompt_tokens(doc, "/v1/messages", None) == system + user1 + assistant + user2 + 3
    )


def test_ollama_chat_and_generate() -> None:
    chat = {"model": "llama3.1:8b", "messages": [{**SAY_TEST[0], "images": ["aGVsbG8="]}]}
    assert estimate_prompt_tokens(chat, "/api/chat", None) == 12 + 765
    generate = {"model": "llama3.1:8b", "system": "hello world", "prompt": "Say this is a test"}
    assert estimate_prompt_tokens(generate, "/api/generate", None) == 2 + 5
    assert estimate_prompt_tokens({"model": "m", "input": "hello world"}, "/api/embed", None) == 2


def test_nothing_to_count() -> None:
    assert estimate_prompt_tokens(None, "/v1/chat/completions", "gpt-4o") is None
    assert estimate_prompt_tokens({"model": "gpt-4o"}, "/v1/chat/completions", None) is None
    assert estimate_prompt_tokens({"messages": SAY_TEST}, "/v1/models", None) is None
    assert estimate_prompt_tokens({"model": "x"}, "/v1/messages", None) is None
    assert estimate_prompt_tokens({}, "/v1/responses", None) is None


def test_awkward_text() -> None:
    # special-token text is ordinary text to an estimator, not an error
    assert count_text_tokens("<|endoftext|>", "gpt-4o") == 7
    assert count_text_tokens("bad \ud800 surrogate", "gpt-4o") > 0
    # long-context prompts: no 200k-token cap
    assert count_text_tokens("hello world " * 120_000, "gpt-4o") > 200_000
    assert count_output_tokens("hello world", "gpt-4o") == 2


def test_counting_is_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("token counting tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    tokens._tokenizer.cache_clear()  # load the vocabularies again under the guard
    assert count_text_tokens("tiktoken is great!", "gpt-4") == 6
    assert count_text_tokens("hello world", "gpt-4o") == 2
