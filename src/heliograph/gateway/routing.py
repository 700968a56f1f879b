"""Where a gateway request goes: which upstream, which key, which path under the upstream.

Accepted shapes (double slashes collapse first):
  /v1/<key>/<rest>        Helicone style, key in the path
  /<key>/v1/<rest>        key first
  /v1/<rest>              key in a Heliograph-Auth / Helicone-Auth header
"""

from __future__ import annotations

from dataclasses import dataclass

from heliograph.auth.keys import KEY_PREFIX


@dataclass(frozen=True, slots=True)
class Route:
    upstream: str
    key: str | None
    rest: str  # path below the upstream's base URL, starting with "/"


def collapse_slashes(path: str) -> str:
    if "//" not in path:
        return path
    while "//" in path:
        path = path.replace("//", "/")
    return path


def parse_route(path: str) -> Route | None:
    """Split a gateway path; None when the path is not a gateway path."""
    path = collapse_slashes(path)
    parts = path.split("/", 3)  # ["", first, second, rest...]
    if len(parts) < 2:
        return None
    first = parts[1]
    second = parts[2] if len(parts) > 2 else ""
    tail = "/" + parts[3] if len(parts) > 3 else ""
    if first == "v1":
        if second.startswith(KEY_PREFIX):
            return Route("openai", second, tail or "/")
        rest = "/" + second + tail if second else "/"
        return Route("openai", None, rest)
    if first.startswith(KEY_PREFIX) and second == "v1":
        return Route("openai", first, tail or "/")
    return None
