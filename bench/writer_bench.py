"""Writer throughput: how many spooled records per second the writer turns into stored rows.

Fills a spool with N realistic start/end frame pairs (as the gateway writes them: a chat
request, and either a JSON answer or an SSE stream with a usage chunk), then times
``Writer.drain()`` until the spool is empty, into SQLite and into PostgreSQL.

    python bench/writer_bench.py [--records 50000] [--pg postgresql://postgres@127.0.0.1/postgres]
    python bench/writer_bench.py --otel both --skip-pg   # OpenTelemetry export off, then on
    python bench/writer_bench.py --realistic --records 20000   # Open WebUI-like chats

Target (issue 19): Open WebUI-like chats (``--realistic``) at least 8,000 records/s.

Target (issue 2): at least 10,000 records/s into each store.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

import openwebui_traffic
import otlp_sink
import processes as pr
from heliograph.capture.builder import tune_gc
from heliograph.capture.frames import EndFrame, MetaFrame, StartFrame
from heliograph.capture.ids import new_record_id
from heliograph.capture.spool import KIND_END, KIND_START, SpoolWriter
from heliograph.capture.writer import Writer, make_writer
from heliograph.config import Settings
from heliograph.store.engine import make_engine, migrate

HEADERS = [
    ("content-type", "application/json"),
    ("authorization", "[REDACTED]"),
    ("user-agent", "OpenAI/Python 1.99.0"),
    ("helicone-user-id", "user-17"),
    ("helicone-property-feature", "search"),
]
META: MetaFrame = {"user": "user-17", "props": {"feature": "search"}}


def chat_request(i: int, stream: bool) -> bytes:
    return orjson.dumps(
        {
            "model": "gpt-4o-mini",
            "stream": stream,
            "messages": [
                {"role": "system", "content": "You are a helpful assistant. " * 4},
                {"role": "user", "content": f"Question number {i}: what is the capital of France?"},
            ],
        }
    )


def chat_response(i: int) -> bytes:
    return orjson.dumps(
        {
            "id": f"chatcmpl-{i}",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "The capital of France is Paris."},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 42, "completion_tokens": 8, "total_tokens": 50},
        }
    )


def chat_stream(i: int) -> tuple[bytes, list[tuple[int, float]]]:
    words = ["The", " capital", " of", " France", " is", " Paris", "."]
    events = []
    base = {"id": f"chatcmpl-{i}", "object": "chat.completion.chunk", "created": 1700000000}
    base["model"] = "gpt-4o-mini-2024-07-18"
    events.append(
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
    )
    for w in words:
        events.append({**base, "choices": [{"index": 0, "delta": {"content": w}}]})
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    events.append(
        {
            **base,
            "choices": [],
            "usage": {"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49},
        }
    )
    body = b""
    marks = []
    for n, e in enumerate(events):
        body += b"data: " + orjson.dumps(e) + b"\n\n"
        marks.append((len(body), 100.0 + n * 20))
    body += b"data: [DONE]\n\n"
    marks.append((len(body), 100.0 + len(events) * 20))
    return body, marks


def fill_realistic(spool_root: Path, records: int, now: float | None = None) -> None:
    """Spool ``records`` Open WebUI chats (``openwebui_traffic``), one per millisecond."""
    spool = SpoolWriter(spool_root, 64 * 1024 * 1024)
    chats = openwebui_traffic.Chats()
    now = time.time() if now is None else now
    for i in range(records):
        rid = new_record_id()
        body = openwebui_traffic.request_body(chats.rng, i)
        start = chats.start(rid, now + i / 1000, body)
        spool.append(KIND_START, orjson.dumps(start), body)
        answer, end = chats.answer(rid, prompt_tokens=len(body) // 4)
        spool.append(KIND_END, orjson.dumps(end), answer)
    spool.close()


def fill(spool_root: Path, records: int, now: float | None = None, realistic: bool = False) -> None:
    """Spool ``records`` requests, one per millisecond from ``now`` (default: the clock)."""
    if realistic:
        fill_realistic(spool_root, records, now)
        return
    spool = SpoolWriter(spool_root, 64 * 1024 * 1024)
    stream_body, marks = chat_stream(0)
    now = time.time() if now is None else now
    for i in range(records):
        rid = new_record_id()
        stream = i % 2 == 1
        start: StartFrame = {
            "id": rid,
            "ts": now + i / 1000,
            "org": "bench-org",
            "key": "bench-key",
            "up": "openai",
            "pr": "openai",
            "pv": "openai",
            "m": "POST",
            "p": "/chat/completions",
            "q": "",
            "h": HEADERS,
            "md": META,  # as the gateway carries it: parsed once, on the request path
        }
        spool.append(KIND_START, orjson.dumps(start), chat_request(i, stream))
        end: EndFrame = {
            "id": rid,
            "st": 200,
            "state": "ok",
            "err": None,
            "lat": 250.0,
            "ttfb": 90.0,
            "ct": "text/event-stream" if stream else "application/json",
            "rh": [],
            "ch": marks if stream else [(300, 250.0)],
        }
        spool.append(KIND_END, orjson.dumps(end), stream_body if stream else chat_response(i))
    spool.close()


def _cpu_by_party(helpers: list[int], postgres: bool) -> dict[str, float]:
    """CPU seconds so far of the writer (this process), its helpers and PostgreSQL's server."""
    server = 0.0
    if postgres:
        pids = [int(e) for e in os.listdir("/proc") if e.isdigit()]
        server = sum(pr.cpu_seconds(p) for p in pids if "postgres" in pr.cmdline(p))
    return {
        "writer": time.process_time(),
        "helpers": sum(pr.cpu_seconds(p) for p in helpers),
        "postgres": server,
    }


@dataclass
class Result:
    rate: float
    seconds: float
    cpu: dict[str, float]  # per party, seconds during the timed drain
    export: dict[str, int] | None = None  # OpenTelemetry export's counts, when on
    flushed_rate: float = 0.0  # records/s until every span was also sent


def drain_all(writer: Writer, spool_dir: Path, records: int) -> int:
    """Drain until ``records`` records are stored and the spool is empty."""
    total = 0
    while True:
        result = writer.drain()
        total += result.records
        if result.records == 0 and not any(spool_dir.iterdir()):
            return total
        if result.records == 0 and result.removed_dirs == 0 and total >= records:
            return total


def prefill(writer: Writer, spool_dir: Path, records: int, realistic: bool = False) -> None:
    """Store ``records`` earlier requests first (untimed), so the timed drain meets a table
    of that size: the steady state of a store that has been running for a while."""
    start = time.time() - records / 1000 - 60
    done = 0
    while done < records:
        part = min(100_000, records - done)
        fill(spool_dir, part, now=start + done / 1000, realistic=realistic)
        drain_all(writer, spool_dir, part)
        done += part
        print(f"  prefilled {done:,} records", flush=True)


def run(
    url: str,
    records: int,
    processes: int = 2,
    batch_size: int | None = None,
    existing: int = 0,
    metrics: bool = False,
    otel: str | None = None,
    realistic: bool = False,
) -> Result:
    """Drain ``records`` spooled records with the writer as ``heliograph serve`` builds it;
    ``otel``: export spans to this OTLP endpoint (the standard variable, as users set it)."""
    with tempfile.TemporaryDirectory() as tmp:
        sized: dict[str, Any] = {"writer_batch_size": batch_size} if batch_size else {}
        if otel:
            os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = otel
        sized["otel_export"] = "on" if otel else "off"
        settings = Settings(home=Path(tmp), database_url=url, writer_processes=processes, **sized)
        engine = make_engine(settings.sqlalchemy_url)
        migrate(engine)
        # The writer process's own configuration: prices loaded, helper processes started,
        # garbage collection tuned (as capture/process.py does).
        counted = None
        if metrics:  # the Prometheus series, as the writer process of `heliograph serve` counts
            from heliograph.telemetry.prometheus import RecordMetrics, multiprocess

            counted = RecordMetrics()
            print(
                f"  Prometheus metrics on ({'multiprocess files' if multiprocess() else 'in memory'})"
            )
        writer = make_writer(settings, engine, parallel=True, metrics=counted)
        tune_gc()
        if existing:
            prefill(writer, settings.spool_dir, existing, realistic)
        fill(settings.spool_dir, records, realistic=realistic)
        helpers: list[int] = []
        if writer.pool is not None:  # start the helpers before the clock does
            list(writer.pool.map(abs, range(processes)))
            helpers = list(writer.pool._processes)
        on_postgres = url.startswith("postgresql")
        before = _cpu_by_party(helpers, on_postgres)
        started = time.perf_counter()
        total = drain_all(writer, settings.spool_dir, records)
        elapsed = time.perf_counter() - started
        export = None
        flushed = elapsed
        if writer.spans is not None:  # until the exporter's thread has sent every span
            writer.spans.flush()
            flushed = time.perf_counter() - started
            export = writer.spans.stats()
        after = _cpu_by_party(helpers, on_postgres)
        cpu = {party: after[party] - before[party] for party in after}
        writer.close()
        engine.dispose()
        assert total == records, (total, records)
        return Result(records / elapsed, elapsed, cpu, export, records / flushed)


def report(name: str, result: Result, records: int, target: int = 10_000) -> None:
    per_record = {k: v / records * 1e6 for k, v in result.cpu.items() if v > 0}
    cpu = ", ".join(f"{k} {v:.0f}" for k, v in per_record.items())
    print(
        f"{name:11s} {result.rate:10,.0f} records/s  ({records:,} records in {result.seconds:.2f} s;"
        f" CPU us/record: {cpu}; total {sum(per_record.values()):.0f})  target >= {target:,}"
    )
    if result.export is not None:
        print(
            f"{'':11s} OpenTelemetry export: {result.export}; records/s until every span was "
            f"sent: {result.flushed_rate:,.0f} (CPU above includes sending)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--skip-pg", action="store_true")
    parser.add_argument(
        "--processes",
        type=int,
        default=2,
        help="processes that analyse records, the writer's own included (1: no helpers)",
    )
    parser.add_argument("--batch-size", type=int, help="records per transaction (a setting)")
    parser.add_argument(
        "--existing",
        type=int,
        default=0,
        help="records stored before the timed drain (untimed), e.g. 1000000",
    )
    parser.add_argument(
        "--metrics",
        action="store_true",
        help="count the Prometheus series too (run with PROMETHEUS_MULTIPROC_DIR=<empty dir> "
        "for the multiprocess files `heliograph serve` uses)",
    )
    parser.add_argument(
        "--otel",
        choices=["off", "on", "both"],
        default="off",
        help="OpenTelemetry export to an OTLP sink process (both: a run off, then one on)",
    )
    parser.add_argument(
        "--realistic",
        action="store_true",
        help="Open WebUI-like chats: 2,000-token prompts, 300-event streamed answers "
        "(issue 19; target 8,000 records/s)",
    )
    args = parser.parse_args()
    target = 8_000 if args.realistic else 10_000
    modes = {"off": [False], "on": [True], "both": [False, True]}[args.otel]
    sink, sink_url = otlp_sink.start() if True in modes else (None, "")
    try:
        for otel in modes:
            with tempfile.TemporaryDirectory() as tmp:
                before = otlp_sink.received(sink_url) if otel else 0
                result = run(
                    f"sqlite:///{tmp}/bench.db",
                    args.records,
                    args.processes,
                    args.batch_size,
                    args.existing,
                    args.metrics,
                    otel=sink_url if otel else None,
                    realistic=args.realistic,
                )
                report("SQLite:" if not otel else "SQLite+otel:", result, args.records, target)
                if otel:
                    print(f"{'':11s} spans at the sink: {otlp_sink.received(sink_url) - before:,}")
    finally:
        if sink is not None:
            sink.terminate()
            sink.wait(10)
    if not args.skip_pg:
        import psycopg

        name = f"hg_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(args.pg, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            url = args.pg.rsplit("/", 1)[0] + "/" + name
            result = run(
                url,
                args.records,
                args.processes,
                args.batch_size,
                args.existing,
                args.metrics,
                realistic=args.realistic,
            )
            report("PostgreSQL:", result, args.records, target)
        finally:
            with psycopg.connect(args.pg, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
