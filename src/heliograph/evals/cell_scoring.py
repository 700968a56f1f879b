"""Scoring one experiment cell: deterministic evaluators in process, judges through the gateway.

A judge is called with its pinned prompt version in the body form the gateway renders
(``prompt_id``, ``prompt_version``, ``inputs`` = ``{{input}}``, ``{{output}}``,
``{{expected}}``), so its record carries the prompt's name and version, with properties
``judge=1`` and the experiment, variant and item: its cost shows in breakdowns and counts
against the experiment's cap. Its answer is parsed by ``judge_outcome``; an answer that
cannot be read, a failed call, or a rubric that cannot be filled is an evaluator error,
never a zero.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from heliograph.evals.checks import Evaluator, build
from heliograph.evals.gateway_calls import GatewayClient, RecordWaiter, chat_path
from heliograph.evals.judge import JudgeInputError, judge_inputs, judge_messages, judge_outcome
from heliograph.evals.observation import Observation
from heliograph.evals.scores import EvaluatorError, Outcome, Score
from heliograph.evals.specs import EvaluatorSpec
from heliograph.prompts.versions import Version

JUDGE_RECORD_WAIT_S = 30.0


@dataclass
class Judge:
    spec: EvaluatorSpec
    version: Version
    upstream: str
    model: str | None


@dataclass
class Scored:
    outcome: Outcome
    judge_request_id: str | None = None
    cost_nusd: int = 0


def compile_evaluators(
    specs: list[EvaluatorSpec], versions: Mapping[str, Version]
) -> list[Evaluator | Judge]:
    """Deterministic evaluators built once; judges with their pinned prompt version
    (``versions`` by evaluator name)."""
    out: list[Evaluator | Judge] = []
    for spec in specs:
        if spec.kind == "llm_judge":
            version = versions[spec.name]
            upstream = spec.config.get("upstream") or version.upstream or "openai"
            out.append(Judge(spec, version, upstream, spec.config.get("model")))
        else:
            out.append(build(spec))
    return out


def answer_text(body: bytes) -> str | None:
    """The assistant's text of an OpenAI chat completion body, or None."""
    try:
        doc = orjson.loads(body)
        content = doc["choices"][0]["message"]["content"]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        return None
    return content if isinstance(content, str) else None


async def run_judge(
    judge: Judge,
    observation: Observation,
    client: GatewayClient,
    waiter: RecordWaiter,
    key: str,
    properties: Mapping[str, str],
) -> Scored:
    if observation.error is not None:
        return Scored(EvaluatorError(f"no output to evaluate: {observation.error}"))
    try:
        judge_messages(judge.version, observation)  # refuses a rubric it cannot fill
    except JudgeInputError as exc:
        return Scored(EvaluatorError(str(exc)))
    body: dict[str, Any] = {
        "prompt_id": judge.version.name,
        "prompt_version": judge.version.version,
        "inputs": judge_inputs(observation),
    }
    if judge.model:
        body["model"] = judge.model
    request_id = str(uuid.uuid4())
    path = chat_path(client.settings, judge.upstream, key)
    answer = await client.post(path, body, request_id, {**properties, "Judge": "1"})
    record = await waiter.get(request_id, JUDGE_RECORD_WAIT_S)
    cost = int(record.get("cost_nusd") or 0) if record and record.get("cost_known") else 0
    if answer.status != 200:
        reason = f"the judge call failed (HTTP {answer.status or 'no answer'})"
        return Scored(EvaluatorError(reason), request_id, cost)
    text = answer_text(answer.body)
    if text is None:
        return Scored(EvaluatorError("the judge's answer held no text"), request_id, cost)
    return Scored(judge_outcome(text, judge.spec.config), request_id, cost)


def score_row(
    outcome: Outcome, name: str, cell: Mapping[str, Any], judge_request_id: str | None, now: int
) -> dict[str, Any]:
    """An ``experiment_scores`` row: pass/fail as value 1 or 0 with ``passed``; a category
    as ``label``; an evaluator error as ``error`` with no value."""
    row: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "experiment_id": cell["experiment_id"],
        "org_id": cell["org_id"],
        "cell_id": cell["id"],
        "evaluator": name,
        "value": None,
        "label": None,
        "passed": None,
        "reason": None,
        "error": None,
        "judge_request_id": judge_request_id,
        "created_at": now,
    }
    if isinstance(outcome, EvaluatorError):
        row["error"] = outcome.reason[:4000]
        return row
    assert isinstance(outcome, Score)
    value = outcome.value
    if isinstance(value, bool):
        row["value"] = 1.0 if value else 0.0
    elif isinstance(value, str):
        row["label"] = value[:200]
    else:
        row["value"] = float(value)
    row["passed"] = outcome.passed
    row["reason"] = outcome.reason[:4000]
    return row
