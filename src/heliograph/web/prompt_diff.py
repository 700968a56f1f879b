"""The difference between two versions of a prompt: messages word by word, then the settings.

Messages pair up by position (a version's messages are an ordered conversation, so the
second message of one is compared with the second of the other); a role change is shown as
such. Model, upstream, each parameter and each variable's default are compared as JSON text,
so ``0.2`` against ``0.20`` is no change and a tool list shows what moved inside it. Every
piece is text the template escapes.

Any viewer can ask for the diff of any two versions, and a version holds up to 200 messages of
256 K characters, so one ``Budget`` (``web.word_diff``) bounds the work of the whole page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import zip_longest
from typing import Any

import orjson

from heliograph.web.word_diff import Budget, Pieces, word_diff


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
