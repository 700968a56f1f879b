"""Dashboard login sessions, CSRF tokens and the failed-login limiter.

The session cookie holds a random token; the store keeps only its SHA-256, with the user, an
expiry and the session's CSRF token, which every form echoes back. Failed logins are counted
in memory on the app object (limiters per app, no module state), once per email and once per
client address: after ``max_failures`` within ``window_s`` seconds that email, or that
address, is refused until the window passes. The per-address count stops password spraying
(one guess at each of many emails), which the per-email count alone never sees.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy import Engine

from heliograph.auth.users import is_one_time
from heliograph.store import users as user_store

SESSION_COOKIE = "hg_session"
LOGIN_CSRF_COOKIE = "hg_login_csrf"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def tokens_match(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison of CSRF tokens; a missing token never matches."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


@dataclass(frozen=True)
class SessionUser:
    """The logged-in user of one request."""

    id: str
    org_id: str
    email: str
    role: str
    csrf_token: str
    token_hash: str
    must_change_password: bool

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def start_session(engine: Engine, user_id: str, max_age_hours: float) -> str:
    """A new session for the user; returns the cookie value (shown to nobody else)."""
    token = new_token()
    user_store.insert_session(
        engine,
        token_hash=hash_token(token),
        user_id=user_id,
        csrf_token=new_token(),
        max_age_ms=int(max_age_hours * 3_600_000),
    )
    user_store.touch_login(engine, user_id)
    return token


def load_session(engine: Engine, token: str | None) -> SessionUser | None:
    if not token or len(token) > 200:
        return None
    token_hash = hash_token(token)
    row = user_store.session_user(engine, token_hash)
    if row is None:
        return None
    return SessionUser(
        id=row["id"],
        org_id=row["org_id"],
        email=row["email"],
        role=row["role"],
        csrf_token=row["csrf_token"],
        token_hash=token_hash,
        must_change_password=is_one_time(row["password_hash"]),
    )


class LoginLimiter:
    """Counts failed logins per key (an email or a client address).

    Bounded in size: at most ``max_entries`` keys (the least recently failed are dropped
    first) and ``max_failures`` timestamps per key.
    """

    def __init__(
        self, max_failures: int = 5, window_s: float = 900.0, max_entries: int = 10_000
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_entries = max_entries
        self._failures: OrderedDict[str, list[float]] = OrderedDict()

    def _recent(self, key: str, now: float) -> list[float]:
        times = [t for t in self._failures.get(key, []) if now - t < self.window_s]
        if times:
            self._failures[key] = times
        else:
            self._failures.pop(key, None)
        return times

    def retry_after(self, key: str) -> float:
        """Seconds until this key may try again (0 when it may try now)."""
        now = time.monotonic()
        times = self._recent(key, now)
        if len(times) < self.max_failures:
            return 0.0
        return max(0.0, self.window_s - (now - times[-self.max_failures]))

    def failed(self, key: str) -> None:
        now = time.monotonic()
        times = self._recent(key, now)
        times.append(now)
        self._failures[key] = times[-self.max_failures :]
        self._failures.move_to_end(key)
        while len(self._failures) > self.max_entries:
            self._failures.popitem(last=False)

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)

    def __len__(self) -> int:
        return len(self._failures)


def client_key(host: str | None) -> str:
    """The limiter key of a client address: the address itself, or its /64 for IPv6.

    One IPv6 host usually holds a whole /64, so counting single addresses would let it try
    from a fresh address each time.
    """
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:100]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)
