"""What a replay may do: which upstreams can take a logged request, and the form's state.

A record is stored with its wire protocol (``openai``, ``anthropic``, ``ollama``) and the path
below its upstream's base URL. OpenAI-format requests can go to any OpenAI-compatible
upstream, to Ollama (which serves ``/v1/chat/completions``, ``/v1/completions`` and
``/v1/embeddings``) and, for chat completions only, to Anthropic's compatibility endpoint;
the path is rebuilt for the target (OpenAI-style bases include their ``/v1``, Ollama and
Anthropic bases do not). Native Anthropic and Ollama bodies go only to upstreams of their own
protocol. Azure paths name a deployment, so Azure records replay on their own upstream only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, urlsplit

import orjson

from heliograph.config import UpstreamConfig
from heliograph.web.context import MAX_FORM_BYTES
from heliograph.web.dashboard import is_local

OLLAMA_OPENAI_PATHS = frozenset({"/chat/completions", "/completions", "/embeddings"})
ANTHROPIC_OPENAI_PATHS = frozenset({"/chat/completions"})
FORM_ROOM = MAX_FORM_BYTES - 2048  # what the body may take of a posted form (the rest: token,
# upstream, model, key)


@dataclass(frozen=True, slots=True)
class Target:
    """One configured upstream as a replay target for one record."""

    name: str
    protocol: str
    local: bool
    endpoint: str | None  # the path to call on this upstream; None when it cannot take it
    problem: str = ""  # why it cannot


@dataclass
class ReplayForm:
    """The replay form as shown: the original by default, the user's input after a refusal
    (the edited body is never lost; a typed key is never sent back to the browser)."""

    body: str
    target: str
    model: str
    error: str = ""
    field: str = ""  # which input the error is about: body, target, model or key


def replay_problem(row: dict[str, Any]) -> str | None:
    """Why a record cannot be replayed at all (on any upstream), or None when it can."""
    if row.get("method") != "POST" or row.get("kind") != "llm":
        return "Only LLM calls (POST requests) can be replayed."
    if row.get("request_body") is None:
        return "The request body was not stored (omitted or missing), so it cannot be replayed."
    if row.get("body_truncated"):
        return "The stored request body is truncated, so it cannot be replayed exactly."
    text = replay_body(row)
    if posted_size(text) > FORM_ROOM:
        return (
            f"The request body is too large to edit and replay from the dashboard's form "
            f"({posted_size(text) // 1024:,} KB as the browser sends it; forms take up to "
            f"{MAX_FORM_BYTES // 1024} KB)."
        )
    return None


def posted_size(text: str) -> int:
    """Bytes a textarea's text takes in the URL-encoded form a browser posts (line breaks are
    sent as CRLF, most punctuation as %XX)."""
    return len(quote_plus(text.replace("\r\n", "\n").replace("\n", "\r\n")))


def replay_body(row: dict[str, Any]) -> str:
    """The original request as editable JSON: indented, or compact when only that fits in a
    form the dashboard accepts."""
    body = row.get("request_body")
    if isinstance(body, str):
        return body
    pretty = orjson.dumps(body, option=orjson.OPT_INDENT_2).decode()
    return pretty if posted_size(pretty) <= FORM_ROOM else orjson.dumps(body).decode()


def initial_form(row: dict[str, Any], upstreams: dict[str, UpstreamConfig]) -> ReplayForm:
    """The form before any input: the original body, upstream and model."""
    upstream = str(row.get("upstream") or "")
    target = upstream if upstream in upstreams else ""
    if not target:
        target = next((t.name for t in targets(row, upstreams) if t.endpoint), "")
    return ReplayForm(replay_body(row), target, str(row.get("model") or ""))


def openai_root(config: UpstreamConfig) -> str:
    """The path from an upstream's base URL to its OpenAI-style API root.

    Ollama and Anthropic bases are the server's root (their OpenAI layer is under ``/v1``);
    an OpenAI-compatible base with a path already is the API root (``.../v1``,
    ``.../openai/v1``); a bare ``http://host:port`` is taken to serve ``/v1`` below it.
    """
    if config.protocol in ("ollama", "anthropic"):
        return "/v1"
    return "" if urlsplit(config.url or "").path.strip("/") else "/v1"


def api_path(row: dict[str, Any], upstreams: dict[str, UpstreamConfig]) -> str:
    """An OpenAI-format record's path below the OpenAI API root (``/chat/completions``)."""
    endpoint = str(row.get("endpoint") or "/")
    config = upstreams.get(str(row.get("upstream")))
    if config is not None:
        root = openai_root(config)
    else:
        root = "/v1" if endpoint.startswith("/v1/") else ""
    return endpoint[len(root) :] if root and endpoint.startswith(root + "/") else endpoint


def _endpoint(
    row: dict[str, Any], upstreams: dict[str, UpstreamConfig], name: str
) -> tuple[str | None, str]:
    config = upstreams[name]
    if name == row.get("upstream"):
        return str(row.get("endpoint")), ""
    protocol = str(row.get("protocol") or "openai")
    if "azure" in (config.provider or name, row.get("provider")):
        return None, "Azure paths name a deployment: Azure requests replay on their own upstream."
    if protocol == "openai":
        path = api_path(row, upstreams)
        if config.protocol == "openai":
            return openai_root(config) + path, ""
        allowed = OLLAMA_OPENAI_PATHS if config.protocol == "ollama" else ANTHROPIC_OPENAI_PATHS
        if path in allowed:
            return "/v1" + path, ""
        return None, (
            f"{name} speaks the {config.protocol} API and has no OpenAI-compatible {path}; "
            "it cannot take this OpenAI-format request."
        )
    if config.protocol == protocol:
        return str(row.get("endpoint")), ""
    return None, (
        f"This is a {protocol}-format request and {name} speaks the {config.protocol} API; "
        f"replay it on an upstream that speaks {protocol}."
    )


def targets(row: dict[str, Any], upstreams: dict[str, UpstreamConfig]) -> list[Target]:
    """Every configured upstream, each with where the request would go on it or why it
    cannot go there."""
    out = []
    for name in upstreams:
        endpoint, problem = _endpoint(row, upstreams, name)
        local = is_local(name, upstreams)
        out.append(Target(name, upstreams[name].protocol, local, endpoint, problem))

    # The original first, then the ones that can take it (its provider's, then those that
    # speak its protocol natively, then compatibility layers), then the others.
    def order(t: Target) -> tuple[bool, ...]:
        provider = upstreams[t.name].provider or t.name
        return (
            t.name != row.get("upstream"),
            t.endpoint is None,
            provider != row.get("provider"),
            t.protocol != (row.get("protocol") or "openai"),
        )

    return sorted(out, key=lambda t: (order(t), t.name))


CHAT_ENDPOINT = "/v1/chat/completions"


def chat_targets(upstreams: dict[str, UpstreamConfig]) -> list[Target]:
    """Every configured upstream as a target for a new OpenAI chat completions request (what
    the gateway renders a managed prompt into), with its path there or why it cannot take it:
    the same rules as a replay of such a request, from no upstream in particular."""
    row = {"method": "POST", "protocol": "openai", "endpoint": CHAT_ENDPOINT, "upstream": None}
    return targets(row, upstreams)
