"""The difference between two versions of a prompt: messages word by word, then the settings.

Messages pair up by position (a version's messages are an ordered conversation, so the
second message of one is compared with the second of the other); a role change is shown as
such. Model, upstream, each parameter and each variable's default are compared as JSON text,
so ``0.2`` against ``0.20`` is no change and a tool list shows what moved inside it. Every
piece is text the template escapes.

Any viewer can ask for the diff of any two versions, and a version holds up to 200 messages of
256 K characters, while difflib's matcher costs up to the cube of the tokens it compares: two
4,000-token messages of repetitive text (a JSON example, a table) took minutes of CPU on the
event loop the gateway shares. So the work is bounded per page (``Budget``): two texts are
compared word by word when their size fits what is left of the budget; else their common
prefix and suffix are taken off (a typical edit leaves only a few words between them) and
the rest is compared word by word if it fits, else line by line, else shown whole as
removed and added.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from itertools import zip_longest
from typing import Any

import orjson

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


@dataclass
class MessageDiff:
    index: int
    old_role: str | None
    new_role: str | None
    pieces: Pieces
    status: str  # "same", "changed", "added" or "removed"


@dataclass
class FieldDiff:
    name: str
    old: str | None  # None: absent on that side
    new: str | None
    pieces: Pieces

    @property
    def changed(self) -> bool:
        return self.old != self.new


@dataclass
class VersionDiff:
    old: int
    new: int
    messages: list[MessageDiff] = field(default_factory=list)
    fields: list[FieldDiff] = field(default_factory=list)

    @property
    def changes(self) -> int:
        return sum(m.status != "same" for m in self.messages) + sum(f.changed for f in self.fields)


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _field(name: str, old: str | None, new: str | None, budget: Budget) -> FieldDiff:
    return FieldDiff(name, old, new, word_diff(old or "", new or "", budget))


def _messages(
    old: list[dict[str, str]], new: list[dict[str, str]], budget: Budget
) -> list[MessageDiff]:
    out = []
    for i, (a, b) in enumerate(zip_longest(old, new)):
        text_a, text_b = (a or {}).get("content", ""), (b or {}).get("content", "")
        role_a, role_b = (a or {}).get("role"), (b or {}).get("role")
        if a is None:
            status = "added"
        elif b is None:
            status = "removed"
        else:
            status = "same" if (role_a, text_a) == (role_b, text_b) else "changed"
        pieces = word_diff(text_a, text_b, budget)
        out.append(MessageDiff(i, role_a, role_b, pieces, status))
    return out


def diff_versions(old: dict[str, Any], new: dict[str, Any]) -> VersionDiff:
    """What changed from version ``old`` to version ``new`` (store rows of both)."""
    out = VersionDiff(old["version"], new["version"])
    budget = Budget()
    out.messages = _messages(old["messages"], new["messages"], budget)
    for name in ("model", "upstream"):
        out.fields.append(_field(name, old[name], new[name], budget))
    for kind in ("params", "variables"):
        a, b = old[kind] or {}, new[kind] or {}
        for key in sorted(set(a) | set(b)):
            out.fields.append(
                _field(
                    f"{kind}.{key}",
                    _json(a[key]) if key in a else None,
                    _json(b[key]) if key in b else None,
                    budget,
                )
            )
    return out


def pick(query: Any, numbers: list[int]) -> tuple[int | None, int | None, str]:
    """The two versions to compare from ``?a=&b=`` (default: the latest and the one before),
    and a notice when a number asked for does not exist."""
    if len(numbers) < 2:
        return None, None, ""
    newest = sorted(numbers, reverse=True)
    a, b, problem = newest[1], newest[0], ""
    for name in ("a", "b"):
        raw = query.get(name)
        if raw is None:
            continue
        if raw.isascii() and raw.isdigit() and int(raw) in numbers:
            if name == "a":
                a = int(raw)
            else:
                b = int(raw)
        else:
            problem = f"There is no version {raw!r} to compare; showing the defaults."
    return a, b, problem
