"""Where a Target-URL or a fallback may point: only at upstreams declared in settings.

The gateway must never be an open proxy, so a target is accepted only when its scheme, host
and port are those of a configured upstream. Everything else (other hosts, link-local and
cloud metadata addresses, non-HTTP schemes, credentials in the URL) is refused.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from heliograph.gateway.features import FeatureError

METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data"})


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, (parts.hostname or "").lower(), port


def check_target(url: str, declared: Iterable[tuple[str, str]]) -> str:
    """The upstream name a target URL belongs to; raises FeatureError when it is not allowed."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise FeatureError(f"target URL {url!r} is not a valid URL") from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise FeatureError(f"target URL scheme {parts.scheme!r} is not allowed (http/https only)")
    if not parts.hostname or parts.username or parts.password:
        raise FeatureError("target URL must name a host and carry no credentials")
    del port
    origin = _origin(url)
    for name, base in declared:
        if _origin(base) == origin:
            return name
    host = origin[1]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if host in METADATA_HOSTS or (address is not None and address.is_link_local):
        raise FeatureError(f"target {host} is a link-local or metadata address and is refused")
    raise FeatureError(
        f"target host {host!r} is not a configured upstream; declare it with "
        "HELIOGRAPH_UPSTREAM_<NAME>_URL to allow it"
    )
