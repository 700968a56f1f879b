"""Experiment result page speed: 1,000 items x 3 variants, the page and the results API timed.

    python bench/experiment_page_bench.py [--items 1000] [--runs 7] [--store sqlite|postgresql]

Seeds one experiment's rows directly (tests/experiment_support.py: cells with outputs,
tokens, cost and latency; two evaluators, one pass/fail and one 1-5 with a few evaluator
errors) in a fresh store (SQLite in a temporary directory, or a new database on the
PostgreSQL server of the tests, ``HELIOGRAPH_TEST_PG``, dropped afterwards), serves the real
app, logs in and times ``GET /experiments/<id>`` and ``GET /api/v1/experiments/<id>/results``.
The first request computes the bootstrap intervals (2,000 resamples per pair: the page's
each variant against the baseline, the API's every pair); later ones read them from the
app's cache until a score changes, so both figures are reported. ``--fresh-app`` leaves the
page's first request as the server's first too (templates compiled, connections opened);
by default a small other experiment's page is opened before, so "first" is the first view of
this experiment in a running server.
Target (issue 16): the result page under 300 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from conftest import PG_ADMIN_URL, LiveGateway, create_pg_database, gateway_settings
from experiment_support import build
from heliograph.store.engine import make_engine
from web_support import WebClient, add_user

VARIANTS = (
    {"kind": "prompt", "prompt": "support", "version": 1},
    {"kind": "prompt", "prompt": "support", "version": 2},
    {"kind": "model", "upstream": "ollama", "model": "llama3.1"},
)


def judge(i: int, v: int) -> tuple[float | None, bool | None, str | None, str | None]:
    if (i * 7 + v) % 50 == 0:
        return None, None, None, "unparseable judge answer"
    return float(1 + (i * 3 + v * 5) % 5), None, f"rubric reason {i}", None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--fresh-app", action="store_true", help="no warm-up request")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        drop = None
        db = f"sqlite:///{tmp}/bench.db"
        if args.store == "postgresql":
            db, drop = create_pg_database(PG_ADMIN_URL)
        gw = LiveGateway(gateway_settings(Path(tmp), db, "http://127.0.0.1:9")).start()
        try:
            engine = make_engine(db)
            start = time.perf_counter()
            built = build(
                engine,
                gw.org.id,
                items=args.items,
                variants=VARIANTS,
                evaluators={
                    "correct": lambda i, v: (float((i + v) % 4 != 0), (i + v) % 4 != 0, "", None),
                    "judge": judge,
                },
                output=lambda i, v: f"Answer {i} from variant {v}: " + "lorem ipsum " * 20,
            )
            other = build(engine, gw.org.id, name="warm-up", items=20, variants=VARIANTS)
            if args.store == "postgresql":  # as autovacuum would (it is off on the test server)
                with engine.begin() as conn:
                    conn.exec_driver_sql("ANALYZE")
            engine.dispose()
            seeded = time.perf_counter() - start
            print(f"{args.store}: seeded {args.items} x 3 cells in {seeded:.1f} s")
            add_user(gw, "bench@example.com")
            key = {"Authorization": f"Bearer {gw.org.read_key}"}
            api = f"{gw.base_url}/api/v1/experiments/{built.experiment_id}/results"
            with WebClient(gw, "bench@example.com") as web:
                if not args.fresh_app:
                    assert web.get(f"/experiments/{other.experiment_id}").status_code == 200
                    httpx.get(api.replace(built.experiment_id, other.experiment_id), headers=key)
                for label, get in (
                    ("page", lambda: web.get(f"/experiments/{built.experiment_id}")),
                    ("results API", lambda: httpx.get(api, headers=key, timeout=60)),
                ):
                    times = []
                    for _ in range(args.runs):
                        t0 = time.perf_counter()
                        resp = get()
                        times.append((time.perf_counter() - t0) * 1000)
                        assert resp.status_code == 200, resp.text[:300]
                    rest = sorted(times[1:]) or times
                    p95 = rest[min(len(rest) - 1, round(0.95 * (len(rest) - 1)))]
                    print(
                        f"{label}: first {times[0]:.0f} ms, then p50 "
                        f"{statistics.median(rest):.0f} / p95 {p95:.0f} ms"
                    )
        finally:
            gw.stop()
            if drop is not None:
                drop()


if __name__ == "__main__":
    main()
