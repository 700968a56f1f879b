"""One export from three doors of a running `heliograph serve`: the dashboard's Export CSV
(logged in over HTTP), the API's export and the `heliograph export` command give the same
header and the same rows, with plain decimals, lowercase booleans, defused formulas, and the
prompt and output as text when asked.

The server is configured with environment variables only; the traffic is the real `openai`
package against a mock upstream, one plain call and one stream.
"""

from __future__ import annotations

import csv
import io
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import orjson
import pytest
from e2e_harness import Heliograph, admin_env, dashboard_login, heliograph_command, new_id, serving

from mock_upstream import DEFAULT_TEXT, MockUpstream

pytestmark = pytest.mark.slow

ADMIN_EMAIL = "exports@example.com"
ADMIN_PASSWORD = "e2e export horse battery"
HOSTILE_USER = "=HYPERLINK(1)"


@pytest.fixture(scope="module")
def upstream() -> Iterator[MockUpstream]:
    with MockUpstream() as mock:
        yield mock


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory, upstream: MockUpstream) -> Iterator[Heliograph]:
    home: Path = tmp_path_factory.mktemp("export-home")
    env = {
        "HELIOGRAPH_UPSTREAM_OPENAI_URL": upstream.url,
        "HELIOGRAPH_UPSTREAM_OPENAI_LOCAL": "false",  # priced: a cost to write as a decimal
        **admin_env(ADMIN_EMAIL, ADMIN_PASSWORD),
    }
    with serving(home, env) as server:
        yield server


def _traffic(serve: Heliograph) -> tuple[str, str]:
    plain, streamed = new_id(), new_id()
    with openai.OpenAI(base_url=serve.url("v1"), api_key="sk-e2e", max_retries=0) as sdk:
        sdk.chat.completions.create(
            model="gpt-4o-mini",
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "What is an export?"},
            ],
            extra_headers={"Helicone-Request-Id": plain, "Helicone-User-Id": HOSTILE_USER},
        )
        stream = sdk.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Stream it."}],
            stream=True,
            extra_headers={"Helicone-Request-Id": streamed},
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    for rid in (plain, streamed):
        serve.record(rid)
    return plain, streamed


def _command(serve: Heliograph, *args: str) -> str:
    done = subprocess.run(
        [*heliograph_command(), "export", *args],
        env=serve.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _api(serve: Heliograph, **params: str) -> str:
    resp = httpx.get(
        serve.base_url + "/api/v1/requests/export",
        params=params,
        headers={"Authorization": f"Bearer {serve.admin_key}"},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text[:500]
    return resp.text


def _table(text: str) -> tuple[list[str], dict[str, dict[str, str]]]:
    header, *rows = list(csv.reader(io.StringIO(text)))
    return header, {row[0]: dict(zip(header, row, strict=True)) for row in rows}


def test_dashboard_api_and_command_export_the_same(serve: Heliograph) -> None:
    plain, streamed = _traffic(serve)
    with dashboard_login(serve.base_url, ADMIN_EMAIL, ADMIN_PASSWORD) as web:
        page = web.get("/requests")
        assert 'name="include_bodies"' in page.text  # the export form's checkbox
        dashboard = web.get("/requests/export.csv", params={"include_bodies": "1"})
        assert (
            dashboard.status_code == 200
            and "attachment" in dashboard.headers["content-disposition"]
        )
        dashboard_jsonl = web.get("/requests/export.jsonl").text
    doors = {
        "dashboard": dashboard.text,
        "api": _api(serve, format="csv", include_bodies="true"),
        "command": _command(serve, "--format", "csv", "--include-bodies"),
    }
    tables = {door: _table(text) for door, text in doors.items()}
    header = tables["api"][0]
    assert header[:2] == ["id", "created_at"]
    assert header[-4:] == ["prompt_text", "output_text", "request_body", "response_body"]
    for door, (got, rows) in tables.items():
        assert got == header, door
        assert {plain, streamed} <= set(rows), door
    for rid in (plain, streamed):
        assert tables["dashboard"][1][rid] == tables["api"][1][rid] == tables["command"][1][rid]

    row = tables["api"][1][plain]
    assert row["stream"] == "false" and row["cost_known"] == "true" and row["cache_hit"] == "false"
    assert float(row["cost_usd"]) > 0 and "e" not in row["cost_usd"].lower()
    assert row["user_id"] == "'" + HOSTILE_USER  # a formula a spreadsheet will not run
    assert row["prompt_text"] == "system: Be brief.\n\nuser: What is an export?"
    assert row["output_text"] == DEFAULT_TEXT
    assert orjson.loads(row["request_body"])["model"] == "gpt-4o-mini"
    stream_row = tables["command"][1][streamed]
    assert stream_row["stream"] == "true" and stream_row["output_text"] == DEFAULT_TEXT

    lines = {
        "dashboard": dashboard_jsonl,
        "api": _api(serve),
        "command": _command(serve),
    }
    records = {
        door: {r["id"]: r for r in map(orjson.loads, text.splitlines())}
        for door, text in lines.items()
    }
    assert records["dashboard"][plain] == records["api"][plain] == records["command"][plain]
    assert list(records["api"][plain]) == header[:-4]  # without bodies: the record's columns
    assert f'"cost_usd":{row["cost_usd"]},' in lines["command"]  # plain in JSON too
