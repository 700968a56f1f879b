"""Experiment results read from the store on both dialects: the matrix paged by item, the
summary per variant (exact percentiles, evaluator errors apart and never zeros), paired
scores, human scores, export order, and another organization's experiment never seen."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from experiment_support import build, default_score
from heliograph.evals import results as results_doc
from heliograph.evals.results import DifferenceCache
from heliograph.store import experiment_results as results
from heliograph.store import orgs

THREE = (
    {"kind": "prompt", "prompt": "support", "version": 1},
    {"kind": "prompt", "prompt": "support", "version": 2},
    {"kind": "model", "upstream": "ollama", "model": "llama3.1"},
)


@pytest.fixture
def two_orgs(engine: Engine) -> tuple[str, str]:
    return orgs.create_org(engine, "a"), orgs.create_org(engine, "b")


def judge(i: int, v: int) -> tuple[float | None, bool | None, str | None, str | None] | None:
    if i == 0 and v == 1:
        return None, None, None, "judge answer not parseable: 'maybe'"
    if i == 3:
        return None  # never scored (cell errored or judge skipped)
    return float(1 + (i + v) % 5), None, f"rubric {i}/{v}", None


def test_summary_is_exact_and_counts_errors_apart(
    engine: Engine, two_orgs: tuple[str, str]
) -> None:
    a, b = two_orgs
    built = build(
        engine,
        a,
        items=6,
        variants=THREE,
        evaluators={
            "correct": lambda i, v: ((1.0 if i % 2 == 0 else 0.0), i % 2 == 0, "ok", None),
            "judge": judge,
        },
        status=lambda i, v: "error" if (i, v) == (5, 2) else "done",
        latency=lambda i, v: float(10 * (i + 1) + v),
        cost=lambda i, v: 1000 * (v + 1),
    )
    got = results.summary(engine, a, built.experiment_id)
    assert set(got) == set(built.variant_ids)
    first, second, third = (got[v] for v in built.variant_ids)
    assert first["cells"] == 6 and first["done"] == 6 and first["errors"] == 0
    assert third["done"] == 5 and third["errors"] == 1
    assert first["cost_nusd"] == 6000 and third["cost_nusd"] == 5 * 3000
    # nearest rank over 10, 20, ..., 60 (+ the variant's offset)
    assert first["p50_latency_ms"] == 30.0 and first["p95_latency_ms"] == 60.0
    assert third["p50_latency_ms"] == 32.0 and third["p95_latency_ms"] == 52.0
    assert first["prompt_tokens"] == sum(10 + i for i in range(6))
    correct = first["evaluators"]["correct"]
    assert correct == {"mean": 0.5, "scored": 6, "errors": 0, "passed": 3, "pass_rate": 0.5}
    j2 = second["evaluators"]["judge"]
    # variant 1: item 0 is an evaluator error, item 3 unscored: 4 values averaged, no zero
    values = [float(1 + (i + 1) % 5) for i in (1, 2, 4, 5)]
    assert j2["scored"] == 4 and j2["errors"] == 1
    assert j2["mean"] == pytest.approx(sum(values) / 4)
    assert j2["pass_rate"] is None  # a 1-5 scale has no pass/fail
    assert results.summary(engine, b, built.experiment_id) == {}


def test_matrix_pages_by_item_with_scores(engine: Engine, two_orgs: tuple[str, str]) -> None:
    a, b = two_orgs
    built = build(engine, a, items=5, variants=THREE, output=lambda i, v: f"<b>{i}:{v}</b>")
    seen: list[int] = []
    after = None
    pages = 0
    while True:
        rows, after = results.matrix(engine, a, built.experiment_id, after, 2)
        pages += 1
        for row in rows:
            seen.append(row["item_position"])
            assert set(row["cells"]) == set(built.variant_ids)
            cell = row["cells"][built.variant_ids[1]]
            assert cell["output"] == f"<b>{row['item_position']}:1</b>"
            assert cell["scores"]["correct"]["reason"] == f"item {row['item_position']} variant 1"
            assert cell["request_id"] == built.request_ids[(row["item_position"], 1)]
        if after is None:
            break
    assert seen == [0, 1, 2, 3, 4] and pages == 3
    assert results.matrix(engine, b, built.experiment_id, None, 10) == ([], None)
    cells = results.item_cells(engine, a, built.experiment_id, 3)
    assert sorted(c["output"] for c in cells) == ["<b>3:0</b>", "<b>3:1</b>", "<b>3:2</b>"]
    assert results.item_cells(engine, a, built.experiment_id, 99) == []
    exported = list(results.iter_export(engine, a, built.experiment_id))
    assert [c["item_position"] for c in exported] == [i for i in range(5) for _ in range(3)]


def test_experiment_header_and_isolation(engine: Engine, two_orgs: tuple[str, str]) -> None:
    a, b = two_orgs
    older = build(engine, a, name="older", items=2, created_at=1_000)
    newer = build(engine, a, name="newer", items=2, variants=THREE, created_at=2_000)
    build(engine, b, name="theirs", items=1)
    assert [e["name"] for e in results.list_experiments(engine, a)] == ["newer", "older"]
    got = results.get_experiment(engine, a, newer.experiment_id)
    assert got is not None and got["dataset_name"] == newer.dataset
    assert [v["position"] for v in got["variants"]] == [0, 1, 2]
    assert got["variants"][0]["spec"]["prompt"] == "support"
    assert results.get_experiment(engine, b, older.experiment_id) is None
    assert results.get_experiment(engine, a, "nul\x00") is None


def test_paired_scores_leave_errors_out(engine: Engine, two_orgs: tuple[str, str]) -> None:
    a, _ = two_orgs
    built = build(engine, a, items=5, variants=THREE, evaluators={"judge": judge})
    paired = results.paired_scores(engine, a, built.experiment_id, "judge")
    first, second = built.variant_ids[:2]
    assert set(paired[first]) == {built.item_ids[i] for i in (0, 1, 2, 4)}
    assert set(paired[second]) == {built.item_ids[i] for i in (1, 2, 4)}
    assert paired[second][built.item_ids[1]] == float(1 + 2 % 5)
    assert results.evaluator_names(engine, a, built.experiment_id) == ["judge"]


def test_scores_read_once_agree_with_each_reading(
    engine: Engine, two_orgs: tuple[str, str]
) -> None:
    """One read of every score gives the summary's evaluator figures, every evaluator's
    paired values (as ``paired_scores`` reads them) and the evaluators' names."""
    a, b = two_orgs
    built = build(
        engine, a, items=5, variants=THREE, evaluators={"judge": judge, "correct": default_score}
    )
    exp = built.experiment_id
    scores = results.read_scores(engine, a, exp)
    assert scores.names == results.evaluator_names(engine, a, exp) == ["correct", "judge"]
    for name in scores.names:
        assert scores.paired[name] == results.paired_scores(engine, a, exp, name)
    assert results.summary(engine, a, exp, scores) == results.summary(engine, a, exp)
    first = scores.summary[built.variant_ids[0]]
    assert first["correct"] == {
        "mean": 3 / 5,
        "scored": 5,
        "errors": 0,
        "passed": 3,
        "pass_rate": 3 / 5,
    }
    assert first["judge"]["scored"] == 4 and first["judge"]["errors"] == 0
    assert scores.summary[built.variant_ids[1]]["judge"]["errors"] == 1
    empty = results.read_scores(engine, b, exp)
    assert (empty.summary, empty.paired, empty.names) == ({}, {}, [])


def test_page_document_compares_with_the_baseline_only(
    engine: Engine, two_orgs: tuple[str, str]
) -> None:
    """The page computes each variant against the baseline; the API every pair; the pairs
    both compute are the same numbers (and the page's are reused from the cache)."""
    a, _ = two_orgs
    built = build(
        engine, a, items=30, variants=THREE, evaluators={"judge": judge, "correct": default_score}
    )
    cache = DifferenceCache()
    page = results_doc.load(engine, a, built.experiment_id, cache, baseline_only=True)
    assert page is not None
    pairs = [(c["evaluator"], c["a_position"], c["b_position"]) for c in page["comparisons"]]
    assert pairs == [("correct", 0, 1), ("correct", 0, 2), ("judge", 0, 1), ("judge", 0, 2)]
    assert len(cache.entries) == 4
    api = results_doc.load(engine, a, built.experiment_id, cache)
    assert api is not None
    assert [(c["evaluator"], c["a_position"], c["b_position"]) for c in api["comparisons"]] == [
        ("correct", 0, 1),
        ("correct", 0, 2),
        ("correct", 1, 2),
        ("judge", 0, 1),
        ("judge", 0, 2),
        ("judge", 1, 2),
    ]
    assert len(cache.entries) == 6
    shown = {(c["evaluator"], c["label"]): c for c in page["comparisons"]}
    for c in api["comparisons"]:
        if c["a_position"] == 0:
            assert shown[(c["evaluator"], c["label"])] == c
            assert c["ci_low"] is not None


def test_human_scores_replace_and_show(engine: Engine, two_orgs: tuple[str, str]) -> None:
    a, b = two_orgs
    built = build(engine, a, items=3)
    cell_id = built.cells[(1, 0)]
    exp = built.experiment_id
    assert results.set_human_score(engine, b, exp, cell_id, 1.0, True, "x") is None
    cell = results.set_human_score(engine, a, exp, cell_id, 0.0, False, "wrong tone")
    assert cell is not None and cell["request_id"] == built.request_ids[(1, 0)]
    results.set_human_score(engine, a, exp, cell_id, 4.0, None, "better on second look")
    got = results.get_cell(engine, a, exp, cell_id)
    assert got is not None
    human = got["scores"][results.HUMAN]
    assert human["value"] == 4.0 and human["passed"] is None
    assert human["reason"] == "better on second look"
    summary = results.summary(engine, a, exp)[built.variant_ids[0]]["evaluators"]["human"]
    assert summary["scored"] == 1 and summary["mean"] == 4.0
    queue = results.review_cells(engine, a, exp, None, 10)
    assert [(c["item_position"], c["variant_position"]) for c in queue][:3] == [
        (0, 0),
        (0, 1),
        (1, 0),
    ]
    assert queue[0]["inputs"] == {"q": "question 0"} and queue[0]["expected"] == "expected 0"
    rest = results.review_cells(engine, a, exp, queue[2]["seq"], 10)
    assert [c["id"] for c in rest] == [c["id"] for c in queue[3:]]
    assert results.review_cells(engine, b, exp, None, 10) == []
