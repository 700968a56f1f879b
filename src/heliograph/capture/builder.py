"""Turning batches of spooled (start, end) frame pairs into insert-ready record batches.

This is the writer's CPU work - parsing, stream reassembly, token estimation, pricing,
compression, rollup sums - and it runs in helper processes when there are several, so the
writer's own process only reads the spool and inserts. Jobs go to a helper as raw frame bytes
and come back as a :class:`Built`: tuples in column order, cheap to pickle both ways.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from heliograph.budgets.settle import Contribution, settlements_of
from heliograph.capture.charges import Charge, charge_of
from heliograph.capture.frames import EndFrame, StartFrame
from heliograph.capture.record import RecordRows, build_record, provider_of
from heliograph.capture.spool import KIND_TRACES
from heliograph.config import Settings
from heliograph.pricing import GpuHourPrice, PriceBook, PriceOverride
from heliograph.pricing.book import DEFAULT_LOCAL_PROVIDERS
from heliograph.store.bodies import BodyPacker
from heliograph.store.end_users import people_rows
from heliograph.store.inserts import RecordBatch, pack_records
from heliograph.telemetry.otlp_records import build_trace_rows

log = logging.getLogger(__name__)

Job = tuple[bytes, bytes, bytes | None, bytes]
"""(start frame header, request body, end frame header or None if interrupted, response body);
for a traces frame: (its header, its body, ``KIND_TRACES``, b"") - an end header is JSON, so
the marker cannot be mistaken for one."""


@dataclass(slots=True)
class Built:
    """One analysed batch: its rows, the rate-limit charges it carries, keys' last use."""

    batch: RecordBatch = field(default_factory=RecordBatch)
    charges: list[Charge] = field(default_factory=list)
    settlements: list[tuple[str, tuple[Contribution, ...]]] = field(default_factory=list)
    last_used: dict[str, int] = field(default_factory=dict)
    spans: list[dict[str, Any]] = field(default_factory=list)  # ingested OTLP spans' rows

    def extend(self, other: Built) -> None:
        self.batch.extend(other.batch)
        self.spans += other.spans
        self.charges += other.charges
        self.settlements += other.settlements
        for key, ms in other.last_used.items():
            self.last_used[key] = max(self.last_used.get(key, 0), ms)


class Builder:
    """Analyses jobs with one price book and one compression context."""

    def __init__(self, body_cap: int, pricebook: PriceBook | None) -> None:
        self.body_cap = body_cap
        self.pricebook = pricebook
        self.packer = BodyPacker()

    def build(self, jobs: list[Job]) -> Built:
        records: list[RecordRows] = []
        spans: list[dict[str, Any]] = []
        for job in jobs:
            if job[2] == KIND_TRACES:
                rows = build_trace_rows(job[0], job[1], self.pricebook, self.packer, self.body_cap)
                records += rows.records
                spans += rows.spans
            elif (record := self.record(job)) is not None:
                records.append(record)
        out = Built(
            spans=spans,
            batch=pack_records(
                [r.request for r in records],
                [r.body for r in records],
                [p for r in records for p in r.properties],
                [g for r in records for g in r.groups],
                people_rows(r.person for r in records),
            ),
        )
        for rec in records:
            charge = charge_of(rec)
            if charge is not None:
                out.charges.append(charge)
            if rec.budgets:
                out.settlements.append((rec.request["id"], settlements_of(rec)))
            key_id = rec.request.get("key_id")
            if key_id:
                created = rec.request["created_at"]
                out.last_used[key_id] = max(out.last_used.get(key_id, 0), created)
        return out

    def record(self, job: Job) -> RecordRows | None:
        """The rows of one (start, end) pair; a record comes out whatever the bodies were."""
        start_raw, request_body, end_raw, body = job
        try:
            start: StartFrame = orjson.loads(start_raw)
            end: EndFrame | None = orjson.loads(end_raw) if end_raw is not None else None
        except orjson.JSONDecodeError:
            log.error("unreadable spool frame header; record skipped")
            return None
        provider = provider_of(start)
        try:
            return build_record(
                start,
                request_body,
                end,
                body,
                provider=provider,
                body_cap=self.body_cap,
                pricebook=self.pricebook,
                packer=self.packer,
            )
        except Exception:
            log.exception("could not analyse record %s; storing it unanalysed", start.get("id"))
            fallback: EndFrame = {**end, "ct": ""} if end is not None else {"id": start["id"]}
            try:
                return build_record(
                    start,
                    b"",
                    fallback if end else None,
                    b"",
                    provider=provider,
                    body_cap=self.body_cap,
                    packer=self.packer,
                )
            except Exception:  # a frame header the gateway could not have written
                log.exception("unusable spool frame for %s; record skipped", start.get("id"))
                return None


def tune_gc() -> None:
    """Garbage-collection settings for the writer process and its helpers.

    Analysis allocates many short-lived dicts and lists per record, almost all freed by
    reference counting; with the default threshold the cycle collector would run every few
    records and rescan what lives long (modules, the price catalog). Those are frozen out of
    collection once loaded, and young objects are collected less often.
    """
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


# The pool-initializer pattern: each helper process builds its Builder once, here.
_HELPER: dict[str, Builder] = {}


def _init_helper(settings: Settings) -> None:
    book = make_pricebook(settings)
    book.preload()
    _HELPER["builder"] = Builder(settings.max_stored_body_bytes, book)
    tune_gc()


def build_in_helper(jobs: list[Job]) -> Built:
    """What a helper process runs for one chunk of jobs."""
    return _HELPER["builder"].build(jobs)


def make_pricebook(settings: Settings) -> PriceBook:
    """Prices from settings: overrides, and GPU-hour prices of self-hosted upstreams."""
    upstreams = settings.resolved_upstreams()
    gpu = [
        GpuHourPrice(name, cfg.gpu_usd_per_hour)
        for name, cfg in upstreams.items()
        if cfg.gpu_usd_per_hour is not None
    ]
    # An upstream declared local serves self-hosted models: cost 0 unless it has a GPU price.
    local = DEFAULT_LOCAL_PROVIDERS | {name for name, cfg in upstreams.items() if cfg.local}
    return PriceBook(
        [PriceOverride.from_dict(p) for p in settings.prices], gpu, local_providers=local
    )


def make_pool(settings: Settings) -> ProcessPoolExecutor | None:
    """Helper processes that analyse records beside the writer process (which analyses too).

    ``writer_processes`` counts the writer process itself: 2 means one helper.
    """
    if settings.writer_processes < 2:
        return None
    pool = ProcessPoolExecutor(
        max_workers=settings.writer_processes - 1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_helper,
        initargs=(settings,),
    )
    for queue in (getattr(pool, "_call_queue", None), getattr(pool, "_result_queue", None)):
        widen_pipe(getattr(queue, "_reader", None))
    return pool


PIPE_BYTES = 1 << 20


def widen_pipe(end: Any) -> int:
    """Give a pool's job or result pipe room for a whole chunk; its new size in bytes (0: not).

    The executor's queues move chunks of a few hundred KB through 64 KiB pipes, written and
    read by background threads of the writer process. Each 64 KiB step makes such a thread
    wait for the GIL while the writer's main thread analyses or inserts - up to 5 ms a time -
    and the helper sat idle about a quarter of the time waiting on its pipes. With room for
    a whole chunk, one system call moves it. Linux only; elsewhere (or if the executor's
    internals change) the pipes keep their size, which is slower, not wrong.
    """
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if end is None or set_size is None:
        return 0
    limit = PIPE_BYTES
    with contextlib.suppress(OSError, ValueError):
        limit = min(limit, int(Path("/proc/sys/fs/pipe-max-size").read_text()))
    try:
        return int(fcntl.fcntl(end.fileno(), set_size, limit))
    except (OSError, AttributeError):
        return 0
