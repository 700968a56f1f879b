"""LLM-judge rules on production traffic: the job process's judge calls, through the gateway.

A judge rule's entries are scored the way an experiment's judges are (``cell_scoring.run_judge``):
the rule's prompt is resolved to a version (``evals.experiments.resolve_version``: the version
its label points at when the entry is scored, or its pinned number), filled with the record's
input and output, and sent to this server's own gateway with the organization's internal key
(``gateway_calls.SystemKeys``, shared with the experiment runner). So the judge call is an
ordinary record, priced, with properties ``judge=1`` and ``online_eval=<rule id>``: its cost
shows in breakdowns, and the sampler never takes it (``store.eval_queue.NOT_PRODUCTION``).

One ``OnlineJudges`` lives as long as the job process (``JobContext.extras``): one gateway
client (its connection pool) and one ``RecordWaiter`` per organization. At most
``JUDGE_CONCURRENCY`` judge calls are in flight at once. An answer that cannot be read, a failed
call, or a rubric that cannot be filled ends the entry as an error with the reason, never a zero.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine

from heliograph.config import Settings
from heliograph.evals.cell_scoring import Judge, compile_evaluators, run_judge
from heliograph.evals.experiments import ExperimentError, resolve_version
from heliograph.evals.gateway_calls import GatewayClient, RecordWaiter, SystemKeys
from heliograph.evals.observation import from_record
from heliograph.evals.scores import EvaluatorError, Score
from heliograph.evals.specs import EvaluatorSpec

JUDGE_CONCURRENCY = 8  # judge calls in flight at once, per job process
RULE_PROPERTY = "Online_Eval"  # recorded as the property ``online_eval``
EXTRAS_KEY = "online_judges"


class OnlineJudges:
    """Judge calls for online rules: a gateway client and record waiters kept for the
    process's life, at most ``concurrency`` calls at once."""

    def __init__(
        self, settings: Settings, engine: Engine, keys: SystemKeys, concurrency: int
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.keys = keys
        self.concurrency = concurrency
        self.slots = asyncio.Semaphore(concurrency)
        self.client: GatewayClient | None = None
        self.waiters: dict[str, RecordWaiter] = {}

    def _waiter(self, org_id: str) -> RecordWaiter:
        if org_id not in self.waiters:
            self.waiters[org_id] = RecordWaiter(self.engine, org_id)
        return self.waiters[org_id]

    async def score(
        self, spec: EvaluatorSpec, org_id: str, rule_id: str, record: Mapping[str, Any]
    ) -> Score | str:
        """The judge's score of ``record``, or the reason it has none."""
        prompt = str(spec.config["prompt"])
        try:
            version = await asyncio.to_thread(
                resolve_version, self.engine, org_id, prompt, spec.config
            )
        except ExperimentError as exc:
            return f"the judge prompt cannot be used: {exc}"
        [judge] = compile_evaluators([spec], {spec.name: version})
        assert isinstance(judge, Judge)
        key = await self.keys.key(org_id)
        async with self.slots:
            if self.client is None:
                self.client = GatewayClient(self.settings, self.concurrency * 2)
            scored = await run_judge(
                judge,
                from_record(record),
                self.client,
                self._waiter(org_id),
                key,
                {RULE_PROPERTY: rule_id},
            )
        if isinstance(scored.outcome, EvaluatorError):
            return scored.outcome.reason
        assert isinstance(scored.outcome, Score)
        return scored.outcome

    async def close(self) -> None:
        for waiter in self.waiters.values():
            await waiter.close()
        if self.client is not None:
            await self.client.close()


def for_context(context: Any) -> OnlineJudges:
    """The job process's ``OnlineJudges`` (made on first use, closed with the process)."""
    extras: dict[str, Any] = context.extras
    judges = extras.get(EXTRAS_KEY)
    if judges is None:
        keys = extras.setdefault("system_keys", SystemKeys(context.engine))
        judges = OnlineJudges(context.settings, context.engine, keys, JUDGE_CONCURRENCY)
        extras[EXTRAS_KEY] = judges
        extras.setdefault("closers", []).append(judges.close)
    assert isinstance(judges, OnlineJudges)
    return judges
