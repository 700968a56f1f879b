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

from heliograph.capture.frames import MetaFrame

PREFIXES = ("heliograph-", "helicone-")
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


def read_openwebui(md: MetaFrame, name: str, value: str) -> None:
    """One of Open WebUI's ``x-openwebui-*`` headers into ``md``: who asks, in which chat.

    A client-side user (weaker than a User-Id header or the body's ``user``) and the chat as
    the session, unless a Session-Id header names one.
    """
    if name == "x-openwebui-user-id":
        if value:
            md["client_user"] = value
    elif name == "x-openwebui-user-email":
        if value and "client_user" not in md:
            md["client_user"] = unquote(value)
    elif name == "x-openwebui-chat-id" and value and "session" not in md:
        md["session"] = value  # a Session-Id header, read before or after, wins


def metadata_from_headers(headers: Iterable[tuple[str, str] | list[str]]) -> MetaFrame:
    """Metadata from recorded (name, value) headers: frames from before metadata travelled."""
    md: MetaFrame = {}
    for name, value in headers:
        if name.startswith(PREFIXES):
            short = name[9:] if name[8] == "-" else name[11:]
            read_ours(md, short, value)
        elif name.startswith("x-openwebui-"):
            read_openwebui(md, name, value)
    return md


def user_of(md: MetaFrame, body_user: str | None) -> str | None:
    """The record's user, decided once for the record, rate limits and budgets: a User-Id
    header, else the body's ``user`` field, else Open WebUI's user."""
    return md.get("user") or body_user or md.get("client_user")
