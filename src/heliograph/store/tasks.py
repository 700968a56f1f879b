"""What Open WebUI's background tasks cost, next to the chats they serve.

Besides answering, Open WebUI asks the model for a title for each chat, tags, follow-up
suggestions, search queries, autocompletions... (``requests.task``; NULL for a chat). They run
unseen, often on a separate task model, and can be a real share of spend. Two reads of the task
rollup's projections (``rollup_task_model_hourly`` and ``rollup_task_user_hourly`` for whole
hours, raw rows at the window's edges), their tasks' rows only, beside every call per model
and per user (their lean rollups), give every figure here: tasks against chats, per task, and
per user and per model with the share of that user's or model's spend that went to tasks.
The pairs are several times smaller than the three-way task rollup, which a 30-day Tasks page
at a million requests could not read in time. The Tasks page and the Dashboard read these;
the analytics API's ``dimension=task`` and ``task=`` give the same numbers (same
``aggregate`` path).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine

from heliograph.store import aggregate, end_users
from heliograph.store.stats import Stats

MAX_ROWS = 200
ONLY_TASKS: aggregate.Where = {"task": aggregate.PRESENT}
MEASURES = ("requests", "errors", "prompt_tokens", "completion_tokens", "cost_nusd", "unpriced")


@dataclass
class Figures:
    """The additive figures a task table shows (no latency: the task rollup keeps none), summed
    without the histograms ``Stats`` carries (thousands of groups are folded per page)."""

    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_nusd: int = 0
    unpriced: int = 0

    def add(self, other: Stats | Figures) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cost_nusd += other.cost_nusd
        self.unpriced += other.unpriced

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_api(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.tokens,
            "cost_usd": self.cost_nusd / 1e9,
            "unpriced_requests": self.unpriced,
        }


@dataclass
class Split:
    """One key's figures: every LLM call, and the part of them that were background tasks."""

    all: Figures = field(default_factory=Figures)
    tasks: Figures = field(default_factory=Figures)
    per_task: dict[str, int] = field(default_factory=dict)  # requests per task name

    def add_task(self, task: str, figures: Figures) -> None:
        self.tasks.add(figures)
        self.per_task[task] = self.per_task.get(task, 0) + figures.requests

    @property
    def chats(self) -> Figures:
        """Everything that was not a task (chats and other calls)."""
        out = Figures()
        out.add(self.all)
        for name in ("requests", "errors", "prompt_tokens", "completion_tokens"):
            setattr(out, name, getattr(out, name) - getattr(self.tasks, name))
        out.cost_nusd -= self.tasks.cost_nusd
        out.unpriced -= self.tasks.unpriced
        return out


def share(part: Figures, whole: Figures) -> dict[str, float | None]:
    """``part`` as a fraction of ``whole``: of spend (None when nothing was spent, e.g. only
    local models), of requests and of tokens."""

    def ratio(a: float, b: float) -> float | None:
        return a / b if b else None

    return {
        "cost": ratio(part.cost_nusd, whole.cost_nusd),
        "requests": ratio(part.requests, whole.requests),
        "tokens": ratio(part.tokens, whole.tokens),
    }


def _collect(
    conn: Connection,
    org_id: str,
    window: tuple[int, int],
    groups: tuple[str, ...],
    where: aggregate.Where | None = None,
) -> dict[tuple[Any, ...], Figures]:
    out: dict[tuple[Any, ...], Figures] = {}
    for key, stats in aggregate.sums(conn, org_id, *window, groups, where, MEASURES).items():
        out[key] = figures = Figures()
        figures.add(stats)
    return out


def overview(engine: Engine, org_id: str, since_ms: int, until_ms: int) -> dict[str, Any] | None:
    """Tasks against chats for the window, or None when there was no task.

    All calls are read from the model rollup and only the tasks' rows of the task rollup."""
    split = Split()
    with engine.connect() as conn:
        found = _collect(conn, org_id, (since_ms, until_ms), ("task",), ONLY_TASKS)
        if not found:
            return None
        split.all = _collect(conn, org_id, (since_ms, until_ms), ()).get((), Figures())
    for (task,), figures in found.items():
        split.add_task(task, figures)
    return _totals(split)


def _totals(split: Split) -> dict[str, Any]:
    return {
        "all": split.all.to_api(),
        "tasks": split.tasks.to_api(),
        "chats": split.chats.to_api(),
        "share": share(split.tasks, split.all),
        "task_names": len(split.per_task),
    }


def _rows(splits: dict[Any, Split]) -> list[dict[str, Any]]:
    """Keys with any task, most task spend first (then most task requests)."""
    rows = [
        {
            "key": key,
            "tasks": s.tasks.to_api(),
            "all": s.all.to_api(),
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

    Four reads: the tasks' rows by task and model and by task and user; every call per model
    (the model rollup) and per user (the user rollup), for the shares.
    """
    window = (since_ms, until_ms)
    with engine.connect() as conn:
        per_model = _collect(conn, org_id, window, ("task", "model"), ONLY_TASKS)
        per_user = _collect(conn, org_id, window, ("task", "user_id"), ONLY_TASKS)
        models = _collect(conn, org_id, window, ("model",))
        users = _collect(conn, org_id, window, ("user_id",)) if per_user else {}
    total = Split()
    by_task: dict[Any, Figures] = {}
    by_user = {key: Split(all=figures) for (key,), figures in users.items()}
    by_model = {key: Split(all=figures) for (key,), figures in models.items()}
    for split in by_model.values():
        total.all.add(split.all)
    for (task, model), figures in per_model.items():
        total.add_task(task, figures)
        by_task.setdefault(task, Figures()).add(figures)
        by_model.setdefault(model, Split()).add_task(task, figures)
    for (task, user), figures in per_user.items():
        by_user.setdefault(user, Split()).add_task(task, figures)
    by_task[None] = total.chats
    tasks = [
        {"key": key, **figures.to_api(), "share": share(figures, total.all)}
        for key, figures in by_task.items()
        if figures.requests
    ]
    tasks.sort(key=lambda r: (r["key"] is None, -r["cost_usd"], -r["requests"], str(r["key"])))
    user_rows = _rows(by_user)
    people = end_users.lookup(engine, org_id, _named(r["key"] for r in user_rows))
    for row in user_rows:
        known = people.get(row["key"]) if row["key"] else None
        row["person"] = {"name": known["name"], "email": known["email"]} if known else None
    return {
        "totals": _totals(total),
        "by_task": tasks,
        "by_user": user_rows,
        "by_model": _rows(by_model),
    }


def _named(keys: Iterable[Any]) -> list[str]:
    return [k for k in keys if isinstance(k, str) and k and "\x00" not in k]
