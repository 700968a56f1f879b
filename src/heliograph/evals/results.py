"""An experiment's results as one document: the page and the API both show this.

Per variant: cells by status, cost, tokens, p50/p95 latency and each evaluator's mean score,
pass rate and errors (``store.experiment_summary``, every score read once). Per evaluator:
the paired bootstrap difference (``evals.compare``) for every pair of variants, later minus
earlier (the API), or only each variant against the baseline (position 0), which is all the
page shows: with ``k`` variants that is ``k - 1`` intervals per evaluator, not ``k (k - 1) / 2``.

A bootstrap over 1,000 items is ~10 ms (numpy), still a share of a page's budget; a finished
experiment's scores do not change, so the intervals are kept in a small per-app cache keyed
by the paired data itself (a digest of the items and values): a new score (a human review,
a running experiment's next cell) makes a new key, never a stale answer.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from sqlalchemy import Engine

from heliograph.evals.compare import Difference, paired_difference
from heliograph.store import experiment_results as results_store

CACHE_ENTRIES = 512


@dataclass
class DifferenceCache:
    """Bootstrap results by the digest of their input (least recently used dropped)."""

    entries: OrderedDict[str, Difference] = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    size: int = CACHE_ENTRIES

    def get(self, a: dict[str, float], b: dict[str, float]) -> Difference:
        key = _digest(a, b)
        with self.lock:
            found = self.entries.get(key)
            if found is not None:
                self.entries.move_to_end(key)
                return found
        made = paired_difference(a, b)
        with self.lock:
            self.entries[key] = made
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)
        return made


def _digest(a: dict[str, float], b: dict[str, float]) -> str:
    h = hashlib.blake2b(digest_size=20)
    for side in (a, b):
        for item in sorted(side):
            h.update(f"{item}={side[item]!r};".encode())
        h.update(b"|")
    return h.hexdigest()


def cache_of(state: Any) -> DifferenceCache:
    """The app's cache (made on first use; it lives on ``app.state``, not in a global)."""
    cache = getattr(state, "experiment_differences", None)
    if cache is None:
        cache = DifferenceCache()
        state.experiment_differences = cache
    return cache


def variant_label(position: int) -> str:
    """A, B, C ... (then V27, V28 ...): how the page names variants in "B - A"."""
    return chr(ord("A") + position) if position < 26 else f"V{position + 1}"


def load(
    engine: Engine,
    org_id: str,
    exp_id: str,
    cache: DifferenceCache,
    baseline_only: bool = False,
) -> dict[str, Any] | None:
    """The experiment, its variants with their summaries, and the comparisons (every pair, or
    with ``baseline_only`` each later variant against the first); None if the experiment is not
    in ``org_id``."""
    experiment = results_store.get_experiment(engine, org_id, exp_id)
    if experiment is None:
        return None
    scores = results_store.read_scores(engine, org_id, exp_id)
    summary = results_store.summary(engine, org_id, exp_id, scores)
    names = scores.names
    variants = experiment["variants"]
    for v in variants:
        v["letter"] = variant_label(v["position"])
        v["summary"] = summary.get(v["id"]) or _empty()
    comparisons: list[dict[str, Any]] = []
    pairs = (
        [(variants[0], v) for v in variants[1:]]
        if baseline_only
        else list(combinations(variants, 2))
    )
    for name in names:
        paired = scores.paired.get(name, {})
        for first, second in pairs:
            diff = cache.get(paired.get(first["id"], {}), paired.get(second["id"], {}))
            comparisons.append(
                {
                    "evaluator": name,
                    "a": first["id"],
                    "b": second["id"],
                    "a_position": first["position"],
                    "b_position": second["position"],
                    "label": f"{second['letter']} - {first['letter']}",
                    **diff.to_dict(),
                }
            )
    return {"experiment": experiment, "evaluators": names, "comparisons": comparisons}


def _empty() -> dict[str, Any]:
    return {
        "cells": 0,
        "done": 0,
        "errors": 0,
        "pending": 0,
        "running": 0,
        "skipped": 0,
        "cost_nusd": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "p50_latency_ms": None,
        "p95_latency_ms": None,
        "evaluators": {},
    }
