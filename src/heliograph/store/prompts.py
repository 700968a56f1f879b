"""Queries on prompts, their versions and labels; every read and write is scoped to an org.

Version numbers are allocated inside the transaction that inserts the version, after an
UPDATE of the prompt's row: on PostgreSQL that row lock queues concurrent writers of the same
prompt, on SQLite the UPDATE takes the database's write lock. Either way the next writer reads
the committed maximum, and the (prompt_id, version) primary key is the last line: a conflict
is retried, never stored twice. Label moves take the same lock, so history stays in order.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from heliograph.store.schema import prompt_label_events, prompt_labels, prompt_versions, prompts

DEFAULT_LABELS = ("production", "staging")
RETRIES = 5
T = TypeVar("T")

VERSION_COLUMNS = (
    prompt_versions.c.version,
    prompt_versions.c.messages,
    prompt_versions.c.model,
    prompt_versions.c.upstream,
    prompt_versions.c.params,
    prompt_versions.c.variables,
    prompt_versions.c.message,
    prompt_versions.c.created_at,
    prompt_versions.c.created_by,
)


class DuplicateName(Exception):
    """A prompt with this name already exists in the organization."""


def _now() -> int:
    return int(time.time() * 1000)


def _retrying(engine: Engine, work: Callable[[Connection], T]) -> T:
    """Run ``work`` in a transaction, again if a concurrent writer won a race."""
    for attempt in range(RETRIES):
        try:
            with engine.begin() as conn:
                return work(conn)
        except (IntegrityError, OperationalError):
            if attempt == RETRIES - 1:
                raise
            time.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")


def create_prompt(
    engine: Engine, org_id: str, name: str, description: str, by: str | None
) -> dict[str, Any]:
    """A new prompt with the default labels pointing at nothing; DuplicateName if taken."""
    now, prompt_id = _now(), str(uuid.uuid4())
    row = {
        "id": prompt_id,
        "org_id": org_id,
        "name": name,
        "description": description,
        "created_at": now,
        "created_by": by,
        "updated_at": now,
    }
    try:
        with engine.begin() as conn:
            conn.execute(insert(prompts).values(row))
            conn.execute(
                insert(prompt_labels),
                [
                    {"prompt_id": prompt_id, "label": label, "updated_at": now, "updated_by": by}
                    for label in DEFAULT_LABELS
                ],
            )
    except IntegrityError as exc:
        raise DuplicateName(name) from exc
    return row


def _labels_by_prompt(conn: Connection, ids: list[str]) -> dict[str, dict[str, int | None]]:
    out: dict[str, dict[str, int | None]] = {i: {} for i in ids}
    if ids:
        query = (
            select(prompt_labels.c.prompt_id, prompt_labels.c.label, prompt_labels.c.version)
            .where(prompt_labels.c.prompt_id.in_(ids))
            .order_by(prompt_labels.c.label)
        )
        for pid, label, version in conn.execute(query):
            out[pid][label] = version
    return out


def _summary_query() -> Any:
    latest = (
        select(func.max(prompt_versions.c.version))
        .where(prompt_versions.c.prompt_id == prompts.c.id)
        .scalar_subquery()
    )
    return select(*prompts.c, latest.label("latest_version"))


def list_prompts(engine: Engine, org_id: str) -> list[dict[str, Any]]:
    """Every prompt of the org by name, with its latest version number and its labels."""
    query = _summary_query().where(prompts.c.org_id == org_id).order_by(prompts.c.name)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
        labels = _labels_by_prompt(conn, [r["id"] for r in rows])
    for row in rows:
        row["labels"] = labels[row["id"]]
    return rows


def get_prompt(engine: Engine, org_id: str, name: str) -> dict[str, Any] | None:
    """One prompt by name (as ``list_prompts`` shows it), or None if not in this org."""
    query = _summary_query().where(prompts.c.org_id == org_id, prompts.c.name == name)
    with engine.connect() as conn:
        found = conn.execute(query).first()
        if found is None:
            return None
        row = dict(found._mapping)
        row["labels"] = _labels_by_prompt(conn, [row["id"]])[row["id"]]
    return row


def set_description(engine: Engine, org_id: str, name: str, description: str) -> bool:
    """Replace the prompt's description; False if the prompt is not in this org."""
    with engine.begin() as conn:
        done = conn.execute(
            update(prompts)
            .where(prompts.c.org_id == org_id, prompts.c.name == name)
            .values(description=description, updated_at=_now())
        )
    return bool(done.rowcount)


def delete_prompt(engine: Engine, org_id: str, name: str) -> bool:
    """Delete the prompt with its versions, labels and label history; False if absent.

    Records that used it keep its name and version (they are history, not references), and
    the gateway's prompt cache drops it at its next refresh. The prompt's row is locked first,
    so a version or label move written at the same moment either lands before (and goes
    with it) or finds no prompt.
    """

    def work(conn: Connection) -> bool:
        prompt_id = _lock_prompt(conn, org_id, name, _now())
        if prompt_id is None:
            return False
        for table in (prompt_label_events, prompt_labels, prompt_versions):
            conn.execute(delete(table).where(table.c.prompt_id == prompt_id))
        conn.execute(delete(prompts).where(prompts.c.id == prompt_id))
        return True

    return _retrying(engine, work)


def _lock_prompt(conn: Connection, org_id: str, name: str, now: int) -> str | None:
    """The prompt's id, its row locked (write lock on SQLite) until the transaction ends."""
    conn.execute(
        update(prompts)
        .where(prompts.c.org_id == org_id, prompts.c.name == name)
        .values(updated_at=now)
    )
    found = conn.execute(
        select(prompts.c.id).where(prompts.c.org_id == org_id, prompts.c.name == name)
    ).first()
    return None if found is None else str(found[0])


def create_version(
    engine: Engine, org_id: str, name: str, fields: Mapping[str, Any], by: str | None
) -> int | None:
    """Store a new version (fields as ``prompts.versions.check_version`` returns them) with
    the next number; returns it, or None if the prompt is not in this org."""

    def work(conn: Connection) -> int | None:
        now = _now()
        prompt_id = _lock_prompt(conn, org_id, name, now)
        if prompt_id is None:
            return None
        latest = conn.execute(
            select(func.max(prompt_versions.c.version)).where(
                prompt_versions.c.prompt_id == prompt_id
            )
        ).scalar_one()
        number = (latest or 0) + 1
        conn.execute(
            insert(prompt_versions).values(
                prompt_id=prompt_id, version=number, created_at=now, created_by=by, **fields
            )
        )
        return number

    return _retrying(engine, work)


def _versions_query(org_id: str, name: str) -> Any:
    return (
        select(prompts.c.name, prompts.c.id.label("prompt_id"), *VERSION_COLUMNS)
        .join(prompts, prompts.c.id == prompt_versions.c.prompt_id)
        .where(prompts.c.org_id == org_id, prompts.c.name == name)
    )


def list_versions(engine: Engine, org_id: str, name: str) -> list[dict[str, Any]]:
    """Every version of the prompt, newest first (empty if there is no such prompt)."""
    query = _versions_query(org_id, name).order_by(prompt_versions.c.version.desc())
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def get_version(engine: Engine, org_id: str, name: str, version: int) -> dict[str, Any] | None:
    query = _versions_query(org_id, name).where(prompt_versions.c.version == version)
    with engine.connect() as conn:
        found = conn.execute(query).first()
    return None if found is None else dict(found._mapping)


def get_label(engine: Engine, org_id: str, name: str, label: str) -> dict[str, Any] | None:
    """``{"label", "version"}`` (version None: points at nothing), None if no such label."""
    query = (
        select(prompt_labels.c.label, prompt_labels.c.version)
        .join(prompts, prompts.c.id == prompt_labels.c.prompt_id)
        .where(prompts.c.org_id == org_id, prompts.c.name == name)
        .where(prompt_labels.c.label == label)
    )
    with engine.connect() as conn:
        found = conn.execute(query).first()
    return None if found is None else dict(found._mapping)


def move_label(
    engine: Engine, org_id: str, name: str, label: str, version: int, by: str | None
) -> tuple[int | None, int] | None:
    """Point ``label`` (created if new) at ``version`` and record the move.

    Returns (from_version, to_version); None if the prompt or the version is not there.
    """

    def work(conn: Connection) -> tuple[int | None, int] | None:
        now = _now()
        prompt_id = _lock_prompt(conn, org_id, name, now)
        if prompt_id is None:
            return None
        exists = conn.execute(
            select(prompt_versions.c.version).where(
                prompt_versions.c.prompt_id == prompt_id, prompt_versions.c.version == version
            )
        ).first()
        if exists is None:
            return None
        key = (prompt_labels.c.prompt_id == prompt_id) & (prompt_labels.c.label == label)
        current = conn.execute(select(prompt_labels.c.version).where(key)).first()
        values = {"version": version, "updated_at": now, "updated_by": by}
        if current is None:
            conn.execute(insert(prompt_labels).values(prompt_id=prompt_id, label=label, **values))
        else:
            conn.execute(update(prompt_labels).where(key).values(values))
        before = None if current is None else current[0]
        conn.execute(
            insert(prompt_label_events).values(
                prompt_id=prompt_id,
                label=label,
                from_version=before,
                to_version=version,
                at=now,
                by=by,
            )
        )
        return before, version

    return _retrying(engine, work)


def list_labels(engine: Engine, org_id: str, name: str) -> list[dict[str, Any]]:
    """The prompt's labels by name, each with its version and last move."""
    query = (
        select(
            prompt_labels.c.label,
            prompt_labels.c.version,
            prompt_labels.c.updated_at,
            prompt_labels.c.updated_by,
        )
        .join(prompts, prompts.c.id == prompt_labels.c.prompt_id)
        .where(prompts.c.org_id == org_id, prompts.c.name == name)
        .order_by(prompt_labels.c.label)
    )
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def label_history(engine: Engine, org_id: str, name: str) -> list[dict[str, Any]]:
    """Every label move of the prompt, newest first."""
    query = (
        select(
            prompt_label_events.c.label,
            prompt_label_events.c.from_version,
            prompt_label_events.c.to_version,
            prompt_label_events.c.at,
            prompt_label_events.c.by,
        )
        .join(prompts, prompts.c.id == prompt_label_events.c.prompt_id)
        .where(prompts.c.org_id == org_id, prompts.c.name == name)
        .order_by(prompt_label_events.c.id.desc())
    )
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def prompt_ids(engine: Engine) -> dict[tuple[str, str], str]:
    """(org_id, name) -> the prompt's id, for every prompt: a prompt deleted and made again
    under its name has another id, so versions cached by number can tell it is not theirs."""
    query = select(prompts.c.org_id, prompts.c.name, prompts.c.id)
    with engine.connect() as conn:
        return {(org, name): str(pid) for org, name, pid in conn.execute(query)}


def labelled_versions(engine: Engine, org_id: str | None = None) -> list[dict[str, Any]]:
    """Every (prompt, label) that points at a version, with that version, in one query.

    What the gateway's prompt cache loads (all orgs when ``org_id`` is None): rows of
    org_id, name, label and the version's fields, ready for ``prompts.versions.Version``.
    """
    query = (
        select(prompts.c.org_id, prompts.c.name, prompt_labels.c.label, *VERSION_COLUMNS)
        .select_from(prompt_labels)
        .join(prompts, prompts.c.id == prompt_labels.c.prompt_id)
        .join(
            prompt_versions,
            (prompt_versions.c.prompt_id == prompt_labels.c.prompt_id)
            & (prompt_versions.c.version == prompt_labels.c.version),
        )
        .order_by(prompts.c.org_id, prompts.c.name, prompt_labels.c.label)
    )
    if org_id is not None:
        query = query.where(prompts.c.org_id == org_id)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]
