"""One Helicone request, as Heliograph's rows: the record, its bodies, properties, scores.

The shapes come from Helicone's public source (github.com/Helicone/helicone):

- ``packages/llm-mapper/types.ts``, ``interface HeliconeRequest``: the objects that
  ``POST /v1/request/query`` and ``POST /v1/request/query-clickhouse`` return
  (``valhalla/jawn/src/controllers/public/requestController.ts``, typed
  ``Result<HeliconeRequest[], string>``, i.e. ``{"data": [...], "error": null}``);
- ``web/components/shared/themed/table/exportButton.tsx``: the dashboard's export, as JSONL,
  or as CSV with each nested object JSON-stringified before ``Papa.unparse``. The Requests
  page (``web/components/templates/requests/RequestsPage.tsx``, ``exportData``) hands it
  ``MappedLLMRequest`` objects (``id``, ``model``, ``raw.request``/``raw.response``,
  ``heliconeMetadata``), built by ``metaDataFromHeliconeRequest`` in
  ``packages/llm-mapper/utils/getMappedContent.ts``: :func:`from_mapped` turns them back;
- feedback is both ``feedback_rating`` and the score ``helicone-score-feedback`` (1 or 0), as
  ``valhalla/jawn/src/managers/score/ScoreManager.ts`` writes it;
- sessions are the ``Helicone-Session-Id``/``-Path``/``-Name`` request properties.

A row that cannot be a record (no id, no usable time) raises :class:`Skip`; a field that cannot
be read is left empty and named in ``notes``, so the summary can say what was lost.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from heliograph.capture.enrich import UNKNOWN_COST, cost_columns
from heliograph.capture.record import clamp_int, clean, normalise_model, strip_inline_media
from heliograph.pricing import PriceBook
from heliograph.providers import error_message
from heliograph.providers.analysis import Analysis
from heliograph.store.bodies import ENCODING, BodyPacker

SOURCE = "helicone"
# Deterministic ids for Helicone ids that are not UUIDs: importing twice gives the same id.
ID_NAMESPACE = uuid.UUID("6f1d2c8e-5b0a-4c57-9a43-1e2f3a4b5c6d")
FEEDBACK_SCORE = "helicone-score-feedback"
ORIGINAL_ID = "helicone-request-id"  # the property that keeps an id that was not a UUID
SESSION_KEYS = {
    "helicone-session-id": "session_id",
    "helicone-session-path": "session_path",
    "helicone-session-name": "session_name",
}
# Helicone's provider names (ProviderName in packages/cost/providers/mappings.ts) where ours
# (the price catalog's) differ from the lower-cased name.
PROVIDERS = {
    "GOOGLE": "google",
    "GEMINI": "google",
    "VERTEX": "google",
    "AWS": "aws",
    "BEDROCK": "aws",
    "X": "x-ai",
    "XAI": "x-ai",
    "TOGETHER": "together",
    "TOGETHERAI": "together",
    "MISTRAL": "mistral",
    "AZURE": "azure",
    "LOCAL": "ollama",
}
# Fields read into the record, and fields knowingly left out (no column for them); any
# other field with a value is reported as ignored.
READ = frozenset(
    [
        "request_id",
        "request_created_at",
        "request_body",
        "response_body",
        "response_status",
        "response_created_at",
        "delay_ms",
        "time_to_first_token",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "prompt_cache_read_tokens",
        "prompt_cache_write_tokens",
        "cost",
        "costUSD",
        "model",
        "request_model",
        "response_model",
        "model_override",
        "provider",
        "request_user_id",
        "request_properties",
        "properties",
        "scores",
        "feedback_rating",
        "feedback_created_at",
        "request_path",
        "target_url",
        "cache_reference_id",
    ]
)
HELICONE_INTERNAL = frozenset(
    [
        "response_id",
        "feedback_id",
        "llmSchema",
        "signed_body_url",
        "updated_at",
        "storage_location",
        "ai_gateway_body_mapping",
        "helicone_user",
        "cache_enabled",
        "request_feedback",
    ]
)
DEFAULT_UUID = "00000000-0000-0000-0000-000000000000"
FUTURE_SLACK_MS = 24 * 3600 * 1000
EARLIEST_MS = 1_577_836_800_000  # 2020-01-01: before any Helicone export


class Skip(Exception):
    """This row cannot be a record; the message is the reason the summary counts."""


@dataclass(slots=True)
class Mapped:
    """The rows of one imported request, and what of it could not be read."""

    request: dict[str, Any]
    body: dict[str, Any]
    properties: list[dict[str, Any]]
    scores: dict[str, float]
    feedback: tuple[bool, int] | None  # rating, when
    notes: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # fields with values and no column


def from_mapped(row: dict[str, Any]) -> dict[str, Any]:
    """A dashboard export row (``MappedLLMRequest``) as the ``HeliconeRequest`` it was
    built from; any other row as it is."""
    meta = _json(row.get("heliconeMetadata"))
    if not isinstance(meta, dict):
        return row
    raw = _json(row.get("raw"))
    raw = raw if isinstance(raw, dict) else {}
    status = meta.get("status")
    feedback = meta.get("feedback")
    feedback = feedback if isinstance(feedback, dict) else {}
    out = {name: meta.get(key) for key, name in _METADATA.items()}
    return {
        **out,
        "request_id": meta.get("requestId") or row.get("id"),
        "response_status": status.get("code") if isinstance(status, dict) else status,
        "feedback_rating": feedback.get("rating"),
        "feedback_created_at": feedback.get("createdAt"),
        "request_model": row.get("model"),
        "request_body": raw.get("request"),
        "response_body": raw.get("response"),
    }


_METADATA = {  # heliconeMetadata key -> HeliconeRequest field
    "createdAt": "request_created_at",
    "path": "request_path",
    "countryCode": "country_code",
    "totalTokens": "total_tokens",
    "promptTokens": "prompt_tokens",
    "completionTokens": "completion_tokens",
    "promptCacheWriteTokens": "prompt_cache_write_tokens",
    "promptCacheReadTokens": "prompt_cache_read_tokens",
    "latency": "delay_ms",
    "user": "request_user_id",
    "customProperties": "request_properties",
    "cost": "cost",
    "provider": "provider",
    "timeToFirstToken": "time_to_first_token",
    "scores": "scores",
    "targetUrl": "target_url",
    "promptId": "prompt_id",
    "promptVersion": "prompt_version",
    "requestReferrer": "request_referrer",
    "cacheReferenceId": "cache_reference_id",
}


def record_id(raw: Any) -> str:
    """Helicone's id as ours: the UUID itself, else a UUID derived from it (stable)."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise Skip("missing request_id")
    text = str(raw).strip()
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return str(uuid.uuid5(ID_NAMESPACE, text))


def timestamp_ms(raw: Any, now_ms: int) -> int | None:
    """Unix milliseconds of an ISO time (ClickHouse's "2024-05-01 12:00:00.123" is UTC) or a
    number of seconds or milliseconds; None if unreadable or implausible."""
    if raw is None or raw == "":
        return None
    value: float
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        value = float(raw) if raw > 1e11 else float(raw) * 1000
    else:
        try:
            parsed = datetime.fromisoformat(str(raw).strip().replace(" ", "T", 1))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        value = parsed.timestamp() * 1000
    if not math.isfinite(value) or value < EARLIEST_MS or value > now_ms + FUTURE_SLACK_MS:
        return None
    return int(value)


def provider_name(raw: Any) -> str:
    """Helicone's provider (OPENAI, ANTHROPIC, ...) as Heliograph names it (openai, ...)."""
    text = str(raw or "").strip()
    if not text:
        return "openai"
    return PROVIDERS.get(text.upper(), text.lower())[:64]


def _number(row: dict[str, Any], name: str, notes: list[str]) -> float | None:
    raw = row.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        notes.append(f"non-numeric {name}")
        return None
    if not math.isfinite(value) or value < 0:
        notes.append(f"non-numeric {name}")
        return None
    return value


def _tokens(row: dict[str, Any], name: str, notes: list[str]) -> int | None:
    value = _number(row, name, notes)
    return None if value is None else clamp_int(int(value))


def _json(value: Any) -> Any:
    """A nested value that may arrive as JSON text (CSV cells, double-encoded bodies)."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _body_bytes(value: Any) -> bytes | None:
    if value is None or _placeholder(value):
        return None
    if isinstance(value, str):
        return value.encode("utf-8", "replace")
    return orjson.dumps(value)


def _placeholder(value: Any) -> bool:
    """Helicone's stand-in for a body kept in its object storage (only a signed URL)."""
    return isinstance(value, dict) and list(value) == ["helicone_message"]


def split_properties(raw: Any, notes: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """(session columns, other properties) from Helicone's request_properties."""
    raw = _json(raw)
    if raw is None:
        return {}, {}
    if not isinstance(raw, dict):
        notes.append("request_properties not an object")
        return {}, {}
    session: dict[str, str] = {}
    props: dict[str, str] = {}
    for key, value in raw.items():
        if value is None:
            continue
        column = SESSION_KEYS.get(str(key).lower())
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
        if column:
            session[column] = str(clean(text, 255))
        else:
            props[str(clean(str(key), 255))] = str(clean(text, 1000))
    return session, props


def split_scores(raw: Any, notes: list[str]) -> tuple[dict[str, float], bool | None]:
    """(named scores, feedback from the feedback score) from Helicone's ``scores``."""
    raw = _json(raw)
    if raw is None:
        return {}, None
    if not isinstance(raw, dict):
        notes.append("scores not an object")
        return {}, None
    scores: dict[str, float] = {}
    feedback: bool | None = None
    for name, value in raw.items():
        if isinstance(value, dict):  # {"value": 3, "valueType": "number"}
            value = value.get("value")
        if isinstance(value, bool):
            value = 1.0 if value else 0.0
        try:
            number = float(value)
        except (TypeError, ValueError):
            notes.append("non-numeric score")
            continue
        if not math.isfinite(number):
            notes.append("non-numeric score")
            continue
        if name == FEEDBACK_SCORE:
            feedback = number >= 1
        else:
            scores[str(clean(str(name), 255))] = number
    return scores, feedback


def _rating(raw: Any) -> bool | None:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.lower() in ("true", "false", "1", "0"):
        return raw.lower() in ("true", "1")
    if isinstance(raw, int | float):
        return bool(raw)
    return None


def _endpoint(row: dict[str, Any], provider: str) -> str:
    path = row.get("request_path")
    if isinstance(path, str) and path.startswith("http"):
        path = "/" + path.split("://", 1)[1].split("/", 1)[-1]
    if not path and isinstance(row.get("target_url"), str):
        target = str(row["target_url"])
        path = "/" + target.split("://", 1)[-1].split("/", 1)[-1] if "/" in target else None
    path = str(clean(str(path or "/"), 255)).split("?", 1)[0] or "/"
    if provider != "anthropic" and path.startswith("/v1/"):
        path = path[3:]  # the gateway's OpenAI-protocol endpoints are named without /v1
    return path


def _state(status: int, response: Any) -> tuple[str, str | None]:
    if 0 < status < 400:
        return "ok", None
    if status <= 0:
        return "error", f"Helicone recorded no response (status {status})"
    body = _body_bytes(response)
    return "error", (error_message(body) if body else None) or f"HTTP {status}"


def map_request(
    row: dict[str, Any],
    *,
    org_id: str,
    now_ms: int,
    pricebook: PriceBook | None,
    packer: BodyPacker,
    body_cap: int,
) -> Mapped:
    """The Heliograph rows of one Helicone request (raises :class:`Skip` if there are none)."""
    notes: list[str] = []
    row = from_mapped(row)
    rid = record_id(row.get("request_id"))
    if row.get("request_created_at") in (None, ""):
        raise Skip("missing request_created_at")
    created = timestamp_ms(row.get("request_created_at"), now_ms)
    if created is None:
        raise Skip("bad or implausible request_created_at")
    provider = provider_name(row.get("provider"))
    request_body = _json(row.get("request_body"))
    response_body = _json(row.get("response_body"))
    status = int(_number(row, "response_status", notes) or 0)
    state, error = _state(status, response_body)
    latency = _number(row, "delay_ms", notes)
    if latency is None:
        answered = timestamp_ms(row.get("response_created_at"), now_ms)
        latency = float(answered - created) if answered and answered >= created else None
    ttft = _number(row, "time_to_first_token", notes)
    analysis = Analysis(kind="llm")
    model = row.get("request_model") or row.get("model")
    analysis.model = clean(normalise_model(str(model)), 255) if model else None
    rmodel = row.get("response_model")
    if (
        not rmodel
        and isinstance(response_body, dict)
        and isinstance(response_body.get("model"), str)
    ):
        rmodel = response_body["model"]  # query-clickhouse leaves response_model out
    analysis.response_model = clean(normalise_model(str(rmodel)), 255) if rmodel else None
    analysis.prompt_tokens = _tokens(row, "prompt_tokens", notes)
    analysis.completion_tokens = _tokens(row, "completion_tokens", notes)
    analysis.total_tokens = _tokens(row, "total_tokens", notes)
    if analysis.total_tokens is None and analysis.prompt_tokens is not None:
        analysis.total_tokens = analysis.prompt_tokens + (analysis.completion_tokens or 0)
    analysis.cached_tokens = _tokens(row, "prompt_cache_read_tokens", notes)
    analysis.cache_write_tokens = _tokens(row, "prompt_cache_write_tokens", notes)
    if provider == "anthropic" and analysis.prompt_tokens is not None:
        # Helicone keeps Anthropic's input_tokens, which leave out the cache reads and
        # writes; Heliograph's prompt tokens count them (as its Anthropic analyser does).
        cached = (analysis.cached_tokens or 0) + (analysis.cache_write_tokens or 0)
        analysis.prompt_tokens = clamp_int(analysis.prompt_tokens + cached)
        analysis.total_tokens = clamp_int(
            (analysis.prompt_tokens or 0) + (analysis.completion_tokens or 0)
        )
    stream = isinstance(request_body, dict) and request_body.get("stream") is True
    costs = _costs(row, analysis, pricebook, provider, created, latency, notes)
    session, props = split_properties(row.get("request_properties"), notes)
    if not props and isinstance(_json(row.get("properties")), dict):
        props = split_properties(row.get("properties"), notes)[1]
    if rid != str(row.get("request_id")).strip().lower():  # not a UUID: keep it findable
        props[ORIGINAL_ID] = str(clean(str(row["request_id"]), 1000))
    scores, score_feedback = split_scores(row.get("scores"), notes)
    rating = _rating(row.get("feedback_rating"))
    rating = score_feedback if rating is None else rating
    when = timestamp_ms(row.get("feedback_created_at"), now_ms) or created
    user = row.get("request_user_id") or None
    override = row.get("model_override") or None
    cache_ref = row.get("cache_reference_id")
    tokens_per_s = None
    if analysis.completion_tokens and latency:
        window = latency - ttft if stream and ttft is not None and latency > ttft else latency
        tokens_per_s = round(analysis.completion_tokens / (window / 1000.0), 2)
    request = {
        "id": rid,
        "org_id": org_id,
        "key_id": None,
        "created_at": created,
        "kind": "llm",
        "provider": provider,
        "upstream": provider,
        "method": "POST",
        "endpoint": _endpoint(row, provider),
        "model": analysis.model,
        "response_model": analysis.response_model,
        "stream": stream,
        "status": max(status, 0),
        "state": state,
        "error": clean(error, 4000),
        "latency_ms": latency,
        "ttft_ms": ttft,
        "output_tokens_per_s": tokens_per_s,
        "prompt_tokens": analysis.prompt_tokens,
        "completion_tokens": analysis.completion_tokens,
        "total_tokens": clamp_int(analysis.total_tokens),
        "cached_tokens": analysis.cached_tokens,
        "reasoning_tokens": None,
        "user_id": clean(str(user), 255) if user else None,
        "session_id": session.get("session_id"),
        "session_path": session.get("session_path"),
        "session_name": session.get("session_name"),
        "properties": props or None,
        "protocol": "anthropic" if provider == "anthropic" else "openai",
        "cache_write_tokens": analysis.cache_write_tokens,
        "tokens_estimated": False,
        **costs,
        "cache_hit": bool(cache_ref) and cache_ref != DEFAULT_UUID,
        "retries": 0,
        "model_override": clean(str(override), 255) if override else None,
        "source": SOURCE,
    }
    return Mapped(
        request=request,
        body={
            **_body_row(rid, request_body, response_body, packer, body_cap, notes),
            "created_at": created,
        },
        properties=[
            {"request_id": rid, "name": k, "value": v, "org_id": org_id} for k, v in props.items()
        ],
        scores=scores,
        feedback=None if rating is None else (rating, when),
        notes=notes,
        ignored=sorted(
            k
            for k, v in row.items()
            if k not in READ and k not in HELICONE_INTERNAL and v not in (None, "", [], {})
        ),
    )


def _costs(
    row: dict[str, Any],
    analysis: Analysis,
    pricebook: PriceBook | None,
    provider: str,
    created: int,
    latency: float | None,
    notes: list[str],
) -> dict[str, Any]:
    """Helicone's cost (USD) in nano-USD, marked "helicone"; without one, our own price."""
    usd = _number(row, "costUSD", notes)
    if usd is None:
        usd = _number(row, "cost", notes)
    if usd is not None:
        return {
            **UNKNOWN_COST,
            "cost_nusd": round(usd * 1e9),
            "cost_known": True,
            "cost_source": SOURCE,
        }
    if analysis.prompt_tokens is None and analysis.completion_tokens is None:
        return dict(UNKNOWN_COST)
    return cost_columns(
        analysis,
        pricebook,
        provider=provider,
        upstream=provider,
        model_override=row.get("model_override") or None,
        created_ms=created,
        latency_ms=latency,
        cache_hit=False,
    )


def _body_row(
    rid: str,
    request_body: Any,
    response_body: Any,
    packer: BodyPacker,
    cap: int,
    notes: list[str],
) -> dict[str, Any]:
    """Both bodies as the writer stores them: media stripped, capped, compressed."""
    req = _body_bytes(request_body)
    resp = _body_bytes(response_body)
    if _placeholder(request_body) or _placeholder(response_body):
        notes.append("body not in the export (Helicone kept it behind signed_body_url)")
    req_packed, req_cut = packer.pack(strip_inline_media(req) if req else req, cap)
    resp_packed, resp_cut = packer.pack(strip_inline_media(resp) if resp else resp, cap)
    if req_cut or resp_cut:
        notes.append("body truncated to the stored-body cap")
    return {
        "request_id": rid,
        "encoding": ENCODING,
        "request_body": req_packed,
        "response_body": resp_packed,
        "request_headers": {"request": [], "query": None, "response": []},
        "truncated": req_cut or resp_cut,
    }
