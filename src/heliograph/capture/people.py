"""A record's Open WebUI columns: who asked (name, email, role, groups), the task, the answer.

The gateway settled which identity to trust (``md["ow"]``); here it becomes columns, but only
when the record's user *is* that identity (a User-Id header naming someone else keeps Open
WebUI's name off the record). A background task is taken from the ``X-OpenWebUI-Task`` header
when the admin configured it, else recognised from Open WebUI's own prompt templates; a
title-generation answer names the chat (the session) it belongs to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from heliograph.capture.frames import MetaFrame
from heliograph.capture.openwebui_tasks import classify, title_of
from heliograph.gateway.headers import openwebui_user
from heliograph.providers import output_text
from heliograph.providers.analysis import Analysis

TITLE_GENERATION = "title_generation"
DIRECTORY_SOURCES = ("jwt", "headers")  # unverified claims never name anyone in the directory


@dataclass(slots=True)
class Person:
    """What the end-user directory learns from one record (latest wins)."""

    org_id: str
    user_id: str
    name: str | None
    email: str | None
    role: str | None
    groups: list[str] | None
    group_ids: list[str] | None
    identity: str
    seen_ms: int


def openwebui_columns(md: MetaFrame, user_id: str | None, analysis: Analysis) -> dict[str, Any]:
    """The Open WebUI columns of a record (all None for other clients)."""
    ow = md.get("ow") or {}
    mine = ow if user_id and openwebui_user(ow) == user_id else {}
    task = md.get("task")
    if task is None and analysis.kind == "llm" and analysis.request_doc is not None:
        task = classify(analysis.request_doc)
    return {
        "user_name": mine.get("name"),
        "user_email": mine.get("email"),
        "user_role": mine.get("role"),
        "user_groups": mine.get("groups") or None,
        "identity": mine.get("src"),
        "task": task,
        "message_id": md.get("msg"),
    }


def chat_title(task: str | None, analysis: Analysis, ok: bool) -> str | None:
    """The chat's title, when this record is Open WebUI's title generation that succeeded."""
    if task != TITLE_GENERATION or not ok or not analysis.response_body:
        return None
    try:
        doc = orjson.loads(analysis.response_body)
    except orjson.JSONDecodeError:
        return None
    text = output_text(doc)
    return title_of(text) if text else None


def person_of(md: MetaFrame, row: dict[str, Any]) -> Person | None:
    """The directory entry a record updates, if it names an Open WebUI user we can trust."""
    ow = md.get("ow")
    user_id = row.get("user_id")
    if ow is None or not user_id or openwebui_user(ow) != user_id:
        return None
    src = ow.get("src", "headers")
    if src not in DIRECTORY_SOURCES:
        return None
    return Person(
        org_id=row["org_id"],
        user_id=user_id,
        name=row.get("user_name"),
        email=row.get("user_email"),
        role=row.get("user_role"),
        groups=ow.get("groups"),
        group_ids=ow.get("group_ids"),
        identity=src,
        seen_ms=row["created_at"],
    )
