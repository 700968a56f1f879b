"""The writer: spool frames in, one idempotent record per request out, on both store dialects."""

from __future__ import annotations

import base64
import fcntl
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import DBAPIError

from heliograph.capture.spool import CHECKPOINT, KIND_END, KIND_START, SpoolWriter
from heliograph.capture.writer import Writer
from heliograph.store.engine import make_engine, migrate
from heliograph.store.requests import RequestFilter, get_request, list_requests
from heliograph.store.rollups import rollup_hourly
from heliograph.store.schema import request_bodies, request_properties, requests

SAMPLES = Path(__file__).parent / "samples"
ORG = "6f1c2a9e-0000-4000-8000-000000000001"
OTHER_ORG = "6f1c2a9e-0000-4000-8000-000000000002"
KEY = "0b7d1f00-0000-4000-8000-0000000000aa"
TS = 1_700_000_000.5  # 2023-11-14T22:13:20.500Z
CHAT_REQUEST = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
    "user": "body-user",
}
JSON_HEADERS = [["content-type", "application/json"], ["authorization", "[REDACTED]"]]


# ------------------------------------------------------------------------------ helpers


def start_frame(
    rid: str,
    *,
    body: Any = CHAT_REQUEST,
    path: str = "/chat/completions",
    headers: list[list[str]] | None = None,
    org: str = ORG,
    ts: float = TS,
) -> tuple[bytes, bytes]:
    """A start frame's header and body, shaped like gateway/proxy.py writes them."""
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    start = {
        "id": rid,
        "ts": ts,
        "org": org,
        "key": KEY,
        "up": "openai",
        "pr": "openai",
        "pv": "openai",
        "m": "POST",
        "p": path,
        "q": "",
        "h": JSON_HEADERS + (headers or []),
    }
    return orjson.dumps(start), raw


def end_frame(
    rid: str,
    body: bytes,
    *,
    status: int = 200,
    ctype: str = "application/json",
    marks: list[tuple[int, float]] | None = None,
    lat: float = 42.5,
    resp_headers: list[list[str]] | None = None,
) -> tuple[bytes, bytes]:
    ok = status < 400
    end = {"id": rid, "inj": False}
    end.update(
        st=status,
        ttfb=12.25,
        ct=ctype,
        rh=[["content-type", ctype], *(resp_headers or []), ["heliograph-id", rid]],
    )
    end.update(
        state="ok" if ok else "error",
        err=None if ok else f"Upstream returned HTTP {status}",
        lat=lat,
        ch=marks if marks is not None else [(len(body), lat)],
    )
    return orjson.dumps(end), body


def put(spool: SpoolWriter, kind: bytes, frame: tuple[bytes, bytes]) -> None:
    spool.append(kind, *frame)


def put_pair(spool: SpoolWriter, rid: str, response: bytes | None = None, **start: Any) -> None:
    put(spool, KIND_START, start_frame(rid, **start))
    put(spool, KIND_END, end_frame(rid, response or (SAMPLES / "chat.json").read_bytes()))


def all_rows(engine: Engine, org: str = ORG, **filters: Any) -> list[dict[str, Any]]:
    rows, cursor = list_requests(engine, org, RequestFilter(**filters), 1000)
    assert cursor is None
    return rows


def count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def rid_n(n: int) -> str:
    return str(uuid.UUID(int=n))


def event_marks(raw: bytes, t0: float = 100.0, step: float = 10.0) -> list[tuple[int, float]]:
    """One read per SSE event: event k arrives at t0 + k * step ms."""
    marks, pos, k = [], 0, 0
    while True:
        cut = raw.find(b"\n\n", pos)
        if cut < 0:
            break
        pos = cut + 2
        marks.append((pos, t0 + k * step))
        k += 1
    return marks


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture
def spool(root: Path) -> Iterator[SpoolWriter]:
    w = SpoolWriter(root, segment_bytes=64 * 1024 * 1024)
    try:
        yield w
    finally:
        w.close()


# ------------------------------------------------------------------------------ records


def test_start_and_end_make_one_ok_record(engine: Engine, root: Path, spool: SpoolWriter) -> None:
    rid = rid_n(1)
    response = (SAMPLES / "chat.json").read_bytes()
    meta = [
        ["helicone-user-id", "alice"],
        ["helicone-session-id", "sess-1"],
        ["helicone-property-environment", "prod"],
    ]
    put(spool, KIND_START, start_frame(rid, headers=meta))
    put(spool, KIND_END, end_frame(rid, response, resp_headers=[["x-request-id", "req_abc"]]))

    writer = Writer(engine, root)
    result = writer.drain()
    assert (result.records, result.removed_dirs) == (1, 0)

    [row] = all_rows(engine)
    expected = {
        "id": rid,
        "created_at": "2023-11-14T22:13:20.500Z",
        "kind": "llm",
        "provider": "openai",
        "upstream": "openai",
        "method": "POST",
        "endpoint": "/chat/completions",
        "model": "gpt-4o-mini",
        "response_model": "gpt-4o-mini",
        "stream": False,
        "status": 200,
        "state": "ok",
        "error": None,
        "latency_ms": 42.5,
        "ttft_ms": None,
        "output_tokens_per_s": round(5 / 0.0425, 2),
        "prompt_tokens": 14,
        "completion_tokens": 5,
        "total_tokens": 19,
        "cached_tokens": 0,
        "reasoning_tokens": 0,
        "user_id": "alice",
        "session_id": "sess-1",
        "properties": {"environment": "prod"},
        "key_id": KEY,
    }
    assert {name: row.get(name) for name in expected} == expected
    detail = get_request(engine, ORG, rid)
    assert detail is not None
    assert detail["request_body"] == CHAT_REQUEST
    assert detail["response_body"] == orjson.loads(response)
    assert detail["request_headers"] == dict(JSON_HEADERS + meta)
    assert detail["response_headers"] == {
        "content-type": "application/json",
        "x-request-id": "req_abc",
        "heliograph-id": rid,
    }
    assert detail["body_truncated"] is False
    assert get_request(engine, OTHER_ORG, rid) is None

    # nothing new: nothing written; the owner is alive so its directory stays
    assert writer.drain().records == 0
    assert spool.dir.is_dir()
    spool.close()
    result = writer.drain()
    assert (result.records, result.removed_dirs) == (0, 1)
    assert not spool.dir.exists()
    assert len(all_rows(engine)) == 1


def test_stream_record_is_reassembled_with_timings(
    engine: Engine, root: Path, spool: SpoolWriter
) -> None:
    rid = rid_n(2)
    raw = (SAMPLES / "chat_stream_usage.sse").read_bytes()
    marks = event_marks(raw)  # role at 100, content at 110..150, finish 160, usage 170
    body = {**CHAT_REQUEST, "stream": True, "stream_options": {"include_usage": True}}
    put(spool, KIND_START, start_frame(rid, body=body))
    ctype = "text/event-stream; charset=utf-8"
    put(spool, KIND_END, end_frame(rid, raw, ctype=ctype, marks=marks, lat=185.0))
    assert Writer(engine, root).drain().records == 1

    [row] = all_rows(engine)
    assert row["stream"] is True and row["state"] == "ok"
    assert row["ttft_ms"] == 110.0
    assert (row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == (14, 7, 21)
    assert (row["cached_tokens"], row["reasoning_tokens"]) == (3, 2)
    assert row["output_tokens_per_s"] == 175.0  # 7 tokens over 110..150 ms
    detail = get_request(engine, ORG, rid)
    assert detail is not None
    message = detail["response_body"]["choices"][0]["message"]
    assert message == {"role": "assistant", "content": "Hello from the mock upstream."}
    assert detail["response_body"]["object"] == "chat.completion"


def test_replaying_the_spool_after_a_checkpoint_reset_is_idempotent(
    engine: Engine, root: Path, spool: SpoolWriter
) -> None:
    n = 9
    for i in range(n):
        put_pair(spool, rid_n(100 + i), headers=[["helicone-property-run", str(i)]])

    first = Writer(engine, root, batch_size=2)  # several batches per directory
    assert first.drain().records == n
    assert (spool.dir / CHECKPOINT).exists()
    assert first.drain().records == 0

    (spool.dir / CHECKPOINT).unlink()
    again = Writer(engine, root, batch_size=2)
    assert again.drain().records == n  # re-read and re-inserted ...
    rows = all_rows(engine)
    assert sorted(r["id"] for r in rows) == sorted(rid_n(100 + i) for i in range(n))  # ... once
    assert count(engine, requests) == n
    assert count(engine, request_bodies) == n
    assert count(engine, request_properties) == n
    with engine.connect() as conn:  # each record summed into the rollups once
        summed = conn.execute(select(func.sum(rollup_hourly.c.requests))).scalar_one()
    assert summed == n


OWNER_SCRIPT = textwrap.dedent(
    """
    import sys, time, orjson
    from pathlib import Path
    from heliograph.capture.spool import SpoolWriter

    w = SpoolWriter(Path(sys.argv[1]), segment_bytes=1 << 20)
    for kind, header, body in orjson.loads(Path(sys.argv[2]).read_bytes()):
        w.append(kind.encode(), header.encode(), body.encode())
    print("READY", w.dir, flush=True)
    time.sleep(120)
    """
)


def test_a_sigkilled_owner_leaves_ok_and_interrupted_records(
    engine: Engine, root: Path, tmp_path: Path
) -> None:
    ids = [rid_n(200), rid_n(201), rid_n(202)]
    response = (SAMPLES / "chat.json").read_bytes()
    frames = [("S", *start_frame(rid)) for rid in ids]
    frames.insert(2, ("E", *end_frame(ids[1], response)))
    plan = tmp_path / "frames.json"
    plan.write_bytes(orjson.dumps([[k, h.decode(), b.decode()] for k, h, b in frames]))

    with subprocess.Popen(
        [sys.executable, "-c", OWNER_SCRIPT, str(root), str(plan)],
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().split()
            assert line[:1] == ["READY"], line
            owner_dir = Path(line[1])
            writer = Writer(engine, root)
            # while the owner lives, its unfinished starts are not records yet
            assert writer.drain().records == 1
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait(10) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)

    result = writer.drain()
    assert (result.records, result.removed_dirs) == (2, 1)
    assert not owner_dir.exists()
    rows = {r["id"]: r for r in all_rows(engine)}
    assert sorted(rows) == sorted(ids)
    assert rows[ids[1]]["state"] == "ok" and rows[ids[1]]["status"] == 200
    for rid in (ids[0], ids[2]):
        row = rows[rid]
        assert row["state"] == "interrupted"
        assert row["status"] == 0
        assert row["error"] == "Gateway stopped before the request finished."
        assert row["latency_ms"] is None and row["ttft_ms"] is None
        assert row["model"] == "gpt-4o-mini" and row["kind"] == "llm"
        assert row["completion_tokens"] is None
        detail = get_request(engine, ORG, rid)
        assert detail is not None
        assert detail["request_body"] == CHAT_REQUEST
        assert detail["response_body"] is None
    assert writer.drain().records == 0
    assert len(all_rows(engine)) == 3
    assert len(all_rows(engine, state="interrupted")) == 2


def test_pending_starts_wait_for_their_end_across_writer_restarts(
    engine: Engine, root: Path
) -> None:
    spool = SpoolWriter(root, segment_bytes=700)  # a few frames per segment
    try:
        slow = rid_n(300)
        put(spool, KIND_START, start_frame(slow))
        quick = [rid_n(301 + i) for i in range(6)]
        for rid in quick:
            put_pair(spool, rid)
        segments = sorted(p.name for p in spool.dir.glob("*.seg"))
        assert len(segments) >= 4

        first = Writer(engine, root)
        assert first.drain().records == len(quick)
        assert sorted(r["id"] for r in all_rows(engine)) == sorted(quick)
        # the checkpoint stays on the pending start, so its segment is kept
        assert (spool.dir / CHECKPOINT).read_text().split() == ["1", "0"]
        assert sorted(p.name for p in spool.dir.glob("*.seg")) == segments

        # a restarted writer re-reads from the checkpoint: no loss, no duplicates
        second = Writer(engine, root)
        second.drain()
        assert sorted(r["id"] for r in all_rows(engine)) == sorted(quick)
        assert count(engine, requests) == len(quick)

        later = rid_n(400)
        put(spool, KIND_START, start_frame(later))
        put(spool, KIND_END, end_frame(slow, (SAMPLES / "chat.json").read_bytes()))
        assert second.drain().records == 1
        rows = {r["id"]: r for r in all_rows(engine)}
        assert set(rows) == {slow, *quick}
        assert rows[slow]["state"] == "ok"
        # now the oldest pending start is `later`: older segments are gone
        assert "000000000001.seg" not in {p.name for p in spool.dir.glob("*.seg")}

        third = Writer(engine, root)
        third.drain()
        assert count(engine, requests) == len(quick) + 1
        put(spool, KIND_END, end_frame(later, (SAMPLES / "chat.json").read_bytes()))
        assert third.drain().records == 1
    finally:
        spool.close()
    result = third.drain()
    assert result.removed_dirs == 1
    assert count(engine, requests) == len(quick) + 2
    assert all_rows(engine, state="interrupted") == []


def _bad_url(db_url: str, tmp_path: Path) -> str:
    if db_url.startswith("postgresql"):
        return "postgresql://postgres@127.0.0.1:1/heliograph"
    (tmp_path / "not-a-db").mkdir()  # a directory where the database file should be
    return f"sqlite:///{tmp_path / 'not-a-db'}"


def snapshot(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.iterdir()}


def test_store_unavailable_leaves_the_spool_untouched(
    engine: Engine, db_url: str, root: Path, tmp_path: Path
) -> None:
    spool = SpoolWriter(root, segment_bytes=64 * 1024 * 1024)
    try:
        done = [rid_n(500 + i) for i in range(3)]
        for rid in done:
            put_pair(spool, rid)
        cut_short = rid_n(599)
        put(spool, KIND_START, start_frame(cut_short))
        before = snapshot(spool.dir)
        assert CHECKPOINT not in before

        bad_engine = make_engine(_bad_url(db_url, tmp_path))
        writer = Writer(bad_engine, root)
        with pytest.raises(DBAPIError):
            writer.drain()
        assert snapshot(spool.dir) == before
    finally:
        spool.close()
    try:
        # the owner is gone now, but a failed drain must not remove the directory
        with pytest.raises(DBAPIError):
            writer.drain()
        assert snapshot(spool.dir) == before
    finally:
        bad_engine.dispose()
    assert all_rows(engine) == []

    writer.engine = engine  # the store is back
    result = writer.drain()
    assert (result.records, result.removed_dirs) == (4, 1)
    assert not spool.dir.exists()
    rows = {r["id"]: r["state"] for r in all_rows(engine)}
    assert rows == {**dict.fromkeys(done, "ok"), cut_short: "interrupted"}


def test_strings_are_clamped_and_stripped_of_nul(
    engine: Engine, root: Path, spool: SpoolWriter
) -> None:
    rid, rid2 = rid_n(600), rid_n(601)
    headers = [
        ["helicone-user-id", "u" * 1000],
        ["helicone-session-id", "se\x00ss"],
        ["helicone-property-note", "a\x00b"],
        ["helicone-property-" + "k" * 300, "long name"],
        ["x-custom", "v\x00al"],
    ]
    body = {**CHAT_REQUEST, "model": "gpt\x00-4o", "user": "body\x00user"}
    error = {"error": {"message": "bad \x00 request", "type": "invalid_request_error"}}
    put(spool, KIND_START, start_frame(rid, body=body, headers=headers))
    put(
        spool,
        KIND_END,
        end_frame(rid, orjson.dumps(error), status=400, resp_headers=[["x-weird", "a\x00b"]]),
    )
    long_model = "m" * 300 + "\x00"
    reply = orjson.loads((SAMPLES / "chat.json").read_bytes())
    reply["model"] = "r" * 400
    put(spool, KIND_START, start_frame(rid2, body={**CHAT_REQUEST, "model": long_model}))
    put(spool, KIND_END, end_frame(rid2, orjson.dumps(reply)))

    assert Writer(engine, root).drain().records == 2

    rows = {r["id"]: r for r in all_rows(engine)}
    row = rows[rid]
    assert row["user_id"] == "u" * 255
    assert row["session_id"] == "sess"
    assert row["model"] == "gpt-4o"
    assert (row["status"], row["state"]) == (400, "error")
    assert row["error"] == "bad  request"
    assert row["properties"] == {"note": "ab", "k" * 255: "long name"}
    detail = get_request(engine, ORG, rid)
    assert detail is not None
    assert detail["request_headers"]["x-custom"] == "val"
    assert detail["response_headers"]["x-weird"] == "ab"
    assert detail["request_body"]["model"] == "gpt\x00-4o"  # bodies are stored as sent
    assert rows[rid2]["model"] == "m" * 255
    assert rows[rid2]["response_model"] == "r" * 255
    assert all_rows(engine, user_id="u" * 255)[0]["id"] == rid


def test_properties_become_filterable(engine: Engine, root: Path, spool: SpoolWriter) -> None:
    plan = {
        rid_n(700): [
            ["helicone-property-environment", "prod"],
            ["helicone-property-feature", "chat"],
        ],
        rid_n(701): [
            ["helicone-property-environment", "dev"],
            ["helicone-property-feature", "chat"],
        ],
        rid_n(702): [["heliograph-property-environment", "prod"]],
        rid_n(703): [],
    }
    for rid, headers in plan.items():
        put_pair(spool, rid, headers=headers)
    put_pair(spool, rid_n(704), headers=plan[rid_n(700)], org=OTHER_ORG)
    assert Writer(engine, root).drain().records == 5

    def found(**props: str) -> set[str]:
        return {r["id"] for r in all_rows(engine, properties=props)}

    assert found(environment="prod") == {rid_n(700), rid_n(702)}
    assert found(environment="prod", feature="chat") == {rid_n(700)}
    assert found(feature="chat") == {rid_n(700), rid_n(701)}
    assert found(environment="staging") == set()
    assert found() == set(plan)
    rows = {r["id"]: r["properties"] for r in all_rows(engine)}
    assert rows[rid_n(701)] == {"environment": "dev", "feature": "chat"}
    assert rows[rid_n(703)] == {}
    assert {r["id"] for r in all_rows(engine, OTHER_ORG, properties={"feature": "chat"})} == {
        rid_n(704)
    }


def test_inline_base64_images_are_replaced_by_a_placeholder(
    engine: Engine, root: Path, spool: SpoolWriter
) -> None:
    image = os.urandom(3000)
    b64 = base64.b64encode(image).decode()
    tiny = "data:image/gif;base64,R0lGODlhAQABAAAAACw="
    body = {
        "model": "gpt-4o-mini",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this image?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64}"}},
                    {"type": "image_url", "image_url": {"url": tiny}},
                ],
            }
        ],
    }
    # the same image as a JSON encoder that escapes "/" writes it
    escaped = orjson.dumps(body).replace(b64.encode(), b64.replace("/", "\\/").encode())
    put_pair(spool, rid_n(800), body=body)
    put_pair(spool, rid_n(801), body=escaped)
    assert Writer(engine, root).drain().records == 2

    detail = get_request(engine, ORG, rid_n(800))
    assert detail is not None
    parts = detail["request_body"]["messages"][0]["content"]
    assert parts[0] == {"type": "text", "text": "What is in this image?"}
    assert parts[1]["image_url"]["url"] == (
        "data:image/png;base64,[omitted by Heliograph: 3000 bytes]"
    )
    assert parts[2]["image_url"]["url"] == tiny
    assert detail["model"] == "gpt-4o-mini"

    detail = get_request(engine, ORG, rid_n(801))
    assert detail is not None
    url = detail["request_body"]["messages"][0]["content"][1]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,[omitted by Heliograph: ")
    assert b64[:100] not in orjson.dumps(detail["request_body"]).decode()


def test_inline_base64_audio_is_replaced_by_a_placeholder(
    engine: Engine, root: Path, spool: SpoolWriter
) -> None:
    audio = base64.b64encode(os.urandom(30_000)).decode()
    body = {
        "model": "gpt-4o-audio-preview",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Transcribe this"},
                    {"type": "input_audio", "input_audio": {"data": audio, "format": "wav"}},
                ],
            }
        ],
    }
    put_pair(spool, rid_n(850), body=body)
    assert Writer(engine, root).drain().records == 1
    detail = get_request(engine, ORG, rid_n(850))
    assert detail is not None
    stored = orjson.dumps(detail["request_body"]).decode()
    assert audio[:200] not in stored
    assert detail["request_body"]["messages"][0]["content"][0]["text"] == "Transcribe this"


def test_an_absurd_token_count_does_not_block_the_spool(
    request: pytest.FixtureRequest, engine: Engine, root: Path, spool: SpoolWriter
) -> None:
    reply = orjson.loads((SAMPLES / "chat.json").read_bytes())
    reply["usage"] = {"prompt_tokens": 2**31, "completion_tokens": 5, "total_tokens": 2**31 + 5}
    put_pair(spool, rid_n(900), response=orjson.dumps(reply))
    put_pair(spool, rid_n(901))
    Writer(engine, root).drain()
    assert {r["id"] for r in all_rows(engine)} == {rid_n(900), rid_n(901)}


def test_a_spool_directory_being_created_is_not_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    eng = make_engine(f"sqlite:///{tmp_path / 'race.db'}")
    migrate(eng)
    root = tmp_path / "spool"
    writer = Writer(eng, root)
    real_flock = fcntl.flock
    interleaved: list[bool] = []

    def flock_after_a_drain(fd: int, op: int) -> None:
        if not interleaved:  # the gateway's own flock: let the writer run first
            interleaved.append(True)
            writer.drain()
        real_flock(fd, op)

    monkeypatch.setattr(fcntl, "flock", flock_after_a_drain)
    try:
        spool = SpoolWriter(root, segment_bytes=1 << 20)
        monkeypatch.setattr(fcntl, "flock", real_flock)
        try:
            put_pair(spool, rid_n(950))
            assert writer.drain().records == 1
        finally:
            spool.close()
        assert [r["id"] for r in all_rows(eng)] == [rid_n(950)]
    finally:
        eng.dispose()
