"""Inserting records: batches of column-ordered tuples, idempotent by record id.

The writer is the only inserter of its records, so a batch goes in without a per-row conflict
check (``COPY`` on PostgreSQL), with an exact fallback for the rare replay. Rollup sums are
added in the same transaction, once per new record.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import JSON, BigInteger, Boolean, Connection, Float, Integer, LargeBinary, Table
from sqlalchemy.sql.elements import False_
from sqlalchemy.sql.schema import ScalarElementColumnDefault

from heliograph.store import end_users, rollups
from heliograph.store.schema import (
    request_bodies,
    request_groups,
    request_ids,
    request_properties,
    requests,
)


def _defaults(table: Table) -> dict[str, Any]:
    """What a column gets when a row leaves it out (its Python or server default)."""
    out: dict[str, Any] = {}
    for column in table.columns:
        if column.default is not None and isinstance(column.default, ScalarElementColumnDefault):
            out[column.name] = column.default.arg
        elif column.server_default is not None:
            arg = getattr(column.server_default, "arg", None)
            if isinstance(arg, False_):
                out[column.name] = False
            elif isinstance(arg, str) and isinstance(column.type, Integer):
                out[column.name] = int(arg)
            elif isinstance(arg, str):
                out[column.name] = arg
    return out


def _binary_type(kind: Any) -> str:
    """The PostgreSQL type a value is encoded as for binary COPY into a column of ``kind``."""
    if isinstance(kind, LargeBinary):
        return "bytea"
    if isinstance(kind, Boolean):
        return "bool"
    if isinstance(kind, BigInteger):
        return "int8"
    if isinstance(kind, Integer):
        return "int4"
    if isinstance(kind, Float):
        return "float8"
    return "text"  # strings, and JSON as its text


class _Layout:
    """A table's columns in insert order, which hold JSON, and their defaults."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.names = [c.name for c in table.columns]
        self.json = [i for i, c in enumerate(table.columns) if isinstance(c.type, JSON)]
        self.defaults = _defaults(table)
        self.getter = operator.itemgetter(*self.names)
        columns = ", ".join(f'"{n}"' for n in self.names)
        # Binary COPY: cheaper to encode here and to decode in the server than text, bytea
        # above all. JSON travels as its text, which is also json's binary form.
        self.copy_sql = f'COPY "{table.name}" ({columns}) FROM STDIN (FORMAT BINARY)'
        self.copy_types = [_binary_type(c.type) for c in table.columns]
        # Identifiers come from the table definition, values are bound parameters.
        self.insert_sql = (
            f'INSERT INTO "{table.name}" ({columns}) VALUES ({{marks}}) ON CONFLICT DO NOTHING'  # noqa: S608
        )

    def pack(self, row: dict[str, Any]) -> tuple[Any, ...]:
        try:
            values = self.getter(row)
        except KeyError:
            values = tuple(row.get(n, self.defaults.get(n)) for n in self.names)
        if not self.json:
            return values  # type: ignore[no-any-return]
        out: list[Any] = []
        start = 0
        for i in self.json:  # JSON columns as text, the rest sliced through unchanged
            value = values[i]
            out += values[start:i]
            out.append(None if value is None else orjson.dumps(value).decode())
            start = i + 1
        out += values[start:]
        return tuple(out)

    def insert(self, dialect: str) -> str:
        mark = "%s" if dialect == "postgresql" else "?"
        return self.insert_sql.format(marks=", ".join([mark] * len(self.names)))


# Each table's first column is the record id (then, for properties, the name): the batch
# methods below key rows by it.
REQUESTS = _Layout(requests)
BODIES = _Layout(request_bodies)
PROPERTIES = _Layout(request_properties)
GROUPS = _Layout(request_groups)
IDS = _Layout(request_ids)  # PostgreSQL only: record ids unique across monthly partitions


@dataclass(slots=True)
class RecordBatch:
    """Records ready to insert: plain tuples in column order and their rollup sums.

    Built where records are analysed (the writer's helper processes), so the process that
    inserts only moves tuples: cheap to pickle, and fed straight to the driver.
    """

    requests: list[tuple[Any, ...]] = field(default_factory=list)
    bodies: list[tuple[Any, ...]] = field(default_factory=list)
    properties: list[tuple[Any, ...]] = field(default_factory=list)
    groups: list[tuple[Any, ...]] = field(default_factory=list)
    rollups: rollups.Groups = field(default_factory=dict)
    people: list[tuple[Any, ...]] = field(default_factory=list)  # end_users.upsert rows

    @property
    def ids(self) -> list[str]:
        """The record ids, in order (each request row starts with its id)."""
        return [row[0] for row in self.requests]

    def extend(self, other: RecordBatch) -> None:
        self.requests += other.requests
        self.bodies += other.bodies
        self.properties += other.properties
        self.groups += other.groups
        rollups.merge_groups(self.rollups, other.rollups)
        self.people += other.people

    def only(self, keep: set[str]) -> RecordBatch:
        """The records whose id is in ``keep``, each once (the first), rollups re-summed."""
        out = RecordBatch()
        for rid, one in split_batch(self).items():
            if rid in keep:
                out.extend(one)
        out.people = self.people  # the directory upsert is idempotent: keep it whole
        return out


def split_batch(batch: RecordBatch) -> dict[str, RecordBatch]:
    """One batch per record (the first row of a repeated id), each with its own rollup sums."""
    out: dict[str, RecordBatch] = {}
    for row in batch.requests:
        if row[0] not in out:
            out[row[0]] = RecordBatch(requests=[row])
    bodies: set[str] = set()
    for row in batch.bodies:
        if row[0] in out and row[0] not in bodies:
            bodies.add(row[0])
            out[row[0]].bodies.append(row)
    props: set[tuple[str, str]] = set()
    for row in batch.properties:
        if row[0] in out and (row[0], row[1]) not in props:
            props.add((row[0], row[1]))
            out[row[0]].properties.append(row)
    groups: set[tuple[str, str]] = set()
    for row in batch.groups:
        if row[0] in out and (row[0], row[1]) not in groups:
            groups.add((row[0], row[1]))
            out[row[0]].groups.append(row)
    for one in out.values():
        one.rollups = rollups.group([dict(zip(REQUESTS.names, one.requests[0], strict=True))])
    return out


def pack_records(
    rows: Sequence[dict[str, Any]],
    bodies: Sequence[dict[str, Any]],
    properties: Sequence[dict[str, Any]],
    groups: Sequence[dict[str, Any]] = (),
    people: Sequence[tuple[Any, ...]] = (),
) -> RecordBatch:
    """Turn record rows (column name -> value) into a :class:`RecordBatch`; a body row
    without ``created_at`` takes its record's (PostgreSQL partitions bodies by it)."""
    if any(b.get("created_at") is None for b in bodies):
        when = {r["id"]: r["created_at"] for r in rows}
        bodies = [
            b if b.get("created_at") is not None else {**b, "created_at": when[b["request_id"]]}
            for b in bodies
        ]
    return RecordBatch(
        requests=[REQUESTS.pack(r) for r in rows],
        bodies=[BODIES.pack(b) for b in bodies],
        properties=[PROPERTIES.pack(p) for p in properties],
        groups=[GROUPS.pack(g) for g in groups],
        rollups=rollups.group(rows),
        people=list(people),
    )


def insert_records(
    conn: Connection,
    rows: Sequence[dict[str, Any]],
    bodies: Sequence[dict[str, Any]],
    properties: Sequence[dict[str, Any]],
) -> set[str]:
    """Insert record rows inside the caller's transaction (see :func:`insert_batch`)."""
    return insert_batch(conn, pack_records(rows, bodies, properties))


def insert_batch(conn: Connection, batch: RecordBatch) -> set[str]:
    """Insert one batch inside the caller's transaction; records already stored are skipped.

    Returns the ids that were new, so follow-up work (rollups, rate-limit charges) happens
    exactly once per record even when the spool is replayed. A replay is rare (a crash
    between commit and checkpoint), so PostgreSQL takes the batch by ``COPY``, without a
    per-row conflict check; if an id turns out to be stored already, the batch is inserted
    again row by row, skipping conflicts and counting only what went in. SQLite looks up
    stored ids first (cheap there: the writer is its only inserter).
    """
    ids = batch.ids
    if not ids:
        return set()
    if len(set(ids)) != len(ids):
        batch = batch.only(set(ids))
    if conn.dialect.name == "postgresql":
        if not _copy(conn, batch):
            batch = _insert_counted(conn, batch)
    else:
        existing = _existing_ids(conn, batch.ids)
        if existing:
            batch = batch.only(set(batch.ids) - existing)
        for layout, rows in _tables(batch):
            if rows:
                conn.exec_driver_sql(layout.insert("sqlite"), rows)
    if batch.ids:
        rollups.upsert_groups(conn, batch.rollups)
    if batch.people:
        end_users.upsert(conn, batch.people)
    return set(batch.ids)


def _tables(batch: RecordBatch) -> list[tuple[_Layout, list[tuple[Any, ...]]]]:
    return [
        (REQUESTS, batch.requests),
        (BODIES, batch.bodies),
        (PROPERTIES, batch.properties),
        (GROUPS, batch.groups),
    ]


def _id_rows(batch: RecordBatch) -> list[tuple[Any, ...]]:
    """(id, created_at) of each record: ``request_ids``'s rows (PostgreSQL)."""
    at = REQUESTS.names.index("created_at")
    return [(row[0], row[at]) for row in batch.requests]


def _pg_tables(batch: RecordBatch) -> list[tuple[_Layout, list[tuple[Any, ...]]]]:
    """The guard of unique ids first: a stored id fails the COPY before anything else."""
    return [(IDS, _id_rows(batch)), *_tables(batch)]


def _existing_ids(conn: Connection, ids: list[str]) -> set[str]:
    found: set[str] = set()
    for i in range(0, len(ids), 500):
        part = ids[i : i + 500]
        # Plain placeholders: compiling an expanding IN costs more than the lookup itself.
        sql = f"SELECT id FROM requests WHERE id IN ({', '.join(['?'] * len(part))})"  # noqa: S608
        found.update(row[0] for row in conn.exec_driver_sql(sql, tuple(part)))
    return found


def _copy(conn: Connection, batch: RecordBatch) -> bool:
    """COPY the batch in (PostgreSQL); False, with nothing written, if it could not."""
    import psycopg

    try:
        with conn.begin_nested():
            raw = conn.connection.driver_connection
            with raw.cursor() as cursor:  # type: ignore[union-attr]
                for layout, rows in _pg_tables(batch):
                    if rows:
                        with cursor.copy(layout.copy_sql) as copy:
                            copy.set_types(layout.copy_types)
                            for row in rows:
                                copy.write_row(row)
    except (psycopg.errors.UniqueViolation, psycopg.errors.DataError, TypeError, ValueError):
        # An id stored already, or a value binary COPY cannot take as it is (a float for
        # an integer column): the row-by-row path, with the server's casts, decides.
        return False
    return True


def _insert_counted(conn: Connection, batch: RecordBatch) -> RecordBatch:
    """Insert row by row, skipping ids stored already (``request_ids`` decides); what went
    in."""
    raw = conn.connection.driver_connection
    inserted: set[str] = set()
    with raw.cursor() as cursor:  # type: ignore[union-attr]
        sql = IDS.insert("postgresql") + " RETURNING request_id"
        for row in _id_rows(batch):
            cursor.execute(sql, row)
            inserted.update(r[0] for r in cursor.fetchall())
        fresh = batch.only(inserted)
        for layout, rows in _tables(fresh):
            if rows:
                cursor.executemany(layout.insert("postgresql"), rows)
    return fresh
