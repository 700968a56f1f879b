"""A session's conversation as one transcript, built from the requests that carried it.

A chat client resends the whole history on every turn, so showing each request's prompt
would repeat every message once per turn. Taking only the *last* request's messages would
lose what earlier requests show and it does not: answers that were regenerated, histories
that were edited, separate threads of an agent, and which request produced which message.
So the transcript is built message by message across the requests in time order, as a tree
of messages (a trie keyed by each message's role and content): each request's prompt is
walked from the root, the messages it shares with what came before are recognised as already
shown, and only those it adds are appended, linked to that request; then its output is
appended, linked to the request that produced it. A request that adds messages where the
tree already went on differently is a branch (an edited message, another thread), and an
answer to a prompt that already had one is marked as regenerated; nothing a request sent or
got back is lost, and nothing is shown twice.

System prompts are kept apart from the tree (clients such as Open WebUI put the date in
them, which would make every turn look like a new conversation) and shown once per distinct
text. Open WebUI's background tasks (titles, tags, follow-ups) quote the chat inside a prompt
of their own: they are counted, not shown. Errors are shown where they happened but do not
become history.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from heliograph.web.chat import Message, conversation, output

MAX_REQUESTS = 300  # the latest conversation requests read (each holds its whole history)
SHOWN_KINDS = ("text", "tool_call", "tool_result", "error", "link", "image")


@dataclass
class Turn:
    """One message of the transcript and the request it came with."""

    message: Message
    request_id: str
    at_ms: int
    source: str  # "prompt" (the client sent it) or "output" (the model answered it)
    model: str = ""
    fork: str = ""  # "", "regenerated", "edited" or "thread"
    status_class: str = "ok"


@dataclass
class Transcript:
    turns: list[Turn] = field(default_factory=list)
    tasks: int = 0  # background task requests, not shown
    skipped: int = 0  # older conversation requests not read (over MAX_REQUESTS)
    unreadable: int = 0  # requests whose bodies were not stored or are not a conversation


@dataclass
class _Node:
    children: dict[str, _Node] = field(default_factory=dict)


def signature(message: Message) -> str:
    """What makes two messages the same: role, then text, tool calls and results with
    whitespace collapsed (placeholders such as a reasoning summary are not resent)."""
    items: list[Any] = [message.role.lower(), message.name]
    for part in message.parts:
        if part.kind not in SHOWN_KINDS:
            continue
        src = hashlib.sha1(part.src.encode(), usedforsecurity=False).hexdigest() if part.src else ""
        items.append([part.kind, part.name, " ".join(part.text.split()), src])
    return hashlib.sha1(orjson.dumps(items), usedforsecurity=False).hexdigest()


def _json(raw: bytes | None) -> Any:
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", "replace")


def _status_class(row: Mapping[str, Any]) -> str:
    state = row.get("state")
    return "ok" if state == "ok" else ("warn" if state == "cancelled" else "err")


def build(
    rows: Sequence[Mapping[str, Any]], bodies: Mapping[str, tuple[bytes | None, bytes | None]]
) -> Transcript:
    """The transcript of a session's ``rows`` (oldest first, ``store.search`` rows with
    ``created_ms``) from their stored ``bodies`` (request, response) by record id."""
    out = Transcript()
    chats = [r for r in rows if r.get("kind") == "llm" and not r.get("task")]
    out.tasks = sum(1 for r in rows if r.get("kind") == "llm" and r.get("task"))
    out.skipped = max(0, len(chats) - MAX_REQUESTS)
    root, systems = _Node(), set()
    for row in chats[out.skipped :]:
        request, response = bodies.get(row["id"], (None, None))
        prompt, answer = conversation(_json(request)), output(_json(response))
        if not prompt and not answer:
            out.unreadable += 1
            continue

        def turn(message: Message, source: str, fork: str = "", row: Any = row) -> Turn:
            return Turn(
                message,
                row["id"],
                row["created_ms"],
                source,
                row.get("model") or "",
                fork,
                _status_class(row),
            )

        node, depth, forked = root, 0, False
        for message in prompt:
            if message.role.lower() in ("system", "developer"):
                sig = signature(message)
                if sig not in systems:
                    systems.add(sig)
                    out.turns.append(turn(message, "prompt"))
                continue
            sig = signature(message)
            child = node.children.get(sig)
            if child is None:
                fork = "" if forked or not node.children else ("edited" if depth else "thread")
                forked = True
                child = node.children[sig] = _Node()
                out.turns.append(turn(message, "prompt", fork))
            node, depth = child, depth + 1
        for message in answer:
            if message.role == "error":
                out.turns.append(turn(message, "output"))
                continue
            sig = signature(message)
            fork = "regenerated" if not forked and node.children else ""
            out.turns.append(turn(message, "output", fork))
            node = node.children.setdefault(sig, _Node())
            forked = True
    return out
