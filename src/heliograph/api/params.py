"""The query parameters each read endpoint takes; anything else is a 400.

A misspelt or unsupported filter that is silently ignored answers with unfiltered data that
looks filtered (``?model=llama3.2`` on an endpoint without a model filter), which is worse
than an error. Values are checked for NUL characters here too: no stored text holds one
(PostgreSQL cannot), so no filter could match it.
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.requests import Request

from heliograph.api.responses import ApiError

PROPERTY = "property."


def check_params(request: Request, allowed: Collection[str], *, properties: bool = False) -> None:
    """400 for a parameter not in ``allowed`` (``property.<name>`` too when ``properties``)."""
    for name, value in request.query_params.multi_items():
        if "\x00" in name or "\x00" in value:
            raise ApiError(400, "parameters must not contain NUL characters", "invalid_parameter")
        if name in allowed:
            continue
        if properties and name.startswith(PROPERTY) and len(name) > len(PROPERTY):
            continue
        known = sorted(allowed) + ([PROPERTY + "<name>"] if properties else [])
        raise ApiError(
            400,
            f"unknown parameter {name[:100]!r}; this endpoint takes {', '.join(known)}",
            "unknown_parameter",
        )
