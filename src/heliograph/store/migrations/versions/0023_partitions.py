"""Monthly partitions of ``requests`` and ``request_bodies`` on PostgreSQL.

Bodies gain ``created_at`` (their record's), the key both tables are partitioned by. On
PostgreSQL each table is rebuilt as a table partitioned by month (``store.partitions``): the
existing table is renamed, the partitioned one made with the same columns, a partition for
every month that holds rows and for this month and the next, a default partition, every row
copied over, the indexes built once after the copy, and the old table dropped. Every record
and body is kept; a body whose record is missing goes to the default partition. The primary
keys become (id, created_at), as PostgreSQL requires of a partitioned table; a new table,
``request_ids``, keeps every record id unique across months (the writer inserts into it in
the same COPY, so a replayed or reused id still conflicts).

On a large store this copies everything once (minutes for millions of records, in the one
transaction of the migration, so an interrupted upgrade leaves the old tables as they were).
SQLite only gains the column: it has no partitions, and retention deletes in batches there.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-05
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

REQUEST_INDEXES = (
    ("ix_requests_org_created", "(org_id, created_at, id)", ""),
    ("ix_requests_org_model", "(org_id, model, created_at)", ""),
    ("ix_requests_org_user", "(org_id, user_id, created_at)", ""),
    ("ix_requests_org_session", "(org_id, session_id, created_at)", "session_id IS NOT NULL"),
    ("ix_requests_org_provider", "(org_id, provider, created_at)", ""),
    (
        "ix_requests_org_prompt",
        "(org_id, prompt_name, created_at, prompt_version)",
        "prompt_name IS NOT NULL",
    ),
    ("ix_requests_org_trace", "(org_id, trace_id)", "trace_id IS NOT NULL"),
)


def _month_start(year: int, month: int) -> int:
    return int(dt.datetime(year, month, 1, tzinfo=dt.UTC).timestamp() * 1000)


def _next(year: int, month: int) -> tuple[int, int]:
    return year + month // 12, month % 12 + 1


def _months(bind: sa.Connection) -> list[tuple[int, int]]:
    """Every month that holds records, and this month and the next."""
    rows = bind.exec_driver_sql(
        "SELECT DISTINCT EXTRACT(YEAR FROM m)::int, EXTRACT(MONTH FROM m)::int FROM ("
        " SELECT date_trunc('month', to_timestamp(created_at / 1000.0) AT TIME ZONE 'UTC') AS m"
        " FROM requests_unpartitioned) AS months"
    ).all()
    now = dt.datetime.now(dt.UTC)
    wanted = {(int(y), int(m)) for y, m in rows if 1970 <= int(y) <= 9998}
    wanted.add((now.year, now.month))
    wanted.add(_next(now.year, now.month))
    return sorted(wanted)


def _partitioned(
    bind: sa.Connection, table: str, key: str, months: list[tuple[int, int]], extra: str = ""
) -> None:
    run = bind.exec_driver_sql
    run(
        f'CREATE TABLE "{table}" (LIKE "{table}_unpartitioned" INCLUDING DEFAULTS{extra})'
        " PARTITION BY RANGE (created_at)"
    )
    run(f'ALTER TABLE "{table}" ADD PRIMARY KEY ({key}, created_at)')
    for year, month in months:
        low = _month_start(year, month)
        high = _month_start(*_next(year, month))
        run(
            f'CREATE TABLE "{table}_p{year:04d}{month:02d}" PARTITION OF "{table}"'
            f" FOR VALUES FROM ({low}) TO ({high})"
        )
    run(f'CREATE TABLE "{table}_default" PARTITION OF "{table}" DEFAULT')


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        with op.batch_alter_table("request_bodies") as batch:
            batch.add_column(sa.Column("created_at", sa.BigInteger))
        op.create_table(  # unused on SQLite; made so both stores have the same tables
            "request_ids",
            sa.Column("request_id", sa.String(36), primary_key=True),
            sa.Column("created_at", sa.BigInteger, nullable=False),
        )
        return
    run = bind.exec_driver_sql
    for name, _, _ in REQUEST_INDEXES:
        run(f'DROP INDEX "{name}"')
    run("ALTER TABLE requests RENAME TO requests_unpartitioned")
    run("ALTER TABLE requests_unpartitioned RENAME CONSTRAINT requests_pkey TO requests_old_pkey")
    run("ALTER TABLE request_bodies RENAME TO request_bodies_unpartitioned")
    run(
        "ALTER TABLE request_bodies_unpartitioned"
        " RENAME CONSTRAINT request_bodies_pkey TO request_bodies_old_pkey"
    )
    months = _months(bind)
    _partitioned(bind, "requests", "id", months)
    _partitioned(bind, "request_bodies", "request_id", months, ", created_at BIGINT NOT NULL")
    run("INSERT INTO requests SELECT * FROM requests_unpartitioned")
    run(  # a body without its record keeps time 0: the default partition
        "INSERT INTO request_bodies SELECT b.*, COALESCE(r.created_at, 0)"
        " FROM request_bodies_unpartitioned b"
        " LEFT JOIN requests_unpartitioned r ON r.id = b.request_id"
    )
    run("CREATE TABLE request_ids (request_id VARCHAR(36) PRIMARY KEY, created_at BIGINT NOT NULL)")
    run("INSERT INTO request_ids SELECT id, created_at FROM requests_unpartitioned")
    run("DROP TABLE requests_unpartitioned")
    run("DROP TABLE request_bodies_unpartitioned")
    for name, columns, where in REQUEST_INDEXES:
        run(f'CREATE INDEX "{name}" ON requests {columns}' + (f" WHERE {where}" if where else ""))
    run("ANALYZE requests")
    run("ANALYZE request_bodies")


def downgrade() -> None:
    bind = op.get_bind()
    op.drop_table("request_ids")
    if bind.dialect.name != "postgresql":
        with op.batch_alter_table("request_bodies") as batch:
            batch.drop_column("created_at")
        return
    run = bind.exec_driver_sql
    for table, key in (("requests", "id"), ("request_bodies", "request_id")):
        run(f'ALTER TABLE "{table}" RENAME TO "{table}_partitioned"')
        run(f'CREATE TABLE "{table}" (LIKE "{table}_partitioned" INCLUDING DEFAULTS)')
        run(f'INSERT INTO "{table}" SELECT * FROM "{table}_partitioned"')  # noqa: S608
        run(f'DROP TABLE "{table}_partitioned" CASCADE')
        run(f'ALTER TABLE "{table}" ADD PRIMARY KEY ({key})')
    run("ALTER TABLE request_bodies DROP COLUMN created_at")
    for name, columns, where in REQUEST_INDEXES:
        run(f'CREATE INDEX "{name}" ON requests {columns}' + (f" WHERE {where}" if where else ""))
