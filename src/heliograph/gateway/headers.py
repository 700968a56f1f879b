"""Request metadata from headers: Helicone's names under both prefixes, plus Open WebUI's.

One parser serves ``Helicone-*`` and ``Heliograph-*`` so a Helicone user switches by changing
only the base URL. It runs in the writer, on the headers the gateway spooled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote

PREFIXES = ("heliograph-", "helicone-")
MAX_PROPERTY_VALUE = 1000
MAX_PROPERTIES = 64


@dataclass(slots=True)
class Metadata:
    user_id: str | None = None
    client_user_id: str | None = None  # from Open WebUI's headers; weaker than a body `user`
    session_id: str | None = None
    session_path: str | None = None
    session_name: str | None = None
    properties: dict[str, str] = field(default_factory=dict)
    omit_request: bool = False
    omit_response: bool = False
    model_override: str | None = None
    rate_limit_policy: str | None = None


def _ours(name: str) -> str | None:
    """The name without our prefix, or None when it is not one of our headers."""
    if not name.startswith("heli"):  # both prefixes; most headers stop here
        return None
    for prefix in PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return None


def parse_metadata(headers: list[list[str]] | list[tuple[str, str]]) -> Metadata:
    meta = Metadata()
    owui_user = owui_email = owui_chat = None
    for name, value in headers:
        short = _ours(name)
        if short is None:
            if not name.startswith("x-openwebui-"):
                continue
            if name == "x-openwebui-user-id":
                owui_user = value
            elif name == "x-openwebui-user-email":
                owui_email = unquote(value)
            elif name == "x-openwebui-chat-id":
                owui_chat = value
            continue
        value = value.strip()
        if short.startswith("property-"):
            prop = short[len("property-") :]
            if prop and value and len(meta.properties) < MAX_PROPERTIES:
                meta.properties[prop] = value[:MAX_PROPERTY_VALUE]
        elif short == "user-id" and value:
            meta.user_id = value
        elif short == "session-id" and value:
            meta.session_id = value
        elif short == "session-path" and value:
            meta.session_path = value
        elif short == "session-name" and value:
            meta.session_name = value
        elif short == "omit-request":
            meta.omit_request = value.lower() in ("true", "1", "yes")
        elif short == "omit-response":
            meta.omit_response = value.lower() in ("true", "1", "yes")
        elif short == "model-override" and value:
            meta.model_override = value
        elif short == "ratelimit-policy" and value:
            meta.rate_limit_policy = value
    if meta.session_id is None and owui_chat:
        meta.session_id = owui_chat
    meta.client_user_id = owui_user or owui_email or None
    return meta
