"""What an evaluator returns: a ``Score``, or an ``EvaluatorError`` when it could not score.

The two are distinct on purpose. A bad output earns a failing or low score; an evaluator that
cannot do its job (no expected output to compare with, a judge answer that cannot be read, a
regular expression that ran out of time, a request that failed) returns an error, which a
summary counts apart and never averages in as a zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

ScoreKind = Literal["boolean", "number", "label"]


@dataclass(frozen=True, slots=True)
class Score:
    """A value with its type tag and a reason a person reads.

    ``kind`` says how to read ``value``: ``boolean`` (pass/fail, ``passed`` equals it),
    ``number`` (``passed`` set only when the evaluator has a threshold) or ``label`` (a
    category; ``passed`` unset).
    """

    value: float | bool | str
    kind: ScoreKind
    reason: str
    passed: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "kind": self.kind,
            "reason": self.reason,
            "passed": self.passed,
        }


@dataclass(frozen=True, slots=True)
class EvaluatorError:
    """An outcome (returned, never raised): the evaluator could not score, and why."""

    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.reason}


Outcome = Score | EvaluatorError


def verdict(passed: bool, reason: str) -> Score:
    """A pass/fail score."""
    return Score(passed, "boolean", reason, passed)


def quote(text: str, limit: int = 60) -> str:
    """``text`` as a short Python-style literal for a reason ('…' when cut)."""
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")
