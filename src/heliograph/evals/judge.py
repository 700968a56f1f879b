"""LLM-as-judge, the parts that need no model: the rubric's messages and the answer's score.

A judge is a managed prompt version (``prompts.versions``) whose messages use ``{{input}}``,
``{{output}}`` and ``{{expected}}``. ``judge_messages`` fills them from an observation: the
input as ``role: text`` blocks (or the prompt variables as ``name: value`` lines), the output
with its tool calls written ``[tool call name: arguments]`` as the exports write them, the
expected output as it is. Each is cut to ``MAX_FIELD_BYTES`` with a visible marker, so the
three fit the renderer's 64 KiB bound on inputs. A rubric that uses ``{{expected}}`` without
a default, given an observation with no expected output, raises ``JudgeInputError``.

``judge_outcome`` turns the judge's answer into a ``Score`` on the declared scale, or an
``EvaluatorError`` when the answer cannot be read (never a zero). Calling the model, through
the gateway and recorded as a judge call, is the experiment runner's business.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from heliograph.evals.judge_parse import (
    Judgement,
    JudgeParseError,
    Scale,
    parse_judgement,
    parse_scale,
)
from heliograph.evals.observation import Observation
from heliograph.evals.scores import EvaluatorError, Outcome, Score
from heliograph.prompts.templates import InputError
from heliograph.prompts.versions import Version, render

MAX_FIELD_BYTES = 21_000  # three fields and their marks stay under MAX_INPUT_BYTES (64 KiB)


class JudgeInputError(ValueError):
    """The rubric cannot be filled from this observation (the message says which variable)."""


def _cut(text: str) -> str:
    data = text.encode()
    if len(data) <= MAX_FIELD_BYTES:
        return text
    head = data[:MAX_FIELD_BYTES].decode("utf-8", "ignore")
    return f"{head}\n[… cut: {len(text) - len(head):,} more characters]"


def output_text(observation: Observation) -> str:
    """The output and its tool calls, as a judge reads them."""
    pieces = [observation.output] if observation.output else []
    for call in observation.tool_calls:
        arguments = call.arguments
        if not isinstance(arguments, str):
            arguments = orjson.dumps(arguments, default=str).decode()
        pieces.append(f"[tool call {call.name or 'tool'}: {arguments}]")
    return "\n".join(pieces)


def judge_inputs(observation: Observation) -> dict[str, str]:
    """``input``, ``output`` and (when known) ``expected`` as text."""
    inputs = {
        "input": _cut(observation.input_text),
        "output": _cut(output_text(observation)),
    }
    if observation.expected is not None:
        inputs["expected"] = _cut(observation.expected)
    return inputs


def judge_messages(version: Version, observation: Observation) -> list[dict[str, str]]:
    """The rubric's messages filled from ``observation``; raises JudgeInputError."""
    try:
        return render(version, judge_inputs(observation))
    except InputError as exc:
        raise JudgeInputError(f"the judge prompt cannot be filled: {exc}") from exc


def judge_score(judgement: Judgement, scale: Scale, threshold: float | None = None) -> Score:
    """A parsed judgement as a score: pass/fail as a boolean, a category as a label, a number
    with ``passed`` set when there is a threshold."""
    reason = judgement.reason or "(the judge gave no reason)"
    value = judgement.value
    if isinstance(value, bool):
        return Score(value, "boolean", reason, value)
    if isinstance(value, str):
        return Score(value, "label", reason)
    if threshold is None:
        return Score(value, "number", reason)
    return Score(value, "number", reason, value >= threshold)


def judge_outcome(answer: str, config: Mapping[str, Any]) -> Outcome:
    """The outcome of a judge's ``answer`` under an ``llm_judge`` spec's config."""
    scale = parse_scale(config["scale"])
    try:
        judgement = parse_judgement(answer, scale)
    except JudgeParseError as exc:
        return EvaluatorError(f"the judge's answer could not be read: {exc}")
    return judge_score(judgement, scale, config.get("threshold"))
