"""Per-model figures: who serves each model (local or cloud), a model's trends, its users,
and two to four models side by side.

The Models, model and comparison pages ask "is my local model getting slower?" and "what does
the cloud cost me next to my own GPU?": percentiles of latency, time to first token and
output tokens/s per time bucket, cold starts, errors, tokens and cost. All of it is in the
model rollup (model x provider x upstream per hour, with histograms) plus raw rows at the
window's ragged edges (``aggregate.collect``), so a 30-day page reads a few thousand rollup
rows however many requests there were. Which upstream is local is the caller's knowledge
(settings), passed in as a function.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Engine

from heliograph.store import aggregate, analytics
from heliograph.store.stats import BUCKETS_MS, Stats

Local = Callable[[str, str], bool]  # (upstream, provider) -> served locally?
SIDES = ("local", "cloud")
MAX_COMPARED = 4
# The user rollup's additive measures a list of a model's users shows.
USER_MEASURES = (
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "cost_nusd",
    "unpriced",
)


def _merged(items: Sequence[Stats]) -> Stats:
    out = Stats()
    for stats in items:
        out.merge(stats)
    return out


def _count(since_ms: int, until_ms: int, bucket_ms: int) -> int:
    return max(1, -(-(until_ms - since_ms) // bucket_ms))


def _points(since_ms: int, bucket_ms: int, buckets: Sequence[Stats]) -> list[dict[str, Any]]:
    return [{"start_ms": since_ms + i * bucket_ms, **s.to_api()} for i, s in enumerate(buckets)]


def servings(
    engine: Engine,
    org_id: str,
    since_ms: int,
    until_ms: int,
    local: Local,
    where: analytics.Where = None,
) -> dict[str, Any]:
    """Every model with its upstreams, local and cloud subtotals, and the models served both
    ways, from one read of the model rollup.

    ``models``: per model (None: no model), by requests, the ``summary`` fields plus
    ``upstreams`` (each with ``upstream``, ``provider``, ``local`` and its own figures) and
    ``where``: "local", "cloud" or "both". ``sides``: the local and the cloud subtotals (with
    ``models``, how many). ``both``: per model served both ways, its local and cloud figures.
    ``providers``: per provider, by requests (the Dashboard's top providers, from the same read).
    """
    conds = analytics.resolve_where(engine, org_id, where)
    with engine.connect() as conn:
        entries = aggregate.collect(
            conn, org_id, since_ms, until_ms, ("model", "provider", "upstream"), conds
        )
    per_model: dict[Any, list[tuple[str, str, bool, aggregate.Entry]]] = {}
    for (model, provider, upstream), entry in entries.items():
        per_model.setdefault(model, []).append(
            (upstream, provider, local(upstream, provider), entry)
        )
    side_stats: dict[str, list[Stats]] = {side: [] for side in SIDES}
    side_models: dict[str, set[Any]] = {side: set() for side in SIDES}
    models, both = [], []
    for model, served in per_model.items():
        by_side: dict[str, list[Stats]] = {side: [] for side in SIDES}
        for _, _, is_local, entry in served:
            side = "local" if is_local else "cloud"
            by_side[side].append(entry.stats)
            side_stats[side].append(entry.stats)
            side_models[side].add(model)
        total = _merged([e.stats for *_, e in served])
        kinds = [side for side in SIDES if by_side[side]]
        upstreams = [
            {
                "upstream": upstream,
                "provider": provider,
                "local": is_local,
                **entry.stats.to_api(),
                "first_ms": entry.first_ms,
                "last_ms": entry.last_ms,
            }
            for upstream, provider, is_local, entry in sorted(
                served, key=lambda s: (-s[3].stats.requests, s[0])
            )
        ]
        models.append(
            {
                "key": model,
                **total.to_api(),
                "first_ms": min(e.first_ms for *_, e in served if e.first_ms is not None),
                "last_ms": max(e.last_ms for *_, e in served if e.last_ms is not None),
                "providers": sorted({p for _, p, _, _ in served}),
                "upstreams": upstreams,
                "where": kinds[0] if len(kinds) == 1 else "both",
            }
        )
        if len(kinds) == 2:
            both.append(
                {
                    "key": model,
                    "requests": total.requests,
                    **{side: _merged(by_side[side]).to_api() for side in SIDES},
                }
            )
    by_provider: dict[str, aggregate.Entry] = {}
    for (_, provider, _), entry in entries.items():
        into = by_provider.setdefault(provider, aggregate.Entry())
        into.stats.merge(entry.stats)
        if entry.first_ms is not None and entry.last_ms is not None:
            into.seen(entry.first_ms, entry.last_ms)
    providers = [
        {"key": name, **e.stats.to_api(), "first_ms": e.first_ms, "last_ms": e.last_ms}
        for name, e in sorted(by_provider.items(), key=lambda kv: (-kv[1].stats.requests, kv[0]))
    ]
    models.sort(key=lambda m: (-m["requests"], str(m["key"])))
    both.sort(key=lambda m: (-m["requests"], str(m["key"])))
    sides = {
        side: {**_merged(side_stats[side]).to_api(), "models": len(side_models[side])}
        for side in SIDES
    }
    return {"models": models, "sides": sides, "both": both, "providers": providers}


def latency_histogram(stats: Stats) -> list[dict[str, Any]]:
    """The latency histogram's buckets, ``low_ms`` to ``high_ms`` (None: open-ended), with
    their counts, trimmed of empty buckets at either end."""
    counts = stats.latency_hist
    used = [i for i, n in enumerate(counts) if n]
    if not used:
        return []
    total = sum(counts)
    out = []
    for i in range(used[0], used[-1] + 1):
        out.append(
            {
                "low_ms": BUCKETS_MS[i - 1] if i > 0 else 0.0,
                "high_ms": BUCKETS_MS[i] if i < len(BUCKETS_MS) else None,
                "count": counts[i],
                "share": counts[i] / total,
            }
        )
    return out


def trend(
    engine: Engine,
    org_id: str,
    since_ms: int,
    until_ms: int,
    bucket_ms: int,
    model: str,
    upstream: str | None = None,
) -> dict[str, Any]:
    """One model's (or one model x upstream's) figures per time bucket and in total, its
    latency histogram, and the same per upstream (to overlay when two serve it).

    ``points`` has one entry per bucket (empty ones included) with the ``summary`` fields;
    ``upstreams`` maps each upstream to its ``provider``, ``totals`` and ``points``.
    """
    where: analytics.Where = {"model": model, **({"upstream": upstream} if upstream else {})}
    conds = analytics.resolve_where(engine, org_id, where)
    count = _count(since_ms, until_ms, bucket_ms)
    with engine.connect() as conn:
        entries = aggregate.collect(
            conn,
            org_id,
            since_ms,
            until_ms,
            ("upstream", "provider", "bucket"),
            conds,
            bucket_ms=bucket_ms,
        )
    overall = [Stats() for _ in range(count)]
    per_upstream: dict[str, tuple[set[str], list[Stats]]] = {}
    for (name, provider, index), entry in entries.items():
        at = min(max(int(index), 0), count - 1)
        overall[at].merge(entry.stats)
        providers, buckets = per_upstream.setdefault(name, (set(), [Stats() for _ in range(count)]))
        providers.add(provider)
        buckets[at].merge(entry.stats)
    totals = _merged(overall)
    upstreams = {
        name: {
            "providers": sorted(providers),
            "totals": _merged(buckets).to_api(),
            "points": _points(since_ms, bucket_ms, buckets),
        }
        for name, (providers, buckets) in sorted(
            per_upstream.items(), key=lambda kv: -sum(s.requests for s in kv[1][1])
        )
    }
    return {
        "totals": totals.to_api(),
        "points": _points(since_ms, bucket_ms, overall),
        "latency_histogram": latency_histogram(totals),
        "upstreams": upstreams,
    }


def top_users(
    engine: Engine,
    org_id: str,
    since_ms: int,
    until_ms: int,
    model: str,
    limit: int = 10,
) -> list[dict[str, Any]]:
    """A model's users by requests (``key`` None: requests without a user), with errors,
    tokens and cost: the lean sums of the task rollup (user x model per hour)."""
    conds = analytics.resolve_where(engine, org_id, {"model": model})
    with engine.connect() as conn:
        found = aggregate.sums(conn, org_id, since_ms, until_ms, ("user_id",), conds, USER_MEASURES)
    rows = []
    for (user,), stats in found.items():
        api = stats.to_api()
        rows.append({"key": user, **{k: api[k] for k in _USER_FIELDS}})
    rows.sort(key=lambda r: (-r["requests"], str(r["key"])))
    return rows[:limit]


_USER_FIELDS = (
    "requests",
    "errors",
    "error_rate",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cost_usd",
    "unpriced_requests",
)


def model_names(engine: Engine, org_id: str, since_ms: int, until_ms: int) -> list[str]:
    """The models called in the window, most used first (the comparison's pickers): counts
    only, the leanest read of the rollups."""
    with engine.connect() as conn:
        found = aggregate.sums(conn, org_id, since_ms, until_ms, ("model",))
    ranked = sorted(found.items(), key=lambda kv: (-kv[1].requests, str(kv[0][0])))
    return [key[0] for key, stats in ranked if key[0] is not None and stats.requests]


def compare(
    engine: Engine,
    org_id: str,
    since_ms: int,
    until_ms: int,
    bucket_ms: int,
    models: Sequence[str],
    where: analytics.Where = None,
) -> dict[str, dict[str, Any]]:
    """Two to four models over the same window and traffic filter (``where``: upstream,
    provider, user, task...), in one read: per model, ``totals`` and ``points`` per bucket.

    A filter on a user or a task reads the task rollup, which keeps no histograms: the
    percentiles are then None rather than partial.
    """
    chosen = list(dict.fromkeys(m for m in models if m))[:MAX_COMPARED]
    if not chosen:
        return {}
    given = dict(where or {})
    given.pop("model", None)
    conds = analytics.resolve_where(engine, org_id, given)
    conds["model"] = tuple(chosen)
    count = _count(since_ms, until_ms, bucket_ms)
    buckets = {m: [Stats() for _ in range(count)] for m in chosen}
    with engine.connect() as conn:
        entries = aggregate.collect(
            conn, org_id, since_ms, until_ms, ("model", "bucket"), conds, bucket_ms=bucket_ms
        )
    for (model, index), entry in entries.items():
        if model in buckets:
            buckets[model][min(max(int(index), 0), count - 1)].merge(entry.stats)
    return {
        m: {"totals": _merged(b).to_api(), "points": _points(since_ms, bucket_ms, b)}
        for m, b in buckets.items()
    }
