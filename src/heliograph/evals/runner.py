"""The experiment runner: the job process's handler for ``experiment`` jobs.

It runs the experiment's unfinished cells ``concurrency`` at a time through the gateway
(``evals.gateway_calls``), reads each call's STORED record for output, tokens, cost and
latency, scores it (``evals.cell_scoring``) and saves finished cells with their scores and
the experiment's counters a batch per transaction.

Resuming is the normal start: only unfinished cells are run. A cell marked ``running`` was
called by a process that died; its record is awaited first (``RECOVER_WAIT_S``, the spool
being replayed by the writer): a successful record completes the cell WITHOUT calling the
upstream again, an interrupted one (the server died mid-call) gets a new request id and is
called again, a failed one fails the cell.

The cost cap: before each call the runner reserves the cell's share of the estimate; a call
is not made when what was spent plus what is reserved for calls in flight plus this one would
pass the cap. Then the experiment stops (``stopped``, reason given) once the calls in flight
have finished. A cancel (status set to ``stopped`` by the API) stops it the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

from heliograph.evals import cell_scoring
from heliograph.evals.cell_scoring import Judge, Scored
from heliograph.evals.checks import Evaluator
from heliograph.evals.experiments import cell_messages, resolve_version
from heliograph.evals.gateway_calls import GatewayClient, RecordWaiter, SystemKeys, chat_path
from heliograph.evals.observation import from_record
from heliograph.evals.specs import parse_spec
from heliograph.jobs.runner import JobContext, Registry
from heliograph.store import datasets as dataset_store
from heliograph.store import experiments as store

log = logging.getLogger("heliograph.experiments")

RECORD_WAIT_S = 30.0
RECOVER_WAIT_S = 15.0
FLUSH_S = 0.25
WATCH_S = 0.5
ITEM_CHUNK = 500
CAP_REASON = "cost cap reached"


def register(registry: Registry) -> None:
    registry.handle(store.JOB_KIND, run_experiment_job)


async def run_experiment_job(context: JobContext, job: dict[str, Any]) -> None:
    keys = context.extras.setdefault("system_keys", SystemKeys(context.engine))
    run = ExperimentRun(context, job["payload"]["experiment_id"], keys)
    try:
        await run.run()
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        await asyncio.to_thread(
            store.set_status, context.engine, run.exp_id, "failed", f"runner error: {exc!r}"[:500]
        )
        raise


class ExperimentRun:
    """One run (or resumption) of one experiment."""

    def __init__(self, context: JobContext, exp_id: str, keys: SystemKeys) -> None:
        self.context = context
        self.engine = context.engine
        self.exp_id = exp_id
        self.keys = keys
        self.pending_cells: list[dict[str, Any]] = []
        self.scores: list[dict[str, Any]] = []
        self.extra_spent = 0
        self.spent = 0
        self.reserved = 0
        self.stop_reason: str | None = None
        self.stopped = asyncio.Event()
        self.finished = asyncio.Event()

    async def _db(self, fn: Any, *args: Any) -> Any:
        return await asyncio.to_thread(fn, self.engine, *args)

    async def run(self) -> None:
        exp = await self._db(store.get_experiment, self.exp_id)
        if exp is None or exp["status"] not in store.ACTIVE:
            return
        await self._db(store.set_status, self.exp_id, "running")
        self.exp, self.org = exp, exp["org_id"]
        self.spent = int(exp["spent_nusd"] or 0)
        self.cap = exp["cost_cap_nusd"]
        total = max(int(exp["cells_total"]), 1)
        self.reserve = int(exp["estimated_cost_nusd"] or 0) // total
        variants = await self._db(store.list_variants, self.exp_id)
        self.variants = {v["id"]: v for v in variants}
        self.evaluators = await asyncio.to_thread(self._compile, exp["evaluators"])
        cells = await self._db(store.unfinished_cells, self.exp_id)
        self.items = await asyncio.to_thread(self._items, cells)
        self.key = await self.keys.key(self.org)
        concurrency = max(1, int(exp["concurrency"]))
        self.client = GatewayClient(self.context.settings, concurrency * 2)
        self.waiter = RecordWaiter(self.engine, self.org)
        flusher = asyncio.create_task(self._flush_loop())
        watcher = asyncio.create_task(self._watch())
        try:
            queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
            for cell in cells:
                if cell["status"] != store.RUNNING:
                    queue.put_nowait(cell)
            started = [c for c in cells if c["status"] == store.RUNNING]
            recovery = asyncio.create_task(self._recover(started, queue))
            try:
                await self._run_cells(queue, recovery, concurrency)
            finally:
                recovery.cancel()
            if not self.stopped.is_set():
                await recovery
        finally:
            watcher.cancel()
            # The flush loop ends by itself: cancelling it mid-write would drop the batch it
            # holds from ``pending_cells`` while its thread is still saving it, and the
            # experiment could read ``completed`` before its last cells.
            self.finished.set()
            await asyncio.shield(flusher)
            await asyncio.shield(self._flush())
            await self.waiter.close()
            await self.client.close()
        await self._finish()

    def _compile(self, specs: list[dict[str, Any]]) -> list[Evaluator | Judge]:
        parsed = [parse_spec(s) for s in specs]
        versions = {
            s.name: resolve_version(self.engine, self.org, s.config["prompt"], s.config)
            for s in parsed
            if s.kind == "llm_judge"
        }
        return cell_scoring.compile_evaluators(parsed, versions)

    def _items(self, cells: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        ids = list(dict.fromkeys(c["item_id"] for c in cells))
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), ITEM_CHUNK):
            for item in dataset_store.items_by_ids(
                self.engine, self.org, ids[start : start + ITEM_CHUNK]
            ):
                out[item["id"]] = item
        return out

    async def _recover(
        self, cells: list[dict[str, Any]], queue: asyncio.Queue[dict[str, Any]]
    ) -> None:
        """Cells a dead process had called: finished from their records where they have
        one; the others queued to be called again, under a new request id. Runs beside the
        fresh cells, so awaiting a record that never comes delays nothing else."""

        async def one(cell: dict[str, Any]) -> None:
            record = await self.waiter.get(cell["request_id"], RECOVER_WAIT_S)
            if record is None or record.get("state") == "interrupted":
                cell["request_id"] = str(uuid.uuid4())
                await self._db(store.set_request_id, cell["id"], cell["request_id"])
                queue.put_nowait(cell)
            else:
                log.info("cell %s completed from its stored record", cell["id"])
                await self._complete(cell, record, None)

        await asyncio.gather(*(one(c) for c in cells))

    async def _run_cells(
        self,
        queue: asyncio.Queue[dict[str, Any]],
        recovery: asyncio.Task[None],
        concurrency: int,
    ) -> None:
        lock = asyncio.Lock()
        batch: list[dict[str, Any]] = []
        # Cells are marked started a few at a time (one write per batch, not per cell); a
        # small batch keeps few cells marked but not yet called when the process dies.
        mark_batch = max(1, concurrency // 2)

        async def take() -> dict[str, Any] | None:
            while True:
                async with lock:
                    if not batch:
                        while not queue.empty() and len(batch) < mark_batch:
                            batch.append(queue.get_nowait())
                        if batch:
                            await self._db(store.mark_started, [c["id"] for c in batch])
                    if batch:
                        return batch.pop(0)
                if recovery.done() and queue.empty():
                    return None
                await asyncio.sleep(0.05)  # cells being recovered may still come back

        async def worker() -> None:
            while not self.stopped.is_set():
                if self.cap is not None and self.spent + self.reserved + self.reserve > self.cap:
                    self.stop(CAP_REASON)
                    return
                cell = await take()
                if cell is None:
                    return
                self.reserved += self.reserve
                try:
                    await self._call(cell)
                finally:
                    self.reserved -= self.reserve

        await asyncio.gather(*(worker() for _ in range(concurrency)))

    def stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        self.stopped.set()

    def _body(self, cell: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
        inputs = self.items[cell["item_id"]]["inputs"]
        params = dict(spec.get("params") or {})
        if spec["kind"] == "prompt":
            variables = {k: v for k, v in inputs.items() if k != "messages"}
            return {
                "prompt_id": spec["prompt"],
                "prompt_version": spec["version"],
                "inputs": variables,
                "model": spec["model"],
                **params,
            }
        return {"model": spec["model"], "messages": cell_messages(inputs, None), **params}

    def _properties(self, cell: dict[str, Any]) -> dict[str, str]:
        return {
            "Experiment": self.exp_id,
            "Variant": self.variants[cell["variant_id"]]["name"][:200],
            "Item": cell["item_id"],
        }

    async def _call(self, cell: dict[str, Any]) -> None:
        spec = self.variants[cell["variant_id"]]["spec"]
        if cell["item_id"] not in self.items:
            self._save(cell, {"status": store.FAILED, "error": "the pinned item is gone"}, [])
            return
        path = chat_path(self.context.settings, spec["upstream"], self.key)
        answer = await self.client.post(
            path, self._body(cell, spec), cell["request_id"], self._properties(cell)
        )
        record = await self.waiter.get(cell["request_id"], RECORD_WAIT_S)
        if record is None:
            error = f"no record of the call was stored (HTTP {answer.status or 'no answer'})"
            self._save(cell, {"status": store.FAILED, "error": error}, [])
            return
        await self._complete(cell, record, answer.status)

    async def _complete(
        self, cell: dict[str, Any], record: dict[str, Any], _status: int | None
    ) -> None:
        item = self.items.get(cell["item_id"], {})
        observation = from_record(record, expected=item.get("expected"))
        cost = (
            int(record["cost_nusd"])
            if record.get("cost_known") and record.get("cost_nusd")
            else None
        )
        result: dict[str, Any] = {
            "status": store.FAILED if observation.error else store.DONE,
            "output": observation.output,
            "error": observation.error,
            "prompt_tokens": record.get("prompt_tokens"),
            "completion_tokens": record.get("completion_tokens"),
            "cost_nusd": cost,
            "latency_ms": record.get("latency_ms"),
        }
        self.spent += cost or 0
        scored = await self._score(cell, observation)
        now = store.now_ms()
        rows = [
            cell_scoring.score_row(s.outcome, name, cell, s.judge_request_id, now)
            for name, s in scored
        ]
        judge_cost = sum(s.cost_nusd for _name, s in scored)
        self.spent += judge_cost
        self.extra_spent += judge_cost
        self._save(cell, result, rows)

    async def _score(self, cell: dict[str, Any], observation: Any) -> list[tuple[str, Scored]]:
        out: list[tuple[str, Scored]] = []
        for evaluator in self.evaluators:
            if isinstance(evaluator, Judge):
                scored = await cell_scoring.run_judge(
                    evaluator,
                    observation,
                    self.client,
                    self.waiter,
                    self.key,
                    self._properties(cell),
                )
                out.append((evaluator.spec.name, scored))
            else:
                out.append((evaluator.spec.name, Scored(evaluator.evaluate(observation))))
        return out

    def _save(
        self, cell: dict[str, Any], result: dict[str, Any], scores: list[dict[str, Any]]
    ) -> None:
        self.pending_cells.append({"id": cell["id"], **result})
        self.scores.extend(scores)

    async def _flush(self) -> None:
        cells, scores, extra = self.pending_cells, self.scores, self.extra_spent
        self.pending_cells, self.scores, self.extra_spent = [], [], 0
        if not (cells or scores or extra):
            return
        try:
            await self._db(store.save_cells, self.exp_id, cells, scores, extra)
        except Exception:  # kept for the next flush (the store may be busy for a while)
            self.pending_cells[:0], self.scores[:0] = cells, scores
            self.extra_spent += extra
            raise

    async def _flush_loop(self) -> None:
        while not self.finished.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.finished.wait(), FLUSH_S)
            try:
                await self._flush()
            except Exception:
                log.exception("could not save the cells of experiment %s", self.exp_id)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_S)
            with contextlib.suppress(Exception):
                exp = await self._db(store.get_experiment, self.exp_id)
                if exp is not None and exp["status"] not in store.ACTIVE:
                    self.stop(exp.get("stop_reason") or "cancelled")

    async def _finish(self) -> None:
        if self.stop_reason is not None:
            await self._db(store.skip_unfinished, self.exp_id)
        if self.stop_reason == CAP_REASON:
            await self._db(store.set_status, self.exp_id, "stopped", CAP_REASON)
        elif self.stop_reason is None:
            await self._db(store.set_status, self.exp_id, "completed", None)
