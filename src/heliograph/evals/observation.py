"""What an evaluator sees of one request or experiment cell: an ``Observation``.

``from_record`` builds one from a stored request (the dict ``store.requests.get_request``
returns, or a raw row) and its bodies. It does not parse wire formats itself: a stream stored
as raw events (an interrupted request, say) is reassembled by the protocol's own analyser,
and the answer's text and tool calls come from ``providers.transcript.answer``, so OpenAI
(chat, completions, Responses), Anthropic and Ollama bodies read the same way as everywhere
else in Heliograph.

Money is kept as the store keeps it, integer nano-USD; ``cost_usd`` is the float view.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from heliograph.providers import analyser
from heliograph.providers.analysis import Analysis
from heliograph.providers.transcript import ToolCall, answer, prompt_text

NANO = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Observation:
    """One output with what produced it; every field but ``output`` may be unknown."""

    output: str
    messages: tuple[Mapping[str, Any], ...] = ()  # the input messages as sent
    variables: Mapping[str, str] = field(default_factory=dict)  # prompt inputs
    tool_calls: tuple[ToolCall, ...] = ()
    expected: str | None = None
    latency_ms: float | None = None
    cost_nusd: int | None = None
    model: str | None = None
    prompt: str = ""  # the whole prompt as text when known (system prompt included)
    error: str | None = None  # the request failed: there is no output to evaluate

    @property
    def cost_usd(self) -> float | None:
        return None if self.cost_nusd is None else self.cost_nusd / NANO

    @property
    def input_text(self) -> str:
        """The input as a person (or a judge) reads it: the prompt, else the messages as
        ``role: text`` blocks, else the variables as ``name: value`` lines."""
        if self.prompt:
            return self.prompt
        if self.messages:
            return prompt_text({"messages": list(self.messages)})
        return "\n".join(f"{name}: {value}" for name, value in self.variables.items())


def from_record(
    record: Mapping[str, Any],
    request_body: Any = None,
    response_body: Any = None,
    *,
    expected: str | None = None,
) -> Observation:
    """An observation of a stored request.

    Bodies default to the record's own ``request_body`` and ``response_body``; each may be
    raw bytes as stored, or the decoded JSON (or text) the API returns. Cost is read from
    ``cost_nusd`` (a store row) or ``cost_usd`` (the API's form), and only when known.
    """
    if request_body is None:
        request_body = record.get("request_body")
    if response_body is None:
        response_body = record.get("response_body")
    request = _json(request_body)
    response = _response(record, response_body)
    text, calls = answer(response)
    model = record.get("response_model") or record.get("model")
    return Observation(
        output=text,
        messages=_messages(request),
        variables=_variables(record.get("prompt_inputs")),
        tool_calls=tuple(calls),
        expected=expected,
        latency_ms=_number(record.get("latency_ms")),
        cost_nusd=_cost(record),
        model=model if isinstance(model, str) else None,
        prompt=prompt_text(request),
        error=_error(record, response),
    )


def _json(body: Any) -> Any:
    """Bytes or text holding JSON as the value; anything else as it is."""
    if isinstance(body, bytes | bytearray | memoryview | str):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            return bytes(body).decode("utf-8", "replace") if not isinstance(body, str) else body
    return body


def _response(record: Mapping[str, Any], body: Any) -> Any:
    """The response as one JSON document, a stream stored as raw events reassembled."""
    doc = _json(body)
    if not isinstance(doc, str) or not doc.strip():
        return doc
    raw = doc.encode()
    ctype = _content_type(record, raw)
    if ctype is None:
        return doc
    out = Analysis()
    endpoint = str(record.get("endpoint") or "")
    analyser(str(record.get("protocol") or record.get("provider") or "")).analyse_response(
        endpoint, raw, ctype, [], out
    )
    reassembled = _json(out.response_body) if out.response_body is not None else None
    return reassembled if isinstance(reassembled, dict) else doc


def _content_type(record: Mapping[str, Any], raw: bytes) -> str | None:
    """The stored response's content type, else what its first bytes show it is."""
    headers = record.get("response_headers")
    if isinstance(headers, Mapping):
        for name, value in headers.items():
            if str(name).lower() == "content-type" and isinstance(value, str):
                return value
    start = raw.lstrip()[:6]
    if start.startswith((b"data:", b"event:", b":")):
        return "text/event-stream"
    if start.startswith(b"{"):
        return "application/x-ndjson"
    return None


def _messages(request: Any) -> tuple[Mapping[str, Any], ...]:
    """The chat messages sent (OpenAI, Anthropic and Ollama all call them ``messages``)."""
    messages = request.get("messages") if isinstance(request, dict) else None
    if not isinstance(messages, list):
        return ()
    return tuple(m for m in messages if isinstance(m, dict))


def _variables(inputs: Any) -> dict[str, str]:
    if not isinstance(inputs, Mapping):
        return {}
    return {
        str(k): v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in inputs.items()
    }


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _cost(record: Mapping[str, Any]) -> int | None:
    if "cost_known" in record and not record["cost_known"]:
        return None
    nusd = record.get("cost_nusd")
    if isinstance(nusd, int) and not isinstance(nusd, bool):
        return nusd
    usd = _number(record.get("cost_usd"))
    return None if usd is None else round(usd * NANO)


def _error(record: Mapping[str, Any], response: Any) -> str | None:
    """Why the request has no output to evaluate (failed, cancelled, interrupted), or None."""
    status, state = record.get("status"), record.get("state")
    body_error = None
    if isinstance(response, dict) and response.get("error"):
        error = response["error"]
        body_error = str((error.get("message") if isinstance(error, dict) else None) or error)
    detail = record.get("error") or body_error
    suffix = f": {detail}" if detail else ""
    if state not in (None, "ok"):
        return f"the request is {state}{suffix}"
    if isinstance(status, int) and not 0 < status < 400:
        return f"the request failed with status {status}{suffix}"
    return f"the response is an error{suffix}" if body_error else None
