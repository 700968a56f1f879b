"""HMAC-SHA256 signatures on everything Heliograph posts to a receiver (webhooks, channels).

One scheme for every outbound body, so a receiver verifies all of them the same way:
``Heliograph-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``.
The timestamp inside the signed text lets a receiver refuse replays of old deliveries.
Record webhooks also send Helicone's header (``helicone-signature``, the hex HMAC of the
body alone) so receivers written for Helicone keep working.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "Heliograph-Signature"
HELICONE_HEADER = "helicone-signature"


def body_hmac(secret: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of the body alone (Helicone's scheme)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """The value of ``Heliograph-Signature`` for ``body`` sent at ``timestamp``."""
    signed = str(timestamp).encode() + b"." + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: str, body: bytes, header: str, now: int, tolerance_s: int = 300) -> bool:
    """Whether ``header`` is a fresh, valid signature of ``body`` (for receivers and tests)."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        ts = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - ts) > tolerance_s:
        return False
    return hmac.compare_digest(signature(secret, body, ts), header.strip())
