"""Records the store refuses: telling them from an unavailable store, and what is kept of them.

A value the store will never take (out of range, too long for its column, a constraint) fails
the same way on every retry. The writer then inserts the batch record by record and keeps a
refused record as its checked essentials, so one bad record cannot hold back the rest.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import BigInteger, Boolean, Column, Float, Integer, String
from sqlalchemy import exc as sa_exc

from heliograph.store.inserts import REQUESTS
from heliograph.store.schema import requests

# What a refused record keeps: who, when, where to, what came back; each value checked.
KEPT = (
    "id", "org_id", "key_id", "created_at", "kind", "provider", "upstream", "method",
    "endpoint", "model", "stream", "status", "state", "latency_ms", "user_id", "session_id",
)  # fmt: skip
# A kept column whose value does not fit and that cannot be null gets this instead.
_STAND_INS: dict[str, Any] = {"stream": False, "status": 0, "state": "error", "kind": "other"}
_STATES = ("ok", "error", "cancelled", "interrupted")


def refused(exc: BaseException) -> bool:
    """Whether an insert failed on the records themselves, not on the store.

    Data and integrity errors, and values the driver cannot bind, are the records' fault;
    anything else (connection lost, database locked, disk full) means the store is
    unavailable, and the batch is retried as it is.
    """
    if isinstance(
        exc, sa_exc.IntegrityError | sa_exc.DataError | TypeError | ValueError | OverflowError
    ):
        return True
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is installed with the PostgreSQL extra
        return False
    return isinstance(exc, psycopg.DataError | psycopg.IntegrityError)


def fits(column: Column[Any], value: Any) -> bool:
    """Whether either store takes ``value`` into ``column`` (type, range, length, text)."""
    kind = column.type
    if value is None:
        return bool(column.nullable)
    if isinstance(kind, String):
        if type(value) is not str or "\x00" in value:
            return False
        if kind.length is not None and len(value) > kind.length:
            return False
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate
            return False
        return True
    if isinstance(kind, Boolean):
        return type(value) is bool
    if isinstance(kind, Integer):
        limit = 2**63 - 1 if isinstance(kind, BigInteger) else 2**31 - 1
        return type(value) is int and -limit <= value <= limit
    if isinstance(kind, Float):
        return type(value) in (int, float) and math.isfinite(value)
    return False


def salvaged(row: tuple[Any, ...], reason: str, now_ms: int) -> dict[str, Any]:
    """The request row of a refused record, cut to the KEPT columns that fit.

    Bodies, properties and the rest are dropped, and ``error`` says so; the request still
    shows in the list with its time, model, user and status. Raises ValueError when the id
    or organization itself does not fit: such a record cannot be kept at all.
    """
    full = dict(zip(REQUESTS.names, row, strict=True))
    out: dict[str, Any] = {}
    for name in KEPT:
        column = requests.c[name]
        value = full.get(name)
        if fits(column, value):
            out[name] = value
        elif name in ("id", "org_id"):
            raise ValueError(f"a record cannot be kept without a valid {name}")
        elif name == "created_at":
            out[name] = now_ms
        elif column.nullable:
            out[name] = None
        else:
            out[name] = _STAND_INS.get(name, "?")
    if out["state"] not in _STATES:
        out["state"] = "error"
    out["error"] = f"Heliograph could not store this record as received ({reason})."
    return out
