"""Upstreams as the hot path sees them, and which headers are hop-by-hop or not passed on.

Computed once per app: the gateway only reads these per request.
"""

from __future__ import annotations

import re

from heliograph.config import UpstreamConfig
from heliograph.gateway.redact import is_secret_name

# Request headers never sent upstream: hop-by-hop ones, and ones the gateway sets itself.
HOP_BY_HOP = frozenset(
    {
        "host",
        "content-length",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-connection",
        "proxy-authorization",
        "accept-encoding",
        "expect",
    }
)
# Headers that carry a provider key: the client's goes only to the upstream it addressed.
AUTH_HEADERS = ("authorization", "x-api-key", "api-key")
# Response headers not passed back to the client. The server adds its own Date (one per
# response); the upstream's Server header is passed on and the server adds none.
DROP_RESPONSE = frozenset(
    {b"connection", b"keep-alive", b"transfer-encoding", b"content-length", b"set-cookie", b"date"}
)


class Upstream:
    """What the hot path needs to know about one named upstream, computed once."""

    __slots__ = ("auth", "doubled", "name", "protocol", "provider", "url")

    def __init__(self, name: str, config: UpstreamConfig) -> None:
        self.name = name
        self.url = config.url or ""
        self.protocol = config.protocol
        self.provider = config.provider or name
        # Azure's base URL is written with or without its /openai; the AzureOpenAI client's
        # azure_endpoint adds /openai itself. One of the two is dropped when both are there.
        self.doubled = self.provider == "azure" and self.url.rstrip("/").endswith("/openai")
        key = config.api_key.get_secret_value() if config.api_key else None
        self.auth = provider_auth(self.protocol, self.provider, key) if key else None


def provider_auth(protocol: str, provider: str, key: str) -> tuple[str, str]:
    """The header a provider takes its API key in."""
    if protocol == "anthropic":
        return ("x-api-key", key)
    if provider == "azure":
        return ("api-key", key)
    return ("authorization", f"Bearer {key}")


def with_auth(
    headers: list[tuple[str, str]], upstream: Upstream, client_key_ok: bool
) -> list[tuple[str, str]]:
    """Headers for one upstream: the client's provider key only where the client meant it
    (``client_key_ok``), else ``upstream``'s own server-side key, if it has one. A
    server-side key is never sent anywhere but its own upstream."""
    if not client_key_ok:
        headers = without_auth(headers)
    if upstream.auth is not None and not any(k in AUTH_HEADERS for k, _ in headers):
        headers = [*headers, upstream.auth]
    return headers


def without_auth(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The headers less any credential, for an upstream the client did not address: the
    provider key headers, and any other header named like a credential (a gateway's token
    such as ``cf-aig-authorization``, ``x-goog-api-key``, a proxy's ``x-litellm-api-key``,
    a cookie), since the client meant each for the upstream it addressed."""
    return [(k, v) for k, v in headers if k not in AUTH_HEADERS and not is_secret_name(k)]


_PARAM_SPLIT = re.compile(r"[&;]")


def without_secret_params(query: str) -> str:
    """A query string less the parameters named like a credential (``key=``, ``api-key=``,
    ``token=``...), for an upstream the client did not address."""
    if not query:
        return query
    kept = [p for p in _PARAM_SPLIT.split(query) if p and not is_secret_name(p.split("=", 1)[0])]
    return "&".join(kept)
