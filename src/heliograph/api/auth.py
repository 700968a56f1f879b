"""Authentication for the REST API: ``Authorization: Bearer <key>`` with the right scope."""

from __future__ import annotations

from starlette.requests import Request

from heliograph.api.responses import ApiError
from heliograph.auth.keys import KeyCache, KeyInfo


def bearer(request: Request) -> str | None:
    value = request.headers.get("authorization", "")
    if value[:7].lower() == "bearer ":
        return value[7:].strip() or None
    return None


async def require(request: Request, action: str) -> KeyInfo:
    """The caller's key if it may perform ``action`` (read, write or admin)."""
    keys: KeyCache = request.app.state.keys
    token = bearer(request)
    info = await keys.lookup(token) if token else None
    if info is None:
        raise ApiError(
            401, "Missing or invalid API key (Authorization: Bearer <key>).", "invalid_key"
        )
    if not info.allows(action):
        raise ApiError(
            403, f"This key's scope ({info.scope}) does not allow {action}.", "insufficient_scope"
        )
    return info
