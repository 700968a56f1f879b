"""Where a Target-URL or a fallback may point: only at upstreams declared in settings.

The gateway must never be an open proxy, so a target is accepted only when its scheme, host
and port are those of a configured upstream. Everything else (other hosts, link-local and
cloud metadata addresses, non-HTTP schemes, credentials in the URL) is refused.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import quote, unquote, urlsplit

from heliograph.gateway.features import FeatureError
from heliograph.gateway.routing import PATH_SAFE

METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data"})


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, (parts.hostname or "").lower(), port


def check_target(url: str, declared: Iterable[tuple[str, str]]) -> tuple[str, str]:
    """(upstream name, base URL) of an allowed target URL; raises FeatureError otherwise.

    The target must be a declared upstream's origin and lie at or below its base path
    (dot segments resolved first), with no query, fragment or credentials: a target can
    choose among declared upstreams, never reach other paths of their hosts.
    """
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        raise FeatureError(f"target URL {url!r} is not a valid URL") from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise FeatureError(f"target URL scheme {parts.scheme!r} is not allowed (http/https only)")
    if not parts.hostname or parts.username or parts.password:
        raise FeatureError("target URL must name a host and carry no credentials")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise FeatureError("target URL must not carry a query or a fragment")
    origin = _origin(url)
    path = _clean_path(parts.path)
    matched = False
    for name, base in declared:
        if _origin(base) != origin:
            continue
        matched = True
        base_path = _clean_path(urlsplit(base).path) or ""
        if path is not None and (path == base_path or path.startswith(base_path + "/")):
            return name, f"{origin[0]}://{parts.netloc}{quote(path, safe=PATH_SAFE)}"
    if matched:
        raise FeatureError(
            "target URL must be a declared upstream's URL or a path below it "
            "(other paths of that host are not reachable)"
        )
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


def _clean_path(path: str) -> str | None:
    """A URL path decoded, dot segments resolved, without a trailing slash; None if it
    climbs above the root."""
    path = unquote(path)
    out: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if not out:
                return None
            out.pop()
        else:
            out.append(segment)
    return "/" + "/".join(out) if out else ""
