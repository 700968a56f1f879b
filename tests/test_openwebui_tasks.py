"""Open WebUI's background tasks, recognised from its own prompt templates in request bodies.

The fixtures are Open WebUI's default templates (tests/samples/openwebui_tasks/), rendered here
the way its ``utils/task.py`` and ``utils/middleware.py`` render them, then wrapped in each body
shape the request can reach the gateway in.
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path
from typing import Any

import pytest

from heliograph.capture.openwebui_tasks import (
    TASK_NAMES,
    TITLE_MAX,
    classify,
    is_task_name,
    title_of,
)

SAMPLES = Path(__file__).parent / "samples" / "openwebui_tasks"
TASK_SAMPLES = sorted(p.stem for p in SAMPLES.glob("*@*.txt") if not p.stem.startswith("not_"))

CHAT = [
    {"role": "user", "content": "How do I bake chocolate chip cookies that stay chewy?"},
    {"role": "assistant", "content": "Use more brown sugar than white, and an extra egg yolk."},
    {"role": "user", "content": "Can I freeze the dough?"},
]
TOOL_SPECS = [
    {
        "name": "get_current_weather",
        "description": "Get the current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name"}},
            "required": ["city"],
        },
    }
]


def template(name: str) -> str:
    with (SAMPLES / f"{name}.txt").open(encoding="utf-8", newline="") as f:
        return f.read()


# --- rendering, after open_webui/utils/task.py (0.12.4) ---


def messages_content(messages: list[dict[str, Any]]) -> str:
    return "\n".join(f"{m['role'].upper()}: {m['content']}" for m in messages)


def replace_messages(tpl: str, messages: list[dict[str, Any]]) -> str:
    def one(match: re.Match[str]) -> str:
        kind, n = match.group(1), match.group(2)
        if kind == ":START:":
            return messages_content(messages[: int(n)])
        if kind == ":END:":
            return messages_content(messages[-int(n) :])
        return messages_content(messages)

    return re.sub(r"\{\{MESSAGES(?:(:START:|:END:|:MIDDLETRUNCATE:)(\d+))?\}\}", one, tpl)


def replace_prompt(tpl: str, prompt: str) -> str:
    def one(match: re.Match[str]) -> str:
        start, end, middle = match.group(1), match.group(2), match.group(3)
        if start is not None:
            return prompt[: int(start)]
        if end is not None:
            return prompt[-int(end) :]
        if middle is not None:
            n = int(middle)
            if len(prompt) <= n:
                return prompt
            return f"{prompt[: math.ceil(n / 2)]}...{prompt[-math.floor(n / 2) :]}"
        return prompt

    pattern = r"(?i){{prompt}}|{{prompt:start:(\d+)}}|{{prompt:end:(\d+)}}|{{prompt:middletruncate:(\d+)}}"
    return re.sub(pattern, one, tpl)


def replace_user_variables(tpl: str) -> str:
    for name, value in {
        "{{CURRENT_DATE}}": "2025-06-01",
        "{{CURRENT_TIME}}": "09:30:00 AM",
        "{{CURRENT_WEEKDAY}}": "Sunday",
        "{{USER_NAME}}": "Ada",
    }.items():
        tpl = tpl.replace(name, value)
    return tpl


def render(name: str, chat: list[dict[str, Any]] = CHAT, **kw: Any) -> list[dict[str, Any]]:
    """The chat-completions messages Open WebUI sends for one template."""
    tpl, task = template(name), name.split("@")[0]
    last_user = next(m["content"] for m in reversed(chat) if m["role"] == "user")
    if task == "function_calling":
        specs = json.dumps(kw.get("specs", TOOL_SPECS), ensure_ascii=False)
        system = tpl.replace("{{TOOLS}}", specs)
        history = "\n".join(f'{m["role"].upper()}: """{m["content"]}"""' for m in chat[:-1])
        query = f"History:\n{history}\nQuery: {last_user}"
        return [{"role": "system", "content": system}, {"role": "user", "content": query}]
    if task == "emoji_generation":
        content = replace_prompt(tpl, kw.get("prompt", "I finally got the oven to work!"))
    elif task == "moa_response_generation":
        content = replace_prompt(tpl, kw.get("prompt", last_user))
        answers = ["Yes, for up to three months.", "Yes; thaw it overnight first."]
        content = content.replace("{{responses}}", "\n\n".join(f'"""{a}"""' for a in answers))
    elif task == "autocomplete_generation":
        content = replace_prompt(tpl.replace("{{TYPE}}", "General"), "What is the best way to")
        content = replace_messages(content, chat)
    else:
        content = replace_messages(replace_prompt(tpl, last_user), chat)
    return [{"role": "user", "content": replace_user_variables(content)}]


# --- the body shapes a rendered task reaches the gateway in ---


def parts(messages: list[dict[str, Any]], kind: str = "text") -> list[dict[str, Any]]:
    return [{**m, "content": [{"type": kind, "text": m["content"]}]} for m in messages]


def openai(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": messages, "stream": False}


def openai_parts(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return openai(parts(messages))


def ollama_chat(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return {"model": "llama3.2:3b", "messages": messages, "stream": False, "options": {}}


def responses(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """An OpenAI connection with api_type "responses" (openai.convert_to_responses_payload)."""
    body: dict[str, Any] = {"model": "gpt-4.1-mini", "stream": False}
    items = [m for m in messages if m["role"] != "system"]
    body["input"] = [{"type": "message", **m} for m in parts(items, "input_text")]
    system = [m["content"] for m in messages if m["role"] == "system"]
    if system:
        body["instructions"] = system[-1]
    return body


def ollama_generate(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """Open WebUI sends its tasks to /api/chat; a hand-made /api/generate copy reads the same."""
    body: dict[str, Any] = {"model": "llama3.2:3b", "stream": False}
    for m in messages:
        body["system" if m["role"] == "system" else "prompt"] = m["content"]
    return body


def model_system_prompt(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The task model has its own system prompt (payload.apply_system_prompt_to_body)."""
    prompt = "You are a helpful assistant. Answer briefly."
    if messages[0]["role"] == "system":  # prepended to the existing system message
        first = {**messages[0], "content": f"{prompt}\n{messages[0]['content']}"}
        return openai([first, *messages[1:]])
    return openai([{"role": "system", "content": prompt}, *messages])


def reasoning_model(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """OpenAI reasoning models get the first system message as "developer"."""
    if messages[0]["role"] == "system":
        messages = [{**messages[0], "role": "developer"}, *messages[1:]]
    return openai(messages)


SHAPES = [
    openai,
    openai_parts,
    ollama_chat,
    responses,
    ollama_generate,
    model_system_prompt,
    reasoning_model,
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.__name__)
@pytest.mark.parametrize("name", TASK_SAMPLES)
def test_every_template_in_every_shape(name: str, shape: Any) -> None:
    body = shape(render(name))
    assert classify(body) == name.split("@")[0]
    assert classify(json.loads(json.dumps(body))) == name.split("@")[0]


def test_samples_cover_every_task_at_the_current_release() -> None:
    current = {name.split("@")[0] for name in TASK_SAMPLES if name.endswith("@0.12.4")}
    assert current == set(TASK_NAMES)
    assert TASK_NAMES == (
        "title_generation",
        "follow_up_generation",
        "tags_generation",
        "emoji_generation",
        "query_generation",
        "image_prompt_generation",
        "autocomplete_generation",
        "function_calling",
        "moa_response_generation",
    )


def test_long_chat_history_and_long_prompts_still_recognised() -> None:
    essay = "Cookies. " * 20_000  # the history goes at the end of these templates
    chat = [{"role": "user", "content": essay}, {"role": "assistant", "content": essay}]
    for name in ("title_generation@0.12.4", "tags_generation@0.12.4", "query_generation@0.12.4"):
        assert classify(openai(render(name, chat))) == name.split("@")[0]
    long_query = [{"role": "user", "content": essay}]
    moa = render("moa_response_generation@0.12.4", long_query)
    assert classify(openai(moa)) == "moa_response_generation"
    emoji = render("emoji_generation@0.12.4", prompt=essay)
    assert classify(openai(emoji)) == "emoji_generation"


def test_function_calling_with_many_tools_and_a_long_model_prompt() -> None:
    """The specs come between the template's first line and its instructions."""
    specs = [{**TOOL_SPECS[0], "name": f"tool_{i}"} for i in range(200)]
    messages = render("function_calling@0.12.4", specs=specs)
    assert len(messages[0]["content"]) > 20_000
    assert classify(openai(messages)) == "function_calling"
    long_prompt = [{**messages[0], "content": "Be nice. " * 2000 + messages[0]["content"]}]
    assert classify(openai([*long_prompt, messages[1]])) == "function_calling"
    assert classify(ollama_chat(render("function_calling@0.4.8", specs=specs))) == (
        "function_calling"
    )


def test_a_pipeline_message_after_the_task_prompt() -> None:
    messages = [*render("tags_generation@0.12.4"), {"role": "system", "content": "Be terse."}]
    assert classify(openai(messages)) == "tags_generation"


# --- ordinary chats ---


ORDINARY = [
    "Suggest a title for my essay about the French Revolution.",
    'What does the \'title\' field in this JSON mean? {"title": "x"}',
    "### Task:\nWrite a short poem about autumn.",
    "### Task:\nGenerate a concise title summarizing the chat history.\nHere is my chat: ...",
    "### Task: Generate 1-3 broad tags for my blog post\n<chat_history>\nUSER: hi\n</chat_history>",
    "I pasted this from a prompt guide: ### Task:\nGenerate a concise title summarizing the chat "
    "history.\n<chat_history>\n</chat_history>",
    "Your task is to choose and return the correct tool(s) from the list of available tools.",
    "Your task is to reflect the speaker's likely facial expression, please do it for me.",
    "Predict 3-5 useful messages I might send next week to my landlord.",
    "",
    "   ",
]


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_user_messages(text: str) -> None:
    for shape in (openai, openai_parts, ollama_chat, responses, ollama_generate):
        assert classify(shape([{"role": "user", "content": text}])) is None


def test_a_pasted_template_earlier_in_the_conversation() -> None:
    pasted = render("title_generation@0.12.4")[0]
    messages = [
        pasted,
        {"role": "assistant", "content": '{"title": "Chewy Cookies"}'},
        {"role": "user", "content": "Thanks! Now explain why that works."},
    ]
    assert classify(openai(messages)) is None


def test_rag_and_voice_templates_are_ordinary_chats() -> None:
    """Open WebUI puts these into normal chats (system message, or before the user's text)."""
    question = "What does the report say about Q3 revenue?"
    context = '<source id="1">Q3 revenue grew 12%.</source>'
    rag = replace_user_variables(template("not_a_task.rag@0.12.4").replace("{{CONTEXT}}", context))
    voice = template("not_a_task.voice_mode@0.12.4")
    user = {"role": "user", "content": question}
    assert classify(openai([{"role": "system", "content": rag}, user])) is None
    assert classify(openai([{"role": "user", "content": f"{rag}\n{question}"}])) is None
    assert classify(openai([{"role": "system", "content": voice}, user])) is None


def test_templates_in_the_wrong_role() -> None:
    tools = render("function_calling@0.12.4")
    assert classify(openai([{"role": "user", "content": tools[0]["content"]}])) is None
    assert classify(openai([{"role": "assistant", "content": tools[0]["content"]}])) is None
    title = render("title_generation@0.12.4")[0]["content"]
    assert classify(openai([{"role": "system", "content": title}, CHAT[-1]])) is None
    assert classify(openai([{"role": "assistant", "content": title}])) is None


def test_a_system_prompt_that_mentions_tool_calls() -> None:
    system = 'Reply with {"tool_calls": []} when no tool applies.'
    assert classify(openai([{"role": "system", "content": system}, CHAT[-1]])) is None


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        [{"role": "user", "content": "x"}],
        "### Task:",
        42,
        b'{"messages": []}',
        {},
        {"messages": None},
        {"messages": "plain string"},
        {"messages": {"role": "user"}},
        {"messages": [None, 1, "x", [], {"role": 1, "content": {}}]},
        {"messages": [{"role": "user"}]},
        {"messages": [{"role": "user", "content": None}]},
        {"messages": [{"role": "user", "content": 12}]},
        {"messages": [{"role": "user", "content": {"text": "### Task:"}}]},
        {"messages": [{"role": "user", "content": [None, 3, {"type": "text"}]}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": ["x"]}]}]},
        {"messages": [{"role": "system", "content": [{"type": "image_url"}]}]},
        {"prompt": 5, "system": ["x"]},
        {"input": 7, "instructions": None},
    ],
)
def test_hostile_and_empty_bodies(body: object) -> None:
    assert classify(body) is None


def bounded(call: Any) -> Any:
    started = time.perf_counter()
    result = call()
    assert time.perf_counter() - started < 0.1
    return result


def test_huge_bodies_take_bounded_time_and_are_read_only_near_the_ends() -> None:
    title = render("title_generation@0.12.4")[0]["content"]
    padding = "x" * (32 << 20)
    # the marker past the first few KiB is not looked for
    late = title.replace("<chat_history>", padding + "<chat_history>")
    assert bounded(lambda: classify(openai([{"role": "user", "content": late}]))) is None
    huge = [{"role": "user", "content": title + padding}]
    assert bounded(lambda: classify(openai(huge))) == "title_generation"
    assert bounded(lambda: classify({"prompt": padding, "system": padding})) is None
    # only the last few messages
    many = [{"role": "user", "content": title}] + [CHAT[1], CHAT[2]] * 500_000
    assert bounded(lambda: classify(openai(many))) is None
    # only the first few content parts
    images = [{"type": "image_url", "image_url": {"url": "data:,"}}] * 1_000_000
    lots = [{"role": "user", "content": [*images, {"type": "text", "text": title}]}]
    assert bounded(lambda: classify(openai(lots))) is None


# --- title_of ---


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ('{"title": "Chewy Cookies"}', "Chewy Cookies"),
        ('{ "title": "Stock Trends" }\n', "Stock Trends"),
        ('```json\n{ "title": "Remote Work" }\n```', "Remote Work"),
        ('Sure! Here it is: {"title": "Music Streaming"} Hope that helps.', "Music Streaming"),
        ('{"title": "Freezing Dough", "emoji": "🍪"}', "Freezing Dough"),
        ('{"title": "한국어 대화 요약"}', "한국어 대화 요약"),
        ('{"title": "\\ud55c\\uad6d \\uc694\\ub9ac"}', "한국 요리"),
        ('{"title": "👩\u200d💻 Coding Help"}', "👩\u200d💻 Coding Help"),
        ('{"title": "  Tabs\\tand\\nlines\\u0000 \\u001b[31m  "}', "Tabs and lines [31m"),
        ('{"title": "A\\u2028B\\ud800C"}', "A B C"),
        ('{"title": "first"} {"title": "second"}', None),  # Open WebUI fails on this too
        ('{"name": "Cookies"}', None),
        ('{"title": 5}', None),
        ('{"title": null}', None),
        ('{"title": ["Cookies"]}', None),
        ('{"title": "   "}', None),
        ('{"title": "\\u0000\\u0007"}', None),
        ("Chewy Cookies", None),
        ("", None),
        ("} {", None),
        ('{"title": "broken', None),
        ('{"a":' * 100_000 + "1" + "}" * 100_000, None),  # too deep for json
        ("[" * 100_000 + "{}", None),
    ],
)
def test_title_of(text: str, title: str | None) -> None:
    assert title_of(text) == title


def test_title_of_caps_the_length() -> None:
    title = title_of(json.dumps({"title": "Cookie " * 200}))
    assert title is not None and len(title) <= TITLE_MAX and title.startswith("Cookie Cookie")
    assert title == title.strip()
    korean = title_of(json.dumps({"title": "가" * 1000}, ensure_ascii=False))
    assert korean == "가" * TITLE_MAX


def test_title_of_tolerates_wrong_types() -> None:
    assert title_of(None) is None  # type: ignore[arg-type]
    assert title_of(b'{"title": "x"}') is None  # type: ignore[arg-type]


# --- the header ---


def test_is_task_name() -> None:
    assert all(is_task_name(name) for name in TASK_NAMES)
    for value in ("", " ", "TITLE_GENERATION", "title_generation ", "generation", "title"):
        assert not is_task_name(value)
    assert not is_task_name(None)  # type: ignore[arg-type]
