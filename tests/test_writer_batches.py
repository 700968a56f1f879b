"""The writer's fast paths give the same records as the plain ones.

Helper processes with work stealing, insert-ready batches (COPY on PostgreSQL, with its exact
fallback when an id is already stored), time-ordered ids, zstd bodies next to legacy zlib
rows, the one-parse path for well-formed streams, and the frame-id shortcut.
"""

from __future__ import annotations

import fcntl
import os
import signal
import time
import uuid
import zlib
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, delete, func, select

from heliograph.capture.builder import PIPE_BYTES, make_pool
from heliograph.capture.ids import new_record_id
from heliograph.capture.spool import KIND_END, KIND_START, SpoolWriter
from heliograph.capture.writer import POOL_CHUNK, POOL_CHUNK_BYTES, Writer, chunked, frame_id
from heliograph.config import Settings
from heliograph.pricing import PriceBook
from heliograph.providers import openai_streams
from heliograph.providers.analysis import Analysis, Clock
from heliograph.providers.openai import analyse_response
from heliograph.store import rollups
from heliograph.store.engine import make_engine, migrate
from heliograph.store.inserts import insert_records
from heliograph.store.requests import get_request
from heliograph.store.schema import request_bodies, request_properties, requests
from test_openai_analysis import SSE, event_marks, sample
from test_writer import ORG, SAMPLES, end_frame, start_frame

MODELS = ("gpt-4o-mini", "gpt-4o", "o3-mini")


def stream_body(i: int) -> tuple[bytes, list[tuple[int, float]]]:
    raw = sample("chat_stream_usage.sse").replace(b"mock upstream", f"stream {i}".encode())
    return raw, event_marks(raw, t0=50.0 + i % 7, step=3.0)


def fill(root: Path, n: int) -> list[str]:
    """n mixed records (JSON and streams, several users, models and properties)."""
    spool = SpoolWriter(root, segment_bytes=4 * 1024 * 1024)
    ids = []
    try:
        for i in range(n):
            rid = new_record_id()
            ids.append(rid)
            request = {
                "model": MODELS[i % 3],
                "messages": [{"role": "user", "content": f"question {i}"}],
                "stream": i % 2 == 1,
            }
            headers = [["helicone-user-id", f"user-{i % 5}"], ["helicone-property-run", str(i)]]
            spool.append(KIND_START, *start_frame(rid, body=request, headers=headers, ts=1.7e9 + i))
            if i % 2:
                raw, marks = stream_body(i)
                spool.append(KIND_END, *end_frame(rid, raw, ctype=SSE, marks=marks))
            else:
                spool.append(KIND_END, *end_frame(rid, (SAMPLES / "chat.json").read_bytes()))
    finally:
        spool.close()
    return ids


def table(engine: Engine, tbl: Any, order: Any) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(tbl).order_by(*order))]


def rollup_rows(engine: Engine) -> list[tuple[Any, ...]]:
    """Both rollups; float sums rounded (their last bits depend on the order of addition)."""
    hourly = rollups.rollup_hourly
    users = rollups.rollup_user_hourly
    rows = table(engine, hourly, hourly.primary_key) + table(engine, users, users.primary_key)
    return [tuple(round(v, 6) if isinstance(v, float) else v for v in row) for row in rows]


def test_helper_processes_store_exactly_what_the_writer_alone_stores(
    db_url: str, tmp_path: Path
) -> None:
    """Same spool, two stores: one writer with a helper process, one without."""
    n = 1300  # batches of 500 records: split into chunks, some analysed by each process
    ids = fill(tmp_path / "a", n)
    fill_same = tmp_path / "b"
    fill_same.mkdir()
    for src in (tmp_path / "a").iterdir():
        (fill_same / src.name).mkdir()
        for f in src.iterdir():
            (fill_same / src.name / f.name).write_bytes(f.read_bytes())

    alone = make_engine(f"sqlite:///{tmp_path / 'alone.db'}")
    migrate(alone)
    engine = make_engine(db_url)
    migrate(engine)
    pool = make_pool(Settings(writer_processes=2))
    assert pool is not None
    try:
        parallel = Writer(engine, tmp_path / "a", batch_size=500, pricebook=PriceBook(), pool=pool)
        total = 0
        while total < n:
            total += parallel.drain().records
        serial = Writer(alone, fill_same, batch_size=500, pricebook=PriceBook())
        assert serial.drain().records == n
        parallel.close()

        order = [requests.c.id]
        got = table(engine, requests, order)
        assert [r[0] for r in got] == sorted(ids)
        assert got == table(alone, requests, order)
        assert table(engine, request_properties, [request_properties.c.request_id]) == table(
            alone, request_properties, [request_properties.c.request_id]
        )
        bodies = [request_bodies.c.request_id]
        assert table(engine, request_bodies, bodies) == table(alone, request_bodies, bodies)
        # Rollups summed in the helper, merged per batch: equal to a rebuild from raw rows.
        summed = rollup_rows(engine)
        assert sum(r[5] for r in summed[: len(summed) // 2]) > 0
        with engine.begin() as conn:
            rollups.rebuild(conn)
        assert rollup_rows(engine) == summed
        assert summed == rollup_rows(alone)
    finally:
        pool.shutdown(cancel_futures=True)
        engine.dispose()
        alone.dispose()


def _row(rid: str, i: int) -> dict[str, Any]:
    return {
        "id": rid,
        "org_id": ORG,
        "created_at": 1_700_000_000_000 + i,
        "kind": "llm",
        "provider": "openai",
        "upstream": "openai",
        "method": "POST",
        "endpoint": "/chat/completions",
        "model": "gpt-4o-mini",
        "stream": False,
        "status": 200,
        "state": "ok",
        "latency_ms": 10.0 + i,
        "prompt_tokens": 3,
        "completion_tokens": 2,
        "user_id": "u",
    }


def _body(rid: str) -> dict[str, Any]:
    return {"request_id": rid, "encoding": "raw", "request_body": b"{}", "response_body": b"{}"}


def _prop(rid: str) -> dict[str, Any]:
    return {"request_id": rid, "name": "run", "value": "1", "org_id": ORG}


def _rollup_requests(engine: Engine) -> int:
    with engine.connect() as conn:
        hourly = conn.execute(select(func.sum(rollups.rollup_hourly.c.requests))).scalar_one()
        users = conn.execute(select(func.sum(rollups.rollup_user_hourly.c.requests))).scalar_one()
    assert hourly == users
    return int(hourly or 0)


@pytest.mark.skipif(not hasattr(fcntl, "F_GETPIPE_SZ"), reason="pipe sizes are a Linux feature")
def test_pool_pipes_hold_a_whole_chunk() -> None:
    """The helper's job and result pipes are widened (the helper idled on 64 KiB pipes).

    This reads the executor's queues, which are not public API: if a Python upgrade renames
    them, the pool still works but slower, and this test says so.
    """
    pool = make_pool(Settings(writer_processes=2))
    assert pool is not None
    try:
        pipes = [pool._call_queue._reader, pool._result_queue._reader]  # type: ignore[attr-defined]
        limit = min(PIPE_BYTES, int(Path("/proc/sys/fs/pipe-max-size").read_text()))
        for end in pipes:
            assert fcntl.fcntl(end.fileno(), fcntl.F_GETPIPE_SZ) >= limit
        assert limit >= POOL_CHUNK_BYTES  # so a chunk goes through in one write
    finally:
        pool.shutdown()


def test_batches_are_chunked_by_records_and_by_bytes() -> None:
    small = [(b"h", b"x" * 10, b"e", b"y" * 10)] * (POOL_CHUNK * 2 + 5)
    assert [len(c) for c in chunked(small)] == [POOL_CHUNK, POOL_CHUNK, 5]
    big = (b"h", b"x" * (POOL_CHUNK_BYTES // 3), None, b"")
    parts = chunked([big] * 7 + [(b"h", b"x" * (POOL_CHUNK_BYTES * 2), None, b"")])
    assert [len(c) for c in parts] == [2, 2, 2, 1, 1]  # a lone oversized job is its own chunk
    assert [job for part in parts for job in part][:7] == [big] * 7


def test_a_batch_with_stored_ids_inserts_and_counts_only_the_new_ones(engine: Engine) -> None:
    """On PostgreSQL this is COPY failing on the stored id, then the exact row-by-row path."""
    old = [new_record_id() for _ in range(5)]
    new = [new_record_id() for _ in range(7)]
    with engine.begin() as conn:
        assert insert_records(
            conn, [_row(r, i) for i, r in enumerate(old)], [_body(r) for r in old], []
        ) == set(old)
    assert _rollup_requests(engine) == 5

    mixed = old[2:4] + new  # as after a crash between commit and checkpoint
    with engine.begin() as conn:
        inserted = insert_records(
            conn,
            [_row(r, i) for i, r in enumerate(mixed)],
            [_body(r) for r in mixed],
            [_prop(r) for r in mixed],
        )
    assert inserted == set(new)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(requests)).scalar_one() == 12
        props = conn.execute(select(request_properties.c.request_id)).scalars().all()
    assert sorted(props) == sorted(new)  # the stored records' rows are not touched
    assert _rollup_requests(engine) == 12


def test_the_same_id_twice_in_one_batch_is_stored_once(engine: Engine) -> None:
    """A client that reuses its Helicone-Request-Id: the first one wins, nothing fails."""
    rid = new_record_id()
    first, second = _row(rid, 1), {**_row(rid, 2), "model": "gpt-4o"}
    with engine.begin() as conn:
        inserted = insert_records(
            conn, [first, second], [_body(rid), _body(rid)], [_prop(rid), _prop(rid)]
        )
    assert inserted == {rid}
    with engine.connect() as conn:
        assert conn.execute(select(requests.c.model)).scalars().all() == ["gpt-4o-mini"]
    assert _rollup_requests(engine) == 1


def test_legacy_zlib_bodies_still_read(engine: Engine) -> None:
    rid = new_record_id()
    body = {
        "request_id": rid,
        "encoding": "zlib",
        "request_body": zlib.compress(b'{"model": "gpt-4o-mini"}'),
        "response_body": zlib.compress(b"plain text"),
    }
    with engine.begin() as conn:
        insert_records(conn, [_row(rid, 0)], [body], [])
    got = get_request(engine, ORG, rid)
    assert got is not None
    assert got["request_body"] == {"model": "gpt-4o-mini"}
    assert got["response_body"] == "plain text"


def test_new_bodies_are_zstd(engine: Engine, tmp_path: Path) -> None:
    rid = new_record_id()
    spool = SpoolWriter(tmp_path / "s", segment_bytes=1 << 20)
    spool.append(KIND_START, *start_frame(rid))
    spool.append(KIND_END, *end_frame(rid, (SAMPLES / "chat.json").read_bytes()))
    spool.close()
    assert Writer(engine, tmp_path / "s").drain().records == 1
    with engine.connect() as conn:
        encoding, packed = conn.execute(
            select(request_bodies.c.encoding, request_bodies.c.response_body)
        ).one()
    assert encoding == "zstd"
    assert bytes(packed)[:4] == b"\x28\xb5\x2f\xfd"  # the zstd frame magic
    got = get_request(engine, ORG, rid)
    assert got is not None
    assert got["response_body"] == orjson.loads((SAMPLES / "chat.json").read_bytes())
    with engine.begin() as conn:
        conn.execute(delete(request_bodies))


# ------------------------------------------------------------------------------ ids


def test_record_ids_are_uuid7_in_time_order() -> None:
    before = time.time_ns() // 1_000_000
    first = [new_record_id() for _ in range(2000)]
    time.sleep(0.003)
    later = new_record_id()
    after = time.time_ns() // 1_000_000
    assert len(set(first)) == len(first)
    for rid in (first[0], later):
        parsed = uuid.UUID(rid)
        assert str(parsed) == rid
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        assert before <= int(parsed.hex[:12], 16) <= after
    assert max(first) < later  # a later millisecond sorts after


def test_frame_id_reads_the_id_without_parsing_and_falls_back_when_it_must() -> None:
    rid = new_record_id()
    assert frame_id(orjson.dumps({"id": rid, "ts": 1.0, "h": [["a", "b"]]})) == rid
    # Not first, escaped, or not JSON at all: parsed properly or refused.
    assert frame_id(orjson.dumps({"ts": 1.0, "id": rid})) == rid
    assert frame_id(b'{"id":"a\\"b","x":1}') == 'a"b'
    assert frame_id(b'{"id":"') is None
    assert frame_id(b"garbage") is None
    assert frame_id(b'{"id":5}') is None
    assert frame_id(b"[1,2]") is None


# ------------------------------------------------------------------------------ streams


SLOW_PATH_SAMPLES = {"chat_stream_crlf.handmade.sse", "chat_stream_reasoning.handmade.sse"}
STREAMS = [*sorted(p.name for p in SAMPLES.glob("chat_stream*.sse")), "completions_stream.sse"]


@pytest.mark.parametrize("name", STREAMS)
def test_one_parse_stream_path_equals_the_event_by_event_path(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = sample(name)
    endpoint = "/completions" if name.startswith("completions") else "/chat/completions"
    variants = [raw]
    if raw.endswith(b"data: [DONE]\n\n"):
        variants.append(raw[: -len(b"data: [DONE]\n\n")])  # cancelled before [DONE]
        variants.append(raw[:-20])  # torn mid-event
    first_end = raw.find(b"\n\n") + 2
    if first_end > 1:  # framings the one-parse path must hand over to the general one
        blank = raw[:first_end] + b"\n" + raw[first_end:]  # an extra blank line
        comment = raw[:first_end] + b": keep-alive\n\n" + raw[first_end:]
        for odd in (blank, comment):
            assert openai_streams._data_array(odd) is None, name
            variants.append(odd)
    for body in variants:
        fast = Analysis()
        analyse_response(endpoint, body, SSE, event_marks(body), fast)
        with monkeypatch.context() as patched:
            patched.setattr(openai_streams, "_data_array", lambda _body: None)
            slow = Analysis()
            analyse_response(endpoint, body, SSE, event_marks(body), slow)
        assert fast == slow, name
    # The fast path is really taken for OpenAI's own framing (not for CRLF or comments).
    takes_fast_path = openai_streams._data_array(raw) is not None
    assert takes_fast_path == (name not in SLOW_PATH_SAMPLES), name


def test_event_ends_are_found_from_either_side() -> None:
    body = b"".join(b'data: {"n":%d}\n\n' % i for i in range(9))
    ends = [m + 2 for m in range(len(body)) if body[m : m + 2] == b"\n\n"]
    for i, end in enumerate(ends):
        assert openai_streams._event_end(body, i, len(ends)) == end


def test_clock_answers_out_of_order_offsets() -> None:
    marks = [(10, 1.0), (20, 2.0), (30, 3.0), (40, 4.0)]
    clock = Clock(marks)
    asked = [5, 25, 40, 12, 10, 35, 99, 0, 21]
    expected = [1.0, 3.0, 4.0, 2.0, 1.0, 4.0, 4.0, 1.0, 3.0]
    assert [clock.at(o) for o in asked] == expected
    assert Clock([]).at(3) is None


def test_a_value_binary_copy_cannot_encode_still_lands(engine: Engine) -> None:
    """A float token count (as some servers report) for an integer column: on PostgreSQL
    binary COPY refuses it client-side; the row-by-row path casts it like an INSERT does."""
    rids = [new_record_id() for _ in range(3)]
    rows = [_row(r, i) for i, r in enumerate(rids)]
    rows[1]["prompt_tokens"] = 7.0
    with engine.begin() as conn:
        assert insert_records(conn, rows, [_body(r) for r in rids], []) == set(rids)
    with engine.connect() as conn:
        query = select(requests.c.prompt_tokens).order_by(requests.c.created_at)
        tokens = conn.execute(query).all()
    assert [t[0] for t in tokens] == [3, 7, 3]
    assert _rollup_requests(engine) == 3


def test_a_killed_helper_is_replaced_and_nothing_is_lost_or_doubled(
    engine: Engine, tmp_path: Path
) -> None:
    """The OOM killer takes the helper: that drain fails, the next starts a new helper and
    stores every record once, re-reading from the checkpoint."""
    n = 1300
    ids = fill(tmp_path / "spool", n)
    writer = Writer(
        engine,
        tmp_path / "spool",
        batch_size=500,
        pricebook=PriceBook(),
        pool_factory=lambda: make_pool(Settings(writer_processes=2)),
    )
    try:
        assert writer.pool is not None
        list(writer.pool.map(abs, range(2)))  # the helper is up
        for pid in list(writer.pool._processes):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not writer.pool._broken and time.monotonic() < deadline:
            time.sleep(0.05)
        broken = writer.pool
        with pytest.raises(BrokenProcessPool):
            writer.drain()
        assert writer.pool is not None and writer.pool is not broken
        total = 0
        while total < n:
            got = writer.drain().records
            assert got > 0
            total += got
        with engine.connect() as conn:
            stored = conn.execute(select(requests.c.id)).scalars().all()
        assert sorted(stored) == sorted(ids)
        assert _rollup_requests(engine) == n
    finally:
        writer.close()


def test_sqlite_fast_binding_stores_exactly_what_plain_binding_does() -> None:
    """The adapters that skip sqlite3's protocol lookups hand back the same values."""
    import sqlite3

    from heliograph.store.engine import fast_sqlite_binding

    fast_sqlite_binding()
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (a, b, c, d, e, f)")
    db.execute("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?)", (None, True, False, b"\x00a", 7, "x"))
    row = db.execute(
        "SELECT a, typeof(a), b, typeof(b), c, typeof(c), d, typeof(d), e, f FROM t"
    ).fetchone()
    assert row == (None, "null", 1, "integer", 0, "integer", b"\x00a", "blob", 7, "x")
