"""How to point Open WebUI at Heliograph: the exact settings for both of its connections.

``heliograph openwebui`` prints this and the dashboard's ``/settings/openwebui`` page shows it;
:func:`build_setup` makes the data for both from the running settings (address, upstreams,
Open WebUI JWT secret), so the two never disagree. The shapes are Open WebUI 0.12's:
``OPENAI_API_BASE_URLS`` / ``OPENAI_API_KEYS`` / ``OLLAMA_BASE_URLS`` split on ``;``, and
``OPENAI_API_CONFIGS`` / ``OLLAMA_API_CONFIGS`` JSON objects keyed by the connection's index
(``{"0": {"enable": true, "headers": {...}}}``), whose ``headers`` it sends with every request
after filling in its ``{{...}}`` placeholders.

The provider key slot matters: Heliograph forwards any ``Authorization`` that is not one of
its own keys to the provider, so a made-up placeholder there would replace a key the server
holds. When the server holds the upstream's key (or the upstream is a local server that needs
none), the slot gets the write key itself, which Heliograph takes as its own and never passes on.
"""

from __future__ import annotations

import json
import shlex
import textwrap
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from heliograph.config import Settings, UpstreamConfig, config_path
from heliograph.web.dashboard import is_local

CUSTOM_HEADERS: dict[str, str] = {
    "X-OpenWebUI-Chat-Id": "{{CHAT_ID}}",
    "X-OpenWebUI-Message-Id": "{{MESSAGE_ID}}",
    "X-OpenWebUI-Task": "{{TASK}}",
    "X-OpenWebUI-User-Groups": "{{USER_GROUPS}}",
    "X-OpenWebUI-User-Group-Ids": "{{USER_GROUP_IDS}}",
}
KEY_PLACEHOLDER = "<write-key>"
SECRET_PLACEHOLDER = "<HELIOGRAPH_OPENWEBUI_JWT_SECRET>"  # noqa: S105 (a placeholder)
OPENWEBUI_IMAGE = "ghcr.io/open-webui/open-webui:main"
DOCKER_HOST = "host.docker.internal"
CHECK_PATH = "/settings/openwebui"
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0", "::"})  # noqa: S104


@dataclass(frozen=True)
class Connection:
    """One Open WebUI connection through Heliograph."""

    kind: str  # "openai" or "ollama"
    upstream: str
    url: str
    key: str  # the OPENAI_API_KEYS entry ("" for Ollama connections)
    key_note: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "upstream": self.upstream,
            "url": self.url,
            "key": self.key,
            "key_note": self.key_note,
            "headers": dict(CUSTOM_HEADERS),
        }


@dataclass(frozen=True)
class Setup:
    """Everything Open WebUI needs, for one Heliograph configuration."""

    base_url: str
    connections: tuple[Connection, ...]
    write_key: str
    key_given: bool
    secret: str | None  # what FORWARD_USER_INFO_HEADER_JWT_SECRET gets; None: not set here
    secret_shown: bool
    secret_where: str
    notes: tuple[str, ...]
    steps: tuple[str, ...]

    def of_kind(self, kind: str) -> list[Connection]:
        return [c for c in self.connections if c.kind == kind]

    def configs(self, kind: str) -> dict[str, dict[str, Any]]:
        """``OPENAI_API_CONFIGS`` / ``OLLAMA_API_CONFIGS``: keyed by connection index."""
        return {
            str(i): {"enable": True, "headers": dict(CUSTOM_HEADERS)}
            for i, _ in enumerate(self.of_kind(kind))
        }

    def env(self) -> dict[str, str]:
        """Open WebUI's environment variables, in the order they are printed."""
        openai, ollama = self.of_kind("openai"), self.of_kind("ollama")
        out: dict[str, str] = {}
        if openai:
            out["ENABLE_OPENAI_API"] = "true"
            out["OPENAI_API_BASE_URLS"] = ";".join(c.url for c in openai)
            out["OPENAI_API_KEYS"] = ";".join(c.key for c in openai)
            out["OPENAI_API_CONFIGS"] = _compact(self.configs("openai"))
        if ollama:
            out["ENABLE_OLLAMA_API"] = "true"
            out["OLLAMA_BASE_URLS"] = ";".join(c.url for c in ollama)
            out["OLLAMA_API_CONFIGS"] = _compact(self.configs("ollama"))
        out["ENABLE_FORWARD_USER_INFO_HEADERS"] = "true"
        if self.secret is not None:
            out["FORWARD_USER_INFO_HEADER_JWT_SECRET"] = self.secret
        return out


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def headers_json() -> str:
    """The custom headers as Open WebUI's admin panel takes them (Advanced → Headers)."""
    return json.dumps(CUSTOM_HEADERS, indent=2)


def _docker_url(url: str) -> str:
    """``url`` with a loopback host replaced by the host as a container sees it."""
    parts = urlsplit(url)
    if parts.hostname not in _LOOPBACK:
        return url
    netloc = DOCKER_HOST + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _connection(
    name: str, config: UpstreamConfig, base: str, key: str, upstreams: dict[str, UpstreamConfig]
) -> Connection:
    if config.protocol == "ollama":
        note = "no key: Heliograph forwards to its Ollama upstream"
        if config.api_key is not None:
            note = "no key: Heliograph adds the Ollama key it holds"
        return Connection("ollama", name, f"{base}/{name}/{key}", "", note)
    path = "v1" if name == "openai" else name
    if config.api_key is not None:
        note = (
            f"the write key again: Heliograph holds the {name} key and uses it when the client "
            "sends none (a Heliograph key in this slot is taken as Heliograph's, never passed on)"
        )
        return Connection("openai", name, f"{base}/{path}/{key}", key, note)
    if is_local(name, upstreams):
        note = f"the write key again: {name} is a local server that needs no provider key"
        return Connection("openai", name, f"{base}/{path}/{key}", key, note)
    note = (
        f"your {name} API key: passed through to {config.url} and never stored. Do not put a "
        "made-up value here: anything but a Heliograph key is forwarded to the provider"
    )
    return Connection("openai", name, f"{base}/{path}/{key}", f"<{name}-api-key>", note)


def _connections(settings: Settings, base: str, key: str) -> tuple[Connection, ...]:
    """OpenAI connections: ``openai`` first, then other configured OpenAI-protocol upstreams;
    Ollama connections: ``ollama`` first, then other configured Ollama upstreams. Anthropic
    and Azure upstreams are left out (Open WebUI's connections do not speak their paths)."""
    resolved = settings.resolved_upstreams()
    names = ["openai", "ollama", *sorted(n for n in settings.upstreams if n in resolved)]
    out: list[Connection] = []
    for name in dict.fromkeys(names):
        config = resolved.get(name)
        if config is None or config.protocol == "anthropic":
            continue
        if (config.provider or name) == "azure":
            continue
        out.append(_connection(name, config, base, key, resolved))
    out.sort(key=lambda c: c.kind != "openai")  # stable: the order above within each kind
    return tuple(out)


def _notes(settings: Settings, setup_base: str, key_given: bool, docker: bool) -> list[str]:
    notes: list[str] = []
    if not key_given:
        notes.append(
            f"Every {KEY_PLACEHOLDER} stands for a Heliograph write key. Keys are stored hashed "
            "and cannot be shown again: use the write key `heliograph serve` printed on its "
            "first start, or create one with `heliograph keys create --name open-webui "
            "--scope write` (or on the dashboard's Settings page), then rerun with --key."
        )
    host = urlsplit(setup_base).hostname or ""
    listens_locally = settings.host in ("127.0.0.1", "localhost", "::1")
    if host in _LOOPBACK and not docker:
        notes.append(
            f"{setup_base} is a loopback address: it works for an Open WebUI on this machine "
            "only. Open WebUI in Docker or on another machine needs an address it can reach: "
            "set HELIOGRAPH_PUBLIC_URL (or --public-url), or use --format docker."
        )
    if listens_locally and (docker or host not in _LOOPBACK):
        notes.append(
            f"Heliograph listens on {settings.host} only, which a container or another machine "
            "cannot reach (unless a proxy on this machine forwards to it): start it with "
            "--host 0.0.0.0 (HELIOGRAPH_HOST)."
        )
    notes.append(
        "Open WebUI reads the connection variables (OPENAI_API_*, OLLAMA_*) on its first start "
        "only; afterwards what its admin panel saved in its database wins. For an Open WebUI "
        "that has run before, follow the admin-panel steps, or start it once with "
        "ENABLE_PERSISTENT_CONFIG=false. ENABLE_FORWARD_USER_INFO_HEADERS and "
        "FORWARD_USER_INFO_HEADER_JWT_SECRET are read from the environment on every start."
    )
    if "ollama" not in settings.upstreams:
        notes.append(
            "Heliograph's ollama upstream is the default http://127.0.0.1:11434 (as Heliograph "
            "sees it): set HELIOGRAPH_UPSTREAM_OLLAMA_URL if Ollama runs elsewhere, or leave "
            "the Ollama connection out."
        )
    return notes


def _secret_notes(settings: Settings, shown: bool, where: str) -> list[str]:
    if settings.openwebui_jwt_secret is None:
        return [
            "Recommended: signed identity. Without a shared secret the X-OpenWebUI-User-* "
            "headers are taken as sent, and anyone holding a write key can forge them. Generate "
            "one (e.g. `openssl rand -hex 32`), set it as HELIOGRAPH_OPENWEBUI_JWT_SECRET for "
            "Heliograph and FORWARD_USER_INFO_HEADER_JWT_SECRET for Open WebUI, restart both."
        ]
    if shown:
        return [f"FORWARD_USER_INFO_HEADER_JWT_SECRET is Heliograph's secret ({where})."]
    outcome = (
        "refuse Open WebUI's requests (401)"
        if settings.openwebui_jwt_failure == "refuse"
        else "record users as unverified"
    )
    return [
        f"FORWARD_USER_INFO_HEADER_JWT_SECRET must be the same value as Heliograph's secret "
        f"({where}); replace {SECRET_PLACEHOLDER} with it, or rerun with --show-secret. "
        f"A different value makes Heliograph {outcome}."
    ]


def _steps(setup_base: str, connections: tuple[Connection, ...], secret: bool) -> list[str]:
    steps = ["In Open WebUI: Admin Panel → Settings → Connections."]
    kinds = {"openai": "OpenAI API", "ollama": "Ollama API"}
    for kind, label in kinds.items():
        for i, c in enumerate(c for c in connections if c.kind == kind):
            which = "its connection's gear" if i == 0 else "+ (Add Connection)"
            key = f"; Auth: Bearer, API Key: {c.key}" if c.key else ""
            steps.append(
                f"Under {label}, click {which} ({c.upstream}). URL: {c.url}{key}. Click "
                "Advanced and paste the headers JSON into Headers. Save."
            )
    steps.append("Click Save at the bottom of the Connections page.")
    env = "ENABLE_FORWARD_USER_INFO_HEADERS=true"
    if secret:
        env += " and FORWARD_USER_INFO_HEADER_JWT_SECRET"
    steps.append(
        f"User info forwarding has no switch in the panel: set {env} in Open WebUI's "
        "environment and restart it."
    )
    steps.append(
        f"Chat once, then open {setup_base}{CHECK_PATH} (Heliograph's dashboard): its "
        "connection check shows what arrived from Open WebUI and what is missing."
    )
    return steps


def build_setup(
    settings: Settings,
    *,
    key: str | None = None,
    show_secret: bool = False,
    docker: bool = False,
) -> Setup:
    """The Open WebUI settings for this configuration. ``key``: a write key to fill in (else
    placeholders); ``show_secret``: put the real JWT secret in (else a placeholder);
    ``docker``: the URLs as a container sees a Heliograph on the host's loopback."""
    base = settings.base_url()
    if docker:
        base = _docker_url(base)
    write_key = key or KEY_PLACEHOLDER
    connections = _connections(settings, base, write_key)
    where = (
        f"HELIOGRAPH_OPENWEBUI_JWT_SECRET, or openwebui_jwt_secret in {config_path(settings.home)}"
    )
    jwt_secret = settings.openwebui_jwt_secret
    secret = None
    if jwt_secret is not None:
        secret = jwt_secret.get_secret_value() if show_secret else SECRET_PLACEHOLDER
    notes = _notes(settings, base, key is not None, docker)
    notes += _secret_notes(settings, show_secret, where)
    return Setup(
        base_url=base,
        connections=connections,
        write_key=write_key,
        key_given=key is not None,
        secret=secret,
        secret_shown=show_secret and jwt_secret is not None,
        secret_where=where,
        notes=tuple(notes),
        steps=tuple(_steps(settings.base_url(), connections, jwt_secret is not None)),
    )


def as_json(setup: Setup) -> str:
    """Everything as one JSON document."""
    doc = {
        "base_url": setup.base_url,
        "write_key_given": setup.key_given,
        "env": setup.env(),
        "connections": [c.as_dict() for c in setup.connections],
        "openai_api_configs": setup.configs("openai"),
        "ollama_api_configs": setup.configs("ollama"),
        "headers": dict(CUSTOM_HEADERS),
        "jwt_secret": {
            "configured": setup.secret is not None,
            "shown": setup.secret_shown,
            "where": setup.secret_where,
        },
        "steps": list(setup.steps),
        "notes": list(setup.notes),
    }
    return json.dumps(doc, indent=2, ensure_ascii=False)


def _comment(text: str, first: str = "# ", rest: str = "#   ") -> list[str]:
    return textwrap.wrap(
        text, 96, initial_indent=first, subsequent_indent=rest, break_on_hyphens=False
    )


def _explained(setup: Setup) -> list[str]:
    """Notes, key slots, headers and admin-panel steps, as shell comments."""
    lines = ["#", "# Notes:"]
    for note in setup.notes:
        lines += _comment(note, "# - ", "#   ")
    lines += ["#", "# OPENAI_API_KEYS, one entry per connection:"]
    for c in setup.of_kind("openai"):
        lines += _comment(f"{c.upstream}: {c.key_note}.", "# - ", "#   ")
    lines += ["#", "# Or in Open WebUI's admin panel:"]
    for i, step in enumerate(setup.steps, 1):
        lines += _comment(step, f"# {i}. ", "#    ")
    lines += ["#", "# The headers JSON (one object, for every connection):"]
    lines += ["# " + line for line in headers_json().splitlines()]
    return lines


def as_env(setup: Setup, *, explain: bool = True) -> str:
    """``NAME='value'`` lines that bash can ``source`` (and docker compose reads as an
    env_file); explanations as ``#`` comments."""
    lines = []
    if explain:
        lines += _comment(f"Open WebUI through Heliograph at {setup.base_url}.")
        lines += _comment(
            "Load with `set -a; source FILE; set +a` before `open-webui serve`, or use as a "
            "docker compose env_file (not `docker run --env-file`, which keeps the quotes: "
            "use --format docker)."
        )
    lines += [f"{name}={shlex.quote(value)}" for name, value in setup.env().items()]
    if explain:
        lines += _explained(setup)
    return "\n".join(lines) + "\n"


def as_docker(setup: Setup) -> str:
    """A ``docker run`` line for Open WebUI with these settings, explanations above it."""
    lines = _comment(f"Open WebUI in Docker, through Heliograph at {setup.base_url}.")
    lines += _explained(setup)
    command = ["docker run -d -p 3000:8080"]
    if urlsplit(setup.base_url).hostname == DOCKER_HOST:
        command.append(f"--add-host={DOCKER_HOST}:host-gateway")
    command += [f"-e {shlex.quote(f'{n}={v}')}" for n, v in setup.env().items()]
    command += ["-v open-webui:/app/backend/data --name open-webui", OPENWEBUI_IMAGE]
    lines.append(" \\\n  ".join(command))
    return "\n".join(lines) + "\n"
