"""Moving from Helicone as the README tells it: `heliograph import helicone` on the files a
Helicone user exported, then `heliograph serve` on that home shows them (API and Requests page).

The home is made by a first `serve` (which creates the store, the default organization and
its keys), stopped; the import runs as its own process with only HELIOGRAPH_HOME; `serve`
starts again on the same home.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_harness import Heliograph, dashboard_login, heliograph_command

from conftest import free_port

pytestmark = pytest.mark.slow

SAMPLES = Path(__file__).parent.parent / "samples" / "helicone"
FILES = ["query_page.json", "pages.jsonl", "requests.csv", "dashboard.csv", "dashboard.jsonl"]
OPENAI_ID = "0b9e2f43-6d1a-4c33-8f5e-1a2b3c4d5e01"
ANTHROPIC_ID = "0b9e2f43-6d1a-4c33-8f5e-1a2b3c4d5e02"
CSV_ID = "1c0e2f43-6d1a-4c33-8f5e-1a2b3c4d5e11"
EMAIL, PASSWORD = "mover@example.com", "e2e helicone moving day"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Heliograph]:
    home = tmp_path_factory.mktemp("helicone-home")
    env = {"HELIOGRAPH_ADMIN_EMAIL": EMAIL, "HELIOGRAPH_ADMIN_PASSWORD": PASSWORD}
    first = Heliograph(home, free_port(), env=env).start()
    first.stop()
    imported = _import(first, *FILES)
    assert imported.returncode == 0, imported.stderr
    assert (
        "Read 13 Helicone requests: 10 stored, 0 already present (skipped), 3 not mapped."
        in imported.stderr
    ), imported.stderr
    assert "malformed JSON line: 1 (e.g. pages.jsonl:2)" in imported.stderr
    first.start()  # the same home, process and keys
    try:
        yield first
    finally:
        first.stop()


def _import(serve: Heliograph, *names: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*heliograph_command(), "import", "helicone", *(str(SAMPLES / n) for n in names)],
        env=serve.env,  # HELIOGRAPH_HOME, nothing else of Heliograph's
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_imported_records_are_served_by_the_api(server: Heliograph) -> None:
    rec = server.record(OPENAI_ID)
    assert rec["source"] == "helicone" and rec["provider"] == "openai"
    assert (rec["prompt_tokens"], rec["completion_tokens"]) == (24, 3)
    assert rec["cost_usd"] == pytest.approx(0.0000054) and rec["cost_source"] == "helicone"
    assert (rec["user_id"], rec["session_id"], rec["session_name"]) == (
        "alice@example.com",
        "sess-42",
        "Trip planner",
    )
    assert rec["properties"] == {"environment": "production", "app": "travel-bot"}
    assert rec["feedback"] is True and rec["scores"] == {"accuracy": 92}
    assert rec["response_body"]["choices"][0]["message"]["content"] == "Paris."
    anthropic = server.record(ANTHROPIC_ID)
    assert anthropic["cost_known"] and anthropic["cost_source"] != "helicone"
    listed = server.api("/api/v1/requests", source="helicone", limit=1000).json()["data"]
    assert {OPENAI_ID, ANTHROPIC_ID, CSV_ID} <= {r["id"] for r in listed}
    assert len(listed) == 10
    assert server.listed(OPENAI_ID, source="gateway") is None
    assert server.listed(CSV_ID, source="helicone", user_id="alice@example.com") is not None


def test_imported_records_show_on_a_filtered_requests_page(server: Heliograph) -> None:
    with dashboard_login(server.base_url, EMAIL, PASSWORD) as web:
        page = web.get("/requests", params={"source": "helicone", "user_id": "bob"})
        assert page.status_code == 200
        assert ANTHROPIC_ID in page.text and OPENAI_ID not in page.text
        other = web.get("/requests", params={"source": "gateway"})
        assert other.status_code == 200 and ANTHROPIC_ID not in other.text


def test_importing_again_while_serving_adds_nothing(server: Heliograph) -> None:
    again = _import(server, *FILES)
    assert again.returncode == 0, again.stderr
    assert "10 already present (skipped)" in again.stderr and " 0 stored" in again.stderr
    listed = server.api("/api/v1/requests", source="helicone", limit=1000).json()["data"]
    assert len(listed) == 10
