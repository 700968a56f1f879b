"""Where a gateway request goes: which upstream, which key, which path under the upstream.

Accepted shapes (double slashes collapse first):
  /v1/<key>/<rest>            OpenAI route, Helicone style, key in the path
  /<key>/v1/<rest>            OpenAI route, key first
  /v1/<rest>                  OpenAI route, key in a Heliograph-Auth / Helicone-Auth header
  /<upstream>/<key>/<rest>    any named upstream (anthropic, ollama, groq, my-vllm, ...)
  /<upstream>/<rest>          the same, key in a header
"""

from __future__ import annotations

import re
from collections.abc import Container
from dataclasses import dataclass
from urllib.parse import quote

from heliograph.auth.keys import KEY_PREFIX


@dataclass(frozen=True, slots=True)
class Route:
    upstream: str
    key: str | None
    rest: str  # path below the upstream's base URL, starting with "/"


def collapse_slashes(path: str) -> str:
    while "//" in path:
        path = path.replace("//", "/")
    return path


def parse_route(path: str, upstreams: Container[str]) -> Route | None:
    """Split a gateway path; None when the path is not a gateway path."""
    if "//" in path:
        path = collapse_slashes(path)
    parts = path.split("/", 3)  # ["", first, second, rest...]
    if len(parts) < 2:
        return None
    first = parts[1]
    second = parts[2] if len(parts) > 2 else ""
    tail = "/" + parts[3] if len(parts) > 3 else ""
    if first == "v1":
        upstream = "openai"
    elif first.startswith(KEY_PREFIX) and second == "v1":
        return Route("openai", first, tail or "/")
    elif first in upstreams:
        upstream = first
    else:
        return None
    if second.startswith(KEY_PREFIX):
        return Route(upstream, second, tail or "/")
    return Route(upstream, None, ("/" + second + tail) if second else "/")


def protocol_for(upstream_protocol: str, rest: str) -> str:
    """The wire protocol of one request: Ollama and Anthropic also serve OpenAI-style paths."""
    if upstream_protocol == "ollama" and rest.startswith("/v1/"):
        return "openai"
    if upstream_protocol == "anthropic" and rest.startswith("/v1/chat/completions"):
        return "openai"
    return upstream_protocol


# Characters a path may carry as they are; anything else (?, #, %, spaces, non-ASCII) was
# percent-encoded by the client and is encoded again before the path goes upstream, so an
# encoded "?" or "#" can never start a query or fragment there.
_UNSAFE = re.compile(r"[^A-Za-z0-9\-._~!$&'()*+,;=:@/]")
PATH_SAFE = "/-._~!$&'()*+,;=:@"


def upstream_path(rest: str) -> str | None:
    """``rest`` as sent upstream: dot segments resolved, special characters encoded.

    None when the path climbs above the upstream's base (``/<key>/../../admin``): the
    gateway must never reach anything but the paths below a declared upstream's URL.
    """
    if "/." in rest:
        parts: list[str] = []
        for segment in rest.split("/")[1:]:
            if segment == "..":
                if not parts:
                    return None
                parts.pop()
            elif segment != ".":
                parts.append(segment)
        rest = "/" + "/".join(parts)
    if _UNSAFE.search(rest) is not None:
        rest = quote(rest, safe=PATH_SAFE)
    return rest
