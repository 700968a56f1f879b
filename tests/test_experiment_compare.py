"""The paired bootstrap interval against a reference computation (written here apart from the
code, with the same seed semantics: ``numpy.random.default_rng(seed)``, the resamples' item
indices as one ``integers(0, n, (resamples, n))`` draw; the means and percentiles taken here
in plain Python), closed-form cases, and the plain-words verdicts; and the experiment results
cache."""

from __future__ import annotations

import math
import random
import statistics

import numpy as np
import pytest

from heliograph.evals import compare
from heliograph.evals.results import DifferenceCache


def reference_interval(
    a: dict[str, float], b: dict[str, float], resamples: int, seed: int
) -> tuple[float, float]:
    """The textbook paired bootstrap: resample item indices, average the differences,
    take the 2.5th and 97.5th percentiles with linear interpolation."""
    items = sorted(set(a) & set(b))
    d = [b[k] - a[k] for k in items]
    n = len(d)
    indices = np.random.default_rng(seed).integers(0, n, (resamples, n)).tolist()
    means = []
    for row in indices:
        picked = [d[i] for i in row]
        means.append(math.fsum(picked) / n)
    means.sort()

    def pct(p: float) -> float:
        h = (len(means) - 1) * p
        lo = math.floor(h)
        hi = min(lo + 1, len(means) - 1)
        return means[lo] + (h - lo) * (means[hi] - means[lo])

    return pct(0.025), pct(0.975)


def scores(n: int, seed: int, shift: float = 0.0) -> tuple[dict[str, float], dict[str, float]]:
    rng = random.Random(seed)
    a = {f"item-{i:04d}": rng.random() for i in range(n)}
    b = {k: min(1.0, max(0.0, v + shift + rng.gauss(0, 0.1))) for k, v in a.items()}
    return a, b


@pytest.mark.parametrize(("n", "shift", "seed"), [(30, 0.0, 1), (200, 0.05, 2), (1000, -0.02, 3)])
def test_interval_matches_the_reference(n: int, shift: float, seed: int) -> None:
    a, b = scores(n, seed, shift)
    got = compare.paired_difference(a, b, resamples=2000, seed=7)
    low, high = reference_interval(a, b, 2000, 7)
    assert got.low == pytest.approx(low, abs=1e-12)
    assert got.high == pytest.approx(high, abs=1e-12)
    assert got.n == n
    assert got.diff == pytest.approx(statistics.fmean(b[k] - a[k] for k in a))
    assert got.low is not None and got.high is not None
    assert got.low <= got.diff <= got.high


@pytest.mark.parametrize("n", [1, 13, 1000])
def test_drawn_in_blocks_as_in_one_draw(n: int) -> None:
    """The code draws the indices a block of rows at a time (bounded memory); the blocks are
    the same numbers as the reference's one draw, whatever the block size."""
    d = [random.Random(n).random() for _ in range(n)]
    whole = compare.bootstrap_diffs(d, 300, 9, block=300 * n)
    assert len(whole) == 300 and whole == sorted(whole)
    for block in (1, n, 7 * n, 299 * n):
        assert compare.bootstrap_diffs(d, 300, 9, block=block) == whole


def test_seeded_and_reproducible() -> None:
    a, b = scores(100, 4, 0.1)
    assert compare.paired_difference(a, b) == compare.paired_difference(a, b)
    assert compare.paired_difference(a, b, seed=1) != compare.paired_difference(a, b, seed=2)


def test_constant_difference_has_a_zero_width_interval() -> None:
    a = {str(i): i / 40 for i in range(40)}
    b = {k: v + 0.25 for k, v in a.items()}
    got = compare.paired_difference(a, b)
    assert got.low == pytest.approx(0.25) and got.high == pytest.approx(0.25)
    assert got.significant and got.verdict.startswith("B is better")


def test_width_matches_the_closed_form_spread() -> None:
    """The bootstrap mean's spread is the differences' population deviation / sqrt(n); for
    large n the 95 % interval is close to diff ± 1.96 of it."""
    rng = random.Random(11)
    a = {str(i): 0.0 for i in range(2000)}
    b = {str(i): float(rng.random() < 0.6) for i in range(2000)}
    got = compare.paired_difference(a, b, resamples=4000)
    diffs = [b[k] - a[k] for k in a]
    se = statistics.pstdev(diffs) / math.sqrt(len(diffs))
    assert got.low is not None and got.high is not None
    assert (got.high - got.low) / 2 == pytest.approx(1.96 * se, rel=0.08)
    assert got.diff is not None and got.low < got.diff < got.high
    assert abs(got.diff - 0.6) < 4 * se


def test_only_items_both_scored_and_a_minimum() -> None:
    a = {str(i): 1.0 for i in range(12)}
    b = {str(i): 0.0 for i in range(5, 20)}
    got = compare.paired_difference(a, b)
    assert got.n == 7 and got.low is None and not got.enough
    assert got.diff == -1.0 and got.mean_a == 1.0 and got.mean_b == 0.0
    assert got.verdict.startswith("not enough data (7 paired items")
    empty = compare.paired_difference({}, {"x": 1.0})
    assert empty.n == 0 and empty.diff is None and not empty.significant


def test_verdicts_in_plain_words() -> None:
    same = {str(i): float(i % 2) for i in range(50)}
    flipped = {k: 1.0 - v for k, v in same.items()}
    mixed = compare.paired_difference(same, flipped)
    assert mixed.low is not None and mixed.low < 0 < (mixed.high or 0)
    assert mixed.verdict.startswith("no significant difference")
    worse = compare.paired_difference({k: 1.0 for k in same}, same)
    assert worse.verdict.startswith("B is worse") and worse.to_dict()["significant"] is True


def test_cache_answers_the_same_and_follows_new_scores() -> None:
    cache = DifferenceCache(size=2)
    a, b = scores(50, 5)
    first = cache.get(a, b)
    assert cache.get(dict(a), dict(b)) is first
    b2 = dict(b) | {"item-0000": 0.0 if b["item-0000"] else 1.0}
    assert cache.get(a, b2) == compare.paired_difference(a, b2)
    cache.get(b, a)
    assert len(cache.entries) == 2
