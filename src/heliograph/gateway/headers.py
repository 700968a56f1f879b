"""Request metadata from headers: Helicone's names under both prefixes, plus Open WebUI's.

One parser serves ``Helicone-*`` and ``Heliograph-*`` so a Helicone user switches by changing
only the base URL. The gateway runs it once, while it scans the headers, and carries the
result in the start frame (:class:`~heliograph.capture.frames.MetaFrame`); policies and the
writer read that, never the headers again. Frames written before metadata was carried are
parsed from their recorded headers by :func:`metadata_from_headers`, with the same rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import unquote

from heliograph.capture.frames import IdentityFrame, MetaFrame
from heliograph.capture.openwebui_tasks import is_task_name

PREFIXES = ("heliograph-", "helicone-")
OPENWEBUI = "x-openwebui-"
MAX_NAME = 255
MAX_GROUPS = 50
_USER_FIELDS = {
    "user-id": "id",
    "user-name": "name",
    "user-email": "email",
    "user-role": "role",
    "user-groups": "groups",
    "user-group-ids": "group_ids",
}
IDENTITY_LIMITS = {"id": MAX_NAME, "name": MAX_NAME, "email": 320, "role": 32}  # the columns
MAX_PROPERTY_VALUE = 1000
MAX_PROPERTIES = 64
_TRUE = ("true", "1", "yes")


def read_ours(md: MetaFrame, short: str, value: str) -> None:
    """One of our headers (``short`` = its name without the prefix) into ``md``."""
    value = value.strip()
    if short.startswith("property-"):
        prop = short[len("property-") :]
        if prop and value:
            props = md.setdefault("props", {})
            if len(props) < MAX_PROPERTIES:
                props[prop] = value[:MAX_PROPERTY_VALUE]
    elif short == "user-id":
        if value:
            md["user"] = value
    elif short == "session-id":
        if value:
            md["session"] = value
    elif short == "session-path":
        if value:
            md["path"] = value
    elif short == "session-name":
        if value:
            md["name"] = value
    elif short == "omit-request":
        md["omit_req"] = value.lower() in _TRUE
    elif short == "omit-response":
        md["omit_resp"] = value.lower() in _TRUE
    elif short == "model-override":
        if value:
            md["model"] = value
    elif short == "ratelimit-policy" and value:
        md["ratelimit"] = value


def read_openwebui(md: MetaFrame, name: str, value: str) -> str | None:
    """One of Open WebUI's ``x-openwebui-*`` headers into ``md``; returns the value of its
    signed user JWT, which the gateway verifies (the token itself is never recorded).

    Open WebUI percent-encodes names and every custom-header value, so each value is decoded
    here, once. The plain user headers land in ``md["ow"]`` marked ``headers``: what to trust
    is decided afterwards (:mod:`heliograph.gateway.openwebui`), when every header is known.
    """
    short = name[len(OPENWEBUI) :]
    if short == "user-jwt":
        return value.strip() or None
    text = unquote(value).strip() if "%" in value else value.strip()
    if not text:
        return None
    if short in _USER_FIELDS:
        field = _USER_FIELDS[short]
        ow = md.setdefault("ow", {"src": "headers"})
        if field in ("groups", "group_ids"):
            items = [g.strip()[:MAX_NAME] for g in text.split(",") if g.strip()]
            ow[field] = items[:MAX_GROUPS]  # type: ignore[literal-required]
        else:
            ow[field] = text[: IDENTITY_LIMITS[field]]  # type: ignore[literal-required]
    elif short == "chat-id":
        if "session" not in md:
            md["session"] = text  # a Session-Id header, read before or after, wins
    elif short == "message-id":
        md["msg"] = text[:MAX_NAME]
    elif short == "task" and is_task_name(text):
        md["task"] = text
    return None


def metadata_from_headers(headers: Iterable[tuple[str, str] | list[str]]) -> MetaFrame:
    """Metadata from recorded (name, value) headers: frames from before metadata travelled."""
    md: MetaFrame = {}
    for name, value in headers:
        if name.startswith(PREFIXES):
            short = name[9:] if name[8] == "-" else name[11:]
            read_ours(md, short, value)
        elif name.startswith(OPENWEBUI):
            read_openwebui(md, name, value)
    return md


def user_of(md: MetaFrame, body_user: str | None) -> str | None:
    """The record's user, decided once for the record, rate limits and budgets: Open WebUI's
    verified (signed) user, else a User-Id header, else the body's ``user`` field, else Open
    WebUI's unverified user."""
    ow = md.get("ow")
    if ow is None:
        return md.get("user") or body_user
    if ow.get("src") == "jwt" and ow.get("id"):
        return ow["id"]
    return md.get("user") or body_user or openwebui_user(ow)


def openwebui_user(ow: IdentityFrame) -> str | None:
    """The user id Open WebUI names: its user id, else its email (when only that was sent)."""
    return ow.get("id") or ow.get("email")
