"""The writer process's SIGTERM handling: a regression test for a writer that deadlocked in
its own signal handler (Event.set() while the main thread held the Event's lock inside
stop.wait()) and stayed alive for ever holding the spool lock."""

from __future__ import annotations

import os
import signal
import threading

from heliograph.capture.process import StopAsked, watch


def test_the_handler_takes_no_lock_and_the_watcher_stops_the_writer() -> None:
    stop = threading.Event()
    asked = StopAsked()
    # The state the deadlock needed: the Event's condition held by the thread the handler
    # interrupts (CPython's Event keeps it in _cond). The handler must return at once.
    with stop._cond:  # type: ignore[attr-defined]
        done = threading.Event()
        runner = threading.Thread(
            target=lambda: (asked.on_signal(signal.SIGTERM, None), done.set())
        )
        runner.start()
        assert done.wait(2.0), "the signal handler blocked on the Event's lock"
    assert not stop.is_set()
    watcher = threading.Thread(target=watch, args=(stop, asked, os.getppid()))
    watcher.start()
    assert stop.wait(5.0) and watcher.join(5.0) is None and not watcher.is_alive()


def test_the_watcher_stops_a_writer_whose_server_is_gone() -> None:
    stop = threading.Event()
    watcher = threading.Thread(target=watch, args=(stop, StopAsked(), -1))  # not our parent
    watcher.start()
    assert stop.wait(5.0)
    watcher.join(5.0)
    assert not watcher.is_alive()
