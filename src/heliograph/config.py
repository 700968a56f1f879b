"""Every Heliograph setting, declared once.

Precedence: CLI flag > environment variable (``HELIOGRAPH_<NAME>``) > config file
(``config.toml`` in the home - ``--home``, else ``HELIOGRAPH_HOME`` - or the file named by
``HELIOGRAPH_CONFIG``) > default. This is the only module that
reads ``os.environ``; secrets are ``SecretStr`` so they are redacted wherever settings are shown.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

ENV_PREFIX = "HELIOGRAPH_"
# Where `heliograph serve` puts its resolved settings for its child processes.
HANDOFF_ENV = ENV_PREFIX + "HANDOFF_SETTINGS"
PROMETHEUS_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def default_home() -> Path:
    """Where Heliograph keeps its SQLite store and spool unless told otherwise."""
    return Path(os.environ.get(ENV_PREFIX + "HOME") or Path.home() / ".heliograph")


Protocol = Literal["openai", "anthropic", "ollama"]
RESERVED_NAMES = frozenset(
    {
        "api",
        "v1",
        "alerts",
        "health",
        "login",
        "logout",
        "static",
        "requests",
        "models",
        "users",
        "sessions",
        "settings",
        "demo",
        "docs",
        "openapi.json",
        "metrics",
    }
)


class UpstreamConfig(BaseModel):
    """One named upstream: where it is and which wire protocol it speaks."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str | None = None
    protocol: Protocol = "openai"
    api_key: SecretStr | None = None
    provider: str | None = None
    gpu_usd_per_hour: float | None = Field(default=None, ge=0)
    # None: guessed from the address (loopback and private hosts, and known local servers
    # such as Ollama, count as local); True or False says so explicitly.
    local: bool | None = None


# Built-in upstreams. OpenAI-compatible base URLs include their /v1 (clients append
# /chat/completions); Anthropic and Ollama bases do not (clients append /v1/messages, /api/chat).
BUILTIN_UPSTREAMS: dict[str, UpstreamConfig] = {
    "openai": UpstreamConfig(url="https://api.openai.com/v1"),
    "anthropic": UpstreamConfig(url="https://api.anthropic.com", protocol="anthropic"),
    "ollama": UpstreamConfig(url="http://127.0.0.1:11434", protocol="ollama"),
    "groq": UpstreamConfig(url="https://api.groq.com/openai/v1"),
    "together": UpstreamConfig(url="https://api.together.xyz/v1"),
    "openrouter": UpstreamConfig(url="https://openrouter.ai/api/v1"),
    "deepseek": UpstreamConfig(url="https://api.deepseek.com/v1"),
    "mistral": UpstreamConfig(url="https://api.mistral.ai/v1"),
    "fireworks": UpstreamConfig(url="https://api.fireworks.ai/inference/v1"),
    "xai": UpstreamConfig(url="https://api.x.ai/v1"),
    "gemini": UpstreamConfig(url="https://generativelanguage.googleapis.com/v1beta/openai"),
    # Azure needs the resource's own URL, e.g. https://<resource>.openai.azure.com (with or
    # without /openai: the AzureOpenAI client's azure_endpoint and base_url styles both work)
    "azure": UpstreamConfig(url=None),
}
_UPSTREAM_ENV = re.compile(
    r"^HELIOGRAPH_UPSTREAM_([A-Z0-9_]+?)_(URL|PROTOCOL|API_KEY|PROVIDER|GPU_USD_PER_HOUR|LOCAL)$"
)


class _UpstreamEnvSource(PydanticBaseSettingsSource):
    """Reads HELIOGRAPH_UPSTREAM_<NAME>_<FIELD> variables into the ``upstreams`` setting."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        found: dict[str, dict[str, str]] = {}
        for name, value in os.environ.items():
            match = _UPSTREAM_ENV.match(name)
            if match:
                upstream = match.group(1).lower().replace("_", "-")
                found.setdefault(upstream, {})[match.group(2).lower()] = value
        return {"upstreams": found} if found else {}


class Settings(BaseSettings):
    """The settings table; ``heliograph settings`` prints it and the README documents it."""

    # Errors name the setting and the problem but never echo its value: a webhook's secret or
    # a database password must not end up in a log.
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="ignore",
        frozen=True,
        validate_default=True,
        hide_input_in_errors=True,
    )

    home: Path = Field(
        default_factory=default_home,
        description="Directory for the SQLite store, the spool and the config file.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the store, e.g. postgresql://user@host/db. "
        "Default: SQLite at $HELIOGRAPH_HOME/heliograph.db.",
    )
    host: str = Field(default="127.0.0.1", description="Interface the server listens on.")
    port: int = Field(default=8787, description="Port the server listens on.")
    workers: int = Field(default=1, ge=1, description="Gateway worker processes.")
    public_url: str | None = Field(
        default=None,
        description="Base URL clients use to reach Heliograph (shown in the setup hint).",
    )
    upstreams: dict[str, UpstreamConfig] = Field(
        default_factory=dict,
        description="Named upstreams added to or overriding the built-in ones; per upstream "
        "HELIOGRAPH_UPSTREAM_<NAME>_URL, _PROTOCOL (openai, anthropic, ollama), _API_KEY (sent "
        "to that upstream only, when the client sends none), _PROVIDER, _GPU_USD_PER_HOUR and "
        "_LOCAL (true: a self-hosted model, shown as local and priced at 0 unless it has a "
        "GPU-hour price; false: a cloud API; unset: shown as local for private addresses, priced "
        "at 0 only for known local servers), or "
        "[upstreams.<name>] tables in config.toml.",
    )
    prices: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Price overrides and custom models, a JSON list (or [[prices]] tables): "
        '{"model": "ft:gpt-4o-mini:acme:*", "input_per_mtok": 0.3, "output_per_mtok": 1.2} '
        'or {"model": "gpt-4o*", "discount_percent": 20}; optional "provider".',
    )
    openai_api_key: SecretStr | None = Field(
        default=None,
        description="Shorthand for HELIOGRAPH_UPSTREAM_OPENAI_API_KEY.",
    )
    budgets: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Budgets of the default organization, a JSON list (or [[budgets]] tables), "
        'as the budgets API takes them: {"name": "team", "window": "month", "limit_usd": 50, '
        '"scope": {"user_id": "alice"}, "action": "block"}. Kept in step with the store at '
        "start; budgets made in the dashboard or API are left alone.",
    )
    budget_unpriced: Literal["block", "allow"] = Field(
        default="block",
        description="What a blocking USD budget does with a model that has no known price: "
        "block (its cost could not be counted, so the limit could not hold), or allow and "
        "note it on the record. Local servers (Ollama, vLLM, ...) are priced 0 and unaffected.",
    )
    budget_output_tokens: int = Field(
        default=4096,
        gt=0,
        description="Output tokens a budget reserves for a request that sets no max_tokens "
        "(or max_completion_tokens, max_output_tokens, num_predict).",
    )
    budget_reservation_ttl_s: float = Field(
        default=600.0,
        gt=0,
        description="Seconds after which a budget reservation whose record never arrived "
        "(a gateway killed mid-request) is freed.",
    )
    budget_timezone: str = Field(
        default="UTC",
        description="Time zone of budgets' calendar windows (day, week, month) when a budget "
        "names none.",
    )
    upstream_timeout: float = Field(
        default=600.0,
        gt=0,
        description="Seconds the upstream may stay silent: before its response headers (the "
        "client gets 504) or mid-response (the answer is cut, recorded as an error).",
    )
    upstream_connect_timeout: float = Field(
        default=10.0, gt=0, description="Seconds to wait for a TCP connection to the upstream."
    )
    inject_stream_usage: bool = Field(
        default=True,
        description="Ask OpenAI-compatible upstreams for a usage chunk on streams and hide it "
        "from clients that did not ask for it.",
    )
    max_body_bytes: int = Field(
        default=32 * 1024 * 1024, gt=0, description="Largest request body accepted (413 above)."
    )
    max_header_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        description="Largest request line and header block accepted (431 above).",
    )
    header_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds a client has to send a request's headers, from connecting or "
        "from its previous request (408, and the connection closed, after that).",
    )
    body_timeout: float = Field(
        default=60.0,
        gt=0,
        description="Seconds a request body may stall before the connection is closed (the "
        "request is recorded as cancelled).",
    )
    max_stored_body_bytes: int = Field(
        default=4 * 1024 * 1024,
        gt=0,
        description="Bodies longer than this are truncated in the store (marked as truncated); "
        "of a longer response the gateway keeps this much and the last 256 KiB (where a "
        "stream's usage is) and forwards the rest to the client without holding it.",
    )
    writer: Literal["embedded", "external", "off"] = Field(
        default="embedded",
        description="Who drains the spool into the store. `heliograph serve` always runs a "
        "writer process beside the gateway workers unless this is off (records then wait in "
        "the spool for the next server with a writer); embedded (a thread inside the app) is "
        "what `heliograph demo` and an app built with create_app use.",
    )
    jobs: Literal["on", "off"] = Field(
        default="on",
        description="The job process `heliograph serve` runs beside the writer (experiment "
        "runs and other background work, queued in the store); off: no job process here, "
        "queued work waits for a server that runs one.",
    )
    online_eval_lag_s: float = Field(
        default=300.0,
        ge=0,
        description="Seconds after a request started before online evaluation rules sample "
        "it: the writer stores a record when its request ends, in batches, so a record that "
        "lands later than this after its start (a longer stream, a store outage) is not "
        "sampled.",
    )
    # Record webhooks (alerts.webhooks): endpoints from config.toml and delivery limits.
    webhooks: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Record webhook endpoints kept in config.toml ([[webhooks]] tables: name, "
        "url, secret, optional filter (the Requests page's parameters), enabled, "
        "include_bodies), synced into the store's default organization at start and marked as "
        "coming from config; as an environment variable, a JSON list of the same objects.",
    )
    webhook_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="Seconds one webhook delivery attempt may take (connect, send, answer) "
        "before it counts as failed and is retried.",
    )
    webhook_retry_hours: float = Field(
        default=24.0,
        gt=0,
        description="Hours a webhook delivery is retried (exponential backoff with jitter) "
        "before it is marked failed in the delivery log.",
    )
    webhook_concurrency: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Webhook deliveries in flight at once per endpoint (per job process).",
    )
    webhook_max_body_bytes: int = Field(
        default=64 * 1024,
        ge=0,
        description="Largest request or response body put in a webhook payload of an "
        "endpoint with include_bodies; a longer one is left out and marked truncated.",
    )
    webhook_log_days: float = Field(
        default=7.0,
        gt=0,
        description="Days finished webhook deliveries (delivered or failed) stay in the "
        "delivery log.",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis for the response cache and rate-limit counters shared by several "
        "replicas, e.g. redis://127.0.0.1:6379/0. Without it they live in the store.",
    )
    auto_migrate: bool = Field(
        default=True, description="Run database migrations when the app starts."
    )
    writer_batch_size: int = Field(
        default=2000, gt=0, description="Most records inserted per transaction."
    )
    writer_processes: int = Field(
        default=2,
        ge=1,
        description="Processes that analyse records in parallel, the writer process "
        "included (1: the writer process alone; 2: it and one helper).",
    )
    writer_poll_interval: float = Field(
        default=0.05,
        gt=0,
        description=(
            "Seconds between spool polls when the spool is idle, or after a drain that stored "
            "less than a quarter batch (so a moderate load goes in as batches of hundreds)."
        ),
    )
    spool_segment_bytes: int = Field(
        default=64 * 1024 * 1024, gt=0, description="Spool file size at which a new one starts."
    )
    key_refresh_interval: float = Field(
        default=2.0, gt=0, description="Seconds between reloads of the API key cache."
    )
    openwebui_jwt_secret: SecretStr | None = Field(
        default=None,
        description="The secret Open WebUI signs its user JWT with "
        "(its FORWARD_USER_INFO_HEADER_JWT_SECRET). When set, the user of a request from Open "
        "WebUI comes only from a verified X-OpenWebUI-User-Jwt; the plain X-OpenWebUI-User-* "
        "headers, which anyone holding a write key can forge, are ignored.",
    )
    openwebui_jwt_failure: Literal["refuse", "record"] = Field(
        default="refuse",
        description="What a request with a bad or expired Open WebUI user JWT gets: refuse "
        "(401 in the protocol's error shape; a forged or misconfigured identity never spends "
        "or pollutes per-user figures) or record (forwarded, its claims recorded with identity "
        "`unverified`).",
    )
    admin_email: str | None = Field(
        default=None,
        description="Email of the dashboard admin created on first start (else admin@localhost).",
    )
    admin_password: SecretStr | None = Field(
        default=None,
        description="Password of that admin; when unset a one-time password is generated and "
        "printed once.",
    )
    session_max_age_hours: float = Field(
        default=168.0, gt=0, description="How long a dashboard login lasts."
    )
    secure_cookies: bool = Field(
        default=False,
        description="Mark dashboard cookies Secure (set when Heliograph is served over HTTPS).",
    )
    demo: bool = Field(
        default=False,
        description="Label the dashboard as a demo fed by the built-in simulated upstream "
        "(set by `heliograph demo`).",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Server log level."
    )
    access_log: bool = Field(default=False, description="Log every HTTP request (slower).")

    # ---- Health checks for orchestrators (heliograph.api.health) ----
    ready_store_grace_s: float = Field(
        default=30.0,
        gt=0,
        description="Seconds the store may stay unreachable before /health/ready fails (the "
        "gateway keeps serving and spooling meanwhile; readiness tells a load balancer to "
        "prefer another replica).",
    )
    ready_max_spool_bytes: int = Field(
        default=1 << 30,
        gt=0,
        description="Spool backlog (bytes the writer has not stored yet) above which "
        "/health/ready fails.",
    )

    # ---- Prometheus metrics (heliograph.telemetry) ----
    metrics_listen: str | None = Field(
        default=None,
        description="host:port of a separate listener serving Prometheus metrics at /metrics "
        "without authentication, for a private scrape network (default: off; /metrics on the "
        "main port always needs a read key).",
        pattern=r"^\S+:\d{1,5}$",
    )
    metrics_max_models: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description="Distinct model names the Prometheus series carry (per writer process "
        'lifetime); further models are counted under model="other".',
    )

    # ---- OpenTelemetry export (heliograph.telemetry.export); the exporter itself reads the
    # standard OTEL_EXPORTER_OTLP_* variables ----
    otel_export: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="Export every gateway record as an OpenTelemetry span (GenAI semantic "
        "conventions) from the writer, over OTLP. auto: on when OTEL_EXPORTER_OTLP_ENDPOINT or "
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set (and OTEL_SDK_DISABLED is not true); on: "
        "always (default endpoint http://localhost:4318); off: never.",
    )
    otel_capture_content: bool = Field(
        default=False,
        description="Put the messages (gen_ai.input.messages, gen_ai.output.messages, "
        "gen_ai.system_instructions) and the request's sampling parameters on exported spans.",
    )
    otel_export_queue: int = Field(
        default=20_000,
        ge=1000,
        description="Spans waiting to be sent at most; when the collector is slower or down, "
        "newer spans are dropped (counted, and logged at most once a minute) rather than "
        "holding up the writer.",
    )

    # ---- Alerts: rules over the rollups and notification channels (heliograph.alerts) ----
    alerts: dict[str, list[dict[str, Any]]] = Field(
        default_factory=dict,
        description="Alert rules and channels from config.toml ([[alerts.rules]] and "
        "[[alerts.channels]] tables, see the Alerts section), synced into the store of the "
        "default organization when `heliograph serve` starts and marked as from config; a "
        'channel\'s value "${NAME}" is read from the environment variable NAME.',
    )
    alerts_interval_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="Seconds between two evaluations of the alert rules by the job process.",
    )
    alerts_send_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=120,
        description="Seconds one notification may take (webhook answer, SMTP session) before "
        "it counts as failed and is retried with exponential backoff.",
    )
    otlp_max_body_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        description="Largest OTLP trace batch accepted on /v1/traces, both as sent and after "
        "gzip is undone (413 above).",
    )
    otlp_max_future_s: float = Field(
        default=3600.0,
        ge=0,
        description="How far in the future an ingested span may start or end (clock skew) "
        "before it is rejected.",
    )

    retention_bodies_days: int | None = Field(
        default=None,
        ge=0,
        le=36500,
        description="Days request and response bodies are kept; older bodies are deleted by "
        "the job process and the records stay. Empty or 0: kept for ever. An organization "
        "may override it (API PUT /api/v1/retention, /settings/retention).",
    )
    retention_records_days: int | None = Field(
        default=None,
        ge=0,
        le=36500,
        description="Days records are kept, with their bodies, properties, feedback, scores, "
        "webhook deliveries and spans; at least retention_bodies_days. Empty or 0: kept for "
        "ever. Rollups (dashboard totals) are not touched by it.",
    )
    retention_rollups_days: int | None = Field(
        default=None,
        ge=0,
        le=36500,
        description="Days the hourly and daily rollups behind the dashboards are kept. Empty "
        "or 0: kept for ever.",
    )
    retention_interval_s: float = Field(
        default=3600.0,
        gt=0,
        le=86400,
        description="Seconds between two retention passes of the job process.",
    )
    retention_batch_size: int = Field(
        default=2000,
        ge=1,
        le=10000,
        description="Records deleted per transaction by retention; the writer gets the store "
        "between two batches.",
    )

    @field_validator(
        "retention_bodies_days", "retention_records_days", "retention_rollups_days", mode="before"
    )
    @classmethod
    def _empty_days(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _check_retention(self) -> Settings:
        bodies, records = self.retention_bodies_days, self.retention_records_days
        if bodies and records and records < bodies:
            raise ValueError(
                f"retention_records_days ({records}) must be at least retention_bodies_days "
                f"({bodies}): a record's body is deleted with it anyway"
            )
        return self

    @field_validator("alerts", mode="before")
    @classmethod
    def _check_alerts(cls, value: Any) -> dict[str, list[dict[str, Any]]]:
        if not value:
            return {}
        from heliograph.alerts.definitions import check_config

        if isinstance(value, str):
            value = orjson.loads(value)
        env = {k: v for k, v in os.environ.items() if k.isupper()}
        return check_config(value, env)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        home = getattr(init_settings, "init_kwargs", {}).get("home")
        config_file = config_path(Path(home) if home else None)
        return (
            init_settings,
            _UpstreamEnvSource(settings_cls),
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=config_file),
        )

    @field_validator("upstreams")
    @classmethod
    def _check_upstream_names(cls, value: dict[str, UpstreamConfig]) -> dict[str, UpstreamConfig]:
        for name in value:
            if name in RESERVED_NAMES or not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}", name):
                raise ValueError(f"upstream name {name!r} is reserved or not a lower-case slug")
        return value

    @field_validator("budgets")
    @classmethod
    def _check_budgets(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from heliograph.budgets.rules import BudgetError, check_budget

        names = set()
        for i, item in enumerate(value):
            try:
                name = check_budget(item)["name"]
            except BudgetError as exc:
                raise ValueError(f"budget {i + 1}: {exc}") from exc
            if name in names:
                raise ValueError(f"budget {i + 1}: the name {name!r} is used twice")
            names.add(name)
        return value

    @field_validator("budget_timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("prices")
    @classmethod
    def _check_prices(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from heliograph.pricing import PriceOverride

        for item in value:
            PriceOverride.from_dict(item)  # raises on unknown keys or bad numbers
        return value

    @field_validator("webhooks")
    @classmethod
    def _check_webhooks(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not value:
            return value
        from heliograph.alerts.webhook_specs import check_config_endpoints

        return check_config_endpoints(value)  # raises naming the entry and field

    def resolved_upstreams(self) -> dict[str, UpstreamConfig]:
        """Built-ins merged with configured upstreams; ones without a URL are left out."""
        merged: dict[str, UpstreamConfig] = {}
        for name in {**BUILTIN_UPSTREAMS, **self.upstreams}:
            base = BUILTIN_UPSTREAMS.get(name, UpstreamConfig())
            mine = self.upstreams.get(name)
            config = base.model_copy(update=mine.model_dump(exclude_unset=True)) if mine else base
            if name == "openai" and self.openai_api_key and config.api_key is None:
                config = config.model_copy(update={"api_key": self.openai_api_key})
            if config.url:
                merged[name] = config.model_copy(update={"url": config.url.rstrip("/")})
        return merged

    @property
    def sqlalchemy_url(self) -> str:
        """The store URL with the driver we ship (psycopg 3 for PostgreSQL)."""
        url = self.database_url or f"sqlite:///{self.home / 'heliograph.db'}"
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url

    @property
    def spool_dir(self) -> Path:
        return self.home / "spool"

    @property
    def metrics_dir(self) -> Path:
        """Where the writer process keeps Prometheus counters for the gateway workers."""
        return self.home / "metrics"

    def base_url(self) -> str:
        """The URL clients use to reach this server."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"

    def redacted(self) -> dict[str, Any]:
        """Settings as a plain dict, with secrets and database passwords hidden."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = "**********" if value.get_secret_value() else ""
            elif name == "upstreams":
                value = {
                    k: {
                        **u.model_dump(exclude_none=True),
                        **({"api_key": "**********"} if u.api_key else {}),
                    }
                    for k, u in self.resolved_upstreams().items()
                }
            elif name == "webhooks":
                value = [{**w, "secret": "**********"} for w in value]
            elif name == "database_url" and value and "@" in value:
                scheme, _, rest = value.partition("://")
                creds, _, host = rest.rpartition("@")
                user = creds.split(":", 1)[0]
                value = f"{scheme}://{user}:***@{host}" if ":" in creds else value
            elif isinstance(value, Path):
                value = str(value)
            out[name] = value
        return out


class HandedSettings(Settings):
    """Settings received whole from a parent process: no variable or file is read again
    (pydantic-settings would otherwise merge this process's environment into them)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def config_path(home: Path | None = None) -> Path:
    """The config file: ``HELIOGRAPH_CONFIG``, else ``config.toml`` in the home directory
    (``--home`` when given, else ``HELIOGRAPH_HOME``, else ~/.heliograph)."""
    named = os.environ.get(ENV_PREFIX + "CONFIG")
    if named:
        return Path(named)
    return (home or default_home()) / "config.toml"


def load_settings(**overrides: Any) -> Settings:
    """Build settings from flags (``overrides``; ``None`` means "not given"), env and file.

    In a process started by ``heliograph serve`` (a gateway worker, the writer) the settings
    are exactly the parent's, handed over whole (see :func:`export_environment`).
    """
    handed = os.environ.get(HANDOFF_ENV)
    if handed and not overrides:
        return HandedSettings(**orjson.loads(handed))
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def settings_table() -> list[tuple[str, str, str, str]]:
    """(env var, type, default, help) rows, for the README and ``heliograph settings``."""
    rows = []
    for name, field in Settings.model_fields.items():
        default = "" if field.default_factory is not None else repr(field.default)
        if name == "home":
            default = "~/.heliograph"
        if get_origin(field.annotation) is Literal:
            annotation = " / ".join(str(a) for a in get_args(field.annotation))
        else:
            annotation = getattr(field.annotation, "__name__", None) or str(field.annotation)
            annotation = annotation.replace("typing.", "").replace("pydantic.types.", "")
        rows.append((ENV_PREFIX + name.upper(), annotation, default, field.description or ""))
    return rows


def settings_markdown() -> str:
    """The settings reference as a Markdown table (the README embeds it; a test checks it)."""
    lines = ["| Environment variable | Type | Default | Meaning |", "|---|---|---|---|"]
    for env, kind, default, help_text in settings_table():
        kind = kind.replace("|", "\\|")
        default = default.replace("|", "\\|")
        lines.append(f"| `{env}` | {kind} | {default} | {help_text} |")
    return "\n".join(lines)


def export_environment(settings: Settings) -> None:
    """Hand the settings to child processes (uvicorn workers, the writer) exactly as they are.

    The whole resolved settings go in one environment variable, so a child never re-reads
    flags, variables or a config file of its own and cannot come to other values: an unset
    field stays unset (an upstream's protocol default must not turn into an explicit
    "openai"), and a file the parent found via ``--home`` is not looked up again elsewhere.
    """
    os.environ[HANDOFF_ENV] = handoff(settings)
    # prometheus_client's multiprocess mode is chosen by this variable when a child imports
    # it: the writer process then keeps its counters in files the gateway workers read.
    os.environ[PROMETHEUS_MULTIPROC_ENV] = str(settings.metrics_dir)


def handoff(settings: Settings) -> str:
    """The settings as JSON, secrets included (only ever put in a child's environment)."""
    out: dict[str, Any] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if name == "upstreams":
            value = {
                upstream: _reveal(config.model_dump(exclude_unset=True))
                for upstream, config in settings.upstreams.items()
            }
        out[name] = _reveal(value)
    return orjson.dumps(out, default=str).decode()


def _reveal(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {k: _reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_reveal(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def otel_environment() -> dict[str, str]:
    """The standard ``OTEL_*`` variables of this process. The OpenTelemetry SDK reads them
    itself; Heliograph looks only at whether an endpoint is set and which protocol is asked
    for (see :mod:`heliograph.telemetry.export`)."""
    return {k: v for k, v in os.environ.items() if k.startswith("OTEL_")}


def client_environment() -> tuple[str | None, str | None]:
    """``HELIOGRAPH_URL`` and ``HELIOGRAPH_ADMIN_KEY``: the server and key that commands
    talking to a running server over its API (``heliograph experiment run``) use when not
    given ``--url`` and ``--key``. They are not server settings."""
    return os.environ.get(ENV_PREFIX + "URL"), os.environ.get(ENV_PREFIX + "ADMIN_KEY")
