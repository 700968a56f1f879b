"""Recognise Open WebUI's background tasks (titles, tags, follow-ups ...) in a request body.

Open WebUI sends its background tasks as ordinary chat completions to the same upstream; only
the ``{{TASK}}`` header placeholder names them, and few admins configure it. Its default prompt
templates are distinctive, so a request whose prompt *begins* like one of them is that task.
We keep short fingerprints (a template's opening instruction plus one structural marker), never
the templates, and would rather miss a task than label somebody's chat as one: a template the
admin customised is not recognised, nor is a chat that merely mentions a title.

Where Open WebUI puts the prompt (``routers/tasks.py``, ``utils/middleware.py``): every task is
a single user message (a task model's own system prompt may precede it as a system message),
except ``function_calling``, whose template is the system message (``developer`` for OpenAI
reasoning models, ``instructions`` on the Responses API) followed by a user ``Query: ...``.
The tool specs sit between that template's first line and its instructions, so that one is
recognised from the end of the message. The work is bounded: a few messages, a few content
parts, and a few KiB from the start (or end) of each.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

TASK_NAMES: tuple[str, ...] = (
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
TITLE_MAX = 255

_TASK_SET = frozenset(TASK_NAMES)
_HEAD = 4096  # characters read from the start of a message
_TAIL = 4096  # ... and from the end of a system message (the tools template)
_LAST_MESSAGES = 4  # a task request is [system?, user]; a pipeline may add one or two
_MAX_PARTS = 16  # content parts looked through for the first text part
_TEXT_PARTS = frozenset(("text", "input_text"))
_TITLE_SCAN = 1 << 20  # a title answer longer than this is not parsed

# "### Task:\n<first instruction line>" and, further down the same head, "<chat_history>".
_TASK_HEADER = re.compile(r"###[ \t]*Task:\s*")
_LEAD = re.compile(r"\s*")
_CHAT_HISTORY = "<chat_history>"
_HEADED: tuple[tuple[str, str], ...] = (
    ("title_generation", "Generate a concise title summarizing the chat history"),  # 0.11-
    ("title_generation", "Generate a concise, 3-5 word title with an emoji summarizing the chat"),
    ("follow_up_generation", "Predict 3-5 useful messages this user might naturally send next"),
    ("follow_up_generation", "Suggest 3-5 relevant follow-up questions or prompts that the user"),
    ("tags_generation", "Generate 1-3 broad tags categorizing the main themes of the chat"),
    ("image_prompt_generation", "Generate a detailed prompt for am image generation task"),
    ("image_prompt_generation", "Generate a detailed prompt for an image generation task"),
    ("query_generation", "Analyze the chat history to determine the necessity of generating"),
    ("autocomplete_generation", "You are an autocompletion system. Continue the text in `<text>`"),
)
# (task, the prompt starts with, its head also contains) for templates without the header.
_OPENING: tuple[tuple[str, str, str], ...] = (
    (
        "emoji_generation",
        "Your task is to reflect the speaker's likely facial expression through a fitting emoji.",
        "Message: ",
    ),
    (
        "moa_response_generation",  # the user's query follows at once: the opening must do
        "You have been provided with a set of responses from various models to the latest user",
        "",
    ),
    (
        "title_generation",  # 0.3-0.4
        "Create a concise, 3-5 word title with an emoji as a title for the chat history",
        _CHAT_HISTORY,
    ),
    (
        "query_generation",  # 0.3
        "Given the user's message and interaction history, decide if a web search is necessary.",
        "User Message:",
    ),
)
# Open WebUI's tools request: its user message is "Query: ..." or "History:\n...\nQuery: ...".
_TOOLS_QUERY = ("Query: ", "History:\n")
_SYSTEM_ROLES = ("system", "developer")
# The tools template's instructions (after the specs) and one marker of its JSON format.
_TOOLS_TAIL: tuple[tuple[str, str], ...] = (
    (
        "Your task is to choose and return the correct tool(s) from the list of available tools",
        '"tool_calls"',
    ),  # 0.5-
    (
        "Return an empty string if no tools match the query. If a function tool matches",
        '"parameters"',
    ),  # 0.3-0.4
)


def is_task_name(value: str) -> bool:
    """Whether an ``X-OpenWebUI-Task`` value names a task (it is empty for an ordinary chat)."""
    return isinstance(value, str) and value in _TASK_SET


def classify(body: object) -> str | None:
    """The Open WebUI task a parsed request body carries, or None for an ordinary request.

    Reads OpenAI chat completions and Ollama ``/api/chat`` (``messages``), the Responses API
    (``input``, ``instructions``) and Ollama ``/api/generate`` (``prompt``, ``system``).
    """
    if not isinstance(body, dict):
        return None
    items = body.get("messages")
    if items is None:
        items = body.get("input")
    window = items[-_LAST_MESSAGES:] if isinstance(items, list) else None
    if window is not None:
        user = _last_user_text(window)
    elif isinstance(items, str):
        user = items
    else:
        prompt = body.get("prompt")
        user = prompt if isinstance(prompt, str) else ""
    task = _user_task(user)
    if task is not None or not user.startswith(_TOOLS_QUERY):
        return task  # only a tools request has a system message worth reading through
    if window is not None:
        for message in window:
            if not isinstance(message, dict) or message.get("role") not in _SYSTEM_ROLES:
                continue
            if (task := _system_task(_text_of(message.get("content")))) is not None:
                return task
    for key in ("system", "instructions"):
        system = body.get(key)
        if isinstance(system, str) and (task := _system_task(system)) is not None:
            return task
    return None


def _last_user_text(window: list[Any]) -> str:
    """The text of the window's last user message (earlier ones are the conversation)."""
    for message in reversed(window):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""


def _text_of(content: object) -> str:
    """A message's text: the string, or the first text part of a list (as Open WebUI reads it)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        for part in content[:_MAX_PARTS]:
            if isinstance(part, dict) and part.get("type") in _TEXT_PARTS:
                text = part.get("text")
                return text if isinstance(text, str) else ""
    return ""


def _user_task(text: str) -> str | None:
    """The task whose template this user prompt begins with.

    Runs on every chat the writer stores, so it copies nothing: bounded ``find`` and
    ``startswith`` at offsets into the text.
    """
    lead = _LEAD.match(text, 0, _HEAD)
    start = lead.end() if lead is not None else 0
    header = _TASK_HEADER.match(text, start, _HEAD) if text.startswith("#", start) else None
    if header is not None:
        if text.find(_CHAT_HISTORY, 0, _HEAD) < 0:
            return None
        at = header.end()
        return next((task for task, line in _HEADED if text.startswith(line, at)), None)
    for task, opening, marker in _OPENING:
        if text.startswith(opening, start) and text.find(marker, start, _HEAD) >= 0:
            return task
    return None


def _system_task(text: str) -> str | None:
    """``function_calling`` when a system message ends with the tools template."""
    tail = max(len(text) - _TAIL, 0)
    for words, marker in _TOOLS_TAIL:
        if text.find(words, tail) >= 0 and text.find(marker, tail) >= 0:
            return "function_calling"
    return None


def title_of(text: str) -> str | None:
    """The chat title in a title_generation answer, read the way Open WebUI reads it.

    Open WebUI json-loads the text from its first ``{`` to its last ``}`` and takes ``title``,
    so fences and chatter around one object are fine, and two objects are not.
    """
    if not isinstance(text, str) or len(text) > _TITLE_SCAN:
        return None
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        return None
    try:
        doc = json.loads(text[start : end + 1])
    except (ValueError, RecursionError):
        return None
    title = doc.get("title") if isinstance(doc, dict) else None
    if not isinstance(title, str):
        return None
    cleaned = " ".join(_printable(title[: TITLE_MAX * 4]).split())
    return cleaned[:TITLE_MAX].rstrip() or None


def _printable(text: str) -> str:
    """Control characters, lone surrogates and line separators become spaces."""
    return "".join(
        " " if unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") else ch for ch in text
    )
