"""Export of any number of records as JSONL or CSV, in constant memory.

Records are read newest first in keyset batches (``created_at``, ``id``), each batch its own
short query and connection, so an export of millions of rows never holds more than one batch
and never keeps a read transaction open for minutes (which would pin SQLite's WAL or
PostgreSQL's vacuum horizon). The same ``fetch_batch`` serves the streamed API response (one
batch per worker-thread call) and ``heliograph export``.

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
from sqlalchemy import Engine, and_, or_, select
from sqlalchemy.sql import ColumnElement, Select

from heliograph.store.bodies import unpack_body
from heliograph.store.feedback import annotations_for
from heliograph.store.requests import LIST_COLUMNS, body_value, to_api
from heliograph.store.schema import request_bodies, requests
from heliograph.store.selection import RequestFilter

FORMATS = ("jsonl", "csv")
MEDIA_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}
BATCH = 500
BODY_BATCH = 200  # bodies can be large (up to the body cap each), so fewer rows per batch
FORMULA_START = frozenset("=+-@\uff1d\uff0b\uff0d\uff20")
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
    columns: list[Any] = list(LIST_COLUMNS)
    source: Any = requests
    if q.include_bodies:
        columns += [request_bodies.c.encoding, request_bodies.c.request_body]
        columns += [request_bodies.c.response_body]
        source = requests.outerjoin(request_bodies, request_bodies.c.request_id == requests.c.id)
    query = select(*columns).select_from(source).where(q.condition)
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
) -> tuple[Iterator[dict[str, Any]], Keyset | None]:
    """Read one batch (compact rows) and its annotations; records are built lazily.

    Building the API dicts one at a time, and encoding each straight away, keeps a batch's
    footprint to the rows themselves plus its encoded bytes.
    """
    with engine.connect() as conn:
        rows = conn.execute(_select(q, after, size)).all()
        notes = annotations_for(conn, q.org_id, (r.id for r in rows))
    nxt = (rows[-1].created_at, rows[-1].id) if len(rows) == size else None

    def records() -> Iterator[dict[str, Any]]:
        for result_row in rows:
            row = dict(result_row._mapping)
            record = to_api(row)
            if q.include_bodies:
                encoding = row.get("encoding") or "raw"
                for name in BODY_COLUMNS:
                    record[name] = body_value(unpack_body(row.get(name), encoding))
            record.update(notes[record["id"]])
            yield record

    return records(), nxt


def fetch_batch(
    engine: Engine, q: ExportQuery, after: Keyset | None, batch: int | None = None
) -> tuple[list[dict[str, Any]], Keyset | None]:
    """One batch of export records after ``after``; the next keyset, or None at the end."""
    records, nxt = _batch(engine, q, after, batch or q.batch)
    return list(records), nxt


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


class Encoder:
    """Turns batches of records into bytes of one format; the CSV header comes first."""

    def __init__(self, fmt: str, include_bodies: bool) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}")
        self.fmt = fmt
        self.columns = record_columns() + (BODY_COLUMNS if include_bodies else ())

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.fmt]

    def header(self) -> bytes:
        return self._csv([list(self.columns)]) if self.fmt == "csv" else b""

    def encode(self, rows: Iterable[dict[str, Any]]) -> bytes:
        out = bytearray()
        if self.fmt == "jsonl":
            for r in rows:
                out += orjson.dumps(r)
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
