"""OTLP ingest throughput: spans per second accepted on /v1/traces and stored by the writer.

Builds agent traces (an agent span, two tool spans and two LLM chat spans with messages, as
opentelemetry-instrumentation-openai-v2 sends them) in protobuf batches of 500 spans; posts
them to an in-process app whose writer is off (the accept rate: decode, check, spool), then
times ``Writer.drain()`` until every span is in the store (the store rate), into SQLite.

    python bench/otlp_bench.py [--batches 40]

Target (issue 18): at least 5,000 spans/s into the store.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import LiveGateway, gateway_settings
from heliograph.capture.writer import make_writer
from heliograph.store.engine import make_engine
from heliograph.store.schema_ops import spans
from otlp_support import SpanSpec, batch, chat_attributes, trace

PER_BATCH = 500


def bodies(count: int) -> list[bytes]:
    out = []
    for _ in range(count):
        specs: list[SpanSpec] = []
        for _ in range(PER_BATCH // 5):
            agent = SpanSpec("invoke_agent planner", {"gen_ai.operation.name": "invoke_agent"})
            tools = [
                SpanSpec("execute_tool search", {"gen_ai.operation.name": "execute_tool"})
                for _ in range(2)
            ]
            llms = [SpanSpec("chat gpt-4o-mini", chat_attributes(), kind=3) for _ in range(2)]
            group = trace(agent, *tools, *llms)
            for span in group[1:]:
                span.parent = agent.span_id
            specs += group
        out.append(batch(specs))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=40)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="otlp-bench-"))
    settings = gateway_settings(
        tmp, f"sqlite:///{tmp / 'bench.db'}", "http://127.0.0.1:9", writer="off"
    )
    gw = LiveGateway(settings).start()
    payloads = bodies(args.batches)
    total = len(payloads) * PER_BATCH
    t0 = time.perf_counter()
    with httpx.Client(timeout=60) as client:
        for body in payloads:
            resp = client.post(
                f"{gw.base_url}/v1/traces",
                content=body,
                headers={
                    "content-type": "application/x-protobuf",
                    "authorization": f"Bearer {gw.org.write_key}",
                },
            )
            resp.raise_for_status()
    accepted = time.perf_counter() - t0
    gw.stop()
    engine = make_engine(settings.sqlalchemy_url)
    writer = make_writer(settings, engine)
    assert writer.acquire()
    t0 = time.perf_counter()
    stop = threading.Event()
    while True:
        writer.drain()
        with engine.connect() as conn:
            stored = conn.execute(select(func.count()).select_from(spans)).scalar_one()
        if stored >= total or time.perf_counter() - t0 > 300:
            break
        stop.wait(0.01)
    elapsed = time.perf_counter() - t0
    writer.release()
    print(f"{total} spans ({total * 2 // 5} LLM records) in {len(payloads)} batches of {PER_BATCH}")
    print(f"accepted: {accepted:.2f} s, {total / accepted:,.0f} spans/s (one worker, one client)")
    print(f"stored:   {elapsed:.2f} s, {stored / elapsed:,.0f} spans/s (writer, SQLite)")


if __name__ == "__main__":
    main()
