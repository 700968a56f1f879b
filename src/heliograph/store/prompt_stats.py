"""Production figures of managed prompts: per version of one prompt, and traffic per prompt.

The rollups have no prompt dimension (a prompt is an application's choice, not a property of
the traffic the dashboards slice), so these read raw records, through the partial index on
``(org_id, prompt_name, created_at, prompt_version)`` (migration 0013): only the records that
named a prompt are read, however much other traffic the window holds. The same ``Stats`` as
the rollups fold them, so a version's p50 here and a model's p50 elsewhere mean the same.

Feedback (thumbs up or down) and scores live in their own tables; they are averaged per
version with one grouped join each, so a version "scores the same" is a database sum, not a
walk over every record in Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, and_, case, func, select
from sqlalchemy.sql.elements import ColumnElement

from heliograph.store.aggregate import ROW_COLUMNS
from heliograph.store.schema import request_feedback, request_scores, requests
from heliograph.store.stats import Stats

CHUNK = 500  # prompt names per query of the list's traffic


def _window(org_id: str, since_ms: int, until_ms: int) -> list[ColumnElement[bool]]:
    return [
        requests.c.org_id == org_id,
        requests.c.created_at >= since_ms,
        requests.c.created_at < until_ms,
        requests.c.kind == "llm",
    ]


def _figures(stats: Stats) -> dict[str, Any]:
    """``Stats.to_api`` plus the per-request figures a version comparison reads."""
    api = stats.to_api()
    n, priced = stats.requests, stats.requests - stats.unpriced
    api["cost_per_request_usd"] = stats.cost_nusd / priced / 1e9 if priced else None
    api["prompt_tokens_per_request"] = stats.prompt_tokens / n if n else None
    api["completion_tokens_per_request"] = stats.completion_tokens / n if n else None
    return api


def version_metrics(
    engine: Engine, org_id: str, name: str, since_ms: int, until_ms: int
) -> dict[int | None, dict[str, Any]]:
    """Per version of prompt ``name`` with records in ``[since, until)``: requests, errors
    and error rate, tokens, cost (total and per priced request), latency percentiles,
    ``feedback`` (``{"count", "positive", "average"}``: the share of thumbs up) and
    ``scores`` (``{score name: {"count", "average"}}``). Versions without records are absent;
    the key None holds records that named the prompt without a version (none today).
    """
    conds = [*_window(org_id, since_ms, until_ms), requests.c.prompt_name == name]
    version = requests.c.prompt_version
    rows_query = select(version.label("g_version"), *ROW_COLUMNS).where(and_(*conds))
    feedback_query = (
        select(
            version,
            func.count().label("n"),
            func.sum(case((request_feedback.c.rating.is_(True), 1), else_=0)).label("up"),
        )
        .select_from(
            requests.join(request_feedback, request_feedback.c.request_id == requests.c.id)
        )
        .where(*conds, request_feedback.c.org_id == org_id)
        .group_by(version)
    )
    scores_query = (
        select(
            version,
            request_scores.c.name,
            func.count().label("n"),
            func.avg(request_scores.c.value).label("avg"),
        )
        .select_from(requests.join(request_scores, request_scores.c.request_id == requests.c.id))
        .where(*conds, request_scores.c.org_id == org_id)
        .group_by(version, request_scores.c.name)
    )
    grouped: dict[int | None, list[Any]] = {}
    with engine.connect() as conn:
        for row in conn.execute(rows_query).all():
            grouped.setdefault(row.g_version, []).append(row)
        feedback = conn.execute(feedback_query).all()
        scores = conn.execute(scores_query).all()
    out: dict[int | None, dict[str, Any]] = {}
    for key, rows in grouped.items():
        stats = Stats()
        stats.add_rows(rows)
        out[key] = _figures(stats) | {"feedback": None, "scores": {}}
    for key, n, up in feedback:
        if key in out:
            out[key]["feedback"] = {"count": n, "positive": int(up), "average": int(up) / n}
    for key, score, n, avg in sorted(scores, key=lambda s: s[1]):
        if key in out:
            out[key]["scores"][score] = {"count": n, "average": float(avg)}
    return out


def traffic_by_prompt(
    engine: Engine, org_id: str, names: Sequence[str], since_ms: int, until_ms: int
) -> dict[str, dict[str, Any]]:
    """Per prompt of ``names`` with records in ``[since, until)``: ``requests``, ``cost_usd``
    (of the priced ones) and ``unpriced_requests``; one grouped query per ``CHUNK`` names
    (``prompt_name IN (...)`` is what lets both databases read the prompt index)."""
    out: dict[str, dict[str, Any]] = {}
    wanted = list(names)
    for start in range(0, len(wanted), CHUNK):
        out |= _traffic(engine, org_id, wanted[start : start + CHUNK], since_ms, until_ms)
    return out


def _traffic(
    engine: Engine, org_id: str, names: list[str], since_ms: int, until_ms: int
) -> dict[str, dict[str, Any]]:
    known = requests.c.cost_known.is_(True)
    query = (
        select(
            requests.c.prompt_name,
            func.count().label("n"),
            func.coalesce(func.sum(case((known, requests.c.cost_nusd), else_=0)), 0).label("c"),
            func.sum(case((known, 0), else_=1)).label("unpriced"),
        )
        .where(*_window(org_id, since_ms, until_ms), requests.c.prompt_name.in_(names))
        .group_by(requests.c.prompt_name)
    )
    with engine.connect() as conn:
        found = conn.execute(query).all()
    return {
        name: {"requests": n, "cost_usd": int(cost) / 1e9, "unpriced_requests": int(unpriced)}
        for name, n, cost, unpriced in found
    }
