"""The query parameters each read endpoint takes; anything else is a 400.

A misspelt or unsupported filter that is silently ignored answers with unfiltered data that
looks filtered (``?model=llama3.2`` on an endpoint without a model filter), which is worse
than an error. Values are checked for NUL characters here too: no stored text holds one
(PostgreSQL cannot), so no filter could match it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection

from starlette.requests import Request

from heliograph.api.responses import ApiError
from heliograph.store import filter_params


def check_params(request: Request, allowed: Collection[str], *, filters: bool = False) -> None:
    """400 for a parameter not in ``allowed`` (nor a filter spelling, when ``filters``)."""
    for name, value in request.query_params.multi_items():
        if "\x00" in name or "\x00" in value:
            raise ApiError(400, "parameters must not contain NUL characters", "invalid_parameter")
        if name in allowed or (filters and filter_params.is_filter_param(name)):
            continue
        known = sorted(allowed) + (filter_params.names() if filters else [])
        raise ApiError(
            400,
            f"unknown parameter {name[:100]!r}; this endpoint takes {', '.join(known)}",
            "unknown_parameter",
        )


def id_param(request: Request, name: str, missing: Callable[[str], ApiError]) -> str:
    """A path parameter that must be an id: anything else names nothing here (``missing``'s
    404, the same answer as an id that does not exist)."""
    value: str = request.path_params[name]
    try:
        uuid.UUID(value)
    except ValueError:
        raise missing(value) from None
    return value
