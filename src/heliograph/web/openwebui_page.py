"""The Open WebUI page: its settings for this Heliograph, and a connection check.

The settings come from :func:`heliograph.web.openwebui_setup.build_setup` (the same as
``heliograph openwebui``). The check reads the latest requests that arrived from Open WebUI
(``store.openwebui``) and says, for each, which of its headers came and what is missing or
ignored, with the setting to change. Everyone in the organization may look; the JWT secret is
shown only to admins who ask for it (``?secret=1``), never to viewers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from starlette.responses import Response

from heliograph.store import openwebui as store
from heliograph.web.context import Ctx
from heliograph.web.openwebui_setup import as_env, build_setup, headers_json

LIMIT = 20
SHOWN_CHARS = 80
_PLAIN = (
    ("id", "x-openwebui-user-id"),
    ("name", "x-openwebui-user-name"),
    ("email", "x-openwebui-user-email"),
    ("role", "x-openwebui-user-role"),
)
# Endpoints where Open WebUI has a chat, a message and a task to tell (model lists do not).
_CHAT_ENDPOINTS = ("/chat/completions", "/completions", "/responses", "/api/chat", "/api/generate")

NO_IDENTITY = (
    "No user headers: Open WebUI forwards no identity, so these requests have no user. Set "
    "ENABLE_FORWARD_USER_INFO_HEADERS=true in Open WebUI's environment and restart it."
)
NO_JWT = (
    "JWT secret set here but Open WebUI sends no JWT (X-OpenWebUI-User-Jwt): these requests "
    "have no user. Set ENABLE_FORWARD_USER_INFO_HEADERS=true and "
    "FORWARD_USER_INFO_HEADER_JWT_SECRET (Heliograph's secret) in Open WebUI and restart it."
)
PLAIN_IGNORED = (
    "Plain user headers while a JWT secret is set: they are ignored (anyone with a write key "
    "could forge them), so these requests have no user. Set FORWARD_USER_INFO_HEADER_JWT_SECRET "
    "in Open WebUI to Heliograph's secret and restart it."
)
JWT_UNVERIFIED = (
    "Open WebUI signs its user (X-OpenWebUI-User-Jwt) but Heliograph has no secret to check "
    "it: the user is recorded as unverified. Set HELIOGRAPH_OPENWEBUI_JWT_SECRET to Open "
    "WebUI's FORWARD_USER_INFO_HEADER_JWT_SECRET and restart Heliograph."
)
JWT_REFUSED = (
    "Heliograph refused Open WebUI's JWT (401): the two secrets differ, or the clocks do. Give "
    "HELIOGRAPH_OPENWEBUI_JWT_SECRET and Open WebUI's FORWARD_USER_INFO_HEADER_JWT_SECRET the "
    "same value."
)
NO_CHAT_ID = (
    "No X-OpenWebUI-Chat-Id header: requests are not grouped into chats (sessions); add the "
    "custom header X-OpenWebUI-Chat-Id: {{CHAT_ID}}."
)
NO_MESSAGE_ID = (
    "No X-OpenWebUI-Message-Id header: the requests of one answer are not linked; add the "
    "custom header X-OpenWebUI-Message-Id: {{MESSAGE_ID}}."
)
NO_TASK = (
    "No X-OpenWebUI-Task header: task costs are recognised from prompts only; add the custom "
    "header X-OpenWebUI-Task: {{TASK}}."
)
NO_GROUPS = (
    "No X-OpenWebUI-User-Groups / -Group-Ids headers: no per-group figures; add the custom "
    "headers X-OpenWebUI-User-Groups: {{USER_GROUPS}} and X-OpenWebUI-User-Group-Ids: "
    "{{USER_GROUP_IDS}}."
)


@dataclass
class Arrival:
    """One request from Open WebUI: what came with it, and what is missing."""

    row: dict[str, Any]
    identity: str  # "jwt", "plain" or "none"
    plain: list[str]  # which plain user headers came: id, name, email, role
    auth_type: str | None
    chat: bool  # a chat-like endpoint (chat, message and task headers are expected)
    # header values (None: the header did not come; "": it came empty)
    chat_id: str | None
    message_id: str | None
    task: str | None
    groups: str | None
    group_ids: str | None
    problems: list[str] = field(default_factory=list)


def _shown(value: str | None) -> str | None:
    """A header value as a person reads it: percent-decoded, bounded."""
    if value is None:
        return None
    text = unquote(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def assess(row: dict[str, Any], secret_set: bool) -> Arrival:
    """What one stored request says about the Open WebUI connection it came through."""
    headers: dict[str, str] = {}
    for name, value in row["headers"]:
        headers.setdefault(name, value)
    plain = [label for label, name in _PLAIN if name in headers]
    jwt = "x-openwebui-user-jwt" in headers
    endpoint = str(row.get("endpoint") or "")
    arrival = Arrival(
        row=row,
        identity="jwt" if jwt else "plain" if plain else "none",
        plain=plain,
        auth_type=_shown(headers.get("x-openwebui-auth-type")),
        chat=endpoint.rstrip("/").endswith(_CHAT_ENDPOINTS),
        chat_id=_shown(headers.get("x-openwebui-chat-id")),
        message_id=_shown(headers.get("x-openwebui-message-id")),
        task=_shown(headers.get("x-openwebui-task")),
        groups=_shown(headers.get("x-openwebui-user-groups")),
        group_ids=_shown(headers.get("x-openwebui-user-group-ids")),
    )
    arrival.problems = _problems(arrival, secret_set)
    return arrival


def _problems(a: Arrival, secret_set: bool) -> list[str]:
    out = []
    error = str(a.row.get("error") or "")
    if a.identity == "jwt" and a.row.get("status") == 401 and "X-OpenWebUI-User-Jwt" in error:
        out.append(JWT_REFUSED)
    elif a.identity == "jwt" and not secret_set:
        out.append(JWT_UNVERIFIED)
    elif a.identity == "plain" and secret_set:
        out.append(PLAIN_IGNORED)
    elif a.identity == "none":
        out.append(NO_JWT if secret_set else NO_IDENTITY)
    if a.chat:
        if a.chat_id is None:
            out.append(NO_CHAT_ID)
        if a.message_id is None:
            out.append(NO_MESSAGE_ID)
        if a.task is None:
            out.append(NO_TASK)
        if a.groups is None and a.group_ids is None:
            out.append(NO_GROUPS)
    return out


def latest_verdict(arrivals: list[Arrival]) -> Arrival | None:
    """The request the summary speaks of: the newest chat request, else the newest one."""
    return next((a for a in arrivals if a.chat), arrivals[0] if arrivals else None)


async def openwebui_page(ctx: Ctx) -> Response:
    asked = ctx.request.query_params.get("secret") == "1"
    show = asked and ctx.user.is_admin
    settings = ctx.settings
    setup = build_setup(settings, show_secret=show)
    rows = await ctx.run(store.recent_openwebui_requests, ctx.engine, ctx.org_id, LIMIT)
    secret_set = settings.openwebui_jwt_secret is not None
    arrivals = [assess(row, secret_set) for row in rows]
    return ctx.render(
        "openwebui.html",
        setup=setup,
        env_text=as_env(setup, explain=False),
        headers_json=headers_json(),
        secret_set=secret_set,
        secret_denied=asked and not show,
        arrivals=arrivals,
        latest=latest_verdict(arrivals),
        limit=LIMIT,
        scan=store.SCAN,
    )
