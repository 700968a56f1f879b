"""Online evaluation: rules that score a sample of production traffic, off the request path.

The gateway and the writer never wait on this. A periodic tick of the job process
(``online_eval_tick``, registered in ``jobs.kinds``) does one bounded sampler pass per enabled
rule (``store.eval_queue.sample_rule``: filter, deterministic sample, queue, cursor) and then
one bounded worker pass: claim queued entries, read each record and its bodies, build the
``Observation``, run the rule's evaluator and store the score on the record under the
evaluator's name with its reason. An evaluator that cannot score (no output, a pattern that
timed out, a judge's answer that cannot be read) leaves an error on the queue entry and no
score: never a zero.

Deterministic evaluators run in a thread, since they are plain CPU work. LLM-judge rules call
their judge through the gateway (``evals.online_judge``: recorded and priced, marked
``judge=1`` and ``online_eval=<rule id>``), at most ``online_judge.JUDGE_CONCURRENCY`` at once;
while they run, the pass renews its entries' leases every third of ``LEASE_MS``, so a slow
judge never loses its entry to another worker, and a worker that died loses it within a lease.

``check_rule`` validates what the API and the dashboard accept, so both say the same thing
about the same mistake.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from heliograph.evals import online_judge
from heliograph.evals.checks import build
from heliograph.evals.observation import from_record
from heliograph.evals.online_judge import OnlineJudges
from heliograph.evals.scores import EvaluatorError, Score
from heliograph.evals.specs import NAME, EvaluatorSpec, SpecError, parse_spec
from heliograph.store import eval_queue, filter_params
from heliograph.store.filters import Filter, FilterError
from heliograph.store.online_eval import now_ms
from heliograph.store.requests import get_request

log = logging.getLogger("heliograph.online_eval")

SAMPLE_BATCH = 2000  # records one rule's pass reads
WORK_BATCH = 50  # queue entries one worker pass scores
LEASE_MS = 120_000
MAX_ATTEMPTS = 3
TICK_S = 2.0
DEFAULT_LAG_S = 300.0
MAX_FILTER_PARAMS = 50
RULE_FIELDS = ("name", "evaluator", "filter", "sample_rate", "enabled")
NO_JUDGES = "this process cannot call judges (it has no gateway client)"


class RuleError(ValueError):
    """A rule that cannot be saved: ``field`` names what is wrong, the message why."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True, slots=True)
class TickReport:
    """What one tick did (logged, and returned for tests and the CLI)."""

    considered: int = 0
    enqueued: int = 0
    scored: int = 0
    errors: int = 0


def check_evaluator(doc: object) -> dict[str, Any]:
    """The evaluator spec as stored (normalised), or RuleError naming the field."""
    try:
        return parse_spec(doc).to_dict()
    except SpecError as exc:
        raise RuleError(f"evaluator.{exc.field}", exc.problem) from exc


def check_filter(doc: object) -> dict[str, str]:
    """The Requests page's filter parameters as ``{name: value}``, each parsed by the one
    filter parser (a bad name or value is a RuleError naming it); empty values dropped."""
    if doc is None:
        return {}
    if not isinstance(doc, Mapping) or len(doc) > MAX_FILTER_PARAMS:
        raise RuleError("filter", f"must be an object of at most {MAX_FILTER_PARAMS} parameters")
    out: dict[str, str] = {}
    for name, value in doc.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, int | float):
            value = str(value)
        if not isinstance(name, str) or not filter_params.is_filter_param(name):
            raise RuleError(f"filter.{name}", "not a filter parameter of the Requests page")
        if not isinstance(value, str):
            raise RuleError(f"filter.{name}", "must be a string")
        if not value:
            continue
        try:
            filter_params.parse_one(name, value)
        except FilterError as exc:
            raise RuleError(f"filter.{name}", str(exc)) from exc
        out[name] = value
    return out


def check_rate(value: object) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(float(value)) or not 0 < float(value) <= 1:  # type: ignore[arg-type]
        raise RuleError("sample_rate", "must be a number greater than 0 and at most 1")
    return float(value)  # type: ignore[arg-type]


def check_rule(doc: Mapping[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """A rule body (``name``?, ``evaluator``, ``filter``?, ``sample_rate``, ``enabled``?)
    as stored values; with ``partial`` (a PATCH) only the fields given. RuleError names the
    first bad field."""
    unknown = sorted(set(doc) - set(RULE_FIELDS))
    if unknown:
        raise RuleError(str(unknown[0]), f"unknown field; a rule has {', '.join(RULE_FIELDS)}")
    out: dict[str, Any] = {}
    if "evaluator" in doc or not partial:
        if "evaluator" not in doc:
            raise RuleError("evaluator", "required: an evaluator spec {name, kind, config}")
        out["evaluator"] = check_evaluator(doc["evaluator"])
    if "name" in doc or not partial:
        name = doc.get("name") or (out["evaluator"]["name"] if "evaluator" in out else None)
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise RuleError("name", "must be 1 to 100 letters, digits, '_', '.' or '-'")
        out["name"] = name
    if "filter" in doc or not partial:
        out["filter"] = check_filter(doc.get("filter"))
    if "sample_rate" in doc or not partial:
        if "sample_rate" not in doc:
            raise RuleError("sample_rate", "required: a number greater than 0 and at most 1")
        out["sample_rate"] = check_rate(doc["sample_rate"])
    if "enabled" in doc or not partial:
        enabled = doc.get("enabled", True)
        if not isinstance(enabled, bool):
            raise RuleError("enabled", "must be true or false")
        out["enabled"] = enabled
    return out


def rule_filter(params: Mapping[str, str]) -> Filter:
    """A stored rule's filter as a tree (it was checked when saved)."""
    return filter_params.parse(params.items())


def sample(engine: Engine, lag_s: float, batch: int = SAMPLE_BATCH) -> tuple[int, int]:
    """One pass over every enabled rule: (records considered, entries queued)."""
    horizon = now_ms() - int(lag_s * 1000)
    considered = enqueued = 0
    for rule in eval_queue.enabled_rules(engine):
        try:
            where = rule_filter(rule["filter"] or {})
        except FilterError as exc:  # a filter spelling a later version no longer reads
            log.warning("online rule %s: bad filter, skipped: %s", rule["id"], exc)
            continue
        done = eval_queue.sample_rule(engine, rule, where, horizon, batch)
        considered += done.considered
        enqueued += done.enqueued
    return considered, enqueued


Stored = tuple[str, float, str]  # (name, value, reason): a score as a record holds it


@dataclass(frozen=True, slots=True)
class JudgeWork:
    """An entry of a judge rule, ready for its judge call."""

    spec: EvaluatorSpec
    record: dict[str, Any]


def outcome_of(engine: Engine, entry: eval_queue.Claimed) -> Stored | str | JudgeWork:
    """The score to store, the error to record instead, or the judge call to make."""
    if entry.attempts > MAX_ATTEMPTS:
        return f"gave up after {MAX_ATTEMPTS} attempts (the worker stopped mid-evaluation)"
    rule = eval_queue.rule_of(engine, entry.rule_id)
    if rule is None:
        return "the rule was deleted"
    try:
        spec = parse_spec(rule["evaluator"])
    except SpecError as exc:
        return f"the rule's evaluator is not valid: {exc}"
    record = get_request(engine, entry.org_id, entry.request_id)
    if record is None:
        return "the record is no longer stored"
    if spec.kind == "llm_judge":
        return JudgeWork(spec, record)
    result = build(spec).evaluate(from_record(record))
    if isinstance(result, EvaluatorError):
        return result.reason
    return _stored(spec.name, result)


def _stored(name: str, score: Score) -> Stored | str:
    """A score as a record holds it: a number (pass/fail as 1 and 0)."""
    if score.kind == "label" or isinstance(score.value, str):
        return f"a label score ({score.value!r}) cannot be stored on a record, numbers only"
    return name, float(score.value), score.reason


@dataclass
class _Pass:
    """One worker pass: its entries, what it stored."""

    engine: Engine
    owner: str
    judges: OnlineJudges | None
    scored: int = 0
    errors: int = 0

    def deterministic(
        self, entries: list[eval_queue.Claimed]
    ) -> list[tuple[eval_queue.Claimed, JudgeWork]]:
        """Score and finish every entry that needs no judge; the judge entries returned."""
        judged = []
        for entry in entries:
            try:
                result = outcome_of(self.engine, entry)
            except Exception:  # the store went away mid-way: try again later
                log.exception("online evaluation of %s failed", entry.request_id)
                eval_queue.release(self.engine, entry, self.owner)
                continue
            if isinstance(result, JudgeWork):
                judged.append((entry, result))
            else:
                self.finish(entry, result)
        return judged

    def finish(self, entry: eval_queue.Claimed, result: Stored | str) -> None:
        if isinstance(result, str):
            self.errors += eval_queue.finish(self.engine, entry, self.owner, error=result)
        else:
            self.scored += eval_queue.finish(self.engine, entry, self.owner, score=result)

    async def judge(self, entry: eval_queue.Claimed, work: JudgeWork) -> None:
        try:
            if self.judges is None:
                result: Stored | str = NO_JUDGES
            else:
                score = await self.judges.score(work.spec, entry.org_id, entry.rule_id, work.record)
                result = score if isinstance(score, str) else _stored(work.spec.name, score)
            await asyncio.to_thread(self.finish, entry, result)
        except asyncio.CancelledError:
            raise
        except Exception:  # the gateway or the store went away: try again later
            log.exception("online judge of %s failed", entry.request_id)
            with contextlib.suppress(Exception):
                await asyncio.to_thread(eval_queue.release, self.engine, entry, self.owner)

    async def keep_leases(self, entries: list[eval_queue.Claimed]) -> None:
        ids = [e.id for e in entries]
        while True:
            await asyncio.sleep(LEASE_MS / 3000)
            try:
                await asyncio.to_thread(eval_queue.renew, self.engine, ids, self.owner, LEASE_MS)
            except Exception as exc:  # the store may be busy; the lease has time left
                log.warning("could not renew online evaluation leases: %s", exc)


async def work_async(
    engine: Engine, owner: str, judges: OnlineJudges | None, batch: int = WORK_BATCH
) -> tuple[int, int]:
    """One worker pass: (scores stored, errors recorded). Judge entries are called at most
    ``JUDGE_CONCURRENCY`` at a time (``judges``; without one they end as errors)."""
    entries = await asyncio.to_thread(eval_queue.claim, engine, owner, batch, LEASE_MS)
    if not entries:
        return 0, 0
    done = _Pass(engine, owner, judges)
    keeper = asyncio.create_task(done.keep_leases(entries))
    try:
        judged = await asyncio.to_thread(done.deterministic, entries)
        await asyncio.gather(*(done.judge(entry, work) for entry, work in judged))
    finally:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
    return done.scored, done.errors


async def tick(engine: Engine, owner: str, lag_s: float, judges: OnlineJudges | None) -> TickReport:
    """One sampler pass and one worker pass, each bounded."""
    considered, enqueued = await asyncio.to_thread(sample, engine, lag_s)
    scored, errors = await work_async(engine, owner, judges)
    return TickReport(considered, enqueued, scored, errors)


def work(engine: Engine, owner: str, batch: int = WORK_BATCH) -> tuple[int, int]:
    """``work_async`` without judges, for callers outside an event loop."""
    return asyncio.run(work_async(engine, owner, None, batch))


def run_once(engine: Engine, owner: str, lag_s: float = DEFAULT_LAG_S) -> TickReport:
    """``tick`` without judges, for callers outside an event loop."""
    return asyncio.run(tick(engine, owner, lag_s, None))


async def online_eval_tick(context: Any) -> None:
    """The job process's periodic task (a ``jobs.runner.JobContext``)."""
    lag = float(getattr(context.settings, "online_eval_lag_s", DEFAULT_LAG_S))
    report = await tick(context.engine, context.owner, lag, online_judge.for_context(context))
    if report.enqueued or report.scored or report.errors:
        log.info("online evaluation: %s", report)


def register(registry: Any) -> None:
    """Add the tick to the job process (``jobs.kinds.register_all``)."""
    registry.run_periodic("online-eval", online_eval_tick, TICK_S)
