"""Which Open WebUI identity to trust: its signed user JWT, or its plain user headers.

Open WebUI tells an upstream who is asking in one of two ways. Plain ``X-OpenWebUI-User-*``
headers can be forged by anyone holding a write key; the HS256 JWT it signs with
``FORWARD_USER_INFO_HEADER_JWT_SECRET`` cannot. With that secret configured here
(``openwebui_jwt_secret``), the user comes only from a verified token and plain user headers
are ignored; a bad or expired token is refused (401) or recorded as ``unverified``, as
``openwebui_jwt_failure`` says. Without the secret, plain headers are recorded as such, and a
token's claims as ``unverified``.

This runs on the request path, after authentication, only for requests that carry Open WebUI
headers. Open WebUI mints a token per request (its ``iat`` is in seconds), so verified tokens
are remembered briefly; the cache is bounded and checks expiry on every hit.
"""

from __future__ import annotations

import time
from typing import Any

import jwt

from heliograph.capture.frames import IdentityFrame, MetaFrame
from heliograph.config import Settings
from heliograph.gateway.headers import IDENTITY_LIMITS

LEEWAY_S = 30  # clock skew tolerated between Open WebUI and us
MAX_CACHED = 1024
_CLAIMS = (("sub", "id"), ("name", "name"), ("email", "email"), ("role", "role"))


class IdentityRefused(Exception):
    """The request's Open WebUI token failed verification and the setting says refuse."""


def _identity(claims: dict[str, Any], src: str) -> IdentityFrame:
    ow: IdentityFrame = {"src": src}
    for claim, field in _CLAIMS:
        value = claims.get(claim)
        if isinstance(value, str | int) and str(value).strip():
            ow[field] = str(value).strip()[: IDENTITY_LIMITS[field]]  # type: ignore[literal-required]
    return ow


class OpenWebUIIdentity:
    """Settles ``md["ow"]`` for one request; one instance per gateway."""

    def __init__(self, settings: Settings) -> None:
        secret = settings.openwebui_jwt_secret
        self.secret = secret.get_secret_value() if secret is not None else None
        self.refuse = settings.openwebui_jwt_failure == "refuse"
        self._verified: dict[str, tuple[float, dict[str, Any]]] = {}

    def settle(self, md: MetaFrame, token: str | None) -> None:
        """Replace what the headers claimed with what can be trusted; raises
        :class:`IdentityRefused` for a bad token when the setting says refuse."""
        plain = md.get("ow")
        if self.secret is None:
            if token is not None:
                claims = _unverified(token)
                if claims is not None:
                    md["ow"] = _with_groups(_identity(claims, "unverified"), plain)
            return
        if token is None:
            md.pop("ow", None)  # plain headers are forgeable once tokens are expected
            return
        claims, problem = self._verify(token)
        if claims is not None:
            md["ow"] = _with_groups(_identity(claims, "jwt"), plain)
            return
        if self.refuse:
            raise IdentityRefused(problem)
        loose = _unverified(token)
        if loose is None:
            md.pop("ow", None)
        else:
            md["ow"] = _identity(loose, "unverified")

    def _verify(self, token: str) -> tuple[dict[str, Any] | None, str]:
        now = time.time()
        hit = self._verified.get(token)
        if hit is not None and hit[0] + LEEWAY_S > now:
            return hit[1], ""
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=["HS256"],
                leeway=LEEWAY_S,
                options={"require": ["exp", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            return None, "Open WebUI's user token (X-OpenWebUI-User-Jwt) has expired."
        except jwt.InvalidTokenError:
            return None, (
                "Open WebUI's user token (X-OpenWebUI-User-Jwt) is not valid: its signature "
                "does not match openwebui_jwt_secret, or it is malformed."
            )
        if not isinstance(claims, dict):
            return None, "Open WebUI's user token carries no claims."
        if len(self._verified) >= MAX_CACHED:
            self._verified.clear()
        exp = claims.get("exp")
        if isinstance(exp, int | float):
            self._verified[token] = (float(exp), claims)
        return claims, ""


def _unverified(token: str) -> dict[str, Any] | None:
    """A token's claims without checking anything (recorded as unverified, never trusted)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return None
    return claims if isinstance(claims, dict) else None


def _with_groups(ow: IdentityFrame, plain: IdentityFrame | None) -> IdentityFrame:
    """Groups travel in custom headers beside the token (it has no groups claim)."""
    if plain is not None:
        if "groups" in plain:
            ow["groups"] = plain["groups"]
        if "group_ids" in plain:
            ow["group_ids"] = plain["group_ids"]
    return ow
