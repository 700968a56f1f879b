"""The writer: drains the spool into the store in batches, off the request path.

It pairs each start frame with its end frame, builds the record, inserts a batch in one
transaction (idempotent by id), and only then moves the spool checkpoint and deletes what is
committed. If the store is down, nothing moves: frames stay in the spool and the writer retries
with backoff, re-reading from the last checkpoint. A spool whose gateway process died is read
to the end; its starts without ends become *interrupted* records and the directory is removed.

Only one writer may drain a spool root at a time; ``writer.lock`` (an flock) ensures that.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from sqlalchemy import Connection, Engine

from heliograph.budgets.settle import BudgetSettler
from heliograph.capture.builder import (
    Builder,
    Built,
    Job,
    build_in_helper,
    make_pool,
    make_pricebook,
)
from heliograph.capture.charges import CentsCharger
from heliograph.capture.spool import KIND_END, KIND_START, KIND_TRACES, Position, SpoolDir
from heliograph.config import Settings
from heliograph.pricing import PriceBook
from heliograph.store import keys as key_store
from heliograph.store import webhooks
from heliograph.store.inserts import (
    REQUESTS,
    RecordBatch,
    insert_batch,
    insert_records,
    split_batch,
)
from heliograph.store.salvage import refused, salvaged
from heliograph.store.spans import insert_spans
from heliograph.telemetry.export import Spans, make_span_export
from heliograph.telemetry.prometheus import RecordMetrics

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Pending:
    header: bytes
    body: bytes
    position: Position


_ID_PREFIX = b'{"id":"'


def frame_id(header: bytes) -> str | None:
    """The record id in a frame header, read without parsing the rest of it.

    The gateway writes ``id`` first, so it is sliced out; anything else is parsed.
    """
    if header.startswith(_ID_PREFIX):
        end = header.find(b'"', len(_ID_PREFIX))
        if end > len(_ID_PREFIX) and b"\\" not in header[len(_ID_PREFIX) : end]:
            return header[len(_ID_PREFIX) : end].decode("utf-8", "replace")
    try:
        doc = orjson.loads(header)
    except orjson.JSONDecodeError:
        return None
    rid = doc.get("id") if isinstance(doc, dict) else None
    return rid if isinstance(rid, str) else None


@dataclass
class _DirState:
    spool: SpoolDir
    pending: dict[str, _Pending] = field(default_factory=dict)
    finished: bool = False  # owner dead and every frame read


@dataclass
class DrainResult:
    records: int = 0
    removed_dirs: int = 0


class Writer:
    """Call :meth:`drain` repeatedly (or :meth:`run` in a thread or process)."""

    def __init__(
        self,
        engine: Engine,
        spool_root: Path,
        *,
        batch_size: int = 2000,
        body_cap: int = 4 * 1024 * 1024,
        poll_interval: float = 0.05,
        pricebook: PriceBook | None = None,
        charger: CentsCharger | None = None,
        settler: BudgetSettler | None = None,
        pool: ProcessPoolExecutor | None = None,
        pool_factory: Callable[[], ProcessPoolExecutor | None] | None = None,
        metrics: RecordMetrics | None = None,
        spans: Spans | None = None,
    ) -> None:
        self.engine = engine
        self.metrics = metrics
        self.spans = spans  # OpenTelemetry export of committed records, if on
        self.builder = Builder(body_cap, pricebook)
        self.charger = charger
        self.settler = settler
        self.pool_factory = pool_factory  # to replace a pool whose helper died
        self.pool = pool if pool is not None or pool_factory is None else pool_factory()
        self.spool_root = spool_root
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self._dirs: dict[Path, _DirState] = {}
        self._lock_fd = -1

    # -- locking -----------------------------------------------------------------------------
    def acquire(self, blocking: bool = False) -> bool:
        """Become the only writer of this spool root."""
        self.spool_root.mkdir(parents=True, exist_ok=True)
        if self._lock_fd < 0:
            self._lock_fd = os.open(self.spool_root / "writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    # -- draining ----------------------------------------------------------------------------
    def _discover(self) -> list[_DirState]:
        if self.spool_root.is_dir():
            for path in self.spool_root.iterdir():
                if path.is_dir() and not path.name.startswith(".") and path not in self._dirs:
                    self._dirs[path] = _DirState(SpoolDir(path))
        return sorted(self._dirs.values(), key=lambda d: d.spool.path.name)

    def drain(self) -> DrainResult:
        """Read what is new, insert it in batches, advance checkpoints.

        With helper processes, batches are pipelined: the next batch is analysed while the
        previous one is inserted, and once the insert is done this process analyses the
        chunks no helper has started yet, so every core is busy and none is oversubscribed.
        Each batch carries the checkpoint that was safe when its frames had been read, and
        that is what is saved once it is committed.
        """
        result = DrainResult()
        for state in self._discover():
            alive = state.spool.owner_alive()
            inflight: deque[tuple[Pending, Position]] = deque()
            try:
                while True:
                    read = self._read(state, final=not alive)
                    if read is None:
                        break
                    jobs, more, checkpoint = read
                    inflight.append((self._start_build(jobs), checkpoint))
                    while len(inflight) > (1 if more and self.pool is not None else 0):
                        pending, safe = inflight.popleft()
                        upcoming = [p for p, _ in inflight]
                        result.records += self._finish(state, pending, safe, upcoming)
                    if not more:
                        break
            except BaseException as exc:
                for pending, _ in inflight:
                    for item, _chunk in pending:
                        if isinstance(item, Future):
                            item.cancel()
                # Forget what was read since the checkpoint: it is re-read on the next try
                # (inserts are idempotent, so batches already committed are not doubled).
                self._dirs.pop(state.spool.path, None)
                state.finished = False
                if isinstance(exc, BrokenProcessPool):
                    self._replace_pool()
                raise
            if state.finished:
                state.spool.remove()
                del self._dirs[state.spool.path]
                result.removed_dirs += 1
        return result

    def _read(self, state: _DirState, final: bool) -> tuple[list[Job], bool, Position] | None:
        jobs: list[Job] = []
        frames = 0
        for frame in state.spool.read_frames(final=final, limit=self.batch_size * 2):
            frames += 1
            rid = frame_id(frame.header)
            if rid is None:
                log.error("spool %s: unreadable frame header skipped", state.spool.path)
                continue
            if frame.kind == KIND_START:
                state.pending[rid] = _Pending(frame.header, frame.body, frame.position)
            elif frame.kind == KIND_END:
                start = state.pending.pop(rid, None)
                if start is None:
                    log.warning("spool %s: end without start for %s", state.spool.path, rid)
                    continue
                jobs.append((start.header, start.body, frame.header, frame.body))
            elif frame.kind == KIND_TRACES:
                jobs.append((frame.header, frame.body, KIND_TRACES, b""))
        more = frames >= self.batch_size * 2
        if final and not more:
            for start in state.pending.values():
                jobs.append((start.header, start.body, None, b""))
            state.pending.clear()
            state.finished = True
        if not jobs and not frames and not state.finished:
            return None
        checkpoint = state.spool.read_pos
        if state.pending:
            checkpoint = min([p.position for p in state.pending.values()] + [checkpoint])
        return jobs, more, checkpoint

    def _start_build(self, jobs: list[Job]) -> Pending:
        """Analyse a batch now, or hand its chunks to the helper processes."""
        if self.pool is None or len(jobs) < 2 * POOL_CHUNK:
            return [(self.builder.build(jobs), jobs)]
        return [(self.pool.submit(build_in_helper, chunk), chunk) for chunk in chunked(jobs)]

    def _finish(
        self, state: _DirState, pending: Pending, checkpoint: Position, upcoming: list[Pending]
    ) -> int:
        """Collect a batch's analysis and commit it.

        Chunks no helper has started are analysed here instead; while the helpers finish
        the rest, this process analyses chunks of the next batch rather than wait idle.
        """
        self._steal(pending)
        futures = [item for item, _chunk in pending if isinstance(item, Future)]
        while not all(f.done() for f in futures):
            if not any(self._steal(later, limit=1) for later in upcoming):
                wait(futures)
                break
        built = Built()
        for item, _chunk in pending:
            built.extend(item if isinstance(item, Built) else item.result())
        self._commit(state, built, checkpoint)
        return len(built.batch.ids)

    def _steal(self, pending: Pending, limit: int | None = None) -> int:
        """Analyse here, last first, chunks of a batch that no helper has started yet."""
        stolen = 0
        for i in range(len(pending) - 1, -1, -1):
            item, chunk = pending[i]
            if isinstance(item, Future) and item.cancel():
                pending[i] = (self.builder.build(chunk), chunk)
                stolen += 1
                if stolen == limit:
                    break
        return stolen

    def _replace_pool(self) -> None:
        """A helper died (killed, out of memory): start new helpers, or analyse here."""
        log.warning("a writer helper process died; starting a new one")
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = self.pool_factory() if self.pool_factory is not None else None

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
        if self.spans is not None:
            self.spans.close()
            self.spans = None

    def _commit(self, state: _DirState, built: Built, checkpoint: Position) -> None:
        if built.batch.ids or built.spans:
            try:
                with self.engine.begin() as conn:
                    inserted = insert_batch(conn, built.batch)
                    self._settle_in(conn, built, inserted)
                    _outbox(conn, built.batch, inserted)
                    insert_spans(conn, built.spans)
            except Exception as exc:
                if not refused(exc):
                    raise  # the store is unavailable: retried from the checkpoint
                inserted = self._insert_each(built)
                self._insert_spans_alone(built)
            try:
                key_store.touch_keys(self.engine, built.last_used)
            except Exception as exc:
                log.warning("could not update key last-use times: %s", exc)
            if self.charger is not None and built.charges:
                self.charger.charge(c for c in built.charges if c.request_id in inserted)
            if self.settler is not None and built.settlements:
                self.settler.after_commit(built.settlements, inserted)
            self._observe(built, inserted)
            self._export(built, inserted)
        state.spool.save_checkpoint(checkpoint)

    def _observe(self, built: Built, inserted: set[str]) -> None:
        """Count the new records in the Prometheus series; a fault there never stops the
        writer (the records are committed: the checkpoint must move)."""
        if self.metrics is not None and inserted:
            try:
                self.metrics.observe(built.batch.requests, inserted)
            except Exception:
                log.exception("could not count a batch in the Prometheus metrics")

    def _export(self, built: Built, inserted: set[str]) -> None:
        """Queue the new records' spans (off the writer's thread from there on)."""
        if self.spans is not None and inserted:
            try:
                self.spans.send(built.batch, inserted)
            except Exception:  # telemetry must never hold up the records
                log.exception("OpenTelemetry export of a batch failed; its spans are lost")

    def _settle_in(self, conn: Connection, built: Built, inserted: set[str]) -> None:
        if self.settler is not None and built.settlements:
            self.settler.in_transaction(conn, built.settlements, inserted)

    def _insert_each(self, built: Built) -> set[str]:
        """A batch the store refused: each record on its own, so one bad record cannot block
        the rest for ever; a record refused alone is kept as its checked essentials.

        If several records fail alone and none goes in, the fault is not in a record (a bug,
        a schema out of step): nothing is cut down, and the batch stays in the spool to be
        retried.
        """
        batch = built.batch
        inserted: set[str] = set()
        refusals: list[tuple[str, BaseException]] = []
        for rid, one in split_batch(batch).items():
            try:
                with self.engine.begin() as conn:
                    new = insert_batch(conn, one)
                    self._settle_in(conn, built, new)
                    _outbox(conn, one, new)
                inserted |= new
            except Exception as exc:
                if not refused(exc):
                    raise
                refusals.append((rid, exc))
        if len(refusals) >= SYSTEMIC_FAILURES and not inserted:
            raise refusals[0][1]
        if self.metrics is not None and refusals:
            self.metrics.store_error(len(refusals))
        rows = {row[0]: row for row in batch.requests}
        now_ms = int(time.time() * 1000)
        for rid, error in refusals:
            reason = f"{type(error).__name__}: {error}".splitlines()[0][:300]
            log.error("record %s refused by the store (%s); storing its essentials", rid, reason)
            try:
                with self.engine.begin() as conn:
                    new = insert_records(conn, [salvaged(rows[rid], reason, now_ms)], [], [])
                    _outbox(conn, RecordBatch(requests=[rows[rid]]), new)
                    inserted |= new
            except Exception as again:
                if not refused(again):
                    raise
                log.error("record %s could not be stored at all and is dropped: %s", rid, again)
        return inserted

    def _insert_spans_alone(self, built: Built) -> None:
        """Ingested spans of a refused batch, apart from its records: kept if they go in."""
        if not built.spans:
            return
        try:
            with self.engine.begin() as conn:
                insert_spans(conn, built.spans)
        except Exception as exc:
            if not refused(exc):
                raise
            log.error(
                "%d ingested spans refused by the store and dropped: %s", len(built.spans), exc
            )

    def run(self, stop: threading.Event) -> None:
        """Drain until ``stop`` is set; back off while the store is unavailable."""
        backoff = self.poll_interval
        while not stop.is_set():
            try:
                result = self.drain()
            except Exception as exc:
                log.warning("store unavailable, records wait in the spool: %s", exc)
                if self.metrics is not None:
                    self.metrics.store_error()
                stop.wait(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            backoff = self.poll_interval
            if self.settler is not None:
                self.settler.retry()  # budget settlements that wait for Redis
            if result.records < self.batch_size // LINGER_SHARE:
                # Idle, or a trickle: wait for more, so a steady load is inserted in batches
                # of a few hundred, not a few dozen (each batch has a fixed cost: a
                # transaction, the checkpoint, the key touch), and the writer does not take
                # the CPU the gateway needs. A batch that fills a quarter goes on at once.
                stop.wait(self.poll_interval)
        try:
            self.drain()
        except Exception as exc:
            log.warning("final drain failed, records stay in the spool: %s", exc)


_ORG = REQUESTS.names.index("org_id")
LINGER_SHARE = 4  # a drain that stored less than 1/4 of a batch waits a poll interval


def _outbox(conn: Connection, batch: RecordBatch, inserted: set[str]) -> None:
    """Queue the batch's new records for webhooks, in the transaction that inserted them."""
    orgs = webhooks.enabled_orgs(conn) if inserted else frozenset()
    if orgs:
        new = ((row[0], row[_ORG]) for row in batch.requests if row[0] in inserted)
        webhooks.add_to_outbox(conn, new, orgs)


Pending = list[tuple[Built | Future[Built], list[Job]]]
SYSTEMIC_FAILURES = 3  # records refused alone, none stored: the fault is not in the records
POOL_CHUNK = 200  # records; about 15 ms of analysis for small chat requests
POOL_CHUNK_BYTES = 768 * 1024  # and at most this much frame data, so a chunk fits a pool pipe


def chunked(jobs: list[Job]) -> list[list[Job]]:
    """Split a batch into the chunks helpers take: bounded in records and in bytes."""
    chunks: list[list[Job]] = []
    chunk: list[Job] = []
    size = 0
    for job in jobs:
        weight = len(job[0]) + len(job[1]) + len(job[2] or b"") + len(job[3])
        if chunk and (len(chunk) >= POOL_CHUNK or size + weight > POOL_CHUNK_BYTES):
            chunks.append(chunk)
            chunk, size = [], 0
        chunk.append(job)
        size += weight
    if chunk:
        chunks.append(chunk)
    return chunks


def make_writer(
    settings: Settings,
    engine: Engine,
    *,
    parallel: bool = False,
    metrics: RecordMetrics | None = None,
) -> Writer:
    """A writer configured from settings (used by the app and by the writer process)."""
    pricebook = make_pricebook(settings)
    if parallel:  # the writer process: load prices at start, not on the first record
        pricebook.preload()
    return Writer(
        engine,
        settings.spool_dir,
        batch_size=settings.writer_batch_size,
        body_cap=settings.max_stored_body_bytes,
        poll_interval=settings.writer_poll_interval,
        pricebook=pricebook,
        charger=CentsCharger(engine, settings.redis_url),
        settler=BudgetSettler(settings.redis_url),
        pool_factory=(lambda: make_pool(settings)) if parallel else None,
        metrics=metrics,
        spans=make_span_export(settings, in_process=not parallel),
    )
