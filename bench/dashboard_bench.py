"""Dashboard and query API speed at scale: a store of synthetic requests, timed over HTTP.

    python bench/dashboard_bench.py [--records 1000000] [--dialect sqlite|postgresql|both]
                                    [--runs 15] [--pg URL]

Generates records spread over the last 30 days (several orgs' worth of traffic in one org:
cloud and local models, users, sessions, streams, errors, cached and unpriced requests, and
Open WebUI's share: named users in groups, about a quarter of the calls background tasks;
custom properties as Helicone-Property-* headers give them: ``app``, six values, skewed, and
``env``) with small bodies, inserts them through the store's own batch insert (so the hourly
rollups, the property and group side tables and the end-user directory are maintained exactly
as the writer does), then serves the real app and times over HTTP:

- the Dashboard, Requests, Models, Users, Groups and Tasks pages (logged in, their default
  range, and the 30 d range);
- the Requests page filtered by a user (the long tail's head, and one from its tail), by a
  model, by a property, and by all three at once;
- the query API with a read key: ``GET /api/v1/requests`` with the user (the head), model,
  property and all three filters over the last 7 days, and Helicone's
  ``POST /v1/request/query`` with all three and the same start.

Before timing, each filter is checked to narrow the list: the filtered page is not an error
and shows rows, every row the API returns matches, the page's rows are among them, and the
unfiltered page shows rows that do not match.
Targets: every page under 300 ms at p95 (with 1,000,000 requests on SQLite and PostgreSQL,
issue 5; with 10,000,000 on PostgreSQL, the filtered Requests pages included), the query
API's common filters under 500 ms.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import random
import re
import statistics
import sys
import tempfile
import time
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from heliograph.store import partitions
from heliograph.store.engine import make_engine, migrate
from heliograph.store.inserts import insert_batch, pack_records
from heliograph.store.requests import iso_ms

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
# Custom properties (Helicone-Property-App, -Env): the apps' shares are skewed.
APPS = ("chat", "support-bot", "code-review", "search", "summarizer", "eval")
APP_CUM = list(itertools.accumulate([50, 20, 12, 8, 6, 4]))
STAGING = 0.15
# The Requests page's and the API's filters (their one URL spelling, store.fields): user-1
# is the long tail's head (about half the traffic), user-12 is in its tail (about 0.5 %).
FILTERS = {
    "user": {"user_id": "user-1"},
    "tail user": {"user_id": "user-12"},
    "model": {"model": "gpt-4o"},
    "property": {"property.app": "code-review"},
    "all three": {"user_id": "user-1", "model": "gpt-4o", "property.app": "code-review"},
}
API_FILTERS = ("user", "model", "property", "all three")
API_DAYS = 7  # the query API's time range: the last 7 days
PAGE_MS, API_MS = 300, 500
ROW_ID = re.compile(r'<tr data-id="([^"]+)"')


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


def properties(rng: random.Random) -> dict[str, str]:
    """A record's custom properties (names lower-case, as the gateway stores header names)."""
    app = rng.choices(APPS, cum_weights=APP_CUM)[0]
    return {"app": app, "env": "staging" if rng.random() < STAGING else "prod"}


def matches(record: dict[str, Any], params: dict[str, str]) -> bool:
    """Whether a record (a synthetic row or the API's shape) passes a filter of ``FILTERS``."""
    for name, value in params.items():
        prefix, _, key = name.partition(".")
        got = (record["properties"] or {}).get(key) if prefix == "property" else record[name]
        if got != value:
            return False
    return True


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


def fill(url: str, records: int, org_id: str) -> tuple[float, dict[str, int]]:
    """Fill the store; returns the seconds taken and how many records each filter matches."""
    engine = make_engine(url)
    migrate(engine)
    rng = random.Random(42)
    # Its own generator, so the other columns are the ones earlier runs of this bench had.
    tag_rng = random.Random(43)
    seen: dict[tuple[str, str, str], int] = {}
    now = int(time.time() * 1000)
    # PostgreSQL: the monthly partitions the job process would have made (migration 0023).
    partitions.maintain(engine, now, since_ms=now - 31 * 86_400_000)
    started = time.perf_counter()
    batch = 5000
    for start in range(0, records, batch):
        pairs = [synthetic(rng, org_id, now) for _ in range(min(batch, records - start))]
        rows = [p[0] for p in pairs]
        for r in rows:
            r["properties"] = properties(tag_rng)
            key = (r["user_id"], r["model"], r["properties"]["app"])
            seen[key] = seen.get(key, 0) + 1
        props = [
            {"request_id": r["id"], "name": k, "value": v, "org_id": org_id}
            for r in rows
            for k, v in r["properties"].items()
        ]
        groups = [
            {"request_id": r["id"], "name": g, "org_id": org_id}
            for r in rows
            for g in r["user_groups"]
        ]
        people = directory_rows(org_id, rows)
        packed = pack_records(rows, [p[1] for p in pairs], props, groups, people)
        with engine.begin() as conn:
            insert_batch(conn, packed)
        done = start + len(pairs)
        if done % 100_000 == 0:
            print(
                f"  {done:,} records ({done / (time.perf_counter() - started):,.0f}/s)", flush=True
            )
    if engine.dialect.name == "postgresql":
        # What autovacuum does after a bulk load (it is off on some test servers): without
        # statistics the planner sorts thousands of rollup rows on disk instead of hashing,
        # and without the visibility map (PostgreSQL 13+ vacuums insert-only tables too) a
        # count reads every matching row's heap page instead of the index alone.
        with engine.connect() as conn:
            auto = conn.execution_options(isolation_level="AUTOCOMMIT")
            auto.exec_driver_sql("VACUUM (ANALYZE)")
    engine.dispose()
    counts = {
        name: sum(
            n
            for (user, model, app), n in seen.items()
            if matches({"user_id": user, "model": model, "properties": {"app": app}}, params)
        )
        for name, params in FILTERS.items()
    }
    return time.perf_counter() - started, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--dialect", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        metavar="MINUTES",
        help="after the fill, wait up to this long for the machine to be quiet before timing",
    )
    args = parser.parse_args()
    dialects = ["sqlite", "postgresql"] if args.dialect == "both" else [args.dialect]
    for dialect in dialects:
        run_one(dialect, args)


def helicone_tree(params: dict[str, str], since: str) -> dict[str, Any]:
    """A filter of ``FILTERS`` and a start time as Helicone's query body spells them."""
    leaves: list[Any] = [{"request_response_rmt": {"request_created_at": {"gte": since}}}]
    for name, value in params.items():
        prefix, _, key = name.partition(".")
        if prefix == "property":
            leaves.append({"request_response_rmt": {"properties": {key: {"equals": value}}}})
        else:
            leaves.append({"request_response_rmt": {name: {"equals": value}}})
    tree = leaves[0]
    for leaf in leaves[1:]:
        tree = {"left": tree, "operator": "and", "right": leaf}
    return tree


def check_api(resp: httpx.Response, params: dict[str, str], since: str, what: str) -> None:
    """The API's answer is a 200 with rows, all matching the filter and newer than ``since``."""
    assert resp.status_code == 200, (what, resp.status_code, resp.text[:300])
    rows = resp.json()["data"]
    assert rows, (what, "no rows")
    bad = [r["id"] for r in rows if not matches(r, params) or r["created_at"] < since]
    assert not bad, (what, "rows that do not match", bad[:3])


def check_filters(
    dialect: str,
    web: Any,
    api: httpx.Client,
    window: dict[str, str],
    counts: dict[str, int],
    records: int,
) -> None:
    """Each filter narrows the list: the page is no error and shows rows, every row the API
    returns matches, the page's rows are among them, the unfiltered page shows others."""
    unfiltered = set(ROW_ID.findall(web.get("/requests").text))
    for name, params in FILTERS.items():
        page = web.get("/requests", **params)
        assert page.status_code == 200, (name, page.status_code)
        assert 'class="notice err"' not in page.text, (name, "the page reports an error")
        shown = ROW_ID.findall(page.text)
        resp = api.get("/api/v1/requests", params={**params, "limit": 1000})
        check_api(resp, params, "", name)
        ids = {r["id"] for r in resp.json()["data"]}
        assert shown and set(shown) <= ids, (name, "the page shows rows the filter excludes")
        others = len(unfiltered - ids)
        assert others, (name, "the unfiltered page shows no record the filter excludes")
        print(
            f"  {dialect:10} filter {name}: {counts[name]:,} of {records:,} records match; "
            f"the page shows {len(shown)} of them, the unfiltered page {others} that do not"
        )
    since = window["since"]
    for name in API_FILTERS:
        params = FILTERS[name]
        resp = api.get("/api/v1/requests", params={**params, **window})
        check_api(resp, params, since, f"api {name}")
    body = {"filter": helicone_tree(FILTERS["all three"], since)}
    check_api(api.post("/v1/request/query", json=body), FILTERS["all three"], since, "query")


def timed(
    dialect: str, label: str, call: Callable[[], httpx.Response], runs: int, target: int
) -> None:
    """Time ``call`` (after one warm-up) and print its p50, p95 and verdict."""
    call()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        resp = call()
        times.append((time.perf_counter() - t0) * 1000)
        assert resp.status_code == 200, (label, resp.status_code)
    p50 = statistics.median(times)
    p95 = sorted(times)[int(len(times) * 0.95) - 1]
    verdict = "PASS" if p95 < target else "FAIL"
    print(
        f"  {dialect:10} {label:22} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  {verdict} (< {target} ms)"
    )


def wait_quiet(max_s: float) -> None:
    """Time on a quiet machine: wait (up to ``max_s``) until under a quarter of the CPUs has
    been busy for ten seconds in a row (a long fill may share the machine with other work)."""
    if max_s <= 0:
        return
    from processes import machine_busy_fraction

    deadline, quiet = time.monotonic() + max_s, 0
    while quiet < 10 and time.monotonic() < deadline:
        quiet = quiet + 1 if machine_busy_fraction() < 0.25 else 0
    print(f"  machine {'quiet' if quiet >= 10 else 'still busy; timing anyway'}", flush=True)


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
                elapsed, counts = fill(url, args.records, gw.org.id)
                print(f"{dialect}: filled in {elapsed:.0f} s ({args.records / elapsed:,.0f}/s)")
                wait_quiet(args.wait_quiet * 60)
                add_user(gw, "bench@example.com")
                now = int(time.time() * 1000)
                window = {"since": iso_ms(now - API_DAYS * DAY), "until": iso_ms(now + 60_000)}
                auth = {"Authorization": f"Bearer {gw.org.read_key}"}
                api = httpx.Client(base_url=gw.base_url, headers=auth, timeout=60)
                with WebClient(gw, "bench@example.com") as web, api:
                    check_filters(dialect, web, api, window, counts, args.records)
                    filtered = [f"/requests?{httpx.QueryParams(p)}" for p in FILTERS.values()]
                    for path in (*PAGES, *filtered):
                        timed(dialect, path, lambda p=path: web.get(p), args.runs, PAGE_MS)
                    shown = f"since=<{API_DAYS} d ago>&until=<now>"
                    for name in API_FILTERS:
                        params = {**FILTERS[name], **window}
                        label = f"GET /api/v1/requests?{httpx.QueryParams(FILTERS[name])}&{shown}"
                        call = functools.partial(api.get, "/api/v1/requests", params=params)
                        timed(dialect, label, call, args.runs, API_MS)
                    body = {"filter": helicone_tree(FILTERS["all three"], window["since"])}
                    timed(
                        dialect,
                        f"POST /v1/request/query (all three, {API_DAYS} d)",
                        lambda: api.post("/v1/request/query", json=body),
                        args.runs,
                        API_MS,
                    )
                    for name in ("user", "all three"):
                        counted = {"filter": helicone_tree(FILTERS[name], window["since"])}
                        timed(
                            dialect,
                            f"POST /v1/request/query/count ({name}, {API_DAYS} d)",
                            lambda c=counted: api.post("/v1/request/query/count", json=c),
                            args.runs,
                            API_MS,
                        )
            finally:
                gw.stop()
        finally:
            if drop is not None:
                drop()


if __name__ == "__main__":
    main()
