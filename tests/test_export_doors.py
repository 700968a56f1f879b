"""One export, three doors: the dashboard's /requests/export.*, the API's export and
``heliograph export`` write the same columns in the same order and the same cells (plain
decimals, lowercase booleans, formulas defused), with or without prompt and output text;
on both dialects. The text itself (any wire format) is ``test_transcript``'s."""

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

from conftest import LiveGateway
from heliograph.store import export as export_store
from heliograph.store.engine import make_engine
from query_support import insert, row
from web_support import WebClient, add_user

EMAIL = "exporter@example.com"


def _rows(org: str) -> list[dict[str, Any]]:
    return [
        row(
            org,
            1,
            model="gpt-4o-mini",
            stream=True,
            cost_nusd=13_800,
            cost_known=True,
            latency_ms=0.00002,
            prompt_tokens=12,
            completion_tokens=3,
            total_tokens=15,
            user_id="=HYPERLINK(1)",
            properties={"team": "-red"},
        ),
        row(org, 2, model="+x", cost_known=False, tokens_estimated=True, session_id="@s"),
    ]


def _doors(gw: LiveGateway, tmp: Path, fmt: str, bodies: bool) -> dict[str, str]:
    """The same export from each door, as text."""
    flag = {"include_bodies": "1"} if bodies else {}
    with WebClient(gw, EMAIL) as web:
        dashboard = web.get(f"/requests/export.{fmt}", **flag)
    assert dashboard.status_code == 200, dashboard.text
    api = httpx.get(
        gw.base_url + "/api/v1/requests/export",
        params={"format": fmt, **flag},
        headers={"Authorization": f"Bearer {gw.org.read_key}"},
        timeout=30,
    )
    assert api.status_code == 200, api.text
    env = {
        **os.environ,
        "HELIOGRAPH_HOME": str(tmp),
        "HELIOGRAPH_DATABASE_URL": gw.settings.sqlalchemy_url,
    }
    args = ["--org", gw.org.id, "--format", fmt, *(["--include-bodies"] if bodies else [])]
    cli = subprocess.run(
        [sys.executable, "-m", "heliograph", "export", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert cli.returncode == 0, cli.stderr
    return {"dashboard": dashboard.text, "api": api.text, "cli": cli.stdout}


def test_every_door_writes_the_same_export(gateway_any: LiveGateway, tmp_path: Path) -> None:
    gw = gateway_any
    engine = make_engine(gw.settings.sqlalchemy_url)
    try:
        insert(engine, _rows(gw.org.id), bodies=True)
        insert(engine, [row(gw.other.id, 3)], bodies=True)
    finally:
        engine.dispose()
    add_user(gw, EMAIL, "viewer")

    for bodies in (False, True):
        texts = _doors(gw, tmp_path, "csv", bodies)
        tables = {door: list(csv.reader(io.StringIO(text))) for door, text in texts.items()}
        want = list(export_store.columns(bodies))
        for door, table in tables.items():
            assert table[0] == want, door  # one set of columns, one order
            assert len(table) == 3, door  # the header and this organization's two rows
        assert tables["dashboard"] == tables["api"] == tables["cli"]
        first, second = (dict(zip(want, r, strict=True)) for r in tables["api"][1:])
        assert first["model"] == "'+x" and first["session_id"] == "'@s"
        assert first["stream"] == "false" and first["tokens_estimated"] == "true"
        assert first["cost_known"] == "false" and first["cost_usd"] == ""
        assert second["stream"] == "true" and second["cost_known"] == "true"
        assert second["cost_usd"] == "0.0000138" and second["latency_ms"] == "0.00002"
        assert second["user_id"] == "'=HYPERLINK(1)" and second["feedback"] == ""
        assert orjson.loads(second["properties"]) == {"team": "-red"}
        if bodies:
            assert second["prompt_text"] == f"user: prompt {second['id']}"
            assert second["output_text"] == "'=1+1"  # a reply is text a spreadsheet reads too
            assert orjson.loads(second["request_body"])["messages"][0]["role"] == "user"
        else:
            assert "prompt_text" not in second

        lines = _doors(gw, tmp_path, "jsonl", bodies)
        assert lines["dashboard"] == lines["api"] == lines["cli"]
        records = [orjson.loads(line) for line in lines["api"].splitlines()]
        assert [list(r) for r in records] == [want, want]
        assert b'"cost_usd":0.0000138' in lines["cli"].encode()  # a plain decimal in JSON too
        assert records[1]["stream"] is True and records[1]["cost_usd"] == 0.0000138
        if bodies:
            assert records[1]["output_text"] == "=1+1"  # JSON needs no defusing


def test_dashboard_export_keeps_the_page_order_and_text_search(gateway_any: LiveGateway) -> None:
    gw = gateway_any
    engine = make_engine(gw.settings.sqlalchemy_url)
    try:
        insert(engine, [row(gw.org.id, i, total_tokens=10 - i) for i in range(5)], bodies=True)
    finally:
        engine.dispose()
    add_user(gw, EMAIL, "viewer")
    with WebClient(gw, EMAIL) as web:
        by_tokens = web.get("/requests/export.jsonl", sort="tokens", order="asc").text
        found = web.get("/requests/export.csv", q=str(row(gw.org.id, 3)["id"]))
        assert web.get("/requests/export.xml").status_code == 404
    tokens = [orjson.loads(line)["total_tokens"] for line in by_tokens.splitlines()]
    assert tokens == [6, 7, 8, 9, 10]
    table = list(csv.DictReader(io.StringIO(found.text)))
    assert [r["id"] for r in table] == [row(gw.org.id, 3)["id"]]
