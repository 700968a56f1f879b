"""Variant and evaluator spellings (the API's and the CLI's), and the CLI's verdict: the
summary per variant and the exit codes."""

from __future__ import annotations

from typing import Any

import pytest

from heliograph.cli.experiment import (
    EXIT_CAPPED,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_THRESHOLD,
    variant_rows,
    verdict,
)
from heliograph.evals.experiment_specs import (
    VariantError,
    parse_evaluator,
    parse_variant,
    unique_names,
    variant_name,
)
from heliograph.evals.specs import SpecError


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("prompt:support@staging", {"kind": "prompt", "prompt": "support", "label": "staging"}),
        ("prompt:support:3", {"kind": "prompt", "prompt": "support", "version": 3}),
        ("prompt:support", {"kind": "prompt", "prompt": "support", "label": "production"}),
        (
            "model:ollama/llama3.1:8b",
            {"kind": "model", "upstream": "ollama", "model": "llama3.1:8b"},
        ),
        (
            "model:openrouter/meta/llama",
            {"kind": "model", "upstream": "openrouter", "model": "meta/llama"},
        ),
    ],
)
def test_variant_spellings(text: str, want: dict[str, Any]) -> None:
    assert parse_variant(text) == {**want, "params": {}}


@pytest.mark.parametrize(
    "bad",
    [
        "gpt-4o",
        "prompt:",
        "prompt:x@",
        "model:x",
        "model:/m",
        3,
        {"kind": "other"},
        {"kind": "model", "upstream": "u"},
        {"kind": "prompt", "prompt": "p", "version": True},
        {"kind": "model", "upstream": "u", "model": "m", "params": {"headers": {}}},
        {"kind": "model", "upstream": "u", "model": "m", "extra": 1},
    ],
)
def test_bad_variants(bad: Any) -> None:
    with pytest.raises(VariantError):
        parse_variant(bad)


def test_variant_names() -> None:
    spec = {"kind": "prompt", "prompt": "p", "version": 2, "label": "staging", "model": "m"}
    assert variant_name(spec) == "prompt:p:2 (staging) m"
    assert variant_name({"kind": "model", "upstream": "u", "model": "m"}) == "model:u/m"
    assert variant_name({**spec, "name": "candidate"}) == "candidate"


@pytest.mark.parametrize(
    ("text", "kind", "config"),
    [
        ("exact", "exact_match", {"case_sensitive": True}),
        ("json", "valid_json", {"type": "any"}),
        ("contains:refund", "contains", {"values": ["refund"]}),
        ("regex:^[0-9]+$", "regex", {"pattern": "^[0-9]+$"}),
        ("similarity:0.8", "similarity", {"threshold": 0.8}),
        (
            "judge:grader@production",
            "llm_judge",
            {"prompt": "grader", "label": "production", "scale": "0-1", "threshold": 0.5},
        ),
        ("judge:grader:4", "llm_judge", {"prompt": "grader", "version": 4}),
    ],
)
def test_evaluator_shorthands(text: str, kind: str, config: dict[str, Any]) -> None:
    spec = parse_evaluator(text)
    assert not isinstance(spec, str) and spec.kind == kind
    assert dict(spec.config).items() >= config.items()


@pytest.mark.parametrize("bad", ["regex:(", "similarity:high", "similarity:2", "judge:", "judge:x"])
def test_bad_evaluator_shorthands(bad: str) -> None:
    with pytest.raises(SpecError):
        parse_evaluator(bad)


def test_saved_names_and_unique_names() -> None:
    assert parse_evaluator("my-saved-one") == "my-saved-one"
    specs = [parse_evaluator("contains:a"), parse_evaluator("contains:b"), parse_evaluator("exact")]
    names = [s.name for s in unique_names([s for s in specs if not isinstance(s, str)])]
    assert names == ["contains", "contains-2", "exact"]


def results(*variants: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {"variants": [{"name": n, "summary": s} for n, s in variants]}


def test_cli_summary_and_exit_codes() -> None:
    good = {
        "cells": 4,
        "errors": 1,
        "cost_nusd": 2_000_000_000,
        "p50_latency_ms": 10.0,
        "p95_latency_ms": 30.0,
        "evaluators": {
            "exact": {"mean": 1.0, "passed": 3, "pass_rate": 1.0, "errors": 0},
            "judge": {"mean": 0.7, "passed": 1, "pass_rate": 0.5, "errors": 1},
        },
    }
    bad = {
        **good,
        "evaluators": {"exact": {"mean": 0.25, "passed": 1, "pass_rate": 0.25, "errors": 0}},
    }
    rows = variant_rows(results(("a", good), ("b", bad)))
    assert rows[0]["mean_score"] == pytest.approx(0.85) and rows[0]["pass_rate"] == pytest.approx(
        4 / 5
    )
    assert rows[0]["errors"] == 2 and rows[0]["cost_usd"] == 2.0
    done = {"status": "completed", "stop_reason": None}
    assert verdict(done, rows[:1], 0.8) == EXIT_OK
    assert verdict(done, rows, 0.8) == EXIT_THRESHOLD
    assert verdict(done, rows, None) == EXIT_OK
    assert verdict(done, [], 0.5) == EXIT_THRESHOLD  # nothing scored is no pass
    unscored = variant_rows(results(("c", {"evaluators": {}})))
    assert verdict(done, unscored, 0.1) == EXIT_THRESHOLD
    assert (
        verdict({"status": "stopped", "stop_reason": "cost cap reached"}, rows, 0.1) == EXIT_CAPPED
    )
    assert verdict({"status": "stopped", "stop_reason": "cancelled"}, rows, 0.1) == EXIT_ERROR
    assert verdict({"status": "failed", "stop_reason": "x"}, rows, None) == EXIT_ERROR
