"""Export of any number of records as JSONL or CSV, in constant memory.

Records are read newest first in keyset batches (``created_at``, ``id``), each batch its own
short query and connection, so an export of millions of rows never holds more than one batch
and never keeps a read transaction open for minutes (which would pin SQLite's WAL or
PostgreSQL's vacuum horizon). The same ``fetch_batch`` serves the streamed API response (one
batch per worker-thread call) and ``heliograph export``; ``search_bytes`` serves the
dashboard's export (the Requests page's order and free-text search). All three doors share
``columns``, ``complete`` and ``Encoder``, so their files have the same columns in the same
order and the same cells.

With bodies, four columns follow the record's: ``prompt_text`` and ``output_text`` (the
conversation as readable text, ``providers.transcript``) and ``request_body`` and
``response_body`` (the stored JSON, exact). Money and every other float is written as a plain
decimal (``0.0000138``, never ``1.38e-05``) in CSV and in JSONL; CSV booleans are ``true`` and
``false``.

CSV cells that a spreadsheet might run as a formula are prefixed with ``'``: those starting
with ``= + - @`` (or their full-width forms), or with any whitespace or control character
(tab, CR, newline, space, NUL...), which spreadsheets skip before looking for a formula. An
export is opened by people, and a prompt is attacker-controlled text.
"""

from __future__ import annotations

import csv
import functools
import io
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, and_, or_, select
from sqlalchemy.sql import ColumnElement, Select

from heliograph.providers.transcript import output_text, prompt_text
from heliograph.store.bodies import unpack_body
from heliograph.store.feedback import annotations_for
from heliograph.store.requests import LIST_COLUMNS, body_value, to_api
from heliograph.store.schema import request_bodies, requests
from heliograph.store.search import search_requests
from heliograph.store.selection import RequestFilter

FORMATS = ("jsonl", "csv")
MEDIA_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}
BATCH = 500
BODY_BATCH = 200  # bodies can be large (up to the body cap each), so fewer rows per batch
FORMULA_START = frozenset("=+-@\uff1d\uff0b\uff0d\uff20")
TEXT_COLUMNS = ("prompt_text", "output_text")
BODY_COLUMNS = ("request_body", "response_body")

Keyset = tuple[int, str]


@dataclass(frozen=True)
class ExportQuery:
    """What to export: the condition (built once) and whether to include bodies."""

    condition: ColumnElement[bool]
    org_id: str | None
    include_bodies: bool = False

    @property
    def batch(self) -> int:
        return BODY_BATCH if self.include_bodies else BATCH


def export_query(org_id: str | None, f: RequestFilter, include_bodies: bool) -> ExportQuery:
    """Raises ValueError for filters export cannot apply (free text needs body scans)."""
    if f.text:
        raise ValueError("export does not support free-text search")
    return ExportQuery(f.condition(org_id), org_id, include_bodies)


def _select(q: ExportQuery, after: Keyset | None, size: int) -> Select[Any]:
    query = select(*LIST_COLUMNS).where(q.condition)
    if after is not None:
        created_at, rid = after
        query = query.where(
            or_(
                requests.c.created_at < created_at,
                and_(requests.c.created_at == created_at, requests.c.id < rid),
            )
        )
    return query.order_by(requests.c.created_at.desc(), requests.c.id.desc()).limit(size)


def _batch(
    engine: Engine, q: ExportQuery, after: Keyset | None, size: int
) -> tuple[list[dict[str, Any]], Keyset | None]:
    """Read one batch in the API's shape, with its annotations (and bodies, if asked)."""
    with engine.connect() as conn:
        rows = conn.execute(_select(q, after, size)).all()
        records = complete(
            conn, q.org_id, [to_api(dict(r._mapping)) for r in rows], q.include_bodies
        )
    nxt = (rows[-1].created_at, rows[-1].id) if len(rows) == size else None
    return records, nxt


def complete(
    conn: Connection, org_id: str | None, records: list[dict[str, Any]], include_bodies: bool
) -> list[dict[str, Any]]:
    """API records with feedback and scores and, if asked, their text and bodies (in place).

    One or two queries per batch whichever door asked, so every door's rows hold the same."""
    ids = [r["id"] for r in records]
    notes = annotations_for(conn, org_id, ids)
    bodies: dict[str, tuple[Any, Any]] = {}
    if include_bodies and ids:
        found = select(
            request_bodies.c.request_id,
            request_bodies.c.encoding,
            request_bodies.c.request_body,
            request_bodies.c.response_body,
        ).where(request_bodies.c.request_id.in_(ids))
        for rid, encoding, request_body, response_body in conn.execute(found):
            bodies[rid] = (
                body_value(unpack_body(request_body, encoding or "raw")),
                body_value(unpack_body(response_body, encoding or "raw")),
            )
    for record in records:
        record.update(notes[record["id"]])
        if include_bodies:
            request_body, response_body = bodies.get(record["id"], (None, None))
            record["prompt_text"] = prompt_text(request_body)
            record["output_text"] = output_text(response_body)
            record["request_body"], record["response_body"] = request_body, response_body
    return records


def fetch_batch(
    engine: Engine, q: ExportQuery, after: Keyset | None, batch: int | None = None
) -> tuple[list[dict[str, Any]], Keyset | None]:
    """One batch of export records after ``after``; the next keyset, or None at the end."""
    return _batch(engine, q, after, batch or q.batch)


def encode_batch(
    engine: Engine, q: ExportQuery, encoder: Encoder, after: Keyset | None, batch: int | None = None
) -> tuple[bytes, Keyset | None]:
    """One batch, already encoded (what the API runs in a worker thread per chunk)."""
    records, nxt = _batch(engine, q, after, batch or q.batch)
    return encoder.encode(records), nxt


def iter_batches(
    engine: Engine, q: ExportQuery, batch: int | None = None
) -> Iterator[list[dict[str, Any]]]:
    """Every matching record, a batch at a time (for tests and callers that want dicts)."""
    after: Keyset | None = None
    while True:
        rows, after = fetch_batch(engine, q, after, batch)
        if rows:
            yield rows
        if after is None:
            return


@functools.cache
def record_columns() -> tuple[str, ...]:
    """The export's field names: the API record's (derived, so they never drift) + annotations."""
    blank: dict[str, Any] = {c.key: None for c in LIST_COLUMNS}
    blank["created_at"] = 0
    return (*to_api(blank), "feedback", "scores")


def columns(include_bodies: bool) -> tuple[str, ...]:
    """Every door's columns, in order: the record's, then text and bodies if asked."""
    return record_columns() + (TEXT_COLUMNS + BODY_COLUMNS if include_bodies else ())


class Encoder:
    """Turns batches of records into bytes of one format; the CSV header comes first."""

    def __init__(self, fmt: str, include_bodies: bool) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}")
        self.fmt = fmt
        self.include_bodies = include_bodies
        self.columns = columns(include_bodies)

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.fmt]

    def header(self) -> bytes:
        return self._csv([list(self.columns)]) if self.fmt == "csv" else b""

    def encode(self, rows: Iterable[dict[str, Any]]) -> bytes:
        out = bytearray()
        if self.fmt == "jsonl":
            for r in rows:
                out += orjson.dumps({c: json_value(r.get(c)) for c in self.columns})
                out += b"\n"
            return bytes(out)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        for r in rows:
            writer.writerow([csv_cell(r.get(c)) for c in self.columns])
            out += buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
        return bytes(out)

    def _csv(self, lines: list[list[str]]) -> bytes:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\r\n").writerows(lines)
        return buffer.getvalue().encode("utf-8")


def csv_cell(value: Any) -> str:
    """One value as CSV text: JSON for objects, ``true``/``false``, formulas defused."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return plain_decimal(value)
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return formula_safe(str(value))


def json_value(value: Any) -> Any:
    """A value for JSONL: floats as plain decimals (orjson would write ``1.38e-05``)."""
    if isinstance(value, float) and math.isfinite(value):
        return orjson.Fragment(plain_decimal(value))
    return value


def plain_decimal(value: float) -> str:
    """A float as a spreadsheet reads it everywhere: ``0.0000138``, never ``1.38e-05``.

    The shortest repr that round-trips, written out without an exponent (so no digits are
    invented or lost); infinities and NaN, which JSON has no word for, stay as Python spells
    them."""
    if not math.isfinite(value):
        return repr(value)
    text = format(Decimal(repr(value)), "f")
    return text[:-2] if text.endswith(".0") else text


def formula_safe(text: str) -> str:
    """``text`` with a leading ``'`` if a spreadsheet could read it as a formula."""
    if not text:
        return text
    first = text[0]
    if first in FORMULA_START or first.isspace() or not first.isprintable():
        return "'" + text
    return text


def export_bytes(
    engine: Engine, q: ExportQuery, fmt: str, batch: int | None = None
) -> Iterator[bytes]:
    """The whole export as a stream of byte chunks (one per batch), for the CLI."""
    encoder = Encoder(fmt, q.include_bodies)
    yield encoder.header()
    after: Keyset | None = None
    while True:
        chunk, after = encode_batch(engine, q, encoder, after, batch)
        if chunk:
            yield chunk
        if after is None:
            return


def search_bytes(
    engine: Engine,
    org_id: str,
    f: RequestFilter,
    encoder: Encoder,
    *,
    sort: str = "time",
    ascending: bool = False,
) -> Iterator[bytes]:
    """The dashboard's export: the Requests page's rows in its order (free text too), in
    the columns and cells of every other door; one page of ``BATCH`` rows per chunk."""
    yield encoder.header()
    size = BODY_BATCH if encoder.include_bodies else BATCH
    cursor: str | None = None
    while True:
        page = search_requests(engine, org_id, f, size, cursor, sort=sort, ascending=ascending)
        if page.rows:
            with engine.connect() as conn:
                records = complete(conn, org_id, page.rows, encoder.include_bodies)
            yield encoder.encode(records)
        if page.next_cursor is None:
            return
        cursor = page.next_cursor
