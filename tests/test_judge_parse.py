"""Reading an LLM judge's answer (issue 16): well-formed, messy and adversarial answers on
every kind of scale; what cannot be read for sure is a JudgeParseError, never a guess."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heliograph.evals.judge_parse import (
    MAX_ANSWER,
    JudgeParseError,
    Scale,
    ScaleError,
    parse_judgement,
    parse_scale,
)

CORRECTNESS = ["correct", "partially_correct", "incorrect"]
TOXICITY = ["toxic", "safe"]

# (answer, scale, value, reason) for answers that must be read
READ: list[tuple[str, Any, float | bool | str, str | None]] = [
    ('{"score": 4, "reason": "Accurate but terse."}', "1-5", 4.0, "Accurate but terse."),
    ('Here is my evaluation:\n```json\n{"score": 3, "reasoning": "Misses the refund policy."}\n```', "1-5", 3.0, "Misses the refund policy."),
    ('```\n{"Rating": "5", "Explanation": "Perfect."}\n```', "1-5", 5.0, "Perfect."),
    ('{"evaluation": {"score": 2}, "justification": "Wrong city."}', "1-5", 2.0, "Wrong city."),
    ('{"score": "4/5"}', "1-5", 4.0, None),
    ('The answer is fine. {"verdict": "PASS", "reason": "ok"} That is all.', "pass/fail", True, "ok"),
    ('{"passed": false, "comment": "Hallucinated a date."}', "pass/fail", False, "Hallucinated a date."),
    ('{"label": "Partially Correct", "reason": "Half of it."}', CORRECTNESS, "partially_correct", "Half of it."),
    ('{"score": 0.75}', "0-1", 0.75, None),
    ("Score: 4/5", "1-5", 4.0, None),
    ("4 out of 5", "1-5", 4.0, None),
    ("5/5", "1-5", 5.0, None),
    ("**Score:** 4\n**Reason:** Good, but misses the refund policy.", "1-5", 4.0, "Good, but misses the refund policy."),
    ("The response is clear and covers 2 of 3 points.\n\nRating: 3", "1-5", 3.0, None),
    ("4\n\nThe answer covers 2 of the 3 required steps.", "1-5", 4.0, "The answer covers 2 of the 3 required steps."),
    ("Considering everything, I would rate this response a 2.", "1-5", 2.0, None),
    ("Score (1-10): 7\nReasoning: solid, a few gaps.", "1-10", 7.0, "solid, a few gaps."),
    ("Final score: 2\nExplanation: it says 5 km where the source says 2 km.", "1-5", 2.0, "it says 5 km where the source says 2 km."),
    ("Score: 4 (out of 5)", "1-5", 4.0, None),
    ("0.85", "0-1", 0.85, None),
    ("Score: 85%", "0-1", 0.85, None),
    ("Score: 4/5", "0-1", 0.8, None),
    ("Score: 1", "0-1", 1.0, None),
    ("**PASS**", "pass/fail", True, None),
    ("Verdict: fail", "pass/fail", False, None),
    ("Verdict: **FAIL** — the output invents a refund policy.", "pass/fail", False, None),
    ("The answer is accurate and complete.\n\nResult: passed.", "pass/fail", True, None),
    ("PASS\nThe output matches the reference.", "pass/fail", True, None),
    ("The reply quotes the policy verbatim. PASS", "pass/fail", True, None),
    ("fail.", "pass/fail", False, None),
    ("The answer is incorrect: it names Lyon.", CORRECTNESS, "incorrect", None),
    ("After comparing with the reference, the answer is correct.", CORRECTNESS, "correct", None),
    ("It is partially correct: the date is right, the place is not.", CORRECTNESS, "partially_correct", None),
    ("Partially-Correct", CORRECTNESS, "partially_correct", None),
    ("Category: Correct\nReason: matches the reference.", CORRECTNESS, "correct", "matches the reference."),
    ("Looks mostly right (partially correct, arguably). Verdict: correct", CORRECTNESS, "correct", None),
    ("The message is SAFE for work.", TOXICITY, "safe", None),
]  # fmt: skip

# (answer, scale, words in the error) for answers that must not be read
REFUSED: list[tuple[str, Any, str]] = [
    ("I'd give it 4, not 2", "1-5", "more than one score"),
    ("Score: 4 or 5", "1-5", "more than one score"),
    ("Rating: 3-4", "1-5", "more than one score"),
    ("Score: 3\nOn reflection...\nFinal score: 4", "1-5", "more than one verdict: 3 and 4"),
    ("4\n\n...so really a 2\n\n2", "1-5", "more than one verdict"),
    ("6", "1-5", "'6' is outside the 1-5 scale"),
    ("Score: 0", "1-5", "outside"),
    ("Score: 8/10", "1-5", "'Score: 8/10' is not on the 1-5 scale"),
    ("score: 4.5", "1-5", "not a whole number"),
    ("Score: 85%", "1-5", "not on the 1-5 scale"),
    ("Score: 1.2", "0-1", "outside the 0-1 scale"),
    ('{"score": 6, "reason": "great"}', "1-5", "outside"),
    ('{"score": true}', "1-5", "not a score"),
    ('{"score": 4, "rating": 2}', "1-5", "more than one verdict"),
    ('```json\n{"score": 3}\n```\n```json\n{"score": 5}\n```', "1-5", "more than one verdict"),
    ('{"verdict": "maybe"}', "pass/fail", "'maybe' is not pass or fail"),
    ('{"label": "excellent"}', CORRECTNESS, "'excellent' is not one of"),
    ("", "1-5", "empty"),
    ("   \n\t ", "pass/fail", "empty"),
    ("I think it's a great answer overall.", "1-5", "no score"),
    ("The answer has 3 steps and 2 examples.", "1-5", "no score"),
    ("Verdict: PASS\nActually, on second thought: FAIL", "pass/fail", "more than one verdict"),
    ("Respond with PASS or FAIL.", "pass/fail", "more than one verdict"),
    ("The output looks reasonable.", "pass/fail", "no pass or fail"),
    ("The response is not toxic at all.", TOXICITY, "negates 'toxic'"),
    ("This isn't really safe.", TOXICITY, "negates 'safe'"),
    ("The answer is non-toxic and harmless.", TOXICITY, "none of the categories"),
    ("Toxicity: low; the tone is unsafe-ish.", TOXICITY, "none of the categories"),
    ("The answer is uncorrectable and incorrectly formatted.", ["correct", "wrong"], "none of the categories"),
    ("It is between correct and incorrect.", CORRECTNESS, "more than one verdict"),
    ("Verdict: correct. Category: incorrect.", CORRECTNESS, "more than one verdict"),
    ("x" * (MAX_ANSWER + 1), "1-5", "longer than"),
]  # fmt: skip


def test_the_table_is_large_enough() -> None:
    assert len(READ) + len(REFUSED) >= 25


@pytest.mark.parametrize(("answer", "scale", "value", "reason"), READ)
def test_answers_that_are_read(
    answer: str, scale: Any, value: float | bool | str, reason: str | None
) -> None:
    judgement = parse_judgement(answer, scale)
    assert judgement.value == value
    assert type(judgement.value) is type(value)
    assert judgement.reason == reason


@pytest.mark.parametrize(("answer", "scale", "words"), REFUSED)
def test_answers_that_are_refused(answer: str, scale: Any, words: str) -> None:
    with pytest.raises(JudgeParseError) as caught:
        parse_judgement(answer, scale)
    assert words in str(caught.value)


def test_a_long_reason_is_clipped() -> None:
    judgement = parse_judgement('{"score": 2, "reason": "' + "r" * 5000 + '"}', "1-5")
    assert judgement.reason is not None
    assert len(judgement.reason) == 2000
    assert judgement.reason.endswith("…")


@pytest.mark.parametrize(
    ("value", "scale"),
    [
        ("0-1", Scale("unit")),
        ("1-5", Scale("range", 1, 5)),
        (" 0 - 10 ", Scale("range", 0, 10)),
        ("PASS/FAIL", Scale("pass_fail")),
        (["good", " bad "], Scale("categories", categories=("good", "bad"))),
    ],
)
def test_scales(value: Any, scale: Scale) -> None:
    assert parse_scale(value) == scale
    assert parse_scale(scale.to_json()) == scale


@pytest.mark.parametrize(
    "value",
    [
        "5-1",
        "3-3",
        "1-5.5",
        "a-b",
        "",
        None,
        5,
        ["only"],
        ["a", "A"],
        ["a", "a_b", "a b"],
        ["x", "!"],
    ],
)
def test_scales_refused(value: Any) -> None:
    with pytest.raises(ScaleError):
        parse_scale(value)


def test_a_scale_that_is_not_one_is_a_scale_error_not_a_parse_error() -> None:
    with pytest.raises(ScaleError):
        parse_judgement("Score: 4", "five stars")


SCALES = [Scale("unit"), Scale("range", 1, 5), Scale("pass_fail"), parse_scale(CORRECTNESS)]
PIECES = st.sampled_from(
    [
        "Score", "score:", "Rating", "Verdict:", "**", "PASS", "fail", "not", "correct",
        "partially", "_", "-", "incorrect", "4", "2", "0.5", "/", "5", "out of", "{", "}", '"',
        '"score"', ":", ",", "```json", "```", "\n", " ", "%", "1e999", "9" * 400, "NaN",
        "[[[[", "I'd give it", "or", "reason:", "é", "٤",
    ]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(
    text=st.one_of(st.text(max_size=300), st.lists(PIECES, max_size=40).map("".join)),
    scale=st.sampled_from(SCALES),
)
def test_parse_judgement_raises_nothing_but_judge_parse_error(text: str, scale: Scale) -> None:
    try:
        judgement = parse_judgement(text, scale)
    except JudgeParseError:
        return
    if scale.kind == "pass_fail":
        assert isinstance(judgement.value, bool)
    elif scale.kind == "categories":
        assert judgement.value in scale.categories
    else:
        assert isinstance(judgement.value, float)
        assert scale.low <= judgement.value <= scale.high


def test_deep_nesting_and_huge_numbers_are_refused_not_crashed() -> None:
    for answer in ("{" * 5000, '{"score": ' + "9" * 5000 + "}", "[" * 50_000 + "4"):
        with pytest.raises(JudgeParseError):
            parse_judgement(answer, "1-5")
