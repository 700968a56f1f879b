"""Retention policies: the server's defaults, an organization's overrides, and the checks.

A limit is a number of days, 1 to 36500, or "never" (kept for ever). The server's defaults
come from settings, where empty and 0 both mean never, so an upgrade never deletes anything
by surprise. An organization's override says, per kind, either a number of days, 0 for an
explicit never (even when the server default deletes), or nothing (null: the server default
applies). Records must not outlive their bodies' limit the other way round: when both are
limits, records_days >= bodies_days, checked on the limits that will apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from heliograph.config import Settings

KINDS = ("bodies_days", "records_days", "rollups_days")
MAX_DAYS = 36500
DAY_MS = 86_400_000


class PolicyError(ValueError):
    """A policy that cannot be applied; the message says which value and why."""


@dataclass(frozen=True)
class Policy:
    """The limits that apply to one organization: days, or None for never, and where each
    came from ("default" or "organization")."""

    bodies_days: int | None
    records_days: int | None
    rollups_days: int | None
    sources: tuple[str, str, str] = ("default", "default", "default")

    def days(self, kind: str) -> int | None:
        value: int | None = getattr(self, kind)
        return value

    def cutoff_ms(self, kind: str, now_ms: int) -> int | None:
        """Rows older than this (ms since the epoch) are due; None: nothing is."""
        days = self.days(kind)
        return None if days is None else now_ms - days * DAY_MS

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {kind: self.days(kind) for kind in KINDS}
        out["sources"] = dict(zip(KINDS, self.sources, strict=True))
        return out


def _never(value: int | None) -> int | None:
    return value or None


def defaults(settings: Settings) -> Policy:
    """The server-wide policy from settings (0 and empty: never)."""
    return Policy(
        _never(settings.retention_bodies_days),
        _never(settings.retention_records_days),
        _never(settings.retention_rollups_days),
    )


def effective(settings: Settings, override: dict[str, Any] | None) -> Policy:
    """The defaults with the organization's override laid over them (NULL: the default)."""
    base = defaults(settings)
    if override is None:
        return base
    values: list[int | None] = []
    sources: list[str] = []
    for kind in KINDS:
        own = override.get(kind)
        if own is None:
            values.append(base.days(kind))
            sources.append("default")
        else:
            values.append(_never(int(own)))
            sources.append("organization")
    return Policy(values[0], values[1], values[2], (sources[0], sources[1], sources[2]))


def check_days(name: str, value: Any) -> int | None:
    """One value of an override: null, 0 (never) or 1..36500 days."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise PolicyError(f"{name} must be a whole number of days, 0 (never) or null (default)")
    if not 0 <= value <= MAX_DAYS:
        raise PolicyError(f"{name} must be between 1 and {MAX_DAYS} days, 0 (never) or null")
    return value


def check_order(policy: Policy) -> None:
    """Records are kept at least as long as bodies: a body outliving its record is absurd."""
    bodies, records = policy.bodies_days, policy.records_days
    if bodies is not None and records is not None and records < bodies:
        where = " (the server default)" if policy.sources[1] == "default" else ""
        raise PolicyError(
            f"records_days ({records}{where}) must be at least bodies_days ({bodies}): "
            "a record's body is deleted with it anyway"
        )


def check_override(settings: Settings, doc: dict[str, Any]) -> dict[str, int | None]:
    """A PUT body (or form) as an override row: every kind present (missing: null), nothing
    else, each value valid, and the resulting policy consistent."""
    unknown = sorted(set(doc) - set(KINDS))
    if unknown:
        raise PolicyError(f"unknown field {unknown[0]!r}: expected {', '.join(KINDS)}")
    days = {kind: check_days(kind, doc.get(kind)) for kind in KINDS}
    check_order(effective(settings, days))
    return days
