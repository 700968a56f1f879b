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
import multiprocessing
import os
import threading
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine

from heliograph.capture.charges import CentsCharger
from heliograph.capture.record import RecordRows, build_record
from heliograph.capture.spool import KIND_END, KIND_START, Position, SpoolDir
from heliograph.config import Settings
from heliograph.pricing import GpuHourPrice, PriceBook, PriceOverride
from heliograph.store import keys as key_store
from heliograph.store.requests import insert_records

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    header: dict[str, Any]
    body: bytes
    position: Position


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
        pool: ProcessPoolExecutor | None = None,
    ) -> None:
        self.engine = engine
        self.pricebook = pricebook
        self.charger = charger
        self.pool = pool
        self.spool_root = spool_root
        self.batch_size = batch_size
        self.body_cap = body_cap
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
        previous one is inserted. Each batch carries the checkpoint that was safe when its
        frames had been read, and that is what is saved once it is committed.
        """
        result = DrainResult()
        for state in self._discover():
            alive = state.spool.owner_alive()
            inflight: deque[tuple[Built, Position]] = deque()
            try:
                while True:
                    read = self._read(state, final=not alive)
                    if read is None:
                        break
                    jobs, more, checkpoint = read
                    inflight.append((self._start_build(jobs), checkpoint))
                    while len(inflight) > (1 if more and self.pool is not None else 0):
                        result.records += self._finish(state, *inflight.popleft())
                    if not more:
                        break
            except BaseException:
                for built, _ in inflight:
                    if not isinstance(built, list):
                        for future in built:
                            future.cancel()
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
            try:
                header = orjson.loads(frame.header)
            except orjson.JSONDecodeError:
                log.error("spool %s: unreadable frame header skipped", state.spool.path)
                continue
            rid = header.get("id")
            if frame.kind == KIND_START:
                state.pending[rid] = _Pending(header, frame.body, frame.position)
            elif frame.kind == KIND_END:
                start = state.pending.pop(rid, None)
                if start is None:
                    log.warning("spool %s: end without start for %s", state.spool.path, rid)
                    continue
                jobs.append((start.header, start.body, header, frame.body))
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

    def _start_build(self, jobs: list[Job]) -> Built:
        """Analyse a batch now, or hand it to the helper processes and return their futures."""
        if self.pool is None or len(jobs) < 2 * POOL_CHUNK:
            return [build_job(job, self.body_cap, self.pricebook) for job in jobs]
        chunks = [jobs[i : i + POOL_CHUNK] for i in range(0, len(jobs), POOL_CHUNK)]
        return [self.pool.submit(_build_chunk, chunk) for chunk in chunks]

    def _finish(self, state: _DirState, built: Built, checkpoint: Position) -> int:
        batch: list[RecordRows] = []
        for item in built:
            if isinstance(item, RecordRows):
                batch.append(item)
            else:
                batch.extend(item.result())
        self._commit(state, batch, checkpoint)
        return len(batch)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None

    def _commit(self, state: _DirState, batch: list[RecordRows], checkpoint: Position) -> None:
        if batch:
            last_used: dict[str, int] = {}
            for rec in batch:
                key_id = rec.request.get("key_id")
                if key_id:
                    last_used[key_id] = max(last_used.get(key_id, 0), rec.request["created_at"])
            try:
                with self.engine.begin() as conn:
                    inserted = insert_records(
                        conn,
                        [r.request for r in batch],
                        [r.body for r in batch],
                        [p for r in batch for p in r.properties],
                    )
            except Exception:
                # Forget what was read since the checkpoint: it is re-read on the next try.
                self._dirs.pop(state.spool.path, None)
                state.finished = False
                raise
            try:
                key_store.touch_keys(self.engine, last_used)
            except Exception as exc:
                log.warning("could not update key last-use times: %s", exc)
            if self.charger is not None:
                self.charger.charge(r for r in batch if r.request["id"] in inserted)
        state.spool.save_checkpoint(checkpoint)

    def run(self, stop: threading.Event) -> None:
        """Drain until ``stop`` is set; back off while the store is unavailable."""
        backoff = self.poll_interval
        while not stop.is_set():
            try:
                result = self.drain()
            except Exception as exc:
                log.warning("store unavailable, records wait in the spool: %s", exc)
                stop.wait(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            backoff = self.poll_interval
            if result.records == 0:
                stop.wait(self.poll_interval)
        try:
            self.drain()
        except Exception as exc:
            log.warning("final drain failed, records stay in the spool: %s", exc)


Job = tuple[dict[str, Any], bytes, dict[str, Any] | None, bytes]
Built = list[RecordRows] | list[Future[list[RecordRows]]]
POOL_CHUNK = 200


def build_job(job: Job, body_cap: int, pricebook: PriceBook | None) -> RecordRows:
    """The rows of one (start, end) pair; a record comes out whatever the bytes were."""
    start, request_body, end, body = job
    provider = str(start.get("pv") or start.get("up") or "openai")
    try:
        return build_record(
            start,
            request_body,
            end,
            body,
            provider=provider,
            body_cap=body_cap,
            pricebook=pricebook,
        )
    except Exception:
        log.exception("could not analyse record %s; storing it unanalysed", start.get("id"))
        fallback = dict(end or {})
        fallback["ct"] = ""
        return build_record(
            start,
            b"",
            fallback if end else None,
            b"",
            provider=provider,
            body_cap=body_cap,
        )


_WORKER_STATE: dict[str, Any] = {}  # per helper process, set once by _init_worker


def _init_worker(body_cap: int, prices: list[dict[str, Any]], gpu: list[tuple[str, float]]) -> None:
    _WORKER_STATE["body_cap"] = body_cap
    _WORKER_STATE["pricebook"] = PriceBook(
        [PriceOverride.from_dict(p) for p in prices], [GpuHourPrice(u, r) for u, r in gpu]
    )


def _build_chunk(jobs: list[Job]) -> list[RecordRows]:
    return [build_job(j, _WORKER_STATE["body_cap"], _WORKER_STATE["pricebook"]) for j in jobs]


def make_pricebook(settings: Settings) -> PriceBook:
    """Prices from settings: overrides, and GPU-hour prices of self-hosted upstreams."""
    gpu = [
        GpuHourPrice(name, cfg.gpu_usd_per_hour)
        for name, cfg in settings.resolved_upstreams().items()
        if cfg.gpu_usd_per_hour is not None
    ]
    return PriceBook([PriceOverride.from_dict(p) for p in settings.prices], gpu)


def make_pool(settings: Settings) -> ProcessPoolExecutor | None:
    """Helper processes that analyse records in parallel (the writer process uses them)."""
    if settings.writer_processes < 2:
        return None
    gpu = [
        (name, float(cfg.gpu_usd_per_hour))
        for name, cfg in settings.resolved_upstreams().items()
        if cfg.gpu_usd_per_hour is not None
    ]
    return ProcessPoolExecutor(
        max_workers=settings.writer_processes,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(settings.max_stored_body_bytes, list(settings.prices), gpu),
    )


def make_writer(settings: Settings, engine: Engine, *, parallel: bool = False) -> Writer:
    """A writer configured from settings (used by the app and by the writer process)."""
    return Writer(
        engine,
        settings.spool_dir,
        batch_size=settings.writer_batch_size,
        body_cap=settings.max_stored_body_bytes,
        poll_interval=settings.writer_poll_interval,
        pricebook=make_pricebook(settings),
        charger=CentsCharger(engine, settings.redis_url),
        pool=make_pool(settings) if parallel else None,
    )
