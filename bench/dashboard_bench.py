"""Dashboard speed at scale: fill a store with realistic synthetic requests, time the pages.

    python bench/dashboard_bench.py [--records 1000000] [--dialect sqlite|postgresql|both]

Generates records spread over the last 30 days (several orgs' worth of traffic in one org:
cloud and local models, users, sessions, streams, errors, cached and unpriced requests, and
Open WebUI's share: named users in groups, about a quarter of the calls background tasks)
with small bodies, inserts them through the store's own batch insert (so the hourly rollups
and the end-user directory are maintained exactly as the writer does), then serves the real
app and times the Dashboard, Requests, Models, Users, Groups and Tasks pages (logged in, their
default range, and the 30 d range) over HTTP.
Target (issue 5): each page under 300 ms on SQLite and on PostgreSQL with 1,000,000 requests.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
import zlib
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from heliograph.store import partitions
from heliograph.store.engine import make_engine, migrate
from heliograph.store.inserts import insert_batch, pack_records

DAY = 86_400_000
MODELS = [
    ("openai", "openai", "gpt-4o-mini", 0.15, 0.6),
    ("openai", "openai", "gpt-4o", 2.5, 10.0),
    ("anthropic", "anthropic", "claude-sonnet-4-6", 3.0, 15.0),
    ("ollama", "ollama", "llama3.2", 0.0, 0.0),
    ("ollama", "ollama", "qwen3:8b", 0.0, 0.0),
    ("my-vllm", "my-vllm", "Qwen/Qwen3-32B", None, None),
]
WEIGHTS = [40, 15, 15, 15, 10, 5]
USERS = 400
GROUPS = ("Research", "Sales", "Support", "Engineering", "Ops", "Legal")
# Open WebUI's background tasks and how often each follows a chat turn (None: a chat)
TASKS = (None, "title_generation", "tags_generation", "follow_up_generation", "query_generation")
TASK_WEIGHTS = [75, 6, 6, 10, 3]
PAGES = (
    *("/", "/requests", "/models", "/?range=30d", "/models?range=30d"),
    *("/users", "/groups", "/tasks", "/tasks?range=24h"),
    *(
        "/models/llama3.2",
        "/models/llama3.2?range=30d",
        "/models/qwen3:8b?range=30d&upstream=ollama",
    ),
    "/compare?range=30d&model=gpt-4o&model=llama3.2&model=qwen3:8b",
)


def person(n: int) -> tuple[str, str, list[str]]:
    """User ``n``'s name, email and groups (one or two, fixed per user)."""
    groups = [GROUPS[n % len(GROUPS)]]
    if n % 3 == 0:
        groups.append(GROUPS[(n // 3) % len(GROUPS)])
    return f"User {n}", f"user{n}@example.com", sorted(set(groups))


def synthetic(
    rng: random.Random, org_id: str, now_ms: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    provider, upstream, model, pin, pout = rng.choices(MODELS, WEIGHTS)[0]
    created = now_ms - int(rng.random() ** 1.3 * 30 * DAY)
    stream = rng.random() < 0.6
    failed = rng.random() < 0.03
    prompt, completion = rng.randint(20, 4000), rng.randint(5, 800)
    speed = rng.uniform(20, 150)
    ttft = rng.uniform(80, 1500) if stream else None
    latency = (ttft or 200) + completion / speed * 1000
    known = pin is not None
    cost = int(prompt * pin * 1000 + completion * pout * 1000) if known else None
    rid = str(uuid.uuid4())
    number = int(rng.paretovariate(1.2)) % USERS
    user = f"user-{number}"
    name, email, groups = person(number)
    task = rng.choices(TASKS, TASK_WEIGHTS)[0]
    row = {
        "id": rid,
        "org_id": org_id,
        "key_id": None,
        "created_at": created,
        "kind": "llm",
        "provider": provider,
        "upstream": upstream,
        "method": "POST",
        "endpoint": "/v1/messages" if provider == "anthropic" else "/chat/completions",
        "model": model,
        "response_model": model,
        "stream": stream,
        "status": 500 if failed else 200,
        "state": "error" if failed else "ok",
        "error": "Upstream returned HTTP 500" if failed else None,
        "latency_ms": round(latency, 1),
        "ttft_ms": round(ttft, 1) if ttft else None,
        "output_tokens_per_s": round(speed, 1),
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "cached_tokens": 0,
        "reasoning_tokens": None,
        "cost_nusd": cost,
        "cost_known": known,
        "user_id": user,
        "session_id": f"chat-{rng.randint(0, 50000)}",
        "properties": None,
        "protocol": "anthropic" if provider == "anthropic" else "openai",
        "user_name": name,
        "user_email": email,
        "user_role": "user",
        "user_groups": groups,
        "identity": "headers",
        "task": task,
    }
    text = f"Question {rng.randint(0, 10**6)}: explain topic {rng.randint(0, 999)} briefly."
    request = orjson.dumps({"model": model, "messages": [{"role": "user", "content": text}]})
    response = orjson.dumps(
        {"choices": [{"message": {"role": "assistant", "content": "An answer."}}]}
    )
    body = {
        "request_id": rid,
        "encoding": "zlib",
        "request_body": zlib.compress(request, 1),
        "response_body": zlib.compress(response, 1),
        "request_headers": {"request": [], "response": []},
        "truncated": False,
    }
    return row, body


def directory_rows(org_id: str, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """End-user directory rows for the users of a batch (``end_users.upsert``'s shape)."""
    seen: dict[str, tuple[int, int]] = {}
    for row in rows:
        first, last = seen.get(row["user_id"], (row["created_at"], row["created_at"]))
        seen[row["user_id"]] = (min(first, row["created_at"]), max(last, row["created_at"]))
    out = []
    for user, (first, last) in seen.items():
        name, email, groups = person(int(user.split("-")[1]))
        ids = [f"g-{g.lower()}" for g in groups]
        out.append(
            (org_id, user, name, email, "user", orjson.dumps(groups).decode(),
             orjson.dumps(ids).decode(), "headers", first, last)
        )  # fmt: skip
    return out


def fill(url: str, records: int, org_id: str) -> float:
    engine = make_engine(url)
    migrate(engine)
    rng = random.Random(42)
    now = int(time.time() * 1000)
    # PostgreSQL: the monthly partitions the job process would have made (migration 0023).
    partitions.maintain(engine, now, since_ms=now - 31 * 86_400_000)
    started = time.perf_counter()
    batch = 5000
    for start in range(0, records, batch):
        pairs = [synthetic(rng, org_id, now) for _ in range(min(batch, records - start))]
        rows = [p[0] for p in pairs]
        groups = [
            {"request_id": r["id"], "name": g, "org_id": org_id}
            for r in rows
            for g in r["user_groups"]
        ]
        packed = pack_records(rows, [p[1] for p in pairs], [], groups, directory_rows(org_id, rows))
        with engine.begin() as conn:
            insert_batch(conn, packed)
        done = start + len(pairs)
        if done % 100_000 == 0:
            print(
                f"  {done:,} records ({done / (time.perf_counter() - started):,.0f}/s)", flush=True
            )
    if engine.dialect.name == "postgresql":
        # What autovacuum does after a bulk load (it is off on some test servers): without
        # statistics the planner sorts thousands of rollup rows on disk instead of hashing.
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    engine.dispose()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--dialect", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    dialects = ["sqlite", "postgresql"] if args.dialect == "both" else [args.dialect]
    for dialect in dialects:
        run_one(dialect, args)


def run_one(dialect: str, args: argparse.Namespace) -> None:
    from conftest import LiveGateway, gateway_settings
    from web_support import WebClient, add_user

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        drop = None
        if dialect == "sqlite":
            url = f"sqlite:///{home / 'bench.db'}"
        else:
            from conftest import create_pg_database

            url, drop = create_pg_database(args.pg)
        try:
            settings = gateway_settings(home, url, "http://127.0.0.1:9/v1", writer="off")
            gw = LiveGateway(settings).start()
            try:
                print(f"{dialect}: filling {args.records:,} records...", flush=True)
                elapsed = fill(url, args.records, gw.org.id)
                print(f"{dialect}: filled in {elapsed:.0f} s ({args.records / elapsed:,.0f}/s)")
                add_user(gw, "bench@example.com")
                with WebClient(gw, "bench@example.com") as web:
                    for path in PAGES:
                        web.get(path)  # warm up
                        times = []
                        for _ in range(args.runs):
                            t0 = time.perf_counter()
                            resp = web.get(path)
                            times.append((time.perf_counter() - t0) * 1000)
                            assert resp.status_code == 200, (path, resp.status_code)
                        p50 = statistics.median(times)
                        p95 = sorted(times)[int(len(times) * 0.95) - 1]
                        verdict = "PASS" if p95 < 300 else "FAIL"
                        print(
                            f"  {dialect:10} {path:22} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  {verdict} (< 300 ms)"
                        )
            finally:
                gw.stop()
        finally:
            if drop is not None:
                drop()


if __name__ == "__main__":
    main()
