"""Monthly partitions of ``requests`` and ``request_bodies`` on PostgreSQL.

Both tables are partitioned by range of ``created_at`` (ms since the epoch), one partition per
calendar month in UTC, named ``<table>_pYYYYMM``, plus a default partition that catches any
row no month holds yet (an import of last year's traffic, a clock far ahead). The job process
keeps partitions for the coming months made ahead of time and gives every month that has rows
in the default partition its own partition, so retention can drop whole months: a drop is a
catalog change, not a delete of millions of rows.

A month is made in one short transaction: a plain table shaped like the parent, the month's
rows moved into it from the default partition, then ``ATTACH PARTITION``, which takes only a
SHARE UPDATE EXCLUSIVE lock on the parent, so the writer keeps inserting meanwhile. Detaching
a month to drop it takes a brief ACCESS EXCLUSIVE lock; every DDL statement here runs with a
lock timeout, so it gives up (and is tried again on the next tick) rather than queue the
writer behind a long dashboard query. SQLite has no partitions: every function here answers
empty or does nothing there.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError

PARTITIONED = ("requests", "request_bodies")
LOCK_TIMEOUT = "3s"
_NAME = re.compile(r"^(requests|request_bodies)_p(\d{4})(\d{2})$")


@dataclass(frozen=True, order=True)
class Month:
    """A calendar month in UTC."""

    year: int
    month: int

    @classmethod
    def of(cls, ms: int) -> Month:
        when = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
        return cls(when.year, when.month)

    def next(self) -> Month:
        return Month(self.year + self.month // 12, self.month % 12 + 1)

    @property
    def start_ms(self) -> int:
        return int(dt.datetime(self.year, self.month, 1, tzinfo=dt.UTC).timestamp() * 1000)

    @property
    def end_ms(self) -> int:
        return self.next().start_ms

    def name(self, table: str) -> str:
        return f"{table}_p{self.year:04d}{self.month:02d}"

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


@dataclass(frozen=True)
class Partition:
    """One monthly partition as the catalog lists it."""

    table: str
    name: str
    month: Month


def _months_of(table: str, names: Iterable[str]) -> list[Partition]:
    found = []
    for name in names:
        match = _NAME.match(name)
        if match and match.group(1) == table:
            found.append(Partition(table, name, Month(int(match.group(2)), int(match.group(3)))))
    return sorted(found, key=lambda p: p.month)


def is_partitioned(engine: Engine) -> bool:
    """Whether ``requests`` is a partitioned table (PostgreSQL after migration 0023)."""
    if engine.dialect.name != "postgresql":
        return False
    with engine.connect() as conn:
        kind = conn.execute(
            text("SELECT relkind FROM pg_class WHERE oid = to_regclass('requests')")
        ).scalar()
    return kind == "p"


def list_partitions(engine: Engine, table: str = "requests") -> list[Partition]:
    """The monthly partitions of ``table``, oldest first (the default partition is not one)."""
    if engine.dialect.name != "postgresql":
        return []
    with engine.connect() as conn:
        names = conn.execute(
            text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = to_regclass(:t)"
            ),
            {"t": table},
        ).scalars()
        return _months_of(table, names)


def default_months(engine: Engine, table: str = "requests") -> dict[Month, int]:
    """Months that have rows in ``table``'s default partition, with how many."""
    if engine.dialect.name != "postgresql":
        return {}
    _known(table)
    with engine.connect() as conn:
        sql = (  # the table name is ours: one of PARTITIONED
            "SELECT EXTRACT(YEAR FROM m)::int, EXTRACT(MONTH FROM m)::int, n FROM ("  # noqa: S608
            " SELECT date_trunc('month', to_timestamp(created_at / 1000.0)"
            " AT TIME ZONE 'UTC') AS m, count(*) AS n"
            f' FROM "{table}_default" GROUP BY 1) AS months'
        )
        rows = conn.execute(text(sql)).all()
    return {Month(int(y), int(m)): int(n) for y, m, n in rows}


def _known(table: str) -> None:
    if table not in PARTITIONED:
        raise ValueError(f"not a partitioned table: {table}")


_MAINTENANCE_LOCK = 0x48_47_50_41  # "HGPA": one job process makes months at a time


def create_month(conn: Connection, table: str, month: Month) -> int | None:
    """Give ``month`` its partition of ``table`` inside the caller's transaction, moving its
    rows out of the default partition; answers the rows moved, or None when another job
    process made the month meanwhile (maintenance is serialized by an advisory lock)."""
    _known(table)
    conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MAINTENANCE_LOCK})")
    name = month.name(table)
    if conn.execute(text("SELECT to_regclass(:n)"), {"n": name}).scalar() is not None:
        return None
    low, high = month.start_ms, month.end_ms
    conn.exec_driver_sql(
        f'CREATE TABLE "{name}" (LIKE "{table}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS)'
    )
    # The range as a CHECK constraint: ATTACH then trusts it instead of scanning the table.
    conn.exec_driver_sql(
        f'ALTER TABLE "{name}" ADD CONSTRAINT "{name}_range"'
        f" CHECK (created_at IS NOT NULL AND created_at >= {low} AND created_at < {high})"
    )
    moved = conn.exec_driver_sql(
        f'WITH moved AS (DELETE FROM "{table}_default"'  # noqa: S608 (identifiers are ours)
        f" WHERE created_at >= {low} AND created_at < {high} RETURNING *)"
        f' INSERT INTO "{name}" SELECT * FROM moved'
    ).rowcount
    conn.exec_driver_sql(
        f'ALTER TABLE "{table}" ATTACH PARTITION "{name}" FOR VALUES FROM ({low}) TO ({high})'
    )
    conn.exec_driver_sql(f'ALTER TABLE "{name}" DROP CONSTRAINT "{name}_range"')
    return moved or 0


@dataclass
class Maintained:
    """What one maintenance pass made: partition names, and rows moved out of the default."""

    created: list[str] = field(default_factory=list)
    moved: int = 0
    skipped: list[str] = field(default_factory=list)  # lock busy: made on the next tick


def maintain(
    engine: Engine, now_ms: int, ahead: int = 2, since_ms: int | None = None
) -> Maintained:
    """Partitions for this month and ``ahead`` more (and every month from ``since_ms`` on,
    when given), and for every month with rows waiting in the default partition; each month
    of each table in its own transaction. Several job processes may run this at once: a
    month another one made first is skipped. Nothing on SQLite or on a store not (yet)
    partitioned."""
    out = Maintained()
    if not is_partitioned(engine):
        return out
    coming = [Month.of(now_ms if since_ms is None else min(since_ms, now_ms))]
    last = Month.of(now_ms)
    for _ in range(ahead):
        last = last.next()
    while coming[-1] < last:
        coming.append(coming[-1].next())
    for table in PARTITIONED:
        have = {p.month for p in list_partitions(engine, table)}
        wanted = set(coming) | set(default_months(engine, table))
        for month in sorted(wanted - have):
            try:
                with engine.begin() as conn:
                    moved = create_month(conn, table, month)
            except OperationalError as exc:
                if getattr(exc.orig, "sqlstate", None) != "55P03":  # not a lock timeout
                    raise
                out.skipped.append(month.name(table))
                continue
            if moved is not None:
                out.moved += moved
                out.created.append(month.name(table))
    return out


def month_ids(conn: Connection, partition: Partition, after: str, limit: int) -> list[str]:
    """The next ``limit`` record ids stored in one partition of ``requests``, by id."""
    return list(
        conn.execute(
            text(
                f'SELECT id FROM "{partition.name}" WHERE id > :after'  # noqa: S608
                " ORDER BY id LIMIT :n"
            ),
            {"after": after, "n": limit},
        ).scalars()
    )


def detach(engine: Engine, partition: Partition) -> None:
    """Take one month out of its table (a brief ACCESS EXCLUSIVE lock, bounded by the lock
    timeout): from here on it is a plain table that no query of the store reads, and a row
    written for that month later goes to the default partition."""
    _known(partition.table)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        conn.exec_driver_sql(f'ALTER TABLE "{partition.table}" DETACH PARTITION "{partition.name}"')


def drop_detached(engine: Engine, partition: Partition) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{partition.name}"')


def detached(engine: Engine, table: str) -> list[Partition]:
    """Months of ``table`` detached but not dropped yet (a pass that stopped between the
    two): the next pass finishes them."""
    if engine.dialect.name != "postgresql":
        return []
    with engine.connect() as conn:
        names = conn.execute(
            text(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = current_schema() AND c.relkind = 'r'"
                " AND c.relname LIKE :prefix AND NOT c.relispartition"
            ),
            {"prefix": f"{table}_p%"},
        ).scalars()
        return _months_of(table, names)


def org_counts(engine: Engine, partition: Partition) -> dict[str, int]:
    """Records per organization in one (detached) month of ``requests``."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(f'SELECT org_id, count(*) FROM "{partition.name}" GROUP BY org_id')  # noqa: S608
        ).all()
    return {str(org): int(n) for org, n in rows}


def count_rows(engine: Engine, partition: Partition) -> int:
    """Rows in one month's table (exact: a scan, done once per dropped month)."""
    with engine.connect() as conn:
        return int(
            conn.execute(text(f'SELECT count(*) FROM "{partition.name}"')).scalar_one()  # noqa: S608
        )
