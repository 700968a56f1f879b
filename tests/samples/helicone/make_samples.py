"""Writes the Helicone export samples in this directory (run it to regenerate them).

The objects follow ``interface HeliconeRequest`` in Helicone's packages/llm-mapper/types.ts
as ``POST /v1/request/query-clickhouse`` fills it (valhalla/jawn/src/lib/stores/request/
request.ts: ClickHouse times in UTC without a zone, ``cost`` in USD, scores a map); the CSV
writer is the dashboard's export button (web/components/shared/themed/table/exportButton.tsx:
nested objects JSON-stringified, then Papa.unparse with CRLF line ends). ``requests.csv`` holds
HeliconeRequest rows; ``dashboard.csv`` and ``dashboard.jsonl`` hold what the Requests page
exports, MappedLLMRequest objects (web/components/templates/requests/RequestsPage.tsx,
packages/llm-mapper/utils/getMappedContent.ts: metaDataFromHeliconeRequest).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

HERE = Path(__file__).parent


def chat(content: str, answer: str, model: str) -> tuple[dict, dict]:
    req = {"model": model, "messages": [{"role": "user", "content": content}]}
    resp = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}}],
    }
    return req, resp


OPENAI_REQ, OPENAI_RESP = chat("What is the capital of France?", "Paris.", "gpt-4o-mini")
OPENAI = {
    "response_id": "5d0f5c4e-7a40-4f0e-a1d4-9a5c1e2b3c4d",
    "response_created_at": "2025-03-10 14:02:03.412",
    "response_body": OPENAI_RESP,
    "response_status": 200,
    "request_id": "0b9e2f43-6d1a-4c33-8f5e-1a2b3c4d5e01",
    "request_body": {**OPENAI_REQ, "stream": True},
    "request_created_at": "2025-03-10 14:02:02.100",
    "request_user_id": "alice@example.com",
    "request_properties": {
        "Helicone-Session-Id": "sess-42",
        "Helicone-Session-Path": "/trip/planning",
        "Helicone-Session-Name": "Trip planner",
        "environment": "production",
        "app": "travel-bot",
    },
    "provider": "OPENAI",
    "delay_ms": 1312,
    "request_model": "gpt-4o-mini",
    "ai_gateway_body_mapping": None,
    "time_to_first_token": 240,
    "total_tokens": 27,
    "completion_tokens": 3,
    "prompt_tokens": 24,
    "prompt_cache_read_tokens": 0,
    "prompt_cache_write_tokens": 0,
    "country_code": "FR",
    "scores": {"accuracy": 92, "helicone-score-feedback": 1},
    "properties": {"environment": "production", "app": "travel-bot"},
    "asset_ids": [],
    "target_url": "https://api.openai.com/v1/chat/completions",
    "cache_reference_id": "00000000-0000-0000-0000-000000000000",
    "request_referrer": None,
    "cache_enabled": False,
    "cost": 0.0000054,
    "prompt_id": None,
    "prompt_version": None,
    "updated_at": "2025-03-10 14:02:05",
    "storage_location": "clickhouse",
    "request_path": "/v1/chat/completions",
}
ANTHROPIC = {
    **OPENAI,
    "response_id": "6e1f6d5f-8b51-4f1f-b2e5-0b6d2f3c4d5e",
    "request_id": "0b9e2f43-6d1a-4c33-8f5e-1a2b3c4d5e02",
    "request_created_at": "2025-03-10 15:00:00.000",
    "response_created_at": "2025-03-10 15:00:02.500",
    "request_body": {
        "model": "claude-3-5-sonnet-20241022",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": "Summarise the plan."}],
    },
    "response_body": {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-3-5-sonnet-20241022",
        "content": [{"type": "text", "text": "A three-day trip."}],
        "usage": {"input_tokens": 1200, "output_tokens": 8},
    },
    "request_user_id": "bob",
    "request_properties": {"Helicone-Session-Id": "sess-42", "app": "travel-bot"},
    "properties": {"app": "travel-bot"},
    "provider": "ANTHROPIC",
    "delay_ms": 2500,
    "request_model": "claude-3-5-sonnet-20241022",
    "time_to_first_token": None,
    "total_tokens": 108,
    "completion_tokens": 8,
    "prompt_tokens": 100,  # Anthropic's input_tokens: the cache reads and writes not included
    "prompt_cache_read_tokens": 1000,
    "prompt_cache_write_tokens": 100,
    "country_code": None,
    "scores": {"helicone-score-feedback": 0},
    "target_url": "https://api.anthropic.com/v1/messages",
    "request_path": "/v1/messages",
    "cost": None,  # no cost: Heliograph prices it
}
ERROR = {
    **OPENAI,
    "response_id": "7f2a7e6a-9c62-4a2a-83f6-1c7e3a4d5e6f",
    "request_id": "0b9e2f43-6d1a-4c33-8f5e-1a2b3c4d5e03",
    "request_created_at": "2025-03-11T09:00:00.000Z",
    "response_created_at": "2025-03-11T09:00:00.300Z",
    "response_status": 429,
    "response_body": {
        "error": {"message": "Rate limit reached for gpt-4o-mini", "type": "requests"}
    },
    "request_user_id": "alice@example.com",
    "request_properties": {},
    "properties": {},
    "delay_ms": 300,
    "time_to_first_token": None,
    "total_tokens": 0,
    "completion_tokens": 0,
    "prompt_tokens": 0,
    "scores": {},
    "cost": 0,
}


def main() -> None:
    page = {"data": [OPENAI, ANTHROPIC, ERROR], "error": None}
    (HERE / "query_page.json").write_text(json.dumps(page, indent=2) + "\n")
    stored_elsewhere = {
        **OPENAI,
        "request_id": "not-a-uuid-123",
        "request_created_at": "2025-03-12 08:00:00",
        "request_body": {
            "helicone_message": "fetching body from signed_url... contact engineering@helicone.ai for more information"
        },
        "response_body": {
            "helicone_message": "fetching body from signed_url... contact engineering@helicone.ai for more information"
        },
        "storage_location": "s3",
        "signed_body_url": "https://s3.example/bodies/x?sig=1",
        "scores": None,
    }
    lines = [
        json.dumps({"data": [stored_elsewhere], "error": None}),
        '{"data": [{"request_id": "broken", ',  # a cut line
        json.dumps({**OPENAI, "request_id": None, "request_created_at": "2025-03-12 08:00:01"}),
        json.dumps(
            {
                **OPENAI,
                "request_id": "0b9e2f43-6d1a-4c33-8f5e-1a2b3c4d5e04",
                "prompt_tokens": "lots",
                "completion_tokens": "n/a",
                "total_tokens": None,
            }
        ),
        json.dumps(
            {
                **OPENAI,
                "request_id": "0b9e2f43-6d1a-4c33-8f5e-1a2b3c4d5e05",
                "request_created_at": "2999-01-01 00:00:00",
            }
        ),
        json.dumps({"data": None, "error": "invalid limit"}),
        json.dumps(
            {
                **OPENAI,
                "request_id": "0b9e2f43-6d1a-4c33-8f5e-1a2b3c4d5e06",
                "request_created_at": "yesterday",
            }
        ),
    ]
    (HERE / "pages.jsonl").write_text("\n".join(lines) + "\n")
    rows = [
        {
            **OPENAI,
            "request_id": "1c0e2f43-6d1a-4c33-8f5e-1a2b3c4d5e11",
            "feedback_rating": True,
            "scores": {"helpfulness": {"value": 4, "valueType": "number"}},
        },
        {
            **ANTHROPIC,
            "request_id": "1c0e2f43-6d1a-4c33-8f5e-1a2b3c4d5e12",
            "feedback_rating": None,
        },
    ]
    _write_csv(HERE / "requests.csv", rows)
    shown = [
        mapped_request(
            {
                **OPENAI,
                "request_id": "3e0e2f43-6d1a-4c33-8f5e-1a2b3c4d5e31",
                "feedback_rating": True,
            }
        ),
        mapped_request({**ERROR, "request_id": "3e0e2f43-6d1a-4c33-8f5e-1a2b3c4d5e32"}),
    ]
    _write_csv(HERE / "dashboard.csv", shown)
    jsonl = [
        mapped_request(
            {**ANTHROPIC, "request_id": "3e0e2f43-6d1a-4c33-8f5e-1a2b3c4d5e41", "cost": 0.00042}
        )
    ]
    (HERE / "dashboard.jsonl").write_text("\n".join(json.dumps(r) for r in jsonl))
    with (HERE / "missing_columns.csv").open("w", newline="") as out:
        out.write("request_id,request_created_at,provider,request_model,response_status\r\n")
        out.write(
            "2d0e2f43-6d1a-4c33-8f5e-1a2b3c4d5e21,2025-03-13 10:00:00,OPENAI,gpt-4o-mini,200\r\n"
        )
        out.write(",2025-03-13 10:00:01,OPENAI,gpt-4o-mini,200\r\n")
        out.write("2d0e2f43-6d1a-4c33-8f5e-1a2b3c4d5e22,2025-03-13 10:00:02\r\n")


def mapped_request(row: dict) -> dict:
    """The Requests page's row for a HeliconeRequest (functions in ``preview`` are dropped
    by JSON.stringify)."""
    status = "success" if row["response_status"] == 200 else "error"
    return {
        "_type": "anthropic-chat" if row["provider"] == "ANTHROPIC" else "openai-chat",
        "id": row["request_id"],
        "schema": {"request": {"model": row["request_model"], "messages": []}},
        "preview": {"request": "...", "response": "...", "concatenatedMessages": []},
        "model": row["request_model"],
        "raw": {"request": row["request_body"], "response": row["response_body"]},
        "heliconeMetadata": {
            "requestId": row["request_id"],
            "countryCode": row["country_code"],
            "cost": row["cost"],
            "createdAt": row["request_created_at"],
            "path": row["request_path"],
            "completionTokens": row["completion_tokens"],
            "promptTokens": row["prompt_tokens"],
            "totalTokens": row["total_tokens"],
            "latency": row["delay_ms"],
            "user": row["request_user_id"],
            "customProperties": row["request_properties"],
            "status": {"statusType": status, "code": row["response_status"]},
            "feedback": {"createdAt": None, "id": None, "rating": row.get("feedback_rating")},
            "provider": row["provider"],
            "timeToFirstToken": row["time_to_first_token"],
            "scores": row["scores"],
        },
    }


def _write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\r\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(v) for k, v in row.items()})


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return value


if __name__ == "__main__":
    main()
