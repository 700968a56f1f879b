"""The spool and writer metrics of alert rules, read from a real spool directory: bytes the
writer has not committed, and how long it has been behind; both zero once it has caught up."""

from __future__ import annotations

import os
import time
from pathlib import Path

from heliograph.alerts import metrics
from heliograph.capture.spool import KIND_END, KIND_START, Position, SpoolWriter, spool_dirs


def reading(name: str, root: Path, now_ms: int) -> metrics.Reading:
    given = metrics.MetricInput(None, root, "org", {}, now_ms - 300_000, now_ms)  # type: ignore[arg-type]
    return metrics.measure(name, given)


def test_backlog_and_lag(tmp_path: Path) -> None:
    root = tmp_path / "spool"
    now = int(time.time() * 1000)
    assert reading("spool_backlog_bytes", root, now) == metrics.Reading(0.0, None)
    writer = SpoolWriter(root, 1024 * 1024)
    try:
        writer.append(KIND_START, b'{"id": "a"}', b"x" * 100)
        writer.append(KIND_END, b'{"id": "a"}')
        [spool] = spool_dirs(root)
        size = sum(
            os.path.getsize(spool.path / f) for f in os.listdir(spool.path) if f.endswith(".seg")
        )
        assert size > 100
        assert reading("spool_backlog_bytes", root, now).value == float(size)
        lag = reading("writer_lag_s", root, now + 30_000).value
        assert lag is not None and 29 <= lag <= 31
        # the writer commits half: the rest is still behind, counted from that commit
        spool.save_checkpoint(Position(1, 50))
        assert reading("spool_backlog_bytes", root, now).value == float(size - 50)
        # and all of it: nothing behind, no lag
        spool.save_checkpoint(Position(1, size))
        assert reading("spool_backlog_bytes", root, now).value == 0.0
        assert reading("writer_lag_s", root, now + 30_000).value == 0.0
    finally:
        writer.close()
