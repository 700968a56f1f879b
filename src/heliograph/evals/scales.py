"""The scale a judge answers on: 0-1, an integer range, pass/fail, or named categories.

Declared with an ``llm_judge`` evaluator (``specs``) and read back by ``judge_parse``; kept as
the JSON the spec stores (``"1-5"``, ``"pass/fail"``, ``["correct", "incorrect"]``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

MAX_CATEGORIES = 50
MAX_CATEGORY = 100
MAX_RANGE = 1_000_000
RANGE = re.compile(r"([0-9]{1,7})\s*-\s*([0-9]{1,7})")


class ScaleError(ValueError):
    """A scale declaration that is not one of 0-1, N-M, pass/fail or a list of categories."""


@dataclass(frozen=True, slots=True)
class Scale:
    """What a judge is asked to answer: ``unit`` (0-1), ``range`` (integers ``low`` to
    ``high``), ``pass_fail`` or ``categories``."""

    kind: Literal["unit", "range", "pass_fail", "categories"]
    low: int = 0
    high: int = 1
    categories: tuple[str, ...] = ()

    @property
    def numeric(self) -> bool:
        return self.kind in ("unit", "range")

    def describe(self) -> str:
        if self.kind == "categories":
            return "one of " + ", ".join(self.categories)
        return "pass/fail" if self.kind == "pass_fail" else f"{self.low}-{self.high}"

    def to_json(self) -> str | list[str]:
        return list(self.categories) if self.kind == "categories" else self.describe()


def parse_scale(value: object) -> Scale:
    """``"0-1"``, ``"1-5"`` (any integers low < high), ``"pass/fail"`` or a list of 2 to 50
    distinct category names; raises ScaleError."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("0-1", "0.0-1.0"):
            return Scale("unit")
        if text in ("pass/fail", "pass_fail", "pass-fail"):
            return Scale("pass_fail")
        match = RANGE.fullmatch(text)
        if match and int(match[1]) < int(match[2]) <= MAX_RANGE:
            return Scale("range", int(match[1]), int(match[2]))
    elif isinstance(value, list) and 2 <= len(value) <= MAX_CATEGORIES:
        ok = all(
            isinstance(c, str) and 0 < len(c.strip()) <= MAX_CATEGORY and re.search(r"\w", c)
            for c in value
        )
        keys = {category_key(c) for c in value} if ok else set()
        if ok and len(keys) == len(value):
            return Scale("categories", categories=tuple(c.strip() for c in value))
    raise ScaleError(
        'must be "0-1", an integer range such as "1-5", "pass/fail", '
        f"or a list of 2 to {MAX_CATEGORIES} distinct category names"
    )


def category_key(name: str) -> str:
    return " ".join(re.split(r"[\s_-]+", name.strip().lower()))
