"""What Open WebUI's background tasks cost, next to the chats they serve.

Besides answering, Open WebUI asks the model for a title for each chat, tags, follow-up
suggestions, search queries, autocompletions... (``requests.task``; NULL for a chat). They run
unseen, often on a separate task model, and can be a real share of spend. One read of the task
rollup (``rollup_task_hourly`` for whole hours, raw rows at the window's edges) grouped by
task, model and user gives every figure here: tasks against chats, per task, and per user and
per model with the share of that user's or model's spend that went to tasks. The Tasks page
and the Dashboard read these; the analytics API's ``dimension=task`` and ``task=`` give the
same numbers (same ``aggregate`` path).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from heliograph.store import aggregate, end_users
from heliograph.store.stats import Stats

MAX_ROWS = 200


@dataclass
class Split:
    """One key's figures: every LLM call, and the part of them that were background tasks."""

    all: Stats = field(default_factory=Stats)
    tasks: Stats = field(default_factory=Stats)
    chats: Stats = field(default_factory=Stats)
    per_task: dict[str, int] = field(default_factory=dict)  # requests per task name

    def add(self, task: str | None, stats: Stats) -> None:
        self.all.merge(stats)
        if task:
            self.tasks.merge(stats)
            self.per_task[task] = self.per_task.get(task, 0) + stats.requests
        else:
            self.chats.merge(stats)


def share(part: Stats, whole: Stats) -> dict[str, float | None]:
    """``part`` as a fraction of ``whole``: of spend (None when nothing was spent, e.g. only
    local models), of requests and of tokens."""

    def ratio(a: float, b: float) -> float | None:
        return a / b if b else None

    return {
        "cost": ratio(part.cost_nusd, whole.cost_nusd),
        "requests": ratio(part.requests, whole.requests),
        "tokens": ratio(
            part.prompt_tokens + part.completion_tokens,
            whole.prompt_tokens + whole.completion_tokens,
        ),
    }


def _figures(stats: Stats) -> dict[str, Any]:
    """The figures a task table shows (no percentiles: the task rollup keeps no histograms)."""
    api = stats.to_api()
    keep = ("requests", "errors", "prompt_tokens", "completion_tokens", "total_tokens")
    return {
        **{k: api[k] for k in keep},
        "cost_usd": api["cost_usd"],
        "unpriced_requests": api["unpriced_requests"],
    }


def _collect(
    engine: Engine, org_id: str, since_ms: int, until_ms: int, groups: tuple[str, ...]
) -> dict[tuple[Any, ...], aggregate.Entry]:
    with engine.connect() as conn:
        return aggregate.collect(conn, org_id, since_ms, until_ms, groups)


def overview(engine: Engine, org_id: str, since_ms: int, until_ms: int) -> dict[str, Any] | None:
    """Tasks against chats for the window (one small read), or None when there was no task."""
    entries = _collect(engine, org_id, since_ms, until_ms, ("task",))
    split = Split()
    for (task,), entry in entries.items():
        split.add(task, entry.stats)
    if not split.tasks.requests:
        return None
    return _totals(split)


def _totals(split: Split) -> dict[str, Any]:
    return {
        "all": _figures(split.all),
        "tasks": _figures(split.tasks),
        "chats": _figures(split.chats),
        "share": share(split.tasks, split.all),
        "task_names": len(split.per_task),
    }


def _rows(splits: dict[Any, Split]) -> list[dict[str, Any]]:
    """Keys with any task, most task spend first (then most task requests)."""
    rows = [
        {
            "key": key,
            "tasks": _figures(s.tasks),
            "all": _figures(s.all),
            "share": share(s.tasks, s.all),
            "per_task": sorted(s.per_task.items(), key=lambda kv: (-kv[1], kv[0])),
        }
        for key, s in splits.items()
        if s.tasks.requests
    ]
    rows.sort(key=lambda r: (-r["tasks"]["cost_usd"], -r["tasks"]["requests"], str(r["key"])))
    return rows[:MAX_ROWS]


def report(engine: Engine, org_id: str, since_ms: int, until_ms: int) -> dict[str, Any]:
    """Everything the Tasks page shows for the window.

    ``totals``: all calls, tasks, chats and the tasks' share (of spend, requests, tokens).
    ``by_task``: per task name (None: chats), with its share of all spend. ``by_user`` and
    ``by_model``: those with any task, their task figures against all their calls, and their
    requests per task; users carry their directory entry (``person``: name, email) when known.
    """
    entries = _collect(engine, org_id, since_ms, until_ms, ("task", "model", "user_id"))
    total = Split()
    by_task: dict[Any, Stats] = {}
    by_user: dict[Any, Split] = {}
    by_model: dict[Any, Split] = {}
    for (task, model, user), entry in entries.items():
        stats = entry.stats
        total.add(task, stats)
        by_task.setdefault(task, Stats()).merge(stats)
        by_user.setdefault(user, Split()).add(task, stats)
        by_model.setdefault(model, Split()).add(task, stats)
    tasks = [
        {"key": key, **_figures(stats), "share": share(stats, total.all)}
        for key, stats in by_task.items()
    ]
    tasks.sort(key=lambda r: (r["key"] is None, -r["cost_usd"], -r["requests"], str(r["key"])))
    users = _rows(by_user)
    people = end_users.lookup(engine, org_id, _named(r["key"] for r in users))
    for row in users:
        known = people.get(row["key"]) if row["key"] else None
        row["person"] = {"name": known["name"], "email": known["email"]} if known else None
    return {
        "totals": _totals(total),
        "by_task": tasks,
        "by_user": users,
        "by_model": _rows(by_model),
    }


def _named(keys: Iterable[Any]) -> list[str]:
    return [k for k in keys if isinstance(k, str) and k]
