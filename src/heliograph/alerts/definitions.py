"""What a valid alert rule and a valid notification channel are, checked in one place.

The API, the dashboard's forms and ``config.toml`` all hand definitions to ``check_rule`` and
``check_channel``, so the same mistake gets the same message everywhere: a ``DefinitionError``
naming the field and what it accepts. Stored values come out normalised (a window as seconds,
a filter as the Requests page's parameters, each parsed by the one filter parser).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from heliograph.alerts.metrics import METRICS
from heliograph.evals import online as online_rules
from heliograph.evals.online import RuleError
from heliograph.store import alert_metrics

COMPARISONS = (">", ">=", "<", "<=")
CHANNEL_KINDS = ("webhook", "slack", "discord", "email")
SMTP_SECURITY = ("starttls", "tls", "none")
NAME = re.compile(r"[^\x00-\x1f\x7f]{1,100}")
WINDOW = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
MIN_WINDOW_S, MAX_WINDOW_S = 60, 7 * 86400
MAX_COOLDOWN_S = 7 * 86400
MAX_RECIPIENTS = 50
RULE_FIELDS = (
    *("name", "metric", "filter", "window", "comparison", "threshold"),
    *("min_requests", "cooldown", "channels", "enabled"),
)
CHANNEL_FIELDS = {
    "webhook": ("url", "secret", "timeout_s"),
    "slack": ("url", "timeout_s"),
    "discord": ("url", "timeout_s"),
    "email": ("host", "port", "security", "username", "password", "from", "to", "timeout_s"),
}
SECRET_FIELDS = {
    "webhook": ("secret",),
    "slack": ("url",),
    "discord": ("url",),
    "email": ("password",),
}
ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


class DefinitionError(ValueError):
    """A rule or channel that cannot be saved: ``field`` names what is wrong."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def parse_window(value: object, field: str = "window") -> int:
    """Seconds of a window or cooldown given as seconds or "5m", "1h", "7d"."""
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and (match := WINDOW.match(value)):
        seconds = int(match.group(1)) * UNITS[match.group(2)]
    else:
        raise DefinitionError(field, 'must be seconds or a duration like "5m", "1h", "7d"')
    return seconds


def format_window(seconds: int) -> str:
    """``3600`` -> "1h": the shortest exact spelling."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def check_filter(doc: object) -> dict[str, str]:
    """The Requests page's filter parameters, checked as online evaluation rules check them."""
    try:
        return online_rules.check_filter(doc)
    except RuleError as exc:
        raise DefinitionError(exc.field, exc.problem) from exc


def _number(doc: Mapping[str, Any], field: str, low: float, high: float) -> float:
    value = doc.get(field)
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(float(value)) or not low <= float(value) <= high:  # type: ignore[arg-type]
        raise DefinitionError(field, f"must be a number from {low:g} to {high:g}")
    return float(value)  # type: ignore[arg-type]


def check_rule(
    doc: Mapping[str, Any], channel_ids: Mapping[str, str], current: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A rule as stored. ``channel_ids`` maps the organization's channel names and ids to
    ids (a rule names its channels either way); ``current`` (a PATCH) fills what is not given.
    Raises DefinitionError naming the first bad field and the values it accepts."""
    unknown = sorted(set(doc) - set(RULE_FIELDS))
    if unknown:
        raise DefinitionError(unknown[0], f"unknown field; a rule has {', '.join(RULE_FIELDS)}")
    merged: dict[str, Any] = dict(current or {})
    merged.update(doc)
    name = merged.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name) or not name.strip():
        raise DefinitionError("name", "required: 1 to 100 characters, no control characters")
    metric = merged.get("metric")
    if metric not in METRICS:
        raise DefinitionError("metric", f"must be one of {', '.join(METRICS)}")
    params = check_filter(merged.get("filter"))
    window = parse_window(merged.get("window"), "window")
    if not MIN_WINDOW_S <= window <= MAX_WINDOW_S:
        raise DefinitionError("window", "must be from 1m (60 s) to 7d")
    spec = METRICS[metric]
    if params and not spec.filterable:
        raise DefinitionError("filter", f"{metric} is about the whole installation: no filter")
    raw = spec.raw_only or not alert_metrics.rollup_readable(params)
    if raw and window * 1000 > alert_metrics.RAW_WINDOW_MS:
        raise DefinitionError(
            "window",
            "at most 1h with this metric or filter (read from raw rows); longer windows "
            f"read rollups, which filter only by {', '.join(sorted(alert_metrics.ROLLUP_PARAMS))}",
        )
    if spec.percentile and window >= 3600 and set(params) & {"user_id", "task"}:
        raise DefinitionError(
            "filter", "percentiles per user or task exist only for windows under 1h"
        )
    comparison = merged.get("comparison")
    if comparison not in COMPARISONS:
        raise DefinitionError("comparison", f"must be one of {', '.join(COMPARISONS)}")
    threshold = _number(merged, "threshold", -1e15, 1e15)
    min_requests = merged.get("min_requests", 0)
    if not isinstance(min_requests, int) or isinstance(min_requests, bool) or min_requests < 0:
        raise DefinitionError("min_requests", "must be a whole number, 0 or more")
    cooldown = parse_window(merged.get("cooldown", 0), "cooldown")
    if not 0 <= cooldown <= MAX_COOLDOWN_S:
        raise DefinitionError("cooldown", "must be from 0 to 7d")
    channels = merged.get("channels", [])
    if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
        raise DefinitionError("channels", "must be a list of channel names or ids")
    ids = []
    for ref in channels:
        if ref not in channel_ids:
            known = ", ".join(sorted(n for n in channel_ids if n != channel_ids[n])) or "none"
            raise DefinitionError("channels", f"no channel {ref!r} here (channels: {known})")
        ids.append(channel_ids[ref])
    enabled = merged.get("enabled", True)
    if not isinstance(enabled, bool):
        raise DefinitionError("enabled", "must be true or false")
    return {
        "name": name,
        "metric": metric,
        "filter": params,
        "window_s": window,
        "comparison": comparison,
        "threshold": threshold,
        "min_requests": min_requests,
        "cooldown_s": cooldown,
        "channels": list(dict.fromkeys(ids)),
        "enabled": enabled,
    }


def _url(value: object, field: str) -> str:
    if not isinstance(value, str) or len(value) > 2000:
        raise DefinitionError(field, "required: an http:// or https:// URL")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DefinitionError(field, "must be an http:// or https:// URL")
    return value


def _text(doc: Mapping[str, Any], field: str, *, required: bool = True) -> str | None:
    value = doc.get(field)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 500 or "\n" in value:
        raise DefinitionError(field, "required: a one-line text")
    return value.strip()


def _address(value: object, field: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[^@\s<>,]+@[^@\s<>,]+", value):
        raise DefinitionError(field, "must be an email address like ops@example.com")
    return value


def check_channel(
    doc: Mapping[str, Any], current: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A channel as stored: ``{name, kind, enabled, config, secrets}``. ``current`` (a PATCH,
    as stored) keeps its secrets unless new ones are given; its kind cannot change."""
    kind = doc.get("kind", current["kind"] if current else None)
    if kind not in CHANNEL_KINDS:
        raise DefinitionError("kind", f"must be one of {', '.join(CHANNEL_KINDS)}")
    if current is not None and kind != current["kind"]:
        raise DefinitionError("kind", "cannot change; delete the channel and create another")
    allowed = ("name", "kind", "enabled", *CHANNEL_FIELDS[kind])
    unknown = sorted(set(doc) - set(allowed))
    if unknown:
        raise DefinitionError(
            unknown[0], f"unknown field; a {kind} channel has {', '.join(allowed)}"
        )
    merged: dict[str, Any] = {}
    if current is not None:
        merged.update(name=current["name"], enabled=current["enabled"], **current["config"])
        merged.update(current["secrets"])
    merged.update(
        {k: v.get_secret_value() if isinstance(v, SecretStr) else v for k, v in doc.items()}
    )
    name = merged.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name) or not name.strip():
        raise DefinitionError("name", "required: 1 to 100 characters, no control characters")
    enabled = merged.get("enabled", True)
    if not isinstance(enabled, bool):
        raise DefinitionError("enabled", "must be true or false")
    config: dict[str, Any] = {}
    secrets: dict[str, str] = {}
    timeout = merged.get("timeout_s")
    if timeout is not None:
        config["timeout_s"] = _number(merged, "timeout_s", 0.1, 120)
    if kind in ("webhook", "slack", "discord"):
        url = _url(merged.get("url"), "url")
        (secrets if kind != "webhook" else config)["url"] = url
        if kind == "webhook" and merged.get("secret") is not None:
            secret = merged["secret"]
            if not isinstance(secret, str) or not 8 <= len(secret) <= 500:
                raise DefinitionError("secret", "must be a text of 8 to 500 characters")
            secrets["secret"] = secret
    else:
        config["host"] = _text(merged, "host")
        port = merged.get("port", 587)
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            raise DefinitionError("port", "must be a TCP port from 1 to 65535")
        config["port"] = port
        security = merged.get("security", "starttls")
        if security not in SMTP_SECURITY:
            raise DefinitionError("security", f"must be one of {', '.join(SMTP_SECURITY)}")
        config["security"] = security
        config["username"] = _text(merged, "username", required=False)
        password = merged.get("password")
        if password is not None:
            if not isinstance(password, str) or len(password) > 500:
                raise DefinitionError("password", "must be a text of at most 500 characters")
            secrets["password"] = password
        if config["username"] and "password" not in secrets:
            raise DefinitionError("password", "required with a username (SMTP login)")
        config["from"] = _address(merged.get("from"), "from")
        to = merged.get("to")
        if isinstance(to, str):
            to = [to]
        if not isinstance(to, list) or not 1 <= len(to) <= MAX_RECIPIENTS:
            raise DefinitionError("to", f"must be a list of 1 to {MAX_RECIPIENTS} addresses")
        config["to"] = [_address(a, "to") for a in to]
    return {"name": name, "kind": kind, "enabled": enabled, "config": config, "secrets": secrets}


def hint(secret: str) -> str:
    """A masked hint of a secret: enough to recognise it, never enough to use it."""
    if secret.startswith(("http://", "https://")):
        host = urlsplit(secret).hostname or ""
        return f"{secret.split('://')[0]}://{host}/…{secret[-4:]}" if len(secret) > 24 else "set"
    return f"…{secret[-4:]}" if len(secret) >= 16 else "set"


def _resolve(value: Any, env: Mapping[str, str], field: str) -> Any:
    if isinstance(value, str) and (match := ENV_REF.match(value)):
        name = match.group(1)
        if name not in env:
            raise DefinitionError(field, f"environment variable {name} is not set")
        return env[name]
    return value


def check_config(value: Any, env: Mapping[str, str]) -> dict[str, list[dict[str, Any]]]:
    """The ``alerts`` setting (``[[alerts.rules]]``, ``[[alerts.channels]]``), checked whole:
    "${NAME}" values of channels read from ``env``, secrets kept as ``SecretStr``."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or set(value) - {"rules", "channels"}:
        raise ValueError("alerts: a table with [[alerts.rules]] and [[alerts.channels]] only")
    channels: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    for i, doc in enumerate(value.get("channels") or []):
        where = f"alerts.channels[{i}]"
        if not isinstance(doc, Mapping):
            raise ValueError(f"{where}: must be a table")
        try:
            resolved = {k: _resolve(v, env, k) for k, v in doc.items()}
            checked = check_channel(resolved)
        except DefinitionError as exc:
            raise ValueError(f"{where}.{exc}") from exc
        if checked["name"] in names:
            raise ValueError(f"{where}.name: {checked['name']!r} is used twice")
        names[checked["name"]] = checked["name"]
        secret_keys = SECRET_FIELDS[checked["kind"]]
        channels.append(
            {
                k: SecretStr(v) if k in secret_keys and isinstance(v, str) else v
                for k, v in resolved.items()
            }
        )
    rules: list[dict[str, Any]] = []
    for i, doc in enumerate(value.get("rules") or []):
        where = f"alerts.rules[{i}]"
        if not isinstance(doc, Mapping):
            raise ValueError(f"{where}: must be a table")
        try:
            check_rule(doc, names)
        except DefinitionError as exc:
            raise ValueError(f"{where}.{exc}") from exc
        rules.append(dict(doc))
    return {"rules": rules, "channels": channels}
