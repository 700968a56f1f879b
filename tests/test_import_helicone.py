"""`heliograph import helicone`: Helicone's exports (query pages, JSON Lines, the dashboard's
CSV) mapped to records, stored through the store's insert path on both dialects, idempotent."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import zstandard
from click.testing import CliRunner
from sqlalchemy import func, select

from conftest import LiveGateway
from heliograph.cli.main import cli
from heliograph.importing.helicone import Skip, map_request, provider_name, record_id, timestamp_ms
from heliograph.importing.helicone_files import Unreadable, read_file
from heliograph.importing.run import Importer
from heliograph.pricing import PriceBook
from heliograph.store.bodies import BodyPacker
from heliograph.store.engine import make_engine
from heliograph.store.rollups import rollup_hourly
from heliograph.store.schema import request_feedback, request_scores, requests

SAMPLES = Path(__file__).parent / "samples" / "helicone"
PAGE = SAMPLES / "query_page.json"
OPENAI_ID = "0b9e2f43-6d1a-4c33-8f5e-1a2b3c4d5e01"
ANTHROPIC_ID = "0b9e2f43-6d1a-4c33-8f5e-1a2b3c4d5e02"
ERROR_ID = "0b9e2f43-6d1a-4c33-8f5e-1a2b3c4d5e03"
ALL_FILES = [
    PAGE,
    SAMPLES / "pages.jsonl",
    SAMPLES / "requests.csv",
    SAMPLES / "missing_columns.csv",
    SAMPLES / "dashboard.csv",
    SAMPLES / "dashboard.jsonl",
]
STORED = 12  # 3 + 2 + 2 + 2 + 2 + 1 mappable rows in those files


def page_rows() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(PAGE.read_text())["data"]
    return rows


def mapped(row: dict[str, Any], cap: int = 1 << 20, book: PriceBook | None = None) -> Any:
    return map_request(
        row,
        org_id="org",
        now_ms=int(time.time() * 1000),
        pricebook=book,
        packer=BodyPacker(),
        body_cap=cap,
    )


def unpack(data: bytes) -> Any:
    return json.loads(zstandard.ZstdDecompressor().decompress(data))


# --- the mapping -------------------------------------------------------------------------


def test_ids_keep_helicone_uuids_and_derive_stable_ones_otherwise() -> None:
    assert record_id(OPENAI_ID.upper()) == OPENAI_ID
    derived = record_id("not-a-uuid-123")
    assert str(uuid.UUID(derived)) == derived and derived == record_id("not-a-uuid-123")
    assert derived != record_id("not-a-uuid-124")
    for missing in (None, "", "  "):
        with pytest.raises(Skip, match="missing request_id"):
            record_id(missing)


def test_times_are_utc_and_implausible_ones_refused() -> None:
    now = int(time.time() * 1000)
    clickhouse = timestamp_ms("2025-03-10 14:02:02.100", now)
    assert clickhouse == timestamp_ms("2025-03-10T14:02:02.100Z", now) == 1741615322100
    assert timestamp_ms("2025-03-10T16:02:02.100+02:00", now) == clickhouse
    assert timestamp_ms(1741615322, now) == 1741615322000
    assert timestamp_ms("2999-01-01 00:00:00", now) is None
    assert timestamp_ms("1999-01-01", now) is None
    assert timestamp_ms("yesterday", now) is None


def test_provider_names_are_ours() -> None:
    assert provider_name("OPENAI") == "openai"
    assert provider_name("ANTHROPIC") == "anthropic"
    assert provider_name("GOOGLE") == "google"
    assert provider_name("BEDROCK") == "aws"
    assert provider_name("GROQ") == "groq"
    assert provider_name(None) == "openai"


def test_an_openai_request_maps_every_column_helicone_has() -> None:
    out = mapped(page_rows()[0])
    req = out.request
    assert req["id"] == OPENAI_ID and req["source"] == "helicone"
    assert req["created_at"] == 1741615322100
    assert (req["provider"], req["upstream"], req["endpoint"]) == (
        "openai",
        "openai",
        "/chat/completions",  # as the gateway names it
    )
    assert (req["model"], req["response_model"], req["stream"]) == ("gpt-4o-mini",) * 2 + (True,)
    assert (req["status"], req["state"], req["error"]) == (200, "ok", None)
    assert (req["latency_ms"], req["ttft_ms"]) == (1312.0, 240.0)
    assert req["output_tokens_per_s"] == round(3 / ((1312 - 240) / 1000), 2)
    assert (req["prompt_tokens"], req["completion_tokens"], req["total_tokens"]) == (24, 3, 27)
    assert (req["cost_nusd"], req["cost_known"], req["cost_source"]) == (5400, True, "helicone")
    assert req["user_id"] == "alice@example.com"
    assert (req["session_id"], req["session_path"], req["session_name"]) == (
        "sess-42",
        "/trip/planning",
        "Trip planner",
    )
    assert req["properties"] == {"environment": "production", "app": "travel-bot"}
    assert {p["name"]: p["value"] for p in out.properties} == req["properties"]
    assert out.scores == {"accuracy": 92.0}  # the feedback score is feedback, not a score
    assert out.feedback == (True, req["created_at"])
    assert unpack(out.body["request_body"])["messages"][0]["content"].startswith("What is")
    assert unpack(out.body["response_body"])["choices"][0]["message"]["content"] == "Paris."
    assert out.notes == [] and out.ignored == ["country_code"]


def test_without_a_helicone_cost_the_request_is_priced_and_anthropic_tokens_add_the_cache() -> None:
    out = mapped(page_rows()[1], book=PriceBook())
    req = out.request
    assert (req["provider"], req["protocol"]) == ("anthropic", "anthropic")
    assert req["endpoint"] == "/v1/messages"  # Anthropic's own path, as the gateway keeps it
    # Helicone's 100 input tokens leave out 1,000 cache reads and 100 cache writes.
    assert (req["prompt_tokens"], req["cached_tokens"], req["cache_write_tokens"]) == (
        1200,
        1000,
        100,
    )
    assert req["total_tokens"] == 1208
    assert req["cost_known"] and req["cost_source"] not in (None, "helicone")
    assert req["cost_nusd"] == sum(
        req[k]
        for k in (
            "cost_input_nusd",
            "cost_output_nusd",
            "cost_cache_read_nusd",
            "cost_cache_write_nusd",
        )
    )
    assert req["cost_nusd"] > 0
    assert out.feedback == (False, req["created_at"]) and out.scores == {}
    unpriced = mapped(page_rows()[1]).request  # no price book: unknown, never a silent 0
    assert (unpriced["cost_known"], unpriced["cost_nusd"]) == (False, None)


def test_an_error_response_is_an_error_record_with_the_providers_message() -> None:
    req = mapped(page_rows()[2]).request
    assert (req["status"], req["state"]) == (429, "error")
    assert req["error"] == "Rate limit reached for gpt-4o-mini"
    assert req["cost_nusd"] == 0 and req["cost_source"] == "helicone"
    assert req["properties"] is None and req["session_id"] is None


def test_unreadable_fields_are_left_empty_and_named() -> None:
    row = {**page_rows()[0], "prompt_tokens": "lots", "delay_ms": "fast", "scores": {"x": "high"}}
    out = mapped(row)
    assert out.request["prompt_tokens"] is None
    assert out.request["latency_ms"] == 1312.0  # from the response time instead
    assert out.request["completion_tokens"] == 3
    assert {"non-numeric prompt_tokens", "non-numeric delay_ms", "non-numeric score"} <= set(
        out.notes
    )
    for field_name, value, reason in (
        ("request_id", None, "missing request_id"),
        ("request_created_at", None, "missing request_created_at"),
        ("request_created_at", "2999-01-01 00:00:00", "implausible"),
    ):
        with pytest.raises(Skip, match=reason):
            mapped({**page_rows()[0], field_name: value})


def test_a_huge_body_is_capped_like_the_writers() -> None:
    row = {**page_rows()[0], "request_body": {"messages": [{"content": "x" * 3_000_000}]}}
    out = mapped(row, cap=64 * 1024)
    stored = zstandard.ZstdDecompressor().decompress(out.body["request_body"])
    assert len(stored) == 64 * 1024 and out.body["truncated"] is True
    assert "body truncated to the stored-body cap" in out.notes


def test_bodies_helicone_kept_elsewhere_are_not_stored_as_its_placeholder() -> None:
    placeholder = {"helicone_message": "fetching body from signed_url..."}
    out = mapped({**page_rows()[0], "request_body": placeholder, "response_body": placeholder})
    assert out.body["request_body"] is None and out.body["response_body"] is None
    assert any("signed_body_url" in n for n in out.notes)


def test_a_non_uuid_id_is_kept_as_a_property() -> None:
    out = mapped({**page_rows()[0], "request_id": "not-a-uuid-123"})
    assert out.request["properties"]["helicone-request-id"] == "not-a-uuid-123"


# --- reading files -----------------------------------------------------------------------


def test_a_csv_of_request_rows_reads_as_the_objects_it_was_written_from() -> None:
    items = list(read_file(SAMPLES / "requests.csv"))
    assert [i.where for i in items] == ["requests.csv:2", "requests.csv:3"]
    row = items[0].row
    assert row is not None
    assert row["request_properties"]["Helicone-Session-Id"] == "sess-42"
    assert row["scores"] == {"helpfulness": {"value": 4, "valueType": "number"}}
    out = mapped(row)
    assert out.request["prompt_tokens"] == 24 and out.request["cost_nusd"] == 5400
    assert out.scores == {"helpfulness": 4.0} and out.feedback is not None and out.feedback[0]
    assert unpack(out.body["response_body"])["choices"][0]["message"]["content"] == "Paris."


def test_the_dashboards_requests_export_maps_like_the_api_rows() -> None:
    """The Requests page exports MappedLLMRequest objects (CSV or JSONL), not API rows."""
    csv_rows = [i.row for i in read_file(SAMPLES / "dashboard.csv")]
    assert len(csv_rows) == 2 and csv_rows[0] is not None and csv_rows[1] is not None
    shown, api = mapped(csv_rows[0]), mapped(page_rows()[0])
    assert shown.request["id"] == "3e0e2f43-6d1a-4c33-8f5e-1a2b3c4d5e31"
    same = ("created_at", "provider", "endpoint", "model", "response_model", "stream", "status")
    same += ("latency_ms", "ttft_ms", "prompt_tokens", "completion_tokens", "cost_nusd")
    same += ("user_id", "session_id", "session_path", "session_name", "properties")
    assert {k: shown.request[k] for k in same} == {k: api.request[k] for k in same}
    assert shown.scores == api.scores and shown.feedback == api.feedback
    assert unpack(shown.body["response_body"]) == unpack(api.body["response_body"])
    assert shown.ignored == ["country_code"]
    error = mapped(csv_rows[1]).request
    assert (error["status"], error["state"]) == (429, "error")
    (line,) = [i.row for i in read_file(SAMPLES / "dashboard.jsonl")]
    assert line is not None
    anthropic = mapped(line).request
    assert (anthropic["provider"], anthropic["cost_nusd"]) == ("anthropic", 420_000)


def test_json_lines_report_bad_lines_by_number_and_read_the_rest() -> None:
    items = list(read_file(SAMPLES / "pages.jsonl"))
    problems = {i.where: i.problem for i in items if i.row is None}
    assert problems == {
        "pages.jsonl:2": "malformed JSON line",
        "pages.jsonl:6": "page returned an error: invalid limit",
    }
    assert next(i.where for i in items if i.row is not None) == "pages.jsonl:1 record 1"
    assert len([i for i in items if i.row is not None]) == 5


def test_a_page_file_and_a_bare_list_read_the_same(tmp_path: Path) -> None:
    bare = tmp_path / "list.json"
    bare.write_text(json.dumps(page_rows()))
    from_page = [i.row["request_id"] for i in read_file(PAGE) if i.row]
    assert from_page == [i.row["request_id"] for i in read_file(bare) if i.row]
    assert len(from_page) == 3


def test_a_file_that_is_not_an_export_is_unreadable(tmp_path: Path) -> None:
    junk = tmp_path / "junk.json"
    junk.write_bytes(b"\x00\x01 not json\nnor this\n")
    with pytest.raises(Unreadable):
        list(read_file(junk))
    with pytest.raises(Unreadable):
        list(read_file(tmp_path / "absent.json"))


# --- storing -----------------------------------------------------------------------------


def run_import(gw: LiveGateway, files: list[Path], dry_run: bool = False) -> Importer:
    engine = make_engine(gw.settings.sqlalchemy_url)
    try:
        importer = Importer(engine, gw.org.id, PriceBook(), 1 << 20, dry_run=dry_run, batch_size=4)
        importer.run(files)
    finally:
        engine.dispose()
    return importer


def counts(gw: LiveGateway) -> tuple[int, int, int, int]:
    engine = make_engine(gw.settings.sqlalchemy_url)
    try:
        with engine.connect() as conn:
            n = conn.execute(select(func.count()).select_from(requests)).scalar_one()
            fb = conn.execute(select(func.count()).select_from(request_feedback)).scalar_one()
            sc = conn.execute(select(func.count()).select_from(request_scores)).scalar_one()
            rolled = conn.execute(
                select(func.coalesce(func.sum(rollup_hourly.c.requests), 0)).where(
                    rollup_hourly.c.org_id == gw.org.id
                )
            ).scalar_one()
    finally:
        engine.dispose()
    return n, fb, sc, int(rolled)


def test_import_stores_records_readable_through_the_api_once(gateway_any: LiveGateway) -> None:
    gw = gateway_any
    dry = run_import(gw, ALL_FILES, dry_run=True)
    assert dry.summary.stored == STORED and counts(gw) == (0, 0, 0, 0)

    first = run_import(gw, ALL_FILES)
    s = first.summary
    assert (s.read, s.stored, s.present) == (16, STORED, 0)
    assert s.skipped == {
        "missing request_id": 2,
        "bad or implausible request_created_at": 2,
    }
    assert s.bad_input == {"malformed JSON line": 1, "page returned an error: invalid limit": 1}
    stored = counts(gw)
    assert stored[0] == STORED and stored[3] == STORED

    rec = gw.record(OPENAI_ID)
    assert rec["source"] == "helicone" and rec["provider"] == "openai"
    assert (rec["prompt_tokens"], rec["completion_tokens"], rec["total_tokens"]) == (24, 3, 27)
    assert rec["cost_usd"] == pytest.approx(0.0000054) and rec["cost_source"] == "helicone"
    assert rec["user_id"] == "alice@example.com"
    assert (rec["session_id"], rec["session_path"], rec["session_name"]) == (
        "sess-42",
        "/trip/planning",
        "Trip planner",
    )
    assert rec["properties"] == {"environment": "production", "app": "travel-bot"}
    assert rec["scores"] == {"accuracy": 92} and rec["feedback"] is True
    assert rec["request_body"]["messages"][0]["content"] == "What is the capital of France?"
    assert rec["response_body"]["choices"][0]["message"]["content"] == "Paris."
    anthropic = gw.record(ANTHROPIC_ID)
    assert anthropic["feedback"] is False and anthropic["cost_known"] is True
    assert anthropic["cost_source"] != "helicone" and anthropic["cost_usd"] > 0
    assert gw.record(ERROR_ID)["state"] == "error"
    csv_row = gw.record("1c0e2f43-6d1a-4c33-8f5e-1a2b3c4d5e11")
    assert csv_row["scores"] == {"helpfulness": 4} and csv_row["feedback"] is True
    listed = gw.records(source="helicone", user_id="alice@example.com")
    assert OPENAI_ID in {r["id"] for r in listed} and ANTHROPIC_ID not in {r["id"] for r in listed}
    assert {r["id"] for r in gw.records(**{"property.app": "travel-bot"})} >= {
        OPENAI_ID,
        ANTHROPIC_ID,
    }
    assert len(gw.records(session_id="sess-42")) >= 4

    again = run_import(gw, ALL_FILES)
    assert (again.summary.stored, again.summary.present) == (0, STORED)
    assert counts(gw) == stored  # rows, feedback, scores and rollups unchanged


def test_the_command_prints_a_summary_and_fails_only_on_unreadable_input(
    tmp_path: Path, gateway_any: LiveGateway
) -> None:
    gw = gateway_any
    home = tmp_path / "cli-home"
    home.mkdir()
    runner = CliRunner()
    args = ["import", "helicone", "--home", str(home), "--database-url", gw.settings.sqlalchemy_url]
    result = runner.invoke(
        cli, [*args, "--org", gw.org.id, str(PAGE), str(SAMPLES / "pages.jsonl")]
    )
    assert result.exit_code == 0, result.output
    assert (
        "Read 8 Helicone requests: 5 stored, 0 already present (skipped), 3 not mapped. "
        "2 pieces of input held no request." in result.output
    )
    assert "missing request_id: 1 (e.g. pages.jsonl:3)" in result.output
    assert "malformed JSON line: 1 (e.g. pages.jsonl:2)" in result.output
    assert "non-numeric prompt_tokens: 1 (e.g. pages.jsonl:4)" in result.output
    assert "Fields ignored (no Heliograph column): country_code" in result.output
    junk = tmp_path / "junk.json"
    junk.write_bytes(b"\x00 not an export\n")
    result = runner.invoke(cli, [*args, "--org", gw.org.id, str(PAGE), str(junk)])
    assert result.exit_code == 1
    assert "3 already present" in result.output and "Unreadable: " in result.output
    result = runner.invoke(cli, [*args, "--org", "no-such-org", str(PAGE)])
    assert result.exit_code != 0 and "no organization" in result.output
