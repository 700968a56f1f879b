"""A record the store refuses cannot block the writer: it is found, kept as its essentials,
and every other record of its batch is stored as usual (both dialects).

Before this, one such record failed its whole batch on every retry, for ever, and every
record spooled after it waited behind it.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime
from pathlib import Path

import orjson
import pytest
from sqlalchemy import Engine, func, select

from heliograph.capture.builder import Builder
from heliograph.capture.spool import KIND_END, KIND_START, SpoolWriter
from heliograph.capture.writer import Writer
from heliograph.pricing import PriceBook
from heliograph.store.requests import get_request
from heliograph.store.rollups import rollup_hourly
from heliograph.store.salvage import refused, salvaged
from heliograph.store.schema import request_bodies, requests
from test_writer import ORG, SAMPLES, count, end_frame, start_frame

RESPONSE = (SAMPLES / "chat.json").read_bytes()


def spool_records(root: Path, n: int, poison: dict[int, dict[str, object]]) -> list[str]:
    """n chat records; record i's start frame gets the fields in ``poison[i]``."""
    spool = SpoolWriter(root, segment_bytes=1 << 20)
    ids = []
    try:
        for i in range(n):
            rid = str(uuid.uuid4())
            ids.append(rid)
            header, body = start_frame(rid, ts=1_700_000_000.0 + i)
            if i in poison:
                header = orjson.dumps({**orjson.loads(header), **poison[i]})
            spool.append(KIND_START, header, body)
            spool.append(KIND_END, *end_frame(rid, RESPONSE))
    finally:
        spool.close()
    return ids


def test_a_refused_record_is_kept_as_its_essentials_and_the_rest_lands(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A time no column can hold (refused by SQLite and PostgreSQL alike), and a key id too
    # long for its column (refused by PostgreSQL; SQLite does not check lengths).
    poison = {3: {"ts": 1e300}, 7: {"key": "k" * 80}}
    ids = spool_records(tmp_path / "spool", 12, poison)
    writer = Writer(engine, tmp_path / "spool", batch_size=50, pricebook=PriceBook())
    before_ms = int(time.time() * 1000)
    with caplog.at_level(logging.ERROR):
        assert writer.drain().records == 12
    assert writer.drain().records == 0  # the checkpoint moved past the batch

    assert count(engine, requests) == 12
    healthy = [rid for i, rid in enumerate(ids) if i not in poison]
    for rid in healthy:
        rec = get_request(engine, ORG, rid)
        assert rec is not None and rec["state"] == "ok" and rec["error"] is None
        assert rec["response_body"] is not None and rec["prompt_tokens"] == 14

    bad = get_request(engine, ORG, ids[3])
    assert bad is not None
    assert "could not store this record" in bad["error"]
    assert "OverflowError" in bad["error"]
    stored_ms = datetime.fromisoformat(bad["created_at"]).timestamp() * 1000
    assert stored_ms >= before_ms - 1  # its time was the refused value: now instead
    assert bad["model"] == "gpt-4o-mini" and bad["status"] == 200 and bad["state"] == "ok"
    assert bad["request_body"] is None and bad["response_body"] is None
    assert any(ids[3] in r.getMessage() for r in caplog.records)

    with engine.connect() as conn:
        bodies = conn.execute(select(func.count()).select_from(request_bodies)).scalar_one()
        key_of_7 = conn.execute(select(requests.c.key_id).where(requests.c.id == ids[7]))
        key_7 = key_of_7.scalar_one()
        summed = conn.execute(select(func.sum(rollup_hourly.c.requests))).scalar_one()
    if engine.dialect.name == "postgresql":
        # Refused whole: kept without the over-long key id, without bodies.
        assert key_7 is None and bodies == 10
        rec7 = get_request(engine, ORG, ids[7])
        assert rec7 is not None and "could not store" in rec7["error"]
    else:
        assert key_7 == "k" * 80 and bodies == 11
    assert summed == 12  # each record counted once in the rollups


def test_a_record_the_store_cannot_take_even_cut_down_is_dropped_not_retried_for_ever(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ids = spool_records(tmp_path / "spool", 4, {1: {"id": "x" * 80}})
    writer = Writer(engine, tmp_path / "spool", batch_size=50, pricebook=PriceBook())
    with caplog.at_level(logging.ERROR):
        writer.drain()
    stored = count(engine, requests)
    if engine.dialect.name == "postgresql":  # an id longer than its column: nothing to keep
        assert stored == 3
        assert any("dropped" in r.getMessage() for r in caplog.records)
    else:
        assert stored == 4
    assert writer.drain().records == 0
    for rid in (ids[0], ids[2], ids[3]):
        assert get_request(engine, ORG, rid) is not None


def test_an_unavailable_store_is_not_mistaken_for_a_refused_record(
    tmp_path: Path,
) -> None:
    from sqlalchemy.exc import OperationalError

    down = OperationalError("INSERT", {}, Exception("connection refused"))
    assert not refused(down)
    assert refused(OverflowError("int too large"))
    # A salvaged row only holds values its columns take.
    row = Builder(1 << 20, PriceBook()).build(
        [(*start_frame("a" * 36, ts=1e300), *end_frame("a" * 36, RESPONSE))]
    )
    kept = salvaged(row.batch.requests[0], "OverflowError", 123)
    assert kept["created_at"] == 123 and kept["id"] == "a" * 36 and kept["model"] == "gpt-4o-mini"
    assert kept["error"].startswith("Heliograph could not store this record")


def test_a_batch_whose_records_all_fail_stays_in_the_spool(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every record refused: a fault outside the records (here, a broken insert); nothing is
    cut down, the batch waits in the spool and lands once the fault is gone."""
    from heliograph.capture import writer as writer_module

    ids = spool_records(tmp_path / "spool", 5, {})
    real = writer_module.insert_batch

    def broken(conn: object, batch: object) -> set[str]:
        raise OverflowError("a bug, not the data")

    monkeypatch.setattr(writer_module, "insert_batch", broken)
    writer = Writer(engine, tmp_path / "spool", batch_size=50, pricebook=PriceBook())
    with pytest.raises(OverflowError):
        writer.drain()
    assert count(engine, requests) == 0
    monkeypatch.setattr(writer_module, "insert_batch", real)
    assert writer.drain().records == 5
    for rid in ids:
        rec = get_request(engine, ORG, rid)
        assert rec is not None and rec["error"] is None and rec["response_body"] is not None
