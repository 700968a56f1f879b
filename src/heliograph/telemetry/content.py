"""Message content on exported spans, only when ``otel_capture_content`` is on.

The GenAI conventions carry prompts and answers as JSON attributes
(``gen_ai.input.messages``, ``gen_ai.output.messages``, ``gen_ai.system_instructions``) in
one shape for every provider: ``{"role", "parts": [{"type": "text", "content"}]}``. The
stored bodies are in each provider's wire format; ``providers.transcript`` already flattens
all of them to role and text, so that is what is sent (tool calls as their text form). The
bodies come from the batch the writer has just inserted, compressed as stored.
"""

from __future__ import annotations

from typing import Any

import orjson
from opentelemetry.util.types import AttributeValue

from heliograph.providers.transcript import output_text, prompt_turns
from heliograph.store.bodies import unpack_body

MAX_ATTRIBUTE_CHARS = 256 * 1024  # a larger message list is left out (and the span says so)
_FINISH_KEYS = ("finish_reason", "stop_reason", "done_reason")


def _doc(data: bytes | None, encoding: str) -> Any:
    try:
        raw = unpack_body(data, encoding)
        return orjson.loads(raw) if raw else None
    except Exception:  # truncated, not JSON, not ours to fix: no content then
        return None


def _text(content: str) -> list[dict[str, str]]:
    return [{"type": "text", "content": content}]


def finish_reason(doc: dict[str, Any]) -> str:
    """The reason generation stopped, in the provider's words ("stop" when none is given)."""
    choices = doc.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else doc
    for source in (first, doc):
        if isinstance(source, dict):
            for key in _FINISH_KEYS:
                if isinstance(source.get(key), str):
                    return str(source[key])
    return "stop"


def input_attributes(doc: Any) -> dict[str, AttributeValue]:
    """System instructions given apart (Anthropic's system, Responses' instructions), the
    input messages, and the sampling parameters the request set."""
    out: dict[str, AttributeValue] = {}
    turns = prompt_turns(doc)
    separate = isinstance(doc, dict) and bool(doc.get("system") or doc.get("instructions"))
    if separate and turns and turns[0][0] == "system":
        out["gen_ai.system_instructions"] = _dump(_text(turns[0][1]))
        turns = turns[1:]
    if turns:
        messages = [{"role": role, "parts": _text(text)} for role, text in turns]
        out["gen_ai.input.messages"] = _dump(messages)
    if isinstance(doc, dict):
        out.update(request_parameters(doc))
    return out


def request_parameters(doc: dict[str, Any]) -> dict[str, AttributeValue]:
    """``gen_ai.request.temperature``, ``top_p`` and ``max_tokens`` (any provider's name)."""
    out: dict[str, AttributeValue] = {}
    found = doc.get("options")  # Ollama's sampling parameters
    options: dict[str, Any] = found if isinstance(found, dict) else {}
    for key in ("temperature", "top_p"):
        value = doc.get(key, options.get(key))
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[f"gen_ai.request.{key}"] = float(value)
    for key in ("max_tokens", "max_completion_tokens", "max_output_tokens", "num_predict"):
        value = doc.get(key, options.get(key))
        if isinstance(value, int) and not isinstance(value, bool):
            out["gen_ai.request.max_tokens"] = value
            break
    return out


def output_attributes(doc: Any) -> dict[str, AttributeValue]:
    if not isinstance(doc, dict) or doc.get("error"):
        return {}
    text = output_text(doc)
    if not text:
        return {}
    reason = finish_reason(doc)
    message = {"role": "assistant", "parts": _text(text), "finish_reason": reason}
    return {"gen_ai.output.messages": _dump([message]), "gen_ai.response.finish_reasons": (reason,)}


def _dump(value: Any) -> str:
    return orjson.dumps(value).decode()


def content_attributes(
    body_row: tuple[Any, ...] | None, operation: str | None
) -> dict[str, AttributeValue]:
    """The content attributes of one record from its packed bodies row
    (request_id, encoding, request_body, response_body, ...); none for embeddings."""
    if body_row is None or operation in (None, "embeddings"):
        return {}
    encoding, request, response = body_row[1], body_row[2], body_row[3]
    out = input_attributes(_doc(request, encoding))
    out.update(output_attributes(_doc(response, encoding)))
    large = [k for k, v in out.items() if isinstance(v, str) and len(v) > MAX_ATTRIBUTE_CHARS]
    for key in large:
        del out[key]
    if large:
        out["heliograph.content_omitted"] = ",".join(large)
    return out
