"""The experiments engine on SQLite and PostgreSQL, against a live gateway and the mock
upstream: creation (items pinned, labels resolved, estimate), a run through the gateway
(records carrying experiment, variant, item and the prompt; cells from the stored records),
LLM judges with scripted answers (garbage is an evaluator error, never a zero), the cost cap,
and resuming from stored records without calling the upstream again."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select, update

from experiment_engine_support import add_dataset, add_prompt, create, live_store, run_job
from heliograph.evals import runner
from heliograph.evals.experiments import ExperimentError
from heliograph.store import experiments as store
from heliograph.store.schema import experiment_cells, experiment_scores
from mock_upstream import MockUpstream


def cells_of(engine: Engine, exp_id: str) -> list[dict[str, Any]]:
    query = select(experiment_cells).where(experiment_cells.c.experiment_id == exp_id)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def scores_of(engine: Engine, exp_id: str) -> list[dict[str, Any]]:
    query = select(experiment_scores).where(experiment_scores.c.experiment_id == exp_id)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def test_run_over_a_dataset_through_the_gateway(
    engine: Engine, db_url: str, tmp_path: Path, mock: MockUpstream
) -> None:
    with live_store(db_url, tmp_path, mock) as live:
        org = live.org.id
        add_prompt(
            engine,
            org,
            "greet",
            "Say hi to {{who}} (v1)",
            "Greet {{who}} warmly (v2)",
            upstream="mock",
        )
        marks = [uuid.uuid4().hex for _ in range(3)]
        add_dataset(
            engine,
            org,
            "people",
            [
                {
                    "inputs": {"who": m},
                    "messages": [{"role": "user", "content": f"hello {m}"}],
                    "expected": "Hello from the mock upstream.",
                }
                for m in marks
            ],
        )
        exp = create(
            live,
            engine,
            dataset="people",
            variants=["prompt:greet@staging", "prompt:greet@production", "model:mock/gpt-4o"],
            evaluators=["exact", "contains:mock", "similarity:0.5"],
        )
        assert exp["cells_total"] == 9 and exp["status"] == "queued"
        assert exp["estimated_cost_nusd"] > 0 and exp["source"]["unpriced"] == []
        variants = store.list_variants(engine, exp["id"])
        assert [v["spec"].get("version") for v in variants] == [1, 2, None]
        assert [v["name"] for v in variants][:2] == [
            "prompt:greet:1 (staging) gpt-4o-mini",
            "prompt:greet:2 (production) gpt-4o-mini",
        ]
        # a label moved after creation changes nothing
        add_prompt(engine, org, "other", "x")
        run_job(live, exp["id"])
        done = store.get_experiment(engine, exp["id"])
        assert done is not None and done["status"] == "completed"
        assert done["cells_done"] == 9 and done["cells_failed"] == 0, [
            (c["status"], c["error"]) for c in cells_of(engine, exp["id"])
        ]
        cells = cells_of(engine, exp["id"])
        assert {c["status"] for c in cells} == {"done"} and all(c["attempts"] == 1 for c in cells)
        assert all(c["output"] == "Hello from the mock upstream." for c in cells)
        assert done["spent_nusd"] == sum(c["cost_nusd"] for c in cells) > 0
        scores = scores_of(engine, exp["id"])
        assert len(scores) == 27 and all(s["error"] is None for s in scores)
        assert all(s["passed"] is True for s in scores if s["evaluator"] != "similarity")
        by_id = {v["id"]: v for v in variants}
        for cell in cells:
            record = live.api(f"/api/v1/requests/{cell['request_id']}").json()
            props = record["properties"]
            assert props["experiment"] == exp["id"] and props["item"] == cell["item_id"]
            assert props["variant"] == by_id[cell["variant_id"]]["name"]
            assert record["cost_usd"] * 1e9 == pytest.approx(cell["cost_nusd"])
            spec = by_id[cell["variant_id"]]["spec"]
            if spec["kind"] == "prompt":
                assert record["prompt_name"] == "greet"
                assert record["prompt_version"] == spec["version"]
            else:
                assert record["model"] == "gpt-4o"
        for m in marks:  # one call per cell: the prompt variants render {{who}}, the model
            assert mock.recorder.calls(m) == 3  # variant sends the item's messages


def test_creation_refuses_what_cannot_run(
    engine: Engine, db_url: str, tmp_path: Path, mock: MockUpstream
) -> None:
    with live_store(db_url, tmp_path, mock) as live:
        add_dataset(engine, live.org.id, "d", [{"inputs": {"q": "x"}}])
        for doc, problem in (
            ({"dataset": "d", "variants": ["prompt:nope@production"]}, "no version labelled"),
            ({"dataset": "d", "variants": ["model:nowhere/m"]}, "no upstream"),
            ({"dataset": "gone", "variants": ["model:mock/gpt-4o"]}, "no dataset"),
            (
                {"dataset": "d", "variants": ["model:mock/gpt-4o"], "evaluators": ["unknown"]},
                "no evaluator",
            ),
            (
                {"dataset": "d", "variants": ["model:mock/gpt-4o", "model:mock/gpt-4o"]},
                "same name",
            ),
        ):
            with pytest.raises(ExperimentError, match=problem):
                create(live, engine, **doc)


def test_judge_scores_and_garbage_is_an_evaluator_error(
    engine: Engine, db_url: str, tmp_path: Path, mock: MockUpstream
) -> None:
    with live_store(db_url, tmp_path, mock) as live:
        org = live.org.id
        tag = uuid.uuid4().hex
        add_prompt(
            engine,
            org,
            "rubric",
            "Rate 0-1. Q: {{input}} A: {{output}} Expected: {{expected}}",
            upstream="mock",
        )
        answers = {
            f"good-{tag}": '{"score": 0.9, "reason": "close enough"}',
            f"bad-{tag}": "Score: 0.1 because it is wrong",
            f"junk-{tag}": "I am not able to rate this, sorry.",
            f"two-{tag}": "I'd give it 0.2 or 0.8",
        }
        mock.recorder.replies.extend(answers.items())
        add_dataset(
            engine,
            org,
            "judged",
            [{"inputs": {"input": f"question {k}"}, "expected": k} for k in answers]
            + [{"inputs": {"input": "no expected output"}}],
        )
        exp = create(
            live,
            engine,
            dataset="judged",
            variants=["model:mock/gpt-4o-mini"],
            evaluators=["judge:rubric@production"],
        )
        assert exp["evaluators"][0]["config"]["version"] == 1
        assert exp["evaluators"][0]["config"]["label"] is None
        run_job(live, exp["id"])
        cells = {c["id"]: c for c in cells_of(engine, exp["id"])}
        item_expected = {
            i["id"]: i["expected"]
            for i in httpx.get(
                f"{live.base_url}/api/v1/datasets/judged/items",
                headers={"Authorization": f"Bearer {live.org.read_key}"},
            ).json()["data"]
        }
        got = {
            item_expected[cells[s["cell_id"]]["item_id"]]: s for s in scores_of(engine, exp["id"])
        }
        assert got[f"good-{tag}"]["value"] == 0.9
        assert got[f"good-{tag}"]["passed"] is True
        assert got[f"good-{tag}"]["reason"] == "close enough"
        assert got[f"bad-{tag}"]["value"] == 0.1 and got[f"bad-{tag}"]["passed"] is False
        for garbage in (f"junk-{tag}", f"two-{tag}"):
            assert got[garbage]["value"] is None and got[garbage]["passed"] is None
            assert "could not be read" in got[garbage]["error"]
        assert "cannot be filled" in got[None]["error"] and got[None]["judge_request_id"] is None
        judged = [s for s in got.values() if s["judge_request_id"]]
        assert len(judged) == 4
        spent_on_cells = sum(c["cost_nusd"] for c in cells.values())
        judge_costs = 0.0
        for score in judged:
            record = live.api(f"/api/v1/requests/{score['judge_request_id']}").json()
            assert record["properties"]["judge"] == "1"
            assert record["properties"]["experiment"] == exp["id"]
            assert record["prompt_name"] == "rubric" and record["prompt_version"] == 1
            judge_costs += record["cost_usd"]
        done = store.get_experiment(engine, exp["id"])
        assert done is not None and done["status"] == "completed"
        assert done["spent_nusd"] == pytest.approx(spent_on_cells + judge_costs * 1e9, abs=4)


def test_cost_cap_stops_the_run(
    engine: Engine, db_url: str, tmp_path: Path, mock: MockUpstream
) -> None:
    with live_store(db_url, tmp_path, mock) as live:
        add_dataset(
            engine, live.org.id, "many", [{"inputs": {"input": f"q{i}"}} for i in range(10)]
        )
        # max_tokens 5, what the mock answers: the estimate is close to what is spent
        variant = {
            "kind": "model",
            "upstream": "mock",
            "model": "gpt-4o",
            "params": {"max_tokens": 5},
        }
        dry = create(live, engine, dataset="many", variants=[variant], concurrency=1)
        per_cell = dry["estimated_cost_nusd"] // 10
        assert per_cell > 0
        exp = create(
            live,
            engine,
            dataset="many",
            variants=[variant],
            concurrency=1,
            cost_cap_usd=per_cell * 3.5 / 1e9,
        )
        _only_job(engine, exp["id"])
        run_job(live, exp["id"])
        done = store.get_experiment(engine, exp["id"])
        assert done is not None and done["status"] == "stopped"
        assert done["stop_reason"] == "cost cap reached"
        assert 0 < done["cells_done"] < 10 and done["spent_nusd"] <= done["cost_cap_nusd"]
        statuses = [c["status"] for c in cells_of(engine, exp["id"])]
        assert statuses.count("done") == done["cells_done"]
        assert statuses.count("skipped") == 10 - done["cells_done"]


def _only_job(engine: Engine, exp_id: str) -> None:
    """Cancel the other queued experiment's job, so the runner takes this one."""
    from heliograph.store import jobs as job_store
    from heliograph.store.schema import jobs

    with engine.begin() as conn:
        conn.execute(
            update(jobs)
            .where(jobs.c.ref_id != exp_id, jobs.c.status == job_store.QUEUED)
            .values(status=job_store.CANCELLED)
        )


def test_resume_completes_cells_from_stored_records_without_calling_again(
    engine: Engine, db_url: str, tmp_path: Path, mock: MockUpstream, monkeypatch: Any
) -> None:
    monkeypatch.setattr(
        runner, "RECOVER_WAIT_S", 2.0
    )  # how long a started cell's record is awaited
    with live_store(db_url, tmp_path, mock) as live:
        marks = [uuid.uuid4().hex for _ in range(4)]
        add_dataset(engine, live.org.id, "r", [{"inputs": {"input": m}} for m in marks])
        exp = create(
            live, engine, dataset="r", variants=["model:mock/gpt-4o"], evaluators=["exact"]
        )
        cells = sorted(cells_of(engine, exp["id"]), key=lambda c: c["item_position"])
        # A process that died had called the first two cells (their records are stored) and
        # had marked the third as started without its call reaching the gateway.
        for cell, mark in zip(cells[:2], marks[:2], strict=True):
            resp = httpx.post(
                f"{live.base_url}/mock/{live.org.write_key}/chat/completions",
                json={"model": "gpt-4o", "messages": [{"role": "user", "content": mark}]},
                headers={"Helicone-Request-Id": cell["request_id"]},
            )
            assert resp.status_code == 200
        store.mark_started(engine, [c["id"] for c in cells[:3]])
        for cell in cells[:2]:
            _wait_record(live, cell["request_id"])
        run_job(live, exp["id"])
        after = {c["id"]: c for c in cells_of(engine, exp["id"])}
        assert {c["status"] for c in after.values()} == {"done"}
        for mark in marks:
            assert mock.recorder.calls(mark) == 1, "a finished cell was called twice"
        assert after[cells[0]["id"]]["request_id"] == cells[0]["request_id"]
        assert after[cells[2]["id"]]["request_id"] != cells[2]["request_id"]  # called anew
        assert after[cells[2]["id"]]["attempts"] == 2
        assert len(scores_of(engine, exp["id"])) == 4


def _wait_record(live: Any, rid: str) -> None:
    import time

    for _ in range(200):
        if live.api(f"/api/v1/requests/{rid}").status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError(f"record {rid} not stored")
