"""Reading an LLM judge's answer into its declared scale, or refusing to guess.

A judge is asked for a score and usually gives one, but in many shapes: JSON (bare or in a
fenced block), ``Score: 4/5``, ``4 out of 5``, ``**PASS**``, ``Verdict: fail``, a category
named in a sentence, each with reasoning around it. ``parse_judgement`` reads them in order of
how deliberate they are, and stops at the first kind of evidence it finds:

1. a JSON object with a score-like key (``score``, ``rating``, ``verdict``, ``label``...);
2. a labelled or emphasised verdict (``Score: 4``, ``I'd give it a 4``, ``4/5``,
   ``Verdict: fail``, ``**PASS**``, ``Category: correct``);
3. the first or last line holding nothing but a verdict (``4``, ``PASS``);
4. for categories only, the one category named in the prose (whole words, case-insensitive).

Anything it cannot read for sure raises ``JudgeParseError``: two different verdicts ("I'd give
it 4, not 2"), a value outside the scale ("6" on 1-5, "8/10" on 1-5), a negated category
("not toxic"), or nothing at all. That error is an evaluator error, never a zero: a
misread judgement would be worse than none.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from heliograph.evals.scales import Scale, ScaleError, category_key, parse_scale

__all__ = [
    "JudgeParseError",
    "Judgement",
    "Scale",
    "ScaleError",
    "parse_judgement",
    "parse_scale",
]

MAX_ANSWER = 100_000  # characters of a judge's answer read at all
MAX_JSON_STARTS = 20  # '{' positions tried as the start of a JSON object
MAX_REASON = 2000
T = TypeVar("T")

NUM = r"[-+]?(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)"
_SP = r"[^\S\n]*"  # spaces and tabs, never a line break
_OUT_OF = rf"{_SP}\(?{_SP}(?:/|out{_SP}of\b){_SP}(?P<den>{NUM})\)?"
_NUMBER = rf"(?<![\w.])(?P<num>{NUM})(?P<pct>%)?(?![\w]|\.[0-9])(?:{_OUT_OF})?"
_LABEL = r"(?:final|overall|total)?\s*(?:score|rating|grade|mark|points?)"
_LINK = rf"{_SP}(?:\([^)\n]{{0,20}}\){_SP})?(?:[:=]|-(?![0-9])|\u2013|\u2014|\bis\b|\bof\b|\bwas\b|\bwould\s+be\b|\bshould\s+be\b)?{_SP}"
_VERB = (
    r"\b(?:give|gave|giving|rate|rated|assign|assigned|award|awarded|scored?)\b"
    r"(?:\s+(?:it|this|the|that|response|answer|output|reply|a|an|at|as|solid|strong|low|high))*"
)
LABELLED_NUMBER = re.compile(rf"(?:\b{_LABEL}\b{_LINK}|{_VERB}{_SP}[:=]?{_SP}){_NUMBER}", re.I)
FRACTION = re.compile(
    rf"(?<![\w.])(?P<num>{NUM})(?P<pct>){_SP}(?:/|out{_SP}of\b){_SP}(?P<den>{NUM})(?![\w]|\.[0-9])",
    re.I,
)
ALTERNATIVE = re.compile(
    rf"{_SP}[,;]?{_SP}(?:or|to|and|not|nor|rather\s+than|instead\s+of|maybe|perhaps|possibly|"
    rf"-|\u2013|~){_SP}(?:an?\s+)?(?:{NUM})(?![\w])",
    re.I,
)
BARE_NUMBER = re.compile(rf"{_NUMBER}", re.I)
_VERDICT_LABEL = (
    r"\b(?:final\s+)?(?:verdict|result|grade|decision|evaluation|assessment|judge?ment|"
    r"conclusion|outcome|answer|status|label|category|classification|class|rating)\b"
)
_VERDICT_WORD = r"(?P<word>pass(?:es|ed|ing)?|fail(?:s|ed|ing|ure)?)"
LABELLED_PASS = re.compile(
    rf"{_VERDICT_LABEL}{_SP}[:=\-\u2013\u2014]?{_SP}(?:is\s+)?{_VERDICT_WORD}(?![\w-])", re.I
)
EMPHASISED_PASS = re.compile(rf"(?:\*\*|__|\[){_SP}{_VERDICT_WORD}{_SP}[.!]?(?:\*\*|__|\])", re.I)
SHOUTED_PASS = re.compile(r"(?<![\w-])(?P<word>PASS(?:ED)?|FAIL(?:ED)?)(?![\w-])")
NEGATION = re.compile(r"(?:\b(?:not|never|no|neither|nor)|n't)\s+(?:\w+\s+)?$", re.I)
REASON = re.compile(
    r"^[^\S\n]*[*#]*[^\S\n]*(?:reason|reasoning|explanation|rationale|justification)[*]*"
    r"[^\S\n]*[:\-\u2013\u2014][*]*[^\S\n]*(?P<reason>\S.*)",
    re.I | re.M | re.S,
)
SCORE_KEYS = (
    "score", "rating", "grade", "verdict", "result", "label", "category", "classification",
    "pass", "passed", "decision", "judgement", "judgment", "evaluation", "value", "answer",
)  # fmt: skip
REASON_KEYS = (
    "reason", "reasoning", "explanation", "rationale", "justification", "comment",
    "comments", "feedback", "critique", "analysis",
)  # fmt: skip
PASS_WORDS = {"pass": True, "passed": True, "yes": True, "true": True}
FAIL_WORDS = {"fail": False, "failed": False, "no": False, "false": False}


class JudgeParseError(ValueError):
    """The judge's answer holds no single verdict on the scale (an evaluator error)."""


@dataclass(frozen=True, slots=True)
class Judgement:
    """A judge's verdict on its scale: a float (0-1 or a range), a bool (pass/fail) or the
    category as declared; the judge's stated reason when it gave one."""

    value: float | bool | str
    reason: str | None


def parse_judgement(text: str, scale: Scale | str | Sequence[str]) -> Judgement:
    """The judge's verdict in ``text`` on ``scale``; raises JudgeParseError when it cannot
    be read for sure (and ScaleError for a scale that is not one)."""
    if not isinstance(scale, Scale):
        scale = parse_scale(list(scale) if not isinstance(scale, str) else scale)
    if not isinstance(text, str):
        raise JudgeParseError("the answer is not text")
    if len(text) > MAX_ANSWER:
        raise JudgeParseError(f"the answer is longer than {MAX_ANSWER} characters")
    text = text.strip()
    if not text:
        raise JudgeParseError("the answer is empty")
    found = _from_json(text, scale)
    if found is not None:
        return found
    value, verdict_line = _from_prose(text, scale)
    return Judgement(value, _prose_reason(text, verdict_line))


# JSON


def _json_objects(text: str) -> Iterator[dict[str, Any]]:
    """Objects in fenced code blocks, then objects starting at the first few '{'."""
    decoder = json.JSONDecoder(parse_constant=_no_constant)
    starts = 0
    at = text.find("{")
    while at >= 0 and starts < MAX_JSON_STARTS:
        starts += 1
        try:
            doc, end = decoder.raw_decode(text, at)
        except (ValueError, RecursionError):
            at = text.find("{", at + 1)
            continue
        if isinstance(doc, dict):
            yield doc
            for inner in doc.values():  # {"evaluation": {"score": 4, ...}}
                if isinstance(inner, dict):
                    yield inner
        at = text.find("{", end)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a score")


def _from_json(text: str, scale: Scale) -> Judgement | None:
    """The verdict of the JSON objects in the answer that hold one (None if none does)."""
    found: list[float | bool | str] = []
    reasons: list[str] = []
    for doc in _json_objects(text):
        keys = {str(k).lower(): v for k, v in doc.items()}
        values = [
            _coerce(keys[k], scale)
            for k in SCORE_KEYS
            if k in keys and not isinstance(keys[k], dict | list)
        ]
        readable = [v for v in values if not isinstance(v, JudgeParseError)]
        errors = [v for v in values if isinstance(v, JudgeParseError)]
        if errors and not readable:
            raise errors[0]
        found += readable
        reasons += [keys[k] for k in REASON_KEYS if isinstance(keys.get(k), str) and keys[k]]
    if not found:
        return None
    return Judgement(_single(found), _clip(reasons[0]) if reasons else None)


def _coerce(value: Any, scale: Scale) -> float | bool | str | JudgeParseError:
    """A JSON value on the scale, or the error saying why it is not (returned, not raised)."""
    try:
        if scale.kind == "pass_fail":
            if isinstance(value, bool):
                return value
            if isinstance(value, str):
                word = value.strip().strip(".!").lower()
                if word in PASS_WORDS or word in FAIL_WORDS:
                    return PASS_WORDS.get(word, False)
            return JudgeParseError(f"{_show(value)} is not pass or fail")
        if scale.kind == "categories":
            if isinstance(value, str):
                for category in scale.categories:
                    if category_key(category) == category_key(value):
                        return category
            return JudgeParseError(f"{_show(value)} is not {scale.describe()}")
        if isinstance(value, int | float) and not isinstance(value, bool):
            return _on_scale(float(value), None, False, scale, str(value))
        if isinstance(value, str):
            return _number_in_text(value.strip(), scale)
        return JudgeParseError(f"{_show(value)} is not a score on the {scale.describe()} scale")
    except JudgeParseError as exc:
        return exc


# Prose


def _from_prose(text: str, scale: Scale) -> tuple[float | bool | str, str | None]:
    """The verdict and, when it stood on a line of its own, that line."""
    if scale.numeric:
        return _prose_number(text, scale)
    if scale.kind == "pass_fail":
        return _prose_pass(text)
    return _prose_category(text, scale)


def _prose_number(text: str, scale: Scale) -> tuple[float, str | None]:
    plain = _plain(text)
    values: list[float] = []
    for match in LABELLED_NUMBER.finditer(plain):
        alternative = ALTERNATIVE.match(plain, match.end())
        if alternative:
            raise JudgeParseError(
                f"the answer gives more than one score: {match[0].strip()!r}"
                f" then {alternative[0].strip()!r}"
            )
        values.append(_on_match(match, scale))
    if scale.kind == "range":
        for match in FRACTION.finditer(plain):
            if _number(match["den"]) == scale.high:
                values.append(_on_match(match, scale))
    if values:
        return float(_single(values)), None
    return _bare_line(plain, scale)


def _bare_line(plain: str, scale: Scale) -> tuple[float, str | None]:
    found: list[tuple[float, str]] = []
    for line in _edge_lines(plain):
        match = BARE_NUMBER.fullmatch(line)
        if match:
            found.append((_on_match(match, scale), line))
    if not found:
        raise JudgeParseError(f"no score on the {scale.describe()} scale found in the answer")
    value = float(_single(v for v, _ in found))
    return value, found[0][1]


def _number_in_text(text: str, scale: Scale) -> float:
    """A JSON string holding a score: ``"4"``, ``"4/5"``, ``"80%"``."""
    match = BARE_NUMBER.fullmatch(text.rstrip("."))
    if match is None:
        raise JudgeParseError(f"{text[:40]!r} is not a score on the {scale.describe()} scale")
    return _on_match(match, scale)


def _on_match(match: re.Match[str], scale: Scale) -> float:
    den = match.groupdict().get("den")
    return _on_scale(
        _number(match["num"]),
        None if den is None else _number(den),
        bool(match.groupdict().get("pct")),
        scale,
        match[0].strip(),
    )


def _on_scale(value: float, den: float | None, percent: bool, scale: Scale, shown: str) -> float:
    """``value`` (``/den``, ``%``) checked against the scale."""
    if percent or den is not None:
        if scale.kind == "range" and den == scale.high and not percent:
            den = None
        elif scale.kind == "unit" and (percent or (den is not None and den > 0)):
            value = value / (100 if percent else den or 1)
            den = None
        else:
            raise JudgeParseError(f"{shown!r} is not on the {scale.describe()} scale")
    if not math.isfinite(value) or not scale.low <= value <= scale.high:
        raise JudgeParseError(f"{shown!r} is outside the {scale.describe()} scale")
    if scale.kind == "range" and value != int(value):
        raise JudgeParseError(f"{shown!r} is not a whole number on the {scale.describe()} scale")
    return value


def _prose_pass(text: str) -> tuple[bool, str | None]:
    plain = _plain(text)
    words = [m["word"] for m in LABELLED_PASS.finditer(plain)]
    words += [m["word"] for m in EMPHASISED_PASS.finditer(text)]
    words += [m["word"] for m in SHOUTED_PASS.finditer(text)]
    if words:
        return _single(_passes(w) for w in words), None
    found = [(line, _passes(line)) for line in _edge_lines(plain) if _is_pass_word(line)]
    if not found:
        raise JudgeParseError("no pass or fail verdict found in the answer")
    return _single(v for _, v in found), found[0][0]


def _is_pass_word(word: str) -> bool:
    return re.fullmatch(_VERDICT_WORD, word, re.I) is not None


def _passes(word: str) -> bool:
    return word.lower().startswith("pass")


def _prose_category(text: str, scale: Scale) -> tuple[str, str | None]:
    pattern = _category_pattern(scale)
    plain = _plain(text)
    labelled = re.compile(
        rf"{_VERDICT_LABEL}{_SP}[:=\-\u2013\u2014]?{_SP}(?:is\s+)?{pattern.pattern}", re.I
    )
    emphasised = re.compile(rf"(?:\*\*|__|\[){_SP}{pattern.pattern}{_SP}[.!]?(?:\*\*|__|\])", re.I)
    found = [_canonical(m, scale) for m in labelled.finditer(plain)]
    found += [_canonical(m, scale) for m in emphasised.finditer(text)]
    if found:
        return _single(found), None
    alone = [m for line in _edge_lines(plain) if (m := pattern.fullmatch(line))]
    if alone:
        return _single(_canonical(m, scale) for m in alone), alone[0][0]
    matches = list(pattern.finditer(plain))
    for match in matches:
        if NEGATION.search(plain, max(0, match.start() - 30), match.start()):
            raise JudgeParseError(f"the answer negates {match[0]!r}")
    if not matches:
        raise JudgeParseError(f"none of the categories ({scale.describe()}) found in the answer")
    return _single(_canonical(m, scale) for m in matches), None


def _category_pattern(scale: Scale) -> re.Pattern[str]:
    """Every category as a whole word, longest first, separators loose ('partially_correct'
    reads 'Partially correct'), in one group per category."""
    order = sorted(range(len(scale.categories)), key=lambda i: -len(scale.categories[i]))
    parts = []
    for i in order:
        words = re.split(r"[\s_-]+", scale.categories[i].strip())
        parts.append(f"(?P<c{i}>" + r"[\s_-]+".join(map(re.escape, words)) + ")")
    return re.compile(r"(?<![\w-])(?:" + "|".join(parts) + r")(?![\w-])", re.I)


def _canonical(match: re.Match[str], scale: Scale) -> str:
    for name, value in match.groupdict().items():
        if value is not None and name.startswith("c") and name[1:].isdigit():
            return scale.categories[int(name[1:])]
    raise JudgeParseError("no category matched")  # pragma: no cover - every group is a c<i>


# Shared


def _single(values: Iterable[T]) -> T:
    """The one distinct value, or the ambiguity as an error."""
    distinct: list[T] = []
    for value in values:
        if value not in distinct:
            distinct.append(value)
    if len(distinct) > 1:
        shown = " and ".join(_show(v) for v in distinct[:3])
        raise JudgeParseError(f"the answer gives more than one verdict: {shown}")
    return distinct[0]


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "pass" if value else "fail"
    if isinstance(value, float) and value == int(value):
        return str(int(value))
    text = str(value) if not isinstance(value, str) else repr(value)
    return text[:40]


def _number(text: str) -> float:
    return float(text)  # finite: NUM has no exponent and no name


def _edge_lines(plain: str) -> list[str]:
    """The first and the last non-blank line (one if they are the same), without a final
    full stop; none for a blank answer."""
    lines = [line.strip().rstrip(".!") for line in plain.splitlines() if line.strip()]
    return list(dict.fromkeys((lines[0], lines[-1]))) if lines else []


def _plain(text: str) -> str:
    """The answer without markdown emphasis, headings and code marks."""
    return re.sub(r"[*`#]+", "", text)


def _prose_reason(text: str, verdict_line: str | None) -> str | None:
    match = REASON.search(_plain(text))
    if match:
        return _clip(match["reason"].strip())
    if verdict_line is not None:
        rest = [
            line
            for line in _plain(text).splitlines()
            if line.strip() and line.strip().rstrip(".!") != verdict_line
        ]
        return _clip("\n".join(rest).strip()) or None
    return None


def _clip(text: str | None) -> str | None:
    if text is None or len(text) <= MAX_REASON:
        return text
    return text[: MAX_REASON - 1] + "…"
