"""Export: every row exactly once, newest first, in flat memory; CSV quoting and formula
defusing; the streamed API endpoint and ``heliograph export`` on both dialects."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import Engine

from conftest import LiveGateway
from heliograph.store import export as export_store
from heliograph.store.engine import make_engine, migrate
from heliograph.store.requests import RequestFilter, to_api
from query_support import insert, many, row

ORG, OTHER = "org-x", "org-y"
N = 5200


def fill(engine: Engine, org: str, other: str, n: int = N) -> list[str]:
    """``n`` rows in ``org`` (ids newest first) and a few in ``other``."""
    rows = list(many(org, n))
    for start in range(0, n, 1000):
        insert(engine, rows[start : start + 1000])
    insert(engine, list(many(other, 10, start=n)))
    ordered = sorted(rows, key=lambda r: (r["created_at"], r["id"]), reverse=True)
    return [r["id"] for r in ordered]


# One full JSONL export of an organization, measured in a fresh interpreter: tracemalloc
# counts every thread's allocations, and a test run's other threads (servers, caches of
# earlier tests) would be measured with the export.
MEASURE = """
import sys, tracemalloc
from heliograph.store import export as export_store
from heliograph.store.engine import make_engine
from heliograph.store.requests import RequestFilter
engine = make_engine(sys.argv[1])
query = export_store.export_query(sys.argv[2], RequestFilter(), include_bodies=False)
tracemalloc.start()
total = lines = 0
for chunk in export_store.export_bytes(engine, query, "jsonl"):
    total += len(chunk)
    lines += chunk.count(b"\\n")
_, peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
print(total, lines, peak)
"""


def measure(engine: Engine, org: str) -> tuple[int, int, int]:
    """(bytes, lines, peak traced memory) of one full JSONL export of ``org``."""
    url = engine.url.render_as_string(hide_password=False)
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, url, org],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    total, lines, peak = (int(v) for v in done.stdout.split())
    return total, lines, peak


def test_every_row_once_in_flat_memory(engine: Engine) -> None:
    expected = fill(engine, ORG, OTHER)
    query = export_store.export_query(ORG, RequestFilter(), include_bodies=False)
    total, lines, peak = measure(engine, ORG)
    assert lines == N
    rows = list(many(ORG, N, start=N + 10))
    for start in range(0, N, 1000):
        insert(engine, rows[start : start + 1000])
    total2, lines2, peak2 = measure(engine, ORG)
    assert lines2 == 2 * N and total2 > 1.9 * total
    # Twice the rows, the same memory: it depends on the batch, not on the export.
    assert peak2 < 1.25 * peak, (peak, peak2)
    assert peak2 < total2 / 2.5, f"peak {peak2} bytes for a {total2}-byte export"
    newest = sorted(rows, key=lambda r: (r["created_at"], r["id"]), reverse=True)
    expected = [r["id"] for r in newest] + expected
    ids = [
        orjson.loads(line)["id"]
        for chunk in export_store.export_bytes(engine, query, "jsonl")
        for line in chunk.splitlines()
    ]
    assert ids == expected  # each exactly once, newest first, ties broken by id

    small = [r["id"] for b in export_store.iter_batches(engine, query, batch=7) for r in b]
    assert small == expected
    f = RequestFilter(model="model-3", properties={"batch": "1"})
    filtered = export_store.export_query(ORG, f, include_bodies=False)
    got = [r for b in export_store.iter_batches(engine, filtered) for r in b]
    assert got and all(r["model"] == "model-3" and r["properties"]["batch"] == "1" for r in got)
    indexes = [*range(N), *range(N + 10, 2 * N + 10)]
    assert len(got) == sum(1 for i in indexes if i % 7 == 3 and i % 5 == 1)


def test_csv_cells(engine: Engine) -> None:
    hostile = row(
        ORG,
        1,
        user_id='=HYPERLINK("http://x")',
        model="-2+3",
        session_id="@SUM(A1)",
        error='line one\nsays "hi", then',
        properties={"note": "+1", "plain": "ok"},
    )
    cheap = row(ORG, 2, model="+x", latency_ms=-1.5, cost_nusd=13_800, cost_known=True)
    insert(engine, [hostile, cheap], bodies=True)
    query = export_store.export_query(ORG, RequestFilter(), include_bodies=True)
    text = b"".join(export_store.export_bytes(engine, query, "csv")).decode()
    table = list(csv.reader(io.StringIO(text)))
    header, first, second = table
    assert tuple(header) == export_store.columns(include_bodies=True)
    rec = dict(zip(header, second, strict=True))
    assert rec["user_id"] == '\'=HYPERLINK("http://x")'
    assert rec["model"] == "'-2+3" and rec["session_id"] == "'@SUM(A1)"
    assert rec["error"] == 'line one\nsays "hi", then'
    assert orjson.loads(rec["properties"]) == {"note": "+1", "plain": "ok"}
    assert orjson.loads(rec["request_body"])["messages"][0]["content"].startswith("prompt")
    assert rec["prompt_text"] == f"user: prompt {rec['id']}" and rec["output_text"] == "'=1+1"
    assert rec["feedback"] == "" and rec["scores"] == "{}" and rec["stream"] == "false"
    rec2 = dict(zip(header, first, strict=True))
    assert rec2["model"] == "'+x" and rec2["latency_ms"] == "-1.5"  # numbers stay numbers
    assert rec2["cost_usd"] == "0.0000138"  # plain decimals: no 1.38e-05 in a spreadsheet


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.38e-05, "0.0000138"),
        (2.5e-10, "0.00000000025"),
        (1e20, "100000000000000000000"),
        (0.0, "0"),
        (12.0, "12"),
        (-3e-07, "-0.0000003"),
        (0.1 + 0.2, "0.30000000000000004"),
    ],
)
def test_csv_money_is_plain_decimals(value: float, text: str) -> None:
    assert export_store.csv_cell(value) == text
    assert float(text) == value  # nothing lost


# Spreadsheets skip leading whitespace and control characters before looking for a formula.
FORMULA_CELLS = [
    "=1+1",
    "+1",
    "-1",
    "@SUM(A1)",
    "\t=1",
    "\r=1",
    '\n=HYPERLINK("http://x")',
    " =1+1",
    "\x00=1",
    "\u00a0=1",
    "\x0b=1",
    "\uff1d1+1",  # a full-width equals sign
]


@pytest.mark.parametrize("text", FORMULA_CELLS)
def test_csv_guards_every_formula_start(text: str) -> None:
    assert export_store.csv_cell(text) == "'" + text
    encoded = export_store.Encoder("csv", False).encode([{"user_id": text, "model": "ok"}])
    cells = next(csv.DictReader(io.StringIO(encoded.decode()), export_store.record_columns()))
    assert cells["user_id"] == "'" + text and cells["model"] == "ok"


def test_csv_leaves_plain_text_alone() -> None:
    for text in ("hello", "é=1", "1+1", "", "'quoted", "Ωmega"):
        assert export_store.csv_cell(text) == text


def test_record_columns_match_the_api() -> None:
    blank: dict[str, Any] = dict.fromkeys(export_store.record_columns())
    blank.update(created_at=0, stream=False)
    assert set(to_api(blank)) | {"feedback", "scores"} == set(export_store.record_columns())
    with pytest.raises(ValueError, match="format"):
        export_store.Encoder("xml", False)
    with pytest.raises(ValueError, match="free-text"):
        export_store.export_query(ORG, RequestFilter(text="x"), False)


def test_export_endpoint_streams_everything(gateway_any: LiveGateway) -> None:
    gw = gateway_any
    engine = make_engine(gw.settings.sqlalchemy_url)
    try:
        expected = fill(engine, gw.org.id, gw.other.id)
    finally:
        engine.dispose()
    headers = {"Authorization": f"Bearer {gw.org.read_key}"}
    url = gw.base_url + "/api/v1/requests/export"
    with httpx.stream("GET", url, headers=headers, timeout=60) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "application/x-ndjson"
        assert "content-length" not in resp.headers  # streamed, not buffered
        assert "attachment" in resp.headers["content-disposition"]
        ids = [orjson.loads(line)["id"] for line in resp.iter_lines() if line]
    assert ids == expected

    params: dict[str, Any] = {"format": "csv", "include_bodies": "true", "model": "model-1"}
    resp = httpx.get(url, headers=headers, params=params, timeout=60)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(resp.text)))
    assert len(table) == sum(1 for i in range(N) if i % 7 == 1)
    assert {r["model"] for r in table} == {"model-1"} and "request_body" in table[0]
    tree = '{"request_response_rmt": {"prompt_tokens": {"lt": 10}}}'
    resp = httpx.get(url, headers=headers, params={"filter": tree}, timeout=60)
    assert sorted(orjson.loads(line)["prompt_tokens"] for line in resp.text.splitlines()) == list(
        range(10)
    )

    bad = [{"format": "xml"}, {"include_bodies": "maybe"}, {"since": "soon"}, {"filter": "{"}]
    for params in bad:
        resp = httpx.get(url, headers=headers, params=params)
        assert resp.status_code == 400, params
    write = {"Authorization": f"Bearer {gw.org.write_key}"}
    assert httpx.get(url, headers=write).status_code == 403
    other = httpx.get(url, headers={"Authorization": f"Bearer {gw.other.read_key}"})
    assert len(other.text.splitlines()) == 10


def test_cli_export(db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    try:
        expected = fill(engine, ORG, OTHER, n=1200)
    finally:
        engine.dispose()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "HELIOGRAPH_HOME": str(tmp_path), "HELIOGRAPH_DATABASE_URL": db_url}
        return subprocess.run(
            [sys.executable, "-m", "heliograph", "export", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    out = tmp_path / "all.jsonl"
    done = run("--org", ORG, "--output", str(out), "--batch-size", "100")
    assert done.returncode == 0, done.stderr
    ids = [orjson.loads(line)["id"] for line in out.read_bytes().splitlines()]
    assert ids == expected
    everyone = run("--format", "csv", "--property", "batch=2", "--model", "model-2")
    assert everyone.returncode == 0, everyone.stderr
    table = list(csv.DictReader(io.StringIO(everyone.stdout)))
    want = sum(1 for i in range(1210) if i % 7 == 2 and i % 5 == 2)
    assert len(table) == want and {r["model"] for r in table} == {"model-2"}
    tree = '{"request_response_rmt": {"user_id": {"equals": "user-3"}}}'
    narrowed = run("--org", ORG, "--filter", tree, "--since", "0", "--status", "200")
    assert narrowed.returncode == 0, narrowed.stderr
    assert len(narrowed.stdout.splitlines()) == sum(1 for i in range(1200) if i % 11 == 3)
    engine = make_engine(db_url)
    try:  # money as a plain decimal in the command's CSV too
        insert(engine, [row(ORG, 9999, model="cheap", cost_nusd=13_800, cost_known=True)])
    finally:
        engine.dispose()
    cheap = run("--org", ORG, "--format", "csv", "--model", "cheap")
    assert cheap.returncode == 0, cheap.stderr
    assert [r["cost_usd"] for r in csv.DictReader(io.StringIO(cheap.stdout))] == ["0.0000138"]
    for args in (["--filter", "{"], ["--since", "soon"], ["--property", "novalue"]):
        failed = run(*args)
        assert failed.returncode == 2 and "Invalid value" in failed.stderr, args
