"""Error bodies in the OpenAI shape, which every OpenAI-compatible client understands."""

from __future__ import annotations

import orjson

ERROR_TYPES = {
    "invalid_heliograph_key": "authentication_error",
    "insufficient_scope": "permission_error",
    "request_too_large": "invalid_request_error",
    "upstream_timeout": "timeout_error",
    "upstream_unreachable": "api_connection_error",
    "upstream_stream_broken": "api_connection_error",
    "not_found": "invalid_request_error",
}


def error_body(message: str, code: str, param: str | None = None) -> bytes:
    """``{"error": {"message", "type", "param", "code"}}`` as bytes."""
    return orjson.dumps(
        {
            "error": {
                "message": message,
                "type": ERROR_TYPES.get(code, "heliograph_error"),
                "param": param,
                "code": code,
            }
        }
    )
