"""Per-request gateway features asked for in headers: cache, retries, rate limits, fallbacks.

Parsed only when a client sends one of these headers (under the ``Helicone-`` or the
``Heliograph-`` prefix), so plain traffic pays nothing. Bad values raise ``FeatureError``,
which the gateway answers with a 400 in the protocol's error shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

DEFAULT_CACHE_MAX_AGE = 7 * 24 * 3600
MAX_CACHE_AGE = 365 * 24 * 3600
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 520, 522, 524, 529})
FALLBACK_STATUSES = frozenset({401, 403, 404, 408, 429, 500, 502, 503, 504, 529})
FEATURE_HEADERS = frozenset(
    {
        "cache-enabled",
        "cache-seed",
        "cache-bucket-max-size",
        "retry-enabled",
        "retry-num",
        "retry-factor",
        "retry-min-timeout",
        "retry-max-timeout",
        "ratelimit-policy",
        "fallbacks",
        "target-url",
    }
)
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age=(\d+)")


class FeatureError(ValueError):
    """A feature header the gateway cannot honour; the client gets a 400."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 5  # retries after the first attempt
    factor: float = 2.0
    min_ms: float = 1000.0
    max_ms: float = 10000.0

    def delay_ms(self, retry: int, retry_after: str | None) -> float:
        """Backoff before retry number ``retry`` (0-based); Retry-After wins, capped."""
        if retry_after:
            try:
                return min(max(float(retry_after) * 1000.0, 0.0), self.max_ms)
            except ValueError:
                pass
        return min(self.min_ms * (self.factor**retry), self.max_ms)


@dataclass(frozen=True, slots=True)
class RateLimitPolicy:
    quota: float
    window_s: int
    unit: str = "request"  # request | cents
    segment: str | None = None  # None (whole org), "user", or a property name
    raw: str = ""


@dataclass(frozen=True, slots=True)
class Fallback:
    upstream: str | None
    target_url: str | None
    on_codes: frozenset[int]
    body_override: dict[str, Any] | None
    headers: tuple[tuple[str, str], ...]


@dataclass(slots=True)
class Features:
    """What one request asked for."""

    cache: bool = False
    cache_seed: str = ""
    cache_bucket: int = 1
    cache_max_age: int = DEFAULT_CACHE_MAX_AGE
    retry: RetryPolicy | None = None
    rate_limit: RateLimitPolicy | None = None
    fallbacks: list[Fallback] = field(default_factory=list)
    target_url: str | None = None


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("true", "1", "yes", "on")


def _number(value: str, name: str, low: float, high: float) -> float:
    try:
        number = float(value)
    except ValueError as exc:
        raise FeatureError(f"{name} must be a number") from exc
    if not low <= number <= high:
        raise FeatureError(f"{name} must be between {low:g} and {high:g}")
    return number


def parse_rate_limit(value: str) -> RateLimitPolicy:
    """``<quota>;w=<seconds>[;u=request|cents][;s=user|<property>]``."""
    parts = [p.strip() for p in value.split(";") if p.strip()]
    if not parts:
        raise FeatureError("rate limit policy is empty")
    quota = _number(parts[0], "rate limit quota", 0, 1e12)
    options: dict[str, str] = {}
    for part in parts[1:]:
        name, sep, item = part.partition("=")
        if not sep or name.strip() not in ("w", "u", "s"):
            raise FeatureError(f"unknown rate limit policy part {part!r}")
        options[name.strip()] = item.strip()
    if "w" not in options:
        raise FeatureError("rate limit policy needs a window: w=<seconds>")
    window = int(_number(options["w"], "rate limit window", 60, 31_536_000))
    unit = options.get("u", "request")
    if unit not in ("request", "cents"):
        raise FeatureError("rate limit unit must be request or cents")
    segment = options.get("s") or None
    if segment is not None and not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", segment):
        raise FeatureError("rate limit segment must be 'user' or a property name")
    return RateLimitPolicy(quota, window, unit, segment.lower() if segment else None, value)


def parse_fallbacks(value: str) -> list[Fallback]:
    """A JSON list of upstream names or objects {upstream|target-url, onCodes, bodyKeyOverride}."""
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise FeatureError("Fallbacks must be a JSON list") from exc
    if not isinstance(doc, list) or not doc or len(doc) > 5:
        raise FeatureError("Fallbacks must be a JSON list of 1 to 5 targets")
    out = []
    for item in doc:
        if isinstance(item, str):
            out.append(Fallback(item, None, FALLBACK_STATUSES, None, ()))
            continue
        if not isinstance(item, dict):
            raise FeatureError("each fallback is an upstream name or an object")
        upstream = item.get("upstream")
        target = item.get("target-url") or item.get("targetUrl")
        if not isinstance(upstream, str | None) or not isinstance(target, str | None):
            raise FeatureError("fallback upstream and target-url must be strings")
        if upstream is None and target is None:
            raise FeatureError("a fallback needs an upstream or a target-url")
        codes = item.get("onCodes")
        if codes is None:
            on_codes = FALLBACK_STATUSES
        elif isinstance(codes, list) and all(isinstance(c, int) for c in codes):
            on_codes = frozenset(codes)
        else:
            raise FeatureError("onCodes must be a list of status codes")
        override = item.get("bodyKeyOverride")
        if override is not None and not isinstance(override, dict):
            raise FeatureError("bodyKeyOverride must be an object")
        headers = item.get("headers") or {}
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise FeatureError("fallback headers must be an object of strings")
        pairs = tuple((k.lower(), v) for k, v in headers.items())
        out.append(Fallback(upstream, target, on_codes, override, pairs))
    return out


def redact_fallbacks(value: str) -> str:
    """The Fallbacks header as stored: header values (often provider keys) hidden."""
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return value
    if isinstance(doc, list):
        for item in doc:
            if isinstance(item, dict) and isinstance(item.get("headers"), dict):
                item["headers"] = {k: "[REDACTED]" for k in item["headers"]}
    return orjson.dumps(doc).decode()


def parse_features(found: dict[str, str], cache_control: str | None) -> Features:
    """Features from the feature headers found (names without prefix, lower case)."""
    features = Features()
    if _truthy(found.get("cache-enabled", "")):
        features.cache = True
        features.cache_seed = found.get("cache-seed", "")
        if "cache-bucket-max-size" in found:
            features.cache_bucket = int(
                _number(found["cache-bucket-max-size"], "Cache-Bucket-Max-Size", 1, 20)
            )
        if cache_control:
            match = _MAX_AGE.search(cache_control)
            if match:
                features.cache_max_age = min(int(match.group(1)), MAX_CACHE_AGE)
    if _truthy(found.get("retry-enabled", "")):
        features.retry = RetryPolicy(
            attempts=int(_number(found.get("retry-num", "5"), "retry-num", 0, 10)),
            factor=_number(found.get("retry-factor", "2"), "retry-factor", 1, 10),
            min_ms=_number(found.get("retry-min-timeout", "1000"), "retry-min-timeout", 0, 600000),
            max_ms=_number(found.get("retry-max-timeout", "10000"), "retry-max-timeout", 0, 600000),
        )
    if "ratelimit-policy" in found:
        features.rate_limit = parse_rate_limit(found["ratelimit-policy"])
    if "fallbacks" in found:
        features.fallbacks = parse_fallbacks(found["fallbacks"])
    if found.get("target-url"):
        features.target_url = found["target-url"].strip()
    return features
