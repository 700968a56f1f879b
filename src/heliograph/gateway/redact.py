"""Secrets out of what is recorded: header values, query strings, paths and free text.

Redaction is by pattern, not by a list of names: any header or parameter whose name suggests
a credential (auth, key, token, secret, password, signature, cookie, ...) is hidden whole, and
any value that looks like a credential (a provider key, a bearer token, a JWT) is hidden
wherever it appears. Names and values are percent-decoded before matching, so ``%6Bey=`` and
an encoded ``%3Fkey=`` in a path are caught too. This runs on the request path for every
header, so the common case - a short, innocent value - costs one regex search.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

REDACTED = "[REDACTED]"

# A header or parameter name that names a credential. "auth" covers authorization,
# authentication, x-auth, cf-aig-authorization, x-ms-authorization-auxiliary, helicone-auth.
_SECRET_NAME = re.compile(
    r"auth|key|token|secret|passw|pwd|credential|signature|^sig$|cookie|session-token|jwt",
    re.IGNORECASE,
)
# Names that match the pattern above but carry no secret (metadata we parse and show).
_PLAIN_NAMES = frozenset({"x-openwebui-auth-type", "keep-alive"})
# Values that look like a credential, whatever they are called.
_SECRET_VALUE = re.compile(
    r"(?:\b(?:bearer|basic|token|bot)\s+[A-Za-z0-9._~+/=-]{8,})"
    r"|(?:\b(?:sk|pk|rk)-[A-Za-z0-9_-]{16,})"  # OpenAI, Anthropic (sk-ant-...), many more
    r"|(?:\b(?:hg|gsk|xai|hf|r8|pplx|fw|nvapi|ghp|gho|ghu|ghs|ghr|github_pat|glpat|xox[abpr])"
    r"[_-][A-Za-z0-9_-]{16,})"
    r"|(?:\bAIza[0-9A-Za-z_-]{30,})"  # Google
    r"|(?:\bA(?:KIA|SIA)[0-9A-Z]{16}\b)"  # AWS access key ids
    r"|(?:\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*)",  # JWT
    re.IGNORECASE,
)
# name=value (or "name": "value") pairs inside free text - URLs, malformed JSON - whose name
# is a credential; a quoted value is taken whole, up to its closing quote.
_SECRET_PAIR = re.compile(
    r"""((?:^|[?&;/,\s{"'])[^=?&;/,\s{"':]*"""
    r"""(?:auth|key|token|secret|passw|pwd|credential|signature|sig)[^=?&;/,\s"':]*"""
    r"""["']?\s*[=:]\s*)("[^"]*"?|'[^']*'?|[^&;#\s"',}]+)""",
    re.IGNORECASE,
)
_QUERY_SPLIT = re.compile(r"[&;]")
# Cheap first look: a credential needs a long token or a name=value pair. Most header values
# (versions, content types, short ids) fail this and are done with in well under a microsecond.
_LONG_TOKEN = re.compile(r"(?<![\w-])[\w-]{16}")
MAX_CACHED_NAMES = 4096
MAX_CACHED_PAIRS = 4096
MAX_CACHED_VALUE = 256


def _decoded(text: str) -> str:
    """``text`` percent-decoded until stable (at most three rounds: double encoding)."""
    for _ in range(3):
        if "%" not in text and "+" not in text:
            break
        decoded = unquote_plus(text)
        if decoded == text:
            break
        text = decoded
    return text


def _might_hold_secret(text: str) -> bool:
    return (
        "=" in text
        or ":" in text
        or "%" in text
        or "+" in text
        or "earer " in text
        or "EARER " in text
        or "asic " in text
        or _LONG_TOKEN.search(text) is not None
    )


def is_secret_name(name: str) -> bool:
    """Whether a header or parameter name suggests a credential (decoded first)."""
    if name in _PLAIN_NAMES:
        return False
    return _SECRET_NAME.search(_decoded(name) if "%" in name else name) is not None


def scrub(text: str) -> str:
    """Free text with credential-looking values and ``secret=...`` pairs hidden."""
    if len(text) < 5 or not _might_hold_secret(text):
        return text
    plain = _decoded(text) if "%" in text else text
    if _SECRET_VALUE.search(plain) is None and _SECRET_PAIR.search(plain) is None:
        return text
    plain = _SECRET_VALUE.sub(REDACTED, plain)
    return _SECRET_PAIR.sub(_hide_pair_value, plain)


def _hide_pair_value(match: re.Match[str]) -> str:
    value = match.group(2)
    quote = value[0] if value[0] in "\"'" else ""
    return (
        match.group(1) + quote + REDACTED + (quote if len(value) > 1 and value[-1] == quote else "")
    )


class HeaderRedactor:
    """Redacts header values, remembering what it learned: which names are secret, and
    which (name, value) pairs are innocent - clients send the same user agent, content type
    and SDK headers on every request, so most values are looked at once. A value that
    needed redacting is never remembered."""

    def __init__(self) -> None:
        self._secret: dict[str, bool] = {}
        self._plain: set[tuple[str, str]] = set()

    def secret_name(self, name: str) -> bool:
        known = self._secret.get(name)
        if known is None:
            if len(self._secret) >= MAX_CACHED_NAMES:  # hostile clients invent names
                self._secret.clear()
            known = self._secret[name] = is_secret_name(name)
        return known

    def value(self, name: str, value: str) -> str:
        """A request header's value as recorded (``name`` is lower case)."""
        pair = (name, value)
        if pair in self._plain:
            return value
        if self.secret_name(name):
            return REDACTED
        shown = scrub(value)
        if shown is value and len(value) <= MAX_CACHED_VALUE:
            if len(self._plain) >= MAX_CACHED_PAIRS:
                self._plain.clear()
            self._plain.add(pair)
        return shown


def redact_header(name: str, value: str) -> str:
    """A request header's value as recorded (``name`` is lower case); uncached."""
    if is_secret_name(name):
        return REDACTED
    return scrub(value)


def redact_query(query: str) -> str:
    """A query string with credential parameters hidden; ``&`` and ``;`` both separate."""
    if not query:
        return query
    parts = []
    for item in _QUERY_SPLIT.split(query):
        name, sep, _value = item.partition("=")
        if sep and is_secret_name(name):
            parts.append(f"{name}={REDACTED}")
        else:
            parts.append(scrub(item))
    return "&".join(parts)


def redact_path(path: str) -> str:
    """A request path as recorded: an encoded query or key inside it is hidden too."""
    return scrub(path)
