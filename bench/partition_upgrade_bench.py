"""The upgrade to monthly partitions (migration 0023) on a PostgreSQL store that holds data.

    python bench/partition_upgrade_bench.py [--records 1000000] [--months 12]

Makes a new database at revision 0022, fills it with ``--records`` records spread over
``--months`` months (each with a body of about 700 bytes and a property) by SQL on the server,
then times ``heliograph migrate`` to 0023: the copy of every record and body into the
partitioned tables, the id guard, and the index builds. Checks that every row arrived.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from sqlalchemy import Engine, text

from heliograph.store.engine import make_engine, migrate
from heliograph.store.partitions import list_partitions

DAY = 86_400_000


def fill(engine: Engine, records: int, months: int) -> None:
    span = months * 30 * DAY
    now = int(time.time() * 1000)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO organizations (id, name, created_at) VALUES ('o1', 'bench', 1)")
        )
        conn.execute(
            text(
                "INSERT INTO requests (id, org_id, created_at, kind, provider, upstream, method,"
                " endpoint, model, stream, status, state, prompt_tokens, completion_tokens,"
                " user_id) SELECT 'r' || g, 'o1', :now - (g::bigint * :span / :n), 'llm',"
                " 'openai', 'openai', 'POST', '/chat/completions', 'gpt-4o-' || (g % 7), false,"
                " 200, 'ok', 100 + g % 50, 20 + g % 30, 'u' || (g % 100)"
                " FROM generate_series(1, :n) AS g"
            ),
            {"now": now, "span": span, "n": records},
        )
        conn.execute(
            text(
                "INSERT INTO request_bodies (request_id, encoding, request_body, response_body,"
                " truncated) SELECT 'r' || g, 'none', convert_to(repeat(md5(g::text), 15), 'UTF8'),"
                " convert_to(repeat(md5((g + 1)::text), 6), 'UTF8'), false"
                " FROM generate_series(1, :n) AS g"
            ),
            {"n": records},
        )
        conn.execute(
            text(
                "INSERT INTO request_properties (request_id, name, value, org_id)"
                " SELECT 'r' || g, 'team', 't' || (g % 10), 'o1' FROM generate_series(1, :n) g"
            ),
            {"n": records},
        )
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    from conftest import create_pg_database

    url, drop = create_pg_database(args.pg)
    engine = make_engine(url)
    try:
        migrate(engine, "0022")
        t0 = time.perf_counter()
        fill(engine, args.records, args.months)
        with engine.connect() as conn:
            size = conn.execute(text("SELECT pg_size_pretty(pg_database_size(current_database()))"))
            print(f"filled {args.records:,} records in {time.perf_counter() - t0:.0f} s;"
                  f" database {size.scalar_one()}")  # fmt: skip
        t0 = time.perf_counter()
        migrate(engine)
        took = time.perf_counter() - t0
        with engine.connect() as conn:
            counts = [
                int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one())
                for t in ("requests", "request_bodies", "request_ids")
            ]
        months = len(list_partitions(engine, "requests"))
        ok = counts == [args.records] * 3
        print(
            f"upgrade to partitions: {took:.1f} s ({args.records / took:,.0f} records/s),"
            f" {months} monthly partitions; rows {counts} {'OK' if ok else 'MISSING ROWS'}"
        )
        if not ok:
            raise SystemExit(1)
    finally:
        engine.dispose()
        drop()


if __name__ == "__main__":
    main()
