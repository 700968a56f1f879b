"""What a record webhook endpoint may be: one check for the API, the dashboard and config.toml.

The filter is the Requests page's URL parameters as an object, checked by the same parser the
Requests page and online evaluation rules use (``evals.online.check_filter``), so a misspelt
field is an error naming it rather than an endpoint that silently receives everything.

URLs must be http(s) with a host; private addresses are allowed (a self-hosted receiver on the
same network is the common case), and deliveries never follow redirects. The signing secret is
generated when not given and shown once; afterwards only ``mask`` of it is.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from heliograph.evals.online import RuleError, check_filter

FIELDS = ("name", "url", "filter", "secret", "enabled", "include_bodies")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.\-]{0,99}")
MAX_URL = 2000
SECRET_MIN, SECRET_MAX = 16, 200
SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)


class EndpointError(ValueError):
    """An endpoint that cannot be saved: ``field`` names what is wrong, the message why."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def mask(secret: str) -> str:
    """The hint shown instead of a saved secret: its prefix and last four characters."""
    prefix = SECRET_PREFIX if secret.startswith(SECRET_PREFIX) else ""
    return f"{prefix}…{secret[-4:]}"


def check_url(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise EndpointError("url", "required: an http:// or https:// URL")
    url = value.strip()
    if len(url) > MAX_URL or any(c.isspace() or ord(c) < 32 for c in url):
        raise EndpointError("url", f"must be one URL of at most {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError as exc:
        raise EndpointError("url", f"not a valid URL ({exc})") from exc
    if parts.scheme not in ("http", "https"):
        raise EndpointError("url", "must start with http:// or https://")
    if not parts.hostname:
        raise EndpointError("url", "must name a host")
    if parts.username or parts.password:
        raise EndpointError("url", "must not carry a user or password (use the signature)")
    return url


def check_secret(value: object) -> str:
    ok = isinstance(value, str) and value.isprintable() and not any(c.isspace() for c in value)
    if not ok or not SECRET_MIN <= len(value) <= SECRET_MAX:  # type: ignore[arg-type]
        raise EndpointError(
            "secret", f"must be {SECRET_MIN} to {SECRET_MAX} printable characters, no spaces"
        )
    return value  # type: ignore[return-value]


def _flag(doc: Mapping[str, Any], name: str, default: bool) -> bool:
    value = doc.get(name, default)
    if not isinstance(value, bool):
        raise EndpointError(name, "must be true or false")
    return value


def check_endpoint(doc: Mapping[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """An endpoint body as stored values; with ``partial`` (a PATCH) only the fields given.
    A new endpoint without a secret gets a generated one."""
    unknown = sorted(str(k) for k in set(doc) - set(FIELDS))
    if unknown:
        raise EndpointError(unknown[0], f"unknown field; an endpoint has {', '.join(FIELDS)}")
    out: dict[str, Any] = {}
    if "name" in doc or not partial:
        name = doc.get("name")
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise EndpointError(
                "name", "required: 1 to 100 letters, digits, spaces, '_', '.' or '-'"
            )
        out["name"] = name
    if "url" in doc or not partial:
        out["url"] = check_url(doc.get("url"))
    if "filter" in doc or not partial:
        try:
            out["filter"] = check_filter(doc.get("filter"))
        except RuleError as exc:
            raise EndpointError(exc.field, exc.problem) from exc
    if "secret" in doc:
        out["secret"] = check_secret(doc["secret"])
    elif not partial:
        out["secret"] = new_secret()
    for flag, default in (("enabled", True), ("include_bodies", False)):
        if flag in doc or not partial:
            out[flag] = _flag(doc, flag, default)
    return out


def check_config_endpoints(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``[[webhooks]]`` entries of config.toml, checked; each needs its own secret (a
    generated one could be read nowhere) and a name unique among them."""
    seen: set[str] = set()
    out = []
    for i, entry in enumerate(entries):
        where = f"webhooks[{i}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: must be a table")
        if "secret" not in entry:
            raise ValueError(f"{where}.secret: required in config (the receiver verifies it)")
        try:
            checked = check_endpoint(entry)
        except EndpointError as exc:
            raise ValueError(f"{where}.{exc}") from exc
        if checked["name"] in seen:
            raise ValueError(f"{where}.name: {checked['name']!r} is used twice")
        seen.add(checked["name"])
        out.append(checked)
    return out
