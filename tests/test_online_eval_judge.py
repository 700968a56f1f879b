"""LLM-judge rules on production traffic, on SQLite and PostgreSQL, against a live gateway and
the mock upstream answering the judge from a script (garbage included): the job process's tick
calls the judge through the gateway (recorded, priced, marked ``judge=1`` and
``online_eval=<rule id>``, never sampled itself), stores the parsed score with its reason on
the production record, and ends an unreadable answer as an error, never a zero."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, select, update

from conftest import LiveGateway
from experiment_engine_support import add_prompt, live_store
from heliograph.evals import online
from heliograph.jobs.runner import JobContext, owner_id
from heliograph.store import eval_queue, orgs
from heliograph.store import online_eval as rules
from heliograph.store.schema import eval_queue as queue_table
from heliograph.store.schema import online_eval_rules, request_scores
from mock_upstream import MockUpstream
from query_support import insert, row

JUDGE = {
    "name": "helpful",
    "kind": "llm_judge",
    "config": {"prompt": "rubric", "label": "production", "scale": "0-1", "threshold": 0.5},
}


def make_rule(engine: Engine, org: str, evaluator: dict[str, Any]) -> str:
    made = rules.create_rule(
        engine,
        org,
        name=evaluator["name"],
        evaluator=online.check_evaluator(evaluator),
        filter_params=online.check_filter({"model": "gpt-4o-mini"}),
        sample_rate=1.0,
        enabled=True,
        created_by="user:u",
    )
    with engine.begin() as conn:  # rules start at their creation: read this test's records
        conn.execute(
            update(online_eval_rules)
            .where(online_eval_rules.c.id == made["id"])
            .values(cursor="0:")
        )
    rule_id: str = made["id"]
    return rule_id


def production_call(live: LiveGateway, content: str) -> str:
    resp = httpx.post(
        f"{live.base_url}/mock/{live.org.write_key}/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]},
        timeout=15,
    )
    assert resp.status_code == 200, resp.text
    rid: str = resp.headers["heliograph-id"]
    return rid


def run_tick(live: LiveGateway, engine: Engine) -> None:
    """The job process's tick, once, with judges (closed as the job process closes them)."""
    settings = live.settings.model_copy(update={"online_eval_lag_s": 0.0})
    context = JobContext(settings, engine, owner_id())

    async def tick() -> None:
        try:
            await online.online_eval_tick(context)
        finally:
            for close in context.extras.get("closers", []):
                await close()

    asyncio.run(tick())


def stored_scores(engine: Engine) -> dict[str, tuple[str, float, str | None]]:
    q = select(
        request_scores.c.request_id,
        request_scores.c.name,
        request_scores.c.value,
        request_scores.c.reason,
    )
    with engine.connect() as conn:
        return {rid: (name, value, why) for rid, name, value, why in conn.execute(q)}


def queue_of(engine: Engine, rule_id: str) -> dict[str, tuple[str, str | None]]:
    q = select(queue_table.c.request_id, queue_table.c.status, queue_table.c.error).where(
        queue_table.c.rule_id == rule_id
    )
    with engine.connect() as conn:
        return {rid: (status, error) for rid, status, error in conn.execute(q)}


def test_judge_rule_scores_production_records_through_the_gateway(
    engine: Engine, db_url: str, tmp_path: Path, mock: MockUpstream
) -> None:
    with live_store(db_url, tmp_path, mock) as live:
        org = live.org.id
        tag = uuid.uuid4().hex
        add_prompt(engine, org, "rubric", "Judge. Q: {{input}} A: {{output}}", upstream="mock")
        answers = {
            "good": '{"score": 0.9, "reason": "close enough"}',
            "bad": "Score: 0.1 because it is wrong",
            "junk": "I am not able to rate this, sorry.",
            "two": "I'd give it 0.2 or 0.8",
        }
        # the needle is in the judge's rendered rubric only, never in the production call
        mock.recorder.replies.extend((f"Q: user: ask-{k}-{tag}", v) for k, v in answers.items())
        rule_id = make_rule(engine, org, JUDGE)
        ids = {production_call(live, f"ask-{k}-{tag}"): k for k in answers}
        live.wait_records(len(ids))
        run_tick(live, engine)

        scores = stored_scores(engine)
        by_kind = {kind: scores.get(rid) for rid, kind in ids.items()}
        assert by_kind["good"] == ("helpful", 0.9, "close enough")
        assert by_kind["bad"] == ("helpful", 0.1, "(the judge gave no reason)")
        assert by_kind["junk"] is None and by_kind["two"] is None  # never a zero
        queue = queue_of(engine, rule_id)
        for rid, kind in ids.items():
            status, error = queue[rid]
            if kind in ("junk", "two"):
                assert status == "error" and "could not be read" in (error or ""), (kind, error)
            else:
                assert (status, error) == ("done", None)
        status_doc = rules.rule_status(engine, org, rule_id)
        assert status_doc is not None
        assert (status_doc["done"], status_doc["errors"], status_doc["queued"]) == (2, 2, 0)

        # every judge call is a recorded, priced request marked as a judge call of this rule
        judged = live.wait_records(4, **{"property.online_eval": rule_id})
        assert len(judged) == 4
        for row in judged:
            record = live.record(row["id"])
            assert record["properties"]["judge"] == "1"
            assert record["properties"]["online_eval"] == rule_id
            assert record["prompt_name"] == "rubric" and record["prompt_version"] == 1
            assert record["cost_usd"] > 0
            assert record["id"] not in ids
        for needle in answers:
            assert mock.recorder.calls(f"Q: user: ask-{needle}-{tag}") == 1

        # the judge calls are never sampled: another tick queues nothing new
        time.sleep(0.01)
        run_tick(live, engine)
        assert set(queue_of(engine, rule_id)) == set(ids)


def test_judge_rule_errors_carry_the_reason(
    engine: Engine, db_url: str, tmp_path: Path, mock: MockUpstream
) -> None:
    with live_store(db_url, tmp_path, mock) as live:
        org = live.org.id
        add_prompt(engine, org, "needs-expected", "Q: {{input}} E: {{expected}}", upstream="mock")
        expects = {**JUDGE, "name": "expects", "config": {**JUDGE["config"]}}
        expects["config"]["prompt"] = "needs-expected"  # type: ignore[index]
        missing = {**JUDGE, "name": "missing", "config": {**JUDGE["config"]}}
        missing["config"]["prompt"] = "no-such-prompt"  # type: ignore[index]
        rule_expects = make_rule(engine, org, expects)
        rule_missing = make_rule(engine, org, missing)
        rid = production_call(live, "a question")
        live.wait_records(1)
        before = len(mock.recorder.snapshot())
        run_tick(live, engine)
        assert not stored_scores(engine)
        assert len(mock.recorder.snapshot()) == before  # no judge was called
        status, error = queue_of(engine, rule_expects)[rid]
        assert status == "error" and "cannot be filled" in (error or "")
        status, error = queue_of(engine, rule_missing)[rid]
        assert status == "error" and "no-such-prompt" in (error or "")


def test_leases_are_renewed_only_by_their_holder(engine: Engine) -> None:
    org = orgs.create_org(engine, "a")
    insert(
        engine,
        [row(org, 1, id=str(uuid.uuid4()), created_at=1_000_000, model="gpt-4o-mini")],
        bodies=True,
    )
    make_rule(engine, org, {"name": "c", "kind": "contains", "config": {"values": ["x"]}})
    online.sample(engine, lag_s=0)
    [entry] = eval_queue.claim(engine, "holder", 10, 1)
    assert eval_queue.renew(engine, [entry.id], "someone-else", 60_000) == 0
    assert eval_queue.renew(engine, [entry.id], "holder", 60_000) == 1
    time.sleep(0.01)
    assert eval_queue.claim(engine, "thief", 10, 60_000) == []  # the renewed lease holds
    eval_queue.finish(engine, entry, "holder", error="done with it")
    assert eval_queue.renew(engine, [entry.id], "holder", 60_000) == 0  # finished
