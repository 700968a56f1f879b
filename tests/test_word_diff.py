"""The bounded word diff every diff page shares (prompt versions, replays, experiment
outputs): exact word by word when small, never stalling the event loop when large."""

from __future__ import annotations

import time

from heliograph.web.word_diff import Budget, word_diff


def rebuild(pieces: list[tuple[str, str]]) -> tuple[str, str]:
    old = "".join(t for op, t in pieces if op in ("same", "del"))
    new = "".join(t for op, t in pieces if op in ("same", "ins"))
    return old, new


def test_small_texts_word_by_word() -> None:
    pieces = word_diff("the quick brown fox", "the slow brown fox", Budget())
    assert ("del", "quick") in pieces and ("ins", "slow") in pieces
    assert rebuild(pieces) == ("the quick brown fox", "the slow brown fox")


def test_repetitive_replay_outputs_stay_fast_and_faithful() -> None:
    # Replay compares an output with its replay's: repetitive JSON made difflib take minutes.
    old = '{"a": 1, "b": [1, 2, 3]}, ' * 3000
    new = '{"a": 1, "b": [1, 2, 4]}, ' * 3000
    started = time.process_time()
    pieces = word_diff(old, new, Budget())
    assert time.process_time() - started < 3.0
    assert rebuild(pieces) == (old, new)
