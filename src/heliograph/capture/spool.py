"""The durable spool: append-only files that stand between the request path and the store.

The request path appends one *start* frame when a request arrives and one *end* frame when it
finishes (OTLP ingest appends one *traces* frame per accepted batch), each with a single ``os.write`` on an ``O_APPEND`` descriptor, so a SIGKILL can cut
a request short but never loses what was written (the page cache survives the process). The
writer reads frames back, pairs starts with ends, inserts records and trims what is committed.

Each gateway process owns one spool directory and holds an exclusive ``flock`` on its
``owner.lock`` for its whole life; a reader that can take that lock knows the owner is dead,
so starts without ends in that directory are requests that were interrupted.

Frame layout (little endian): ``b"HG1"`` kind:1 header_len:u32 body_len:u32 crc32:u32,
then the header (JSON) and the body (raw bytes). The CRC covers header and body, so a torn
tail (power loss) is detected and skipped rather than misread.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import struct
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

log = logging.getLogger(__name__)

MAGIC = b"HG1"
FRAME_HEAD = struct.Struct("<3scIII")
KIND_START = b"S"
KIND_END = b"E"
KIND_TRACES = b"T"  # a batch of ingested OTLP spans, complete in itself
SEGMENT_SUFFIX = ".seg"
OWNER_LOCK = "owner.lock"
CHECKPOINT = "checkpoint"
READ_CHUNK = 8 * 1024 * 1024


def encode_frame(kind: bytes, header: bytes, body: bytes = b"") -> bytes:
    """One self-checking frame."""
    crc = zlib.crc32(body, zlib.crc32(header))
    return FRAME_HEAD.pack(MAGIC, kind, len(header), len(body), crc) + header + body


def _segment_name(number: int) -> str:
    return f"{number:012d}{SEGMENT_SUFFIX}"


class SpoolWriter:
    """Appends frames for one process. Not thread-safe: one event loop owns it."""

    def __init__(self, root: Path, segment_bytes: int) -> None:
        self.root = root
        self.segment_bytes = segment_bytes
        root.mkdir(parents=True, exist_ok=True)
        name = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        # Build the directory under a hidden name and take the lock before it becomes
        # visible, so a writer can never see it unlocked and mistake it for a dead one.
        building = root / f".{name}"
        building.mkdir()
        self._lock_fd = os.open(building / OWNER_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.dir = root / name
        os.rename(building, self.dir)
        self._segment = 0
        self._fd = -1
        self._size = 0
        self._open_next()

    def _open_next(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._segment += 1
        path = self.dir / _segment_name(self._segment)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._size = 0

    def append(self, kind: bytes, header: bytes, body: bytes = b"") -> None:
        """Write one frame; raises OSError if the disk refuses (the caller logs and goes on)."""
        frame = encode_frame(kind, header, body)
        view = memoryview(frame)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._size += len(frame)
        if self._size >= self.segment_bytes:
            self._open_next()

    def close(self) -> None:
        """Release the directory; the writer drains what is left and removes it."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1


class Position(NamedTuple):
    """A place in a spool directory: segment number and byte offset (ordered as a tuple).

    Named tuples here: the writer makes several per record, and they cost a fraction of a
    frozen dataclass.
    """

    segment: int
    offset: int


class Frame(NamedTuple):
    kind: bytes
    header: bytes
    body: bytes
    position: Position


class SpoolDir:
    """Reading side of one process's spool directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.read_pos = self.load_checkpoint()
        self._buffer = b""
        self._buffer_pos = self.read_pos

    def owner_alive(self) -> bool:
        """True while the gateway process that writes here still holds its lock."""
        try:
            fd = os.open(self.path / OWNER_LOCK, os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def segments(self) -> list[int]:
        numbers = []
        for entry in os.listdir(self.path):
            if entry.endswith(SEGMENT_SUFFIX):
                with contextlib.suppress(ValueError):
                    numbers.append(int(entry[: -len(SEGMENT_SUFFIX)]))
        return sorted(numbers)

    def load_checkpoint(self) -> Position:
        try:
            text = (self.path / CHECKPOINT).read_text()
            seg, off = text.split()
            return Position(int(seg), int(off))
        except (FileNotFoundError, ValueError):
            return Position(0, 0)

    def save_checkpoint(self, pos: Position) -> None:
        """Record that everything before ``pos`` is in the store, then drop older segments."""
        tmp = self.path / (CHECKPOINT + ".tmp")
        tmp.write_text(f"{pos.segment} {pos.offset}")
        os.replace(tmp, self.path / CHECKPOINT)
        for number in self.segments():
            if number < pos.segment:
                with contextlib.suppress(FileNotFoundError):
                    (self.path / _segment_name(number)).unlink()

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def count_ends(self, max_bytes: int) -> tuple[int, int, int]:
        """(end frames, bytes looked through, bytes left) after the checkpoint.

        Only frame heads are read (a seek over each header and body), and no more than
        ``max_bytes`` of the backlog, so the metrics endpoint can estimate the records
        waiting here without reading a large backlog whole.
        """
        pos = self.load_checkpoint()
        ends = scanned = left = 0
        for number in self.segments():
            if number < pos.segment:
                continue
            try:
                fh = open(self.path / _segment_name(number), "rb")  # noqa: SIM115
            except FileNotFoundError:
                continue
            with fh:
                size = os.fstat(fh.fileno()).st_size
                offset = pos.offset if number == pos.segment else 0
                while offset + FRAME_HEAD.size <= size and scanned < max_bytes:
                    fh.seek(offset)
                    magic, kind, hlen, blen, _crc = FRAME_HEAD.unpack(fh.read(FRAME_HEAD.size))
                    if magic != MAGIC:
                        break  # torn or corrupt: the rest only counts as bytes left
                    step = FRAME_HEAD.size + hlen + blen
                    ends += kind == KIND_END and offset + step <= size
                    offset += step
                    scanned += step
                left += max(0, size - offset)
        return ends, scanned, left

    def read_frames(self, final: bool, limit: int) -> Iterator[Frame]:
        """Yield up to ``limit`` complete frames after the read position.

        ``final`` means the owner is dead: an incomplete or corrupt tail will never be
        completed, so it is skipped instead of waited for.
        """
        produced = 0
        segments = [n for n in self.segments() if n >= self.read_pos.segment]
        for index, number in enumerate(segments):
            if self.read_pos.segment != number:
                self.read_pos = Position(number, 0)
            last = index == len(segments) - 1
            for frame in self._read_segment(number, sealed=final or not last):
                yield frame
                produced += 1
                if produced >= limit:
                    return
            if last:
                return

    def _read_segment(self, number: int, sealed: bool) -> Iterator[Frame]:
        path = self.path / _segment_name(number)
        try:
            fh = open(path, "rb")  # noqa: SIM115 - closed below, generator keeps it briefly
        except FileNotFoundError:
            return
        with fh:
            offset = self.read_pos.offset
            while True:
                fh.seek(offset)
                data = fh.read(READ_CHUNK)
                if not data:
                    return
                pos = 0
                progressed = False
                while pos + FRAME_HEAD.size <= len(data):
                    magic, kind, hlen, blen, crc = FRAME_HEAD.unpack_from(data, pos)
                    end = pos + FRAME_HEAD.size + hlen + blen
                    if magic != MAGIC:
                        skip = self._resync(data, pos)
                        log.error(
                            "spool %s: bad frame at %d, skipped %d bytes", path, offset + pos, skip
                        )
                        pos += skip
                        progressed = True
                        continue
                    if end > len(data):
                        if FRAME_HEAD.size + hlen + blen > READ_CHUNK and pos == 0:
                            data = data + fh.read(end - len(data))
                            if end <= len(data):
                                continue
                        if sealed and data.find(MAGIC, pos + 1) >= 0:
                            # A later frame exists, so this length is corrupt, not a torn tail.
                            skip = self._resync(data, pos)
                            log.error("spool %s: bad length at %d, resynced", path, offset + pos)
                            pos += skip
                            progressed = True
                            continue
                        break
                    start = pos + FRAME_HEAD.size
                    header = data[start : start + hlen]
                    body = data[start + hlen : end]
                    frame_pos = Position(number, offset + pos)
                    pos = end
                    progressed = True
                    if zlib.crc32(body, zlib.crc32(header)) != crc:
                        log.error(
                            "spool %s: checksum mismatch at %d, frame skipped",
                            path,
                            frame_pos.offset,
                        )
                        self.read_pos = Position(number, offset + pos)
                        continue
                    self.read_pos = Position(number, offset + pos)
                    yield Frame(kind, header, body, frame_pos)
                offset += pos
                self.read_pos = Position(number, offset)
                if not progressed:
                    if sealed and data:
                        log.error("spool %s: torn frame at %d dropped", path, offset)
                        self.read_pos = Position(number, offset + len(data))
                    return

    @staticmethod
    def _resync(data: bytes, pos: int) -> int:
        nxt = data.find(MAGIC, pos + 1)
        return (nxt if nxt >= 0 else len(data)) - pos


def spool_dirs(root: Path) -> list[SpoolDir]:
    """Every process directory under the spool root, oldest first."""
    if not root.is_dir():
        return []
    paths = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    paths.sort(key=lambda p: p.stat().st_mtime)
    return [SpoolDir(p) for p in paths]
