"""Dashboard accounts: password hashing, creating users and the first admin.

Passwords are hashed with scrypt (``hashlib.scrypt``: N=2**14, r=8, p=1, 16-byte random salt,
32-byte key; about 16 MiB and tens of milliseconds per check), stored as
``scrypt$N$r$p$<salt b64>$<key b64>`` and compared in constant time. A one-time password (the
generated first-start password, or one an admin hands out) carries the prefix ``once:``: it
logs in, but the user must choose a new password before seeing anything else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import Engine

from heliograph.config import Settings
from heliograph.store import orgs
from heliograph.store import users as user_store

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
KEY_BYTES = 32
ONE_TIME_PREFIX = "once:"
ROLES = ("admin", "viewer")
MIN_PASSWORD_LENGTH = 8
DEFAULT_ADMIN_EMAIL = "admin@localhost"
_EMAIL = re.compile(r"^[^@\s<>\"']{1,200}@[^@\s<>\"']{1,100}$")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, one_time: bool = False) -> str:
    salt = secrets.token_bytes(SALT_BYTES)
    key = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=KEY_BYTES
    )
    encoded = f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"
    return ONE_TIME_PREFIX + encoded if one_time else encoded


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored``; malformed hashes never match."""
    stored = stored.removeprefix(ONE_TIME_PREFIX)
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(key)
        actual = hashlib.scrypt(
            password.encode(),
            salt=_unb64(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
            maxmem=256 * 1024 * 1024,
        )
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(actual, expected)


def burn_time(password: str) -> None:
    """Spend as long as a real check, so unknown emails cannot be told apart by timing."""
    hashlib.scrypt(
        password.encode(), salt=b"\0" * SALT_BYTES, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )


def is_one_time(stored: str) -> bool:
    return stored.startswith(ONE_TIME_PREFIX)


def generate_password() -> str:
    return secrets.token_urlsafe(12)


def check_email(email: str) -> str:
    """The normalised (lower-case, trimmed) email; ValueError when it is not one."""
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise ValueError("not a valid email address")
    return email


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"passwords need at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > 1024:
        raise ValueError("password too long")


def create_user(
    engine: Engine,
    *,
    org_id: str,
    email: str,
    role: str,
    password: str,
    one_time: bool = False,
) -> str:
    """Create an account; ValueError for a bad email, role or password, or a taken email."""
    email = check_email(email)
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    check_password(password)
    if user_store.find_by_email(engine, email) is not None:
        raise ValueError(f"a user with email {email} already exists")
    return user_store.insert_user(
        engine,
        org_id=org_id,
        email=email,
        role=role,
        password_hash=hash_password(password, one_time=one_time),
    )


def set_password(engine: Engine, user_id: str, password: str, *, one_time: bool = False) -> None:
    check_password(password)
    user_store.update_password(engine, user_id, hash_password(password, one_time=one_time))


@dataclass(frozen=True)
class AdminCreated:
    email: str
    password: str | None  # the generated one-time password; None when it came from settings


def ensure_admin(engine: Engine, settings: Settings) -> AdminCreated | None:
    """On first start (no dashboard users yet) create the admin of the first organization."""
    if user_store.count_users(engine):
        return None
    org_id = orgs.first_org(engine) or orgs.create_org(engine, "default")
    email = settings.admin_email or DEFAULT_ADMIN_EMAIL
    given = settings.admin_password.get_secret_value() if settings.admin_password else ""
    password = given or generate_password()
    try:
        create_user(
            engine, org_id=org_id, email=email, role="admin", password=password, one_time=not given
        )
    except ValueError as exc:
        raise ValueError(f"cannot create the first admin from HELIOGRAPH_ADMIN_*: {exc}") from exc
    return AdminCreated(check_email(email), None if given else password)
