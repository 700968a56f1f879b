"""The diff of two prompt versions: right, and bounded in the work it does.

Any viewer can ask for the diff of any two versions, and difflib's matcher costs up to the
cube of the tokens it compares; the page shares its event loop with the gateway.
"""

from __future__ import annotations

import time
from typing import Any

from heliograph.web.prompt_diff import diff_versions


def _version(number: int, *texts: str) -> dict[str, Any]:
    return {
        "version": number,
        "messages": [{"role": "system", "content": t} for t in texts],
        "model": "m",
        "upstream": None,
        "params": {},
        "variables": {},
    }


def _sides(pieces: list[tuple[str, str]]) -> tuple[str, str]:
    old = "".join(text for op, text in pieces if op != "ins")
    new = "".join(text for op, text in pieces if op != "del")
    return old, new


def test_a_small_edit_in_a_long_message_is_shown_word_by_word() -> None:
    words = " ".join(f"word{i}" for i in range(5000))
    edited = words.replace("word2500", "changed")
    diff = diff_versions(_version(1, words), _version(2, edited))
    pieces = diff.messages[0].pieces
    assert ("del", "word2500") in pieces
    assert ("ins", "changed") in pieces
    assert _sides(pieces) == (words, edited)


def test_repetitive_versions_are_compared_within_a_bound() -> None:
    # Few distinct tokens: the matcher's worst case (about 14 s per message unbounded).
    old = " ".join("ab"[i % 2] for i in range(1000))
    new = " ".join("ba"[i % 3 == 0] for i in range(1000))
    started = time.perf_counter()
    diff = diff_versions(_version(1, old, old, old), _version(2, new, new, new))
    assert time.perf_counter() - started < 3.0
    for message in diff.messages:
        assert message.status == "changed"
        assert _sides(message.pieces) == (old, new)  # still a true diff, only coarser
