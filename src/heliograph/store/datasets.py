"""Queries on datasets and their items; every read and write is scoped to an organization.

Items are immutable. ``replace_item`` archives the old item (``archived_at``, and
``replaced_by`` naming the new one) and inserts the new one in one transaction;
``archive_item`` and ``delete_dataset`` only set ``archived_at``. So ``items_by_ids`` finds
every item an experiment pinned, whatever happened to its dataset since.

Items keep the order they were added in: ``position`` counts up per dataset under the
dataset row's lock, and an edit's new item takes the old one's position.

Duplicates (same content hash among a dataset's live items) are skipped, not stored: the
batch is checked against the dataset in the transaction that inserts it, and the partial
unique index is the last line (a concurrent insert of the same content makes the batch retry,
and the retry sees it).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from heliograph.evals.dataset_items import Item
from heliograph.store.requests import decode_cursor, encode_cursor
from heliograph.store.schema import dataset_items, datasets

RETRIES = 5
EXPORT_BATCH = 500
T = TypeVar("T")
ITEM_COLUMNS = (
    dataset_items.c.id,
    dataset_items.c.dataset_id,
    dataset_items.c.inputs,
    dataset_items.c.expected,
    dataset_items.c["metadata"],
    dataset_items.c.source_request_id,
    dataset_items.c.content_hash,
    dataset_items.c.position,
    dataset_items.c.created_at,
    dataset_items.c.created_by,
    dataset_items.c.archived_at,
    dataset_items.c.replaced_by,
)


class DuplicateName(Exception):
    """A live dataset with this name already exists in the organization."""


class DuplicateItem(Exception):
    """A live item of the dataset already has this content."""


@dataclass
class Added:
    """What one batch of items did: the ids stored, and how many were duplicates."""

    ids: list[str]
    skipped: int = 0


def _now() -> int:
    return int(time.time() * 1000)


def _retrying(engine: Engine, work: Callable[[Connection], T]) -> T:
    for attempt in range(RETRIES):
        try:
            with engine.begin() as conn:
                return work(conn)
        except (IntegrityError, OperationalError):
            if attempt == RETRIES - 1:
                raise
            time.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")


def _live(org_id: str, name: str) -> Any:
    return and_(
        datasets.c.org_id == org_id, datasets.c.name == name, datasets.c.archived_at.is_(None)
    )


def create_dataset(
    engine: Engine, org_id: str, name: str, description: str, by: str | None
) -> dict[str, Any]:
    """A new empty dataset; DuplicateName if a live one has the name."""
    now = _now()
    row = {
        "id": str(uuid.uuid4()),
        "org_id": org_id,
        "name": name,
        "description": description,
        "created_at": now,
        "created_by": by,
        "updated_at": now,
        "archived_at": None,
    }
    try:
        with engine.begin() as conn:
            conn.execute(insert(datasets).values(row))
    except IntegrityError as exc:
        raise DuplicateName(name) from exc
    return row | {"item_count": 0}


def _summary() -> Any:
    count = (
        select(func.count())
        .select_from(dataset_items)
        .where(dataset_items.c.dataset_id == datasets.c.id, dataset_items.c.archived_at.is_(None))
        .scalar_subquery()
    )
    return select(*datasets.c, count.label("item_count"))


def list_datasets(engine: Engine, org_id: str) -> list[dict[str, Any]]:
    """The organization's live datasets by name, each with its live item count."""
    query = (
        _summary()
        .where(datasets.c.org_id == org_id, datasets.c.archived_at.is_(None))
        .order_by(datasets.c.name)
    )
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def dataset_names(engine: Engine, org_id: str) -> list[str]:
    query = (
        select(datasets.c.name)
        .where(datasets.c.org_id == org_id, datasets.c.archived_at.is_(None))
        .order_by(datasets.c.name)
    )
    with engine.connect() as conn:
        return [str(n) for n in conn.execute(query).scalars()]


def get_dataset(engine: Engine, org_id: str, name: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        found = conn.execute(_summary().where(_live(org_id, name))).first()
    return None if found is None else dict(found._mapping)


def set_description(engine: Engine, org_id: str, name: str, description: str) -> bool:
    with engine.begin() as conn:
        done = conn.execute(
            update(datasets)
            .where(_live(org_id, name))
            .values(description=description, updated_at=_now())
        )
    return bool(done.rowcount)


def _lock(conn: Connection, org_id: str, name: str) -> str | None:
    """The live dataset's id, its row locked (write lock on SQLite) until the end."""
    conn.execute(update(datasets).where(_live(org_id, name)).values(updated_at=_now()))
    return conn.execute(select(datasets.c.id).where(_live(org_id, name))).scalar()


def delete_dataset(engine: Engine, org_id: str, name: str) -> bool:
    """Archive the dataset and its live items (pinned items stay readable by id)."""

    def work(conn: Connection) -> bool:
        dataset_id = _lock(conn, org_id, name)
        if dataset_id is None:
            return False
        now = _now()
        conn.execute(
            update(dataset_items)
            .where(dataset_items.c.dataset_id == dataset_id, dataset_items.c.archived_at.is_(None))
            .values(archived_at=now)
        )
        conn.execute(update(datasets).where(datasets.c.id == dataset_id).values(archived_at=now))
        return True

    return _retrying(engine, work)


def _row(
    item: Item, dataset_id: str, org_id: str, by: str | None, now: int, position: int
) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "dataset_id": dataset_id,
        "org_id": org_id,
        "inputs": item.inputs,
        "expected": item.expected,
        "metadata": item.metadata,
        "source_request_id": item.source_request_id,
        "content_hash": item.content_hash,
        "position": position,
        "created_at": now,
        "created_by": by,
    }


def _live_hashes(conn: Connection, dataset_id: str, hashes: list[str]) -> set[str]:
    query = select(dataset_items.c.content_hash).where(
        dataset_items.c.dataset_id == dataset_id,
        dataset_items.c.archived_at.is_(None),
        dataset_items.c.content_hash.in_(hashes),
    )
    return set(conn.execute(query).scalars())


def add_items(
    engine: Engine, org_id: str, name: str, items: Sequence[Item], by: str | None
) -> Added | None:
    """Store the items not already in the dataset (nor earlier in ``items``), in order;
    None if there is no such dataset."""

    def work(conn: Connection) -> Added | None:
        dataset_id = _lock(conn, org_id, name)
        if dataset_id is None:
            return None
        hashes = [item.content_hash for item in items]
        seen = _live_hashes(conn, dataset_id, sorted(set(hashes))) if hashes else set()
        rows, now = [], _now()
        last = conn.execute(
            select(func.max(dataset_items.c.position)).where(
                dataset_items.c.dataset_id == dataset_id
            )
        ).scalar()
        position = 0 if last is None else int(last)
        for item, digest in zip(items, hashes, strict=True):
            if digest in seen:
                continue
            seen.add(digest)
            position += 1
            rows.append(_row(item, dataset_id, org_id, by, now, position))
        if rows:
            conn.execute(insert(dataset_items), rows)
        return Added([r["id"] for r in rows], len(items) - len(rows))

    return _retrying(engine, work)


def _items(org_id: str, name: str) -> Any:
    return (
        select(*ITEM_COLUMNS)
        .join(datasets, datasets.c.id == dataset_items.c.dataset_id)
        .where(_live(org_id, name), dataset_items.c.org_id == org_id)
    )


def list_items(
    engine: Engine,
    org_id: str,
    name: str,
    limit: int,
    cursor: str | None = None,
    *,
    archived: bool = False,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of the dataset's items in the dataset's order, and the next page's cursor (None at the
    end). ``archived`` lists archived items (edited or deleted) instead of live ones.
    Raises ValueError for a cursor we did not make."""
    state = dataset_items.c.archived_at
    query = _items(org_id, name).where(state.is_not(None) if archived else state.is_(None))
    if cursor:
        position, item_id = decode_cursor(cursor)
        query = query.where(
            or_(
                dataset_items.c.position > position,
                and_(dataset_items.c.position == position, dataset_items.c.id > item_id),
            )
        )
    query = query.order_by(dataset_items.c.position, dataset_items.c.id).limit(limit + 1)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1]["position"], rows[-1]["id"])


def iter_items(engine: Engine, org_id: str, name: str) -> Iterator[dict[str, Any]]:
    """Every live item, a batch at a time (constant memory, for export)."""
    cursor: str | None = None
    while True:
        rows, cursor = list_items(engine, org_id, name, EXPORT_BATCH, cursor)
        yield from rows
        if cursor is None:
            return


def get_item(engine: Engine, org_id: str, name: str, item_id: str) -> dict[str, Any] | None:
    """One item of the dataset by id, archived or not."""
    with engine.connect() as conn:
        found = conn.execute(_items(org_id, name).where(dataset_items.c.id == item_id)).first()
    return None if found is None else dict(found._mapping)


def items_by_ids(engine: Engine, org_id: str, ids: Sequence[str]) -> list[dict[str, Any]]:
    """The items with these ids in this organization, archived or not, whatever became of
    their dataset: what an experiment that pinned them reads back."""
    query = select(*ITEM_COLUMNS).where(
        dataset_items.c.org_id == org_id, dataset_items.c.id.in_(list(ids))
    )
    with engine.connect() as conn:
        found = {r.id: dict(r._mapping) for r in conn.execute(query)}
    return [found[i] for i in ids if i in found]


def _live_item(conn: Connection, dataset_id: str, item_id: str) -> int | None:
    """The live item's position, or None."""
    query = select(dataset_items.c.position).where(
        dataset_items.c.dataset_id == dataset_id,
        dataset_items.c.id == item_id,
        dataset_items.c.archived_at.is_(None),
    )
    found = conn.execute(query).scalar()
    return None if found is None else int(found)


def replace_item(
    engine: Engine, org_id: str, name: str, item_id: str, item: Item, by: str | None
) -> dict[str, Any] | None:
    """Archive the live item and store ``item`` in its place; returns the new row, None if
    the item is not live in the dataset; DuplicateItem if another live item has its content."""

    def work(conn: Connection) -> dict[str, Any] | None:
        dataset_id = _lock(conn, org_id, name)
        position = None if dataset_id is None else _live_item(conn, dataset_id, item_id)
        if dataset_id is None or position is None:
            return None
        now = _now()
        row = _row(item, dataset_id, org_id, by, now, position)
        conn.execute(
            update(dataset_items)
            .where(dataset_items.c.id == item_id)
            .values(archived_at=now, replaced_by=row["id"])
        )
        if _live_hashes(conn, dataset_id, [row["content_hash"]]):
            raise DuplicateItem(row["content_hash"])
        conn.execute(insert(dataset_items).values(row))
        return row | {"archived_at": None, "replaced_by": None}

    return _retrying(engine, work)  # DuplicateItem rolls the archive back


def archive_item(engine: Engine, org_id: str, name: str, item_id: str) -> bool:
    """Archive a live item of the dataset; False if there is none with that id."""

    def work(conn: Connection) -> bool:
        dataset_id = _lock(conn, org_id, name)
        if dataset_id is None or _live_item(conn, dataset_id, item_id) is None:
            return False
        conn.execute(
            update(dataset_items).where(dataset_items.c.id == item_id).values(archived_at=_now())
        )
        return True

    return _retrying(engine, work)
