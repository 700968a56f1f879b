"""The gateway's one pass over a request's headers, and what it found.

Every request pays for this loop, so it does everything in the same pass: it decides what is
forwarded upstream and what is recorded (redacted), reads our metadata headers and Open
WebUI's into the start frame's metadata, notes feature headers for the policies, and finds the
Heliograph key when it travels in a header. ``heliograph demo`` builds its backfilled history
with the same function, so past records look exactly like live ones.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from heliograph.auth.keys import looks_like_key
from heliograph.capture.frames import MetaFrame
from heliograph.gateway.features import FEATURE_HEADERS, redact_fallbacks
from heliograph.gateway.headers import OPENWEBUI, read_openwebui, read_ours
from heliograph.gateway.redact import REDACTED, HeaderRedactor
from heliograph.gateway.traceparent import child
from heliograph.gateway.upstreams import HOP_BY_HOP


def _valid_uuid(text: str) -> str | None:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None


@dataclass(slots=True)
class Scanned:
    """What one pass over the request headers found."""

    key: str | None  # the Heliograph key, if the path did not carry it
    forward: list[tuple[str, str]] = field(default_factory=list)  # sent upstream
    saved: list[tuple[str, str]] = field(default_factory=list)  # recorded (redacted)
    md: MetaFrame = field(default_factory=MetaFrame)  # our metadata headers, parsed
    found: dict[str, str] | None = None  # feature headers (cache, retries, ...)
    request_id: str | None = None
    has_auth: bool = False  # the client sent a provider key of its own
    declared_length: int = -1
    cache_control: str | None = None
    owjwt: str | None = None  # Open WebUI's signed user token, verified after authentication


def scan_headers(
    headers: list[tuple[bytes, bytes]],
    key: str | None,
    redactor: HeaderRedactor,
    jwt_secret: str | None,
) -> Scanned:
    """One pass over the headers: what to forward, what to record (redacted), our
    metadata and feature headers, the Heliograph key if sent in a header.

    ``jwt_secret``: set when Heliograph verifies Open WebUI's user token, which is then a
    credential for us and neither recorded nor passed on."""
    scan = Scanned(key)
    forward, saved, md = scan.forward, scan.saved, scan.md
    redact = redactor.value
    for raw_name, raw_value in headers:
        name = raw_name.decode("latin-1")  # ASGI header names are lower case
        try:  # clients send UTF-8 (a user's name, say); forward the same bytes
            value = raw_value.decode()
        except UnicodeDecodeError:
            value = raw_value.decode("latin-1")
        if name.startswith(("helicone-", "heliograph-")):
            short = name[9:] if name[8] == "-" else name[11:]
            if short == "auth":
                if scan.key is None:
                    scan.key = value[7:].strip() if value[:7].lower() == "bearer " else value
                saved.append((name, REDACTED))
                continue
            shown = redact(name, value)
            if short == "request-id":
                scan.request_id = _valid_uuid(value)
            elif short in FEATURE_HEADERS:
                if scan.found is None:
                    scan.found = {}
                scan.found[short] = value
                if short == "fallbacks":
                    shown = redact(name, redact_fallbacks(value))
                elif short == "ratelimit-policy":
                    read_ours(md, short, shown)
            else:
                read_ours(md, short, shown)
            saved.append((name, shown))
            continue
        if name in HOP_BY_HOP:
            if name == "content-length" and value.isdigit():
                scan.declared_length = int(value)
                saved.append((name, value))  # digits: nothing to hide, nothing to cache
            elif name != "host":
                saved.append((name, redact(name, value)))
            continue
        if name == "authorization":
            if value[:7].lower() == "bearer " and looks_like_key(value[7:].strip()):
                if scan.key is None:
                    scan.key = value[7:].strip()
                saved.append((name, REDACTED))
                continue
            scan.has_auth = True
        elif name in ("x-api-key", "api-key"):
            scan.has_auth = True
        elif name == "cache-control":
            scan.cache_control = value
        elif name == "traceparent":
            joined = child(value)
            if joined is not None:  # our span goes upstream, as the client's span's child
                md["trace"], sent = joined
                saved.append((name, value))
                forward.append((name, sent))
                continue
        elif name.startswith(OPENWEBUI):
            token = read_openwebui(md, name, value)
            if token is not None:
                scan.owjwt = token
                if jwt_secret is not None:  # a credential for us: kept here
                    saved.append((name, REDACTED))
                    continue
        saved.append((name, redact(name, value)))
        forward.append((name, value))
    return scan
