"""Upstreams as the hot path sees them, and which request headers are secrets or hop-by-hop.

Computed once per app: the gateway only reads these per request.
"""

from __future__ import annotations

from heliograph.config import UpstreamConfig

REDACTED = "[REDACTED]"
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
# Request headers whose values are secrets: forwarded upstream, never written anywhere.
SECRET_HEADERS = frozenset(
    {
        "authorization",
        "x-api-key",
        "api-key",
        "proxy-authorization",
        "cookie",
        "x-goog-api-key",
        "helicone-auth",
        "heliograph-auth",
        "openai-api-key",
        "anthropic-api-key",
    }
)
# Response headers not passed back to the client.
DROP_RESPONSE = frozenset(
    {b"connection", b"keep-alive", b"transfer-encoding", b"content-length", b"set-cookie"}
)
SECRET_QUERY = ("key", "api-key", "api_key", "token", "access_token", "sig", "signature")


def is_secret_header(name: str) -> bool:
    return name in SECRET_HEADERS or "secret" in name or "token" in name or name.endswith("-key")


def redact_query(query: str) -> str:
    """Query string with credential-looking parameter values hidden."""
    if not query:
        return query
    parts = []
    for item in query.split("&"):
        name, sep, _value = item.partition("=")
        if sep and name.lower() in SECRET_QUERY:
            parts.append(f"{name}={REDACTED}")
        else:
            parts.append(item)
    return "&".join(parts)


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
