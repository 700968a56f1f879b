"""Online evaluation in the store, on SQLite and PostgreSQL: rules, the deterministic
sampler and its cursor, the leased queue, scores (and errors) on records."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from heliograph.evals import online
from heliograph.store import eval_queue, orgs
from heliograph.store import online_eval as rules
from heliograph.store.schema import eval_queue as queue_table
from heliograph.store.schema import online_eval_rules, request_scores
from query_support import insert, row

CONTAINS = {"name": "says-one", "kind": "contains", "config": {"values": ["=1"]}}


@pytest.fixture
def two_orgs(engine: Engine) -> tuple[str, str]:
    return orgs.create_org(engine, "a"), orgs.create_org(engine, "b")


def make_rule(engine: Engine, org: str, rate: float = 1.0, **kw: Any) -> dict[str, Any]:
    made = rules.create_rule(
        engine,
        org,
        name=kw.pop("name", "r"),
        evaluator=online.check_evaluator(kw.pop("evaluator", CONTAINS)),
        filter_params=online.check_filter(kw.pop("filter", {})),
        sample_rate=rate,
        enabled=True,
        created_by="user:u",
    )
    rewind(engine, made["id"])
    return made


def rewind(engine: Engine, rule_id: str, cursor: str = "0:") -> None:
    """Start the rule's cursor before the test's records (rules start at their creation)."""
    with engine.begin() as conn:
        conn.execute(
            update(online_eval_rules).where(online_eval_rules.c.id == rule_id).values(cursor=cursor)
        )


def records(org: str, n: int, start: int = 0, **kw: Any) -> list[dict[str, Any]]:
    return [
        row(org, i, id=str(uuid.uuid4()), created_at=1_000_000 + i, **kw)
        for i in range(start, start + n)
    ]


def queued(engine: Engine, rule_id: str) -> list[str]:
    with engine.connect() as conn:
        q = select(queue_table.c.request_id).where(queue_table.c.rule_id == rule_id)
        return sorted(conn.execute(q).scalars())


def scores(engine: Engine) -> dict[str, tuple[float, str | None]]:
    with engine.connect() as conn:
        q = select(request_scores.c.request_id, request_scores.c.value, request_scores.c.reason)
        return {r: (v, why) for r, v, why in conn.execute(q)}


def test_rules_crud_names_and_isolation(engine: Engine, two_orgs: tuple[str, str]) -> None:
    a, b = two_orgs
    made = make_rule(engine, a, 0.25, name="quality", filter={"model": "gpt-4o"})
    assert made["filter"] == {"model": "gpt-4o"} and made["sample_rate"] == 0.25
    with pytest.raises(rules.DuplicateName):
        make_rule(engine, a, name="quality")
    make_rule(engine, b, name="quality")  # another org may use the name
    assert [r["name"] for r in rules.list_rules(engine, a)] == ["quality"]
    assert rules.get_rule(engine, b, made["id"]) is None
    assert rules.update_rule(engine, b, made["id"], {"enabled": False}) is None
    paused = rules.update_rule(engine, a, made["id"], {"enabled": False, "sample_rate": 0.5})
    assert paused is not None and paused["enabled"] is False and paused["sample_rate"] == 0.5
    before = int(time.time() * 1000)
    resumed = rules.update_rule(engine, a, made["id"], {"enabled": True})
    assert resumed is not None
    assert rules.split_cursor(resumed["cursor"])[0] >= before  # the pause is not replayed
    assert not rules.delete_rule(engine, b, made["id"])
    assert rules.delete_rule(engine, a, made["id"])
    assert rules.get_rule(engine, a, made["id"]) is None


def test_sampling_is_deterministic_and_bounded(engine: Engine, two_orgs: tuple[str, str]) -> None:
    a, b = two_orgs
    insert(engine, records(a, 1000) + records(b, 50))
    rule = make_rule(engine, a, 0.5)
    passes = []
    while True:
        considered, _ = online.sample(engine, lag_s=0, batch=300)
        passes.append(considered)
        if not considered:
            break
    assert passes == [300, 300, 300, 100, 0]  # bounded batches, other org's records unread
    first = queued(engine, rule["id"])
    assert 430 <= len(first) <= 570  # about half
    rewind(engine, rule["id"])  # run it all again: the same sample, nothing added
    while online.sample(engine, lag_s=0, batch=400)[0]:
        pass
    assert queued(engine, rule["id"]) == first
    ids = {r["id"] for r in records(a, 0)}
    assert not ids & set(first)


def test_filter_applies_in_sql(engine: Engine, two_orgs: tuple[str, str]) -> None:
    a, _ = two_orgs
    mixed = records(a, 10, model="gpt-4o") + records(a, 10, start=10, model="llama3")
    mixed[0]["properties"] = {"team": "red"}
    mixed[1]["properties"] = {"team": "red", "experiment": "e1"}  # an experiment's cell
    mixed[11]["properties"] = {"judge": "1"}  # a judge call
    mixed[12]["kind"] = "other"  # not an LLM call (a model list, say)
    insert(engine, mixed)
    by_model = make_rule(engine, a, name="m", filter={"model": "llama3"})
    by_prop = make_rule(engine, a, name="p", filter={"property.team": "red"})
    online.sample(engine, lag_s=0)
    assert queued(engine, by_model["id"]) == sorted(
        r["id"] for r in mixed[10:] if r not in mixed[11:13]
    )
    assert queued(engine, by_prop["id"]) == [mixed[0]["id"]]


def test_cursor_never_skips_records_landing_late(engine: Engine, two_orgs: tuple[str, str]) -> None:
    a, _ = two_orgs
    rule = make_rule(engine, a)
    now = int(time.time() * 1000)
    rewind(engine, rule["id"], f"{now - 60_000}:")
    newer = row(a, 1, id=str(uuid.uuid4()), created_at=now - 1_000)
    insert(engine, [newer])  # a batch commits the newer record first
    assert online.sample(engine, lag_s=30) == (0, 0)  # inside the lag: not read yet
    older = row(a, 2, id=str(uuid.uuid4()), created_at=now - 5_000)
    insert(engine, [older])  # a later batch brings an older one (a long stream)
    time.sleep(0.01)
    assert online.sample(engine, lag_s=0) == (2, 2)
    assert queued(engine, rule["id"]) == sorted([newer["id"], older["id"]])


def test_worker_scores_and_stores_errors(engine: Engine, two_orgs: tuple[str, str]) -> None:
    a, _ = two_orgs
    good = records(a, 3)
    failed = row(a, 9, id=str(uuid.uuid4()), created_at=1_000_100, state="error", status=500)
    insert(engine, [*good, failed], bodies=True)
    rule = make_rule(engine, a)
    online.sample(engine, lag_s=0)
    report = online.run_once(engine, "w1", lag_s=0)
    assert (report.scored, report.errors) == (3, 1)
    stored = scores(engine)
    assert set(stored) == {r["id"] for r in good}  # no zero for the failed request
    assert all(v == 1.0 and why for v, why in stored.values())
    status = rules.rule_status(engine, a, rule["id"])
    assert status is not None
    assert (status["queued"], status["done"], status["errors"]) == (0, 3, 1)
    assert status["recent_errors"][0]["request_id"] == failed["id"]
    assert "no output" in status["recent_errors"][0]["error"]


def test_judge_entries_without_a_judge_caller_end_as_errors(
    engine: Engine, two_orgs: tuple[str, str]
) -> None:
    a, _ = two_orgs
    insert(engine, records(a, 1), bodies=True)
    judge = {
        "name": "judge",
        "kind": "llm_judge",
        "config": {"prompt": "rubric", "label": "production", "scale": "pass/fail"},
    }
    spec = online.check_evaluator(judge)
    rule = make_rule(engine, a, evaluator=spec)
    online.run_once(engine, "w", lag_s=0)
    status = rules.rule_status(engine, a, rule["id"])
    assert status is not None and status["errors"] == 1
    assert "judge" in status["recent_errors"][0]["error"] and not scores(engine)


def test_two_workers_never_score_one_entry(engine: Engine, two_orgs: tuple[str, str]) -> None:
    a, _ = two_orgs
    insert(engine, records(a, 40), bodies=True)
    make_rule(engine, a)
    online.sample(engine, lag_s=0)
    taken: dict[str, list[str]] = {}

    def grab(owner: str) -> None:
        taken[owner] = [c.id for c in eval_queue.claim(engine, owner, 40, 60_000)]

    threads = [threading.Thread(target=grab, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    all_taken = [i for ids in taken.values() for i in ids]
    assert len(all_taken) == len(set(all_taken)) == 40
    assert eval_queue.claim(engine, "late", 40, 60_000) == []  # all leased


def test_a_lapsed_lease_is_taken_over_once(engine: Engine, two_orgs: tuple[str, str]) -> None:
    a, _ = two_orgs
    insert(engine, records(a, 1), bodies=True)
    make_rule(engine, a)
    online.sample(engine, lag_s=0)
    [first] = eval_queue.claim(engine, "crashed", 10, -1)  # a lease already run out
    [second] = eval_queue.claim(engine, "alive", 10, 60_000)
    assert first.id == second.id and second.attempts == 2
    score = ("says-one", 1.0, "ok")
    assert not eval_queue.finish(engine, first, "crashed", score=score)  # lost its lease
    assert not scores(engine)
    assert eval_queue.finish(engine, second, "alive", score=score)
    assert not eval_queue.finish(engine, second, "alive", score=score)  # once only
    assert list(scores(engine).values()) == [(1.0, "ok")]


def test_entries_of_a_crash_loop_end_as_errors(engine: Engine, two_orgs: tuple[str, str]) -> None:
    a, _ = two_orgs
    insert(engine, records(a, 1), bodies=True)
    rule = make_rule(engine, a)
    online.sample(engine, lag_s=0)
    for i in range(online.MAX_ATTEMPTS):
        assert eval_queue.claim(engine, f"dies-{i}", 10, -1)
    online.work(engine, "w")
    status = rules.rule_status(engine, a, rule["id"])
    assert status is not None and status["errors"] == 1 and not scores(engine)
    assert "gave up" in status["recent_errors"][0]["error"]
