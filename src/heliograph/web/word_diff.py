"""A word-level diff of two texts, with a bound on the work.

Any viewer can ask for a diff (two prompt versions, a request and its replay, two outputs of
an experiment), and difflib's matcher costs up to the cube of the tokens it compares: two
4,000-token texts of repetitive content (a JSON example, a table) took minutes of CPU on the
event loop the gateway shares. So the work is bounded per page (``Budget``): two texts are
compared word by word when their size fits what is left of the budget; else their common
prefix and suffix are taken off (a typical edit leaves only a few words between them) and
the rest is compared word by word if it fits, else line by line, else shown whole as
removed and added. Every piece is text the template escapes.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

Pieces = list[tuple[str, str]]
WORDS = re.compile(r"\s+|\w+|[^\w\s]")  # Replay's words: runs of space, words, signs
# Pairs of tokens (or lines) the matcher may compare for one page: the matcher's worst case
# on that many pairs stays well under a second.
DIFF_BUDGET = 250_000


@dataclass
class Budget:
    """What is left of one page's comparison work (pairs of tokens or lines)."""

    left: int = DIFF_BUDGET

    def take(self, a: int, b: int) -> bool:
        if a * b > self.left:
            return False
        self.left -= a * b
        return True


def _ops(a: list[str], b: list[str], out: Pieces) -> None:
    """Append the pieces that turn ``a`` into ``b`` (sequences of tokens or lines)."""
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            out.append(("same", "".join(a[i1:i2])))
            continue
        if i2 > i1:
            out.append(("del", "".join(a[i1:i2])))
        if j2 > j1:
            out.append(("ins", "".join(b[j1:j2])))


def word_diff(old: str, new: str, budget: Budget) -> Pieces:
    """(op, text) pieces from ``old`` to ``new``, op "same", "del" or "ins", within
    ``budget``: word by word where it allows, else line by line, else whole."""
    if old == new:
        return [("same", old)] if old else []
    a, b = WORDS.findall(old), WORDS.findall(new)
    out: Pieces = []
    if budget.take(len(a), len(b)):  # small enough: the whole, as Replay compares
        _ops(a, b, out)
        return out
    shortest = min(len(a), len(b))
    head = 0
    while head < shortest and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < shortest - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    mid_a, mid_b = a[head : len(a) - tail], b[head : len(b) - tail]
    if head:
        out.append(("same", "".join(a[:head])))
    if budget.take(len(mid_a), len(mid_b)):
        _ops(mid_a, mid_b, out)
    else:
        lines_a = "".join(mid_a).splitlines(keepends=True)
        lines_b = "".join(mid_b).splitlines(keepends=True)
        if budget.take(len(lines_a), len(lines_b)):
            _ops(lines_a, lines_b, out)
        else:
            if mid_a:
                out.append(("del", "".join(mid_a)))
            if mid_b:
                out.append(("ins", "".join(mid_b)))
    if tail:
        out.append(("same", "".join(a[len(a) - tail :])))
    return out
