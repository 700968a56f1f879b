"""Error bodies in each client's own shape: OpenAI, Anthropic and Ollama clients parse these."""

from __future__ import annotations

import orjson

OPENAI_TYPES = {
    "invalid_heliograph_key": "authentication_error",
    "insufficient_scope": "permission_error",
    "request_too_large": "invalid_request_error",
    "upstream_timeout": "timeout_error",
    "upstream_unreachable": "api_connection_error",
    "upstream_stream_broken": "api_connection_error",
    "not_found": "invalid_request_error",
    "invalid_prompt": "invalid_request_error",
    "invalid_inputs": "invalid_request_error",
    "missing_variable": "invalid_request_error",
    "inputs_too_large": "invalid_request_error",
    "invalid_request": "invalid_request_error",
    "invalid_prompt_upstream": "invalid_request_error",
}
ANTHROPIC_TYPES = {
    "invalid_heliograph_key": "authentication_error",
    "insufficient_scope": "permission_error",
    "request_too_large": "request_too_large",
    "upstream_timeout": "timeout_error",
    "upstream_unreachable": "api_error",
    "upstream_stream_broken": "api_error",
    "not_found": "not_found_error",
    "invalid_prompt": "invalid_request_error",
    "invalid_inputs": "invalid_request_error",
    "missing_variable": "invalid_request_error",
    "inputs_too_large": "request_too_large",
    "invalid_request": "invalid_request_error",
    "invalid_prompt_upstream": "invalid_request_error",
}


def error_body(message: str, code: str, protocol: str = "openai") -> bytes:
    """A complete error response body for ``protocol``."""
    if protocol == "anthropic":
        kind = ANTHROPIC_TYPES.get(code, "api_error")
        return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})
    if protocol == "ollama":
        return orjson.dumps({"error": message})
    kind = OPENAI_TYPES.get(code, "heliograph_error")
    return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})


def stream_error_event(message: str, ctype: str, protocol: str) -> bytes | None:
    """What to append to a broken stream so the client's SDK raises a clear error."""
    if ctype.startswith("text/event-stream"):
        if protocol == "anthropic":
            return (
                b"event: error\ndata: "
                + error_body(message, "upstream_stream_broken", protocol)
                + b"\n\n"
            )
        if protocol == "openai":
            return b"data: " + error_body(message, "upstream_stream_broken", protocol) + b"\n\n"
    if "ndjson" in ctype:
        return orjson.dumps({"error": message}) + b"\n"
    return None
