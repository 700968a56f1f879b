"""The durable spool: frames round-trip, rotate, resume from a checkpoint, survive damage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from heliograph.capture.spool import (
    CHECKPOINT,
    FRAME_HEAD,
    KIND_END,
    KIND_START,
    OWNER_LOCK,
    Frame,
    Position,
    SpoolDir,
    SpoolWriter,
    encode_frame,
)


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[SpoolWriter]:
    w = SpoolWriter(tmp_path / "spool", segment_bytes=64 * 1024 * 1024)
    try:
        yield w
    finally:
        w.close()


def header(n: int) -> bytes:
    return orjson.dumps({"id": f"req-{n}", "n": n})


def read_all(spool: SpoolDir, final: bool = False, limit: int = 1_000_000) -> list[Frame]:
    return list(spool.read_frames(final=final, limit=limit))


def ids(frames: list[Frame]) -> list[str]:
    return [orjson.loads(f.header)["id"] for f in frames]


def segment_paths(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.seg"))


# ------------------------------------------------------------------------------ round trip


def test_frames_round_trip_with_binary_empty_and_large_bodies(writer: SpoolWriter) -> None:
    big = os.urandom(1024) * (10 * 1024)  # 10 MiB, larger than one read chunk of the reader
    bodies = [
        b"\x00\x00binary\x00\xff\xfe\r\n\r\nHG1 not a frame\x00",
        b"",
        bytes(range(256)) * 3,
        big,
        b"after the big one",
    ]
    for i, body in enumerate(bodies):
        writer.append(KIND_START if i % 2 == 0 else KIND_END, header(i), body)

    frames = read_all(SpoolDir(writer.dir))

    assert [f.body for f in frames] == bodies
    assert [f.kind for f in frames] == [KIND_START, KIND_END, KIND_START, KIND_END, KIND_START]
    assert ids(frames) == [f"req-{i}" for i in range(5)]
    # positions point at the start of each frame, in order, in the one segment
    offsets = [f.position.offset for f in frames]
    expected = [0]
    for i, body in enumerate(bodies[:-1]):
        expected.append(expected[-1] + FRAME_HEAD.size + len(header(i)) + len(body))
    assert offsets == expected
    assert {f.position.segment for f in frames} == {1}


def test_a_large_frame_first_in_the_file_is_read_whole(writer: SpoolWriter) -> None:
    big = b"\x00" + os.urandom(9 * 1024 * 1024) + b"\x00"
    writer.append(KIND_START, header(0), big)
    writer.append(KIND_END, header(1), b"")
    frames = read_all(SpoolDir(writer.dir))
    assert [len(f.body) for f in frames] == [len(big), 0]
    assert frames[0].body == big


def test_encode_frame_layout() -> None:
    frame = encode_frame(KIND_END, b'{"id":"x"}', b"\x00body")
    magic, kind, hlen, blen, _crc = FRAME_HEAD.unpack_from(frame)
    assert (magic, kind, hlen, blen) == (b"HG1", KIND_END, 10, 5)
    assert frame[FRAME_HEAD.size :] == b'{"id":"x"}\x00body'


def test_read_limit_and_continuation(writer: SpoolWriter) -> None:
    for i in range(7):
        writer.append(KIND_START, header(i), b"x" * i)
    spool = SpoolDir(writer.dir)
    assert ids(read_all(spool, limit=3)) == ["req-0", "req-1", "req-2"]
    assert ids(read_all(spool, limit=3)) == ["req-3", "req-4", "req-5"]
    assert ids(read_all(spool, limit=3)) == ["req-6"]
    assert read_all(spool) == []
    writer.append(KIND_END, header(7), b"late")
    assert ids(read_all(spool)) == ["req-7"]


# ------------------------------------------------------------------------------ rotation


def test_rotation_makes_several_segments_read_in_order(tmp_path: Path) -> None:
    w = SpoolWriter(tmp_path / "spool", segment_bytes=300)
    try:
        for i in range(40):
            w.append(KIND_START, header(i), b"body-%d" % i * 10)
        paths = segment_paths(w.dir)
        assert len(paths) >= 10
        assert [p.name for p in paths] == [f"{n:012d}.seg" for n in range(1, len(paths) + 1)]
        frames = read_all(SpoolDir(w.dir))
        assert ids(frames) == [f"req-{i}" for i in range(40)]
        assert [f.body for f in frames] == [b"body-%d" % i * 10 for i in range(40)]
        positions = [f.position for f in frames]
        assert positions == sorted(positions, key=lambda p: (p.segment, p.offset))
        assert len({p.segment for p in positions}) == len([p for p in paths if p.stat().st_size])
    finally:
        w.close()


def test_reader_follows_the_writer_across_rotations(tmp_path: Path) -> None:
    w = SpoolWriter(tmp_path / "spool", segment_bytes=250)
    try:
        spool = SpoolDir(w.dir)
        seen: list[str] = []
        for i in range(30):
            w.append(KIND_START, header(i), b"y" * 50)
            if i % 4 == 0:
                seen += ids(read_all(spool))
        seen += ids(read_all(spool))
        assert seen == [f"req-{i}" for i in range(30)]
    finally:
        w.close()


# ------------------------------------------------------------------------------ checkpoints


def test_checkpoint_resume_reads_only_later_frames(tmp_path: Path) -> None:
    w = SpoolWriter(tmp_path / "spool", segment_bytes=400)
    try:
        for i in range(20):
            w.append(KIND_START, header(i), b"z" * 40)
        first = SpoolDir(w.dir)
        frames = read_all(first)
        assert len(frames) == 20
        first.save_checkpoint(frames[12].position)

        resumed = SpoolDir(w.dir)
        assert resumed.load_checkpoint() == frames[12].position
        assert ids(read_all(resumed)) == [f"req-{i}" for i in range(12, 20)]

        # checkpoint at the end of everything read: a new reader sees only new frames
        resumed.save_checkpoint(resumed.read_pos)
        for i in range(20, 23):
            w.append(KIND_END, header(i), b"new")
        again = SpoolDir(w.dir)
        assert ids(read_all(again)) == ["req-20", "req-21", "req-22"]
    finally:
        w.close()


def test_checkpoint_mid_segment_resumes_mid_segment(writer: SpoolWriter) -> None:
    for i in range(5):
        writer.append(KIND_START, header(i), b"q" * i)
    spool = SpoolDir(writer.dir)
    frames = read_all(spool)
    spool.save_checkpoint(frames[3].position)
    assert (writer.dir / CHECKPOINT).read_text().split() == ["1", str(frames[3].position.offset)]
    assert ids(read_all(SpoolDir(writer.dir))) == ["req-3", "req-4"]


def test_save_checkpoint_deletes_only_older_segments(tmp_path: Path) -> None:
    w = SpoolWriter(tmp_path / "spool", segment_bytes=200)
    try:
        for i in range(30):
            w.append(KIND_START, header(i), b"w" * 60)
        before = [p.name for p in segment_paths(w.dir)]
        assert len(before) >= 6
        spool = SpoolDir(w.dir)
        frames = read_all(spool)
        target = next(f for f in frames if f.position.segment == 4)
        spool.save_checkpoint(target.position)
        after = [p.name for p in segment_paths(w.dir)]
        assert after == [name for name in before if int(name.split(".")[0]) >= 4]
        assert (w.dir / OWNER_LOCK).exists()
        # everything from the checkpoint on is still readable
        resumed = read_all(SpoolDir(w.dir))
        assert ids(resumed) == ids(frames[frames.index(target) :])
    finally:
        w.close()


def test_a_damaged_checkpoint_file_means_start_from_the_beginning(writer: SpoolWriter) -> None:
    writer.append(KIND_START, header(0), b"a")
    (writer.dir / CHECKPOINT).write_text("garbage")
    assert SpoolDir(writer.dir).load_checkpoint() == Position(0, 0)
    assert ids(read_all(SpoolDir(writer.dir))) == ["req-0"]


# ------------------------------------------------------------------------------ damage


@pytest.mark.parametrize(
    "keep", [3, FRAME_HEAD.size + 2, -5], ids=["in-head", "in-header", "in-body"]
)
def test_torn_tail_waits_while_owner_alive_and_is_dropped_when_final(
    writer: SpoolWriter, keep: int
) -> None:
    for i in range(3):
        writer.append(KIND_START, header(i), b"good %d" % i)
    seg = segment_paths(writer.dir)[-1]
    good_size = seg.stat().st_size
    last = encode_frame(KIND_END, header(3), b"the torn one" * 10)
    writer.append(KIND_END, header(3), b"the torn one" * 10)
    cut = keep if keep > 0 else len(last) + keep
    os.truncate(seg, good_size + cut)

    live = SpoolDir(writer.dir)
    assert live.owner_alive()
    assert ids(read_all(live, final=False)) == ["req-0", "req-1", "req-2"]
    assert live.read_pos == Position(1, good_size)  # parked in front of the torn frame
    assert read_all(live, final=False) == []
    assert live.read_pos == Position(1, good_size)

    # the rest of the frame arrives: the live reader picks it up whole
    with open(seg, "ab") as fh:
        fh.write(last[cut:])
    [frame] = read_all(live, final=False)
    assert frame.body == b"the torn one" * 10

    # the same damage seen by a final reader: good frames yielded, torn tail skipped
    os.truncate(seg, good_size + cut)
    dead = SpoolDir(writer.dir)
    assert ids(read_all(dead, final=True)) == ["req-0", "req-1", "req-2"]
    assert dead.read_pos.offset == good_size + cut  # nothing left to wait for
    assert read_all(dead, final=True) == []


def test_torn_large_frame_waits_then_is_dropped(writer: SpoolWriter) -> None:
    writer.append(KIND_START, header(0), b"small")
    seg = segment_paths(writer.dir)[-1]
    good_size = seg.stat().st_size
    writer.append(KIND_START, header(1), os.urandom(9 * 1024 * 1024))
    os.truncate(seg, good_size + 8 * 1024 * 1024 + 100)
    assert ids(read_all(SpoolDir(writer.dir), final=False)) == ["req-0"]
    assert ids(read_all(SpoolDir(writer.dir), final=True)) == ["req-0"]


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("where", ["body", "header", "magic"])
@pytest.mark.parametrize("final", [False, True])
def test_a_corrupt_frame_is_skipped_and_later_frames_still_read(
    writer: SpoolWriter, where: str, final: bool
) -> None:
    for i in range(5):
        writer.append(KIND_START, header(i), b"body of frame %d" % i)
    spool = SpoolDir(writer.dir)
    frames = read_all(spool)
    victim = frames[2]
    at = {
        "body": FRAME_HEAD.size + len(victim.header) + 3,
        "header": FRAME_HEAD.size + 2,
        "magic": 1,
    }[where]
    _flip(segment_paths(writer.dir)[-1], victim.position.offset + at)

    fresh = SpoolDir(writer.dir)
    got = read_all(fresh, final=final)
    assert ids(got) == ["req-0", "req-1", "req-3", "req-4"]
    assert [f.body for f in got] == [b"body of frame %d" % i for i in (0, 1, 3, 4)]
    writer.append(KIND_END, header(5), b"after damage")
    assert ids(read_all(fresh, final=final)) == ["req-5"]


def test_corrupt_length_field_in_a_sealed_segment_loses_only_that_frame(
    writer: SpoolWriter,
) -> None:
    for i in range(5):
        writer.append(KIND_START, header(i), b"body of frame %d" % i)
    victim = read_all(SpoolDir(writer.dir))[1]
    # body_len is the little-endian u32 at bytes 8..11 of the frame head: +4 MiB
    _flip(segment_paths(writer.dir)[-1], victim.position.offset + 10)
    writer.close()
    got = read_all(SpoolDir(writer.dir), final=True)
    assert ids(got) == ["req-0", "req-2", "req-3", "req-4"]


# ------------------------------------------------------------------------------ ownership


def test_owner_alive_while_open_and_not_after_close(tmp_path: Path) -> None:
    w = SpoolWriter(tmp_path / "spool", segment_bytes=1024)
    spool = SpoolDir(w.dir)
    try:
        assert spool.owner_alive()
        assert spool.owner_alive()  # asking does not steal the lock
        w.append(KIND_START, header(0), b"")
        assert spool.owner_alive()
    finally:
        w.close()
    assert not spool.owner_alive()
    assert ids(read_all(spool, final=True)) == ["req-0"]


def test_owner_alive_is_false_without_a_lock_file(tmp_path: Path) -> None:
    d = tmp_path / "1234-abc"
    d.mkdir()
    assert not SpoolDir(d).owner_alive()


def test_two_writers_in_one_root_get_separate_directories(tmp_path: Path) -> None:
    a = SpoolWriter(tmp_path / "spool", segment_bytes=1024)
    b = SpoolWriter(tmp_path / "spool", segment_bytes=1024)
    try:
        assert a.dir != b.dir
        a.append(KIND_START, header(1), b"a")
        b.append(KIND_START, header(2), b"b")
        assert ids(read_all(SpoolDir(a.dir))) == ["req-1"]
        assert ids(read_all(SpoolDir(b.dir))) == ["req-2"]
    finally:
        a.close()
        b.close()


OWNER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from heliograph.capture.spool import KIND_START, SpoolWriter

    w = SpoolWriter(Path(sys.argv[1]), segment_bytes=1 << 20)
    w.append(KIND_START, b'{"id": "from-child"}', b"child body")
    print("READY", w.dir, flush=True)
    time.sleep(120)
    """
)


def test_owner_alive_false_after_the_owner_process_is_sigkilled(tmp_path: Path) -> None:
    root = tmp_path / "spool"
    with subprocess.Popen(
        [sys.executable, "-c", OWNER_SCRIPT, str(root)],
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().split()
            assert line[:1] == ["READY"], line
            spool = SpoolDir(Path(line[1]))
            assert spool.owner_alive()
            assert ids(read_all(spool, final=False)) == ["from-child"]
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait(10) == -signal.SIGKILL
            assert not spool.owner_alive()
            again = SpoolDir(Path(line[1]))
            assert [f.body for f in read_all(again, final=True)] == [b"child body"]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
