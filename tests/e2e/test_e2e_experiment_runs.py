"""E2E: experiments against `heliograph serve` (its job process beside the writer) and the mock
upstream, configured by environment variables as the README says: a dataset imported with
`heliograph datasets import`, an experiment run with `heliograph experiment run` as a
subprocess (exit 0 when the threshold holds, 1 when it fails, the summary per variant), and
a run that survives SIGKILL of the whole server mid-run: restarted on the same home, it
completes, and the mock's call counter shows no cell finished before the kill was called
again."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from e2e_harness import Heliograph, clean_environment, heliograph_command
from sqlalchemy import select

from conftest import free_port
from heliograph.store.engine import make_engine
from heliograph.store.schema import experiment_cells
from mock_upstream import MockUpstream
from serve_process import ServeProcess

pytestmark = pytest.mark.slow
EXPECTED = "Hello from the mock upstream."


@pytest.fixture
def upstream() -> Iterator[MockUpstream]:
    with MockUpstream() as mock:
        yield mock


def serve_env(upstream: MockUpstream) -> dict[str, str]:
    return {
        "HELIOGRAPH_UPSTREAM_MOCK_URL": upstream.url,
        "HELIOGRAPH_UPSTREAM_MOCK_PROVIDER": "openai",
    }


def cli(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**clean_environment(), "HELIOGRAPH_HOME": str(home), **env}
    return subprocess.run(
        [*heliograph_command(), *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def write_dataset(path: Path, marks: list[str]) -> Path:
    lines = [
        orjson.dumps(
            {
                "inputs": {"question": m},
                "messages": [{"role": "user", "content": f"question {m}"}],
                "expected": EXPECTED,
            }
        )
        for m in marks
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def make_prompt(server: Heliograph) -> None:
    assert server.admin_request("POST", "/api/v1/prompts", {"name": "qa"}).status_code == 201
    for text in ("Answer: {{question}}", "Answer briefly: {{question}}"):
        version = {
            "messages": [{"role": "user", "content": text}],
            "model": "gpt-4o-mini",
            "upstream": "mock",
        }
        made = server.admin_request("POST", "/api/v1/prompts/qa/versions", version)
        assert made.status_code == 201
    for label, number in (("staging", 1), ("production", 2)):
        resp = server.admin_request(
            "PUT", f"/api/v1/prompts/qa/labels/{label}", {"version": number}
        )
        assert resp.status_code == 200, resp.text


def test_cli_run_exit_codes(tmp_path: Path, upstream: MockUpstream) -> None:
    home = tmp_path / "home"
    server = Heliograph(home, free_port(), env=serve_env(upstream)).start()
    try:
        make_prompt(server)
        marks = [uuid.uuid4().hex for _ in range(6)]
        imported = cli(
            home, "datasets", "import", "qa-set", str(write_dataset(tmp_path / "d.jsonl", marks))
        )
        assert imported.returncode == 0, imported.stderr
        assert "Added 6 items" in imported.stdout
        listed = cli(home, "datasets", "list")
        assert "qa-set" in listed.stdout and " 6 " in listed.stdout
        shown = cli(home, "datasets", "show", "qa-set", "--limit", "2")
        assert len(shown.stdout.splitlines()) == 2 and marks[0] in shown.stdout
        base = [
            "experiment",
            "run",
            "--dataset",
            "qa-set",
            "--variant",
            "prompt:qa@staging",
            "--variant",
            "prompt:qa@production",
            "--variant",
            "model:mock/gpt-4o",
        ]
        passing = cli(
            home,
            *base,
            "--evaluator",
            "exact",
            "--evaluator",
            "similarity:0.9",
            "--min-score",
            "0.8",
            "--url",
            server.base_url,
            "--key",
            server.admin_key,
        )
        assert passing.returncode == 0, passing.stdout + passing.stderr
        assert "prompt:qa:1 (staging)" in passing.stdout
        assert "prompt:qa:2 (production)" in passing.stdout
        assert "model:mock/gpt-4o" in passing.stdout
        assert "18/18 cells" in passing.stderr  # the progress bar
        failing = cli(
            home,
            *base,
            "--evaluator",
            "contains:refund",
            "--min-score",
            "0.8",
            "--json",
            HELIOGRAPH_URL=server.base_url,
            HELIOGRAPH_ADMIN_KEY=server.admin_key,
        )
        assert failing.returncode == 1, failing.stdout + failing.stderr
        summary = orjson.loads(failing.stdout)
        assert summary["exit_code"] == 1 and len(summary["variants"]) == 3
        assert all(v["mean_score"] == 0.0 and v["errors"] == 0 for v in summary["variants"])
        usage = cli(home, *base, "--evaluator", "judge:", "--url", server.base_url, "--key", "x")
        assert usage.returncode == 2
        # every cell's record carries the experiment, and the spending shows per experiment
        experiments = server.admin_request("GET", "/api/v1/experiments").json()["data"]
        assert len(experiments) == 2 and {e["status"] for e in experiments} == {"completed"}
        for exp in experiments:
            assert len(listed_all(server, exp["id"])) == 18
    finally:
        server.stop()


def listed_all(server: Heliograph, exp_id: str) -> list[dict[str, Any]]:
    resp = server.admin_request("GET", f"/api/v1/requests?limit=1000&property.experiment={exp_id}")
    assert resp.status_code == 200, resp.text
    data: list[dict[str, Any]] = resp.json()["data"]
    return data


def cell_states(home: Path, exp_id: str) -> dict[str, str]:
    engine = make_engine(f"sqlite:///{home / 'heliograph.db'}")
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(experiment_cells.c.item_id, experiment_cells.c.status).where(
                    experiment_cells.c.experiment_id == exp_id
                )
            )
            return {r[0]: r[1] for r in rows}
    finally:
        engine.dispose()


def test_resume_after_sigkill_calls_no_finished_cell_again(
    tmp_path: Path, upstream: MockUpstream
) -> None:
    upstream.recorder.delay_ms = 150  # slow answers: the kill lands mid-run
    home = tmp_path / "home"
    server = Heliograph(home, free_port(), env=serve_env(upstream)).start()
    try:
        marks = [uuid.uuid4().hex for _ in range(60)]
        imported = cli(
            home, "datasets", "import", "slow", str(write_dataset(tmp_path / "s.jsonl", marks))
        )
        assert imported.returncode == 0, imported.stderr
        items = server.admin_request("GET", "/api/v1/datasets/slow/items?limit=100").json()["data"]
        mark_of = {i["id"]: i["inputs"]["question"] for i in items}
        body = {
            "name": "resume",
            "dataset": "slow",
            "variants": ["model:mock/gpt-4o-mini"],
            "evaluators": ["exact"],
            "concurrency": 4,
        }
        created = server.admin_request("POST", "/api/v1/experiments", body)
        assert created.status_code == 201, created.text
        exp_id = created.json()["id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            exp = server.admin_request("GET", f"/api/v1/experiments/{exp_id}").json()
            if exp["cells_done"] >= 12:
                break
            time.sleep(0.05)
        assert exp["status"] == "running" and exp["cells_done"] < 60
        server.kill()  # SIGKILL: gateway workers, writer and job process at once
        finished_before = {i for i, s in cell_states(home, exp_id).items() if s == "done"}
        assert 12 <= len(finished_before) < 60
        ServeProcess.start(server)  # same home, same port; the keys are the first start's
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            exp = server.admin_request("GET", f"/api/v1/experiments/{exp_id}").json()
            if exp["status"] != "running" and exp["status"] != "queued":
                break
            time.sleep(0.2)
        assert exp["status"] == "completed", exp
        assert exp["cells_done"] == 60 and exp["cells_failed"] == 0
        states = cell_states(home, exp_id)
        assert set(states.values()) == {"done"}
        for item_id in finished_before:
            assert upstream.recorder.calls(mark_of[item_id]) == 1, (
                "a finished cell was called again"
            )
        total = sum(upstream.recorder.calls(m) for m in marks)
        assert 60 <= total <= 60 + 2 * body["concurrency"]  # at most the calls in flight again
        results = server.admin_request("GET", f"/api/v1/experiments/{exp_id}/results")
        assert results.status_code == 200
        summary = results.json()["variants"][0]["summary"]
        assert summary["done"] == 60 and summary["evaluators"]["exact"]["mean"] == 1.0
    finally:
        server.stop()
        upstream.recorder.delay_ms = 0


def test_jobs_off_leaves_experiments_queued(tmp_path: Path, upstream: MockUpstream) -> None:
    home = tmp_path / "home"
    env = {**serve_env(upstream), "HELIOGRAPH_JOBS": "off"}
    server = Heliograph(home, free_port(), env=env).start()
    try:
        assert any("Jobs: off" in line for line in server.lines)
        path = write_dataset(tmp_path / "q.jsonl", [uuid.uuid4().hex])
        assert cli(home, "datasets", "import", "q", str(path)).returncode == 0
        body = {"name": "idle", "dataset": "q", "variants": ["model:mock/gpt-4o"]}
        exp_id = server.admin_request("POST", "/api/v1/experiments", body).json()["id"]
        time.sleep(2)
        status = server.admin_request("GET", f"/api/v1/experiments/{exp_id}").json()["status"]
        assert status == "queued"
        cancelled = server.admin_request("POST", f"/api/v1/experiments/{exp_id}/cancel").json()
        assert cancelled["status"] == "stopped" and cancelled["stop_reason"] == "cancelled"
    finally:
        server.stop()
    assert os.path.exists(home / "heliograph.db")


def test_throttled_cells_are_retried_after_retry_after_and_the_cost_cap_stops_the_run(
    tmp_path: Path, upstream: MockUpstream
) -> None:
    """An experiment's calls go through the gateway's retry machinery: a 429 with Retry-After
    is waited out and retried (the record shows both attempts). A cost cap stops the run:
    `heliograph experiment run` exits 3, the rest of the cells are skipped, never called."""
    home = tmp_path / "home"
    server = Heliograph(home, free_port(), env=serve_env(upstream)).start()
    try:
        marks = [uuid.uuid4().hex for _ in range(4)]
        path = write_dataset(tmp_path / "t.jsonl", marks)
        assert cli(home, "datasets", "import", "throttled", str(path)).returncode == 0
        upstream.recorder.throttles = [(m, 1, 1) for m in marks[:2]]
        args = ["--url", server.base_url, "--key", server.admin_key]
        done = cli(
            home,
            "experiment",
            "run",
            "--dataset",
            "throttled",
            "--variant",
            "model:mock/gpt-4o-mini",
            "--evaluator",
            "exact",
            "--min-score",
            "1.0",
            "--json",
            *args,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert [upstream.recorder.calls(m) for m in marks] == [2, 2, 1, 1]
        exp_id = orjson.loads(done.stdout)["experiment"]["id"]
        stored = [server.record(r["id"]) for r in listed_all(server, exp_id)]
        throttled = [r for r in stored if any(m in str(r["request_body"]) for m in marks[:2])]
        assert len(throttled) == 2
        for record in throttled:
            assert [a["status"] for a in record["attempts"]] == [429, 200], record["attempts"]
            assert record["status"] == 200 and record["latency_ms"] >= 1000  # waited it out

        many = [uuid.uuid4().hex for _ in range(30)]
        path = write_dataset(tmp_path / "c.jsonl", many)
        assert cli(home, "datasets", "import", "capped", str(path)).returncode == 0
        capped = cli(
            home,
            "experiment",
            "run",
            "--dataset",
            "capped",
            "--variant",
            "model:mock/gpt-4o",
            "--evaluator",
            "exact",
            "--concurrency",
            "1",
            "--cost-cap",
            "0.003",
            "--json",
            *args,
        )
        assert capped.returncode == 3, capped.stdout + capped.stderr
        exp = orjson.loads(capped.stdout)["experiment"]
        exp = server.admin_request("GET", f"/api/v1/experiments/{exp['id']}").json()
        assert exp["status"] == "stopped" and exp["stop_reason"] == "cost cap reached"
        assert 1 <= exp["cells_done"] < 30 and exp["spent_usd"] <= 0.003
        states = cell_states(home, exp["id"])
        assert list(states.values()).count("skipped") == 30 - exp["cells_done"]
        assert sum(upstream.recorder.calls(m) for m in many) == exp["cells_done"]
    finally:
        server.stop()
