"""The deterministic evaluators: a spec compiled once, then run on many observations.

``build(spec)`` compiles what can be compiled (the pattern, the schema's validator) and
returns an ``Evaluator`` whose ``evaluate`` never raises for a bad output: the output earns a
failing score with a reason a person can act on ("matched 2 of 3 required strings: missing
'refund'"). What is not the output's fault is an ``EvaluatorError``: a request that failed or
was cancelled (there is no output), an expected output or a latency or cost the evaluator
needs and the observation lacks, a pattern that ran past its time limit, a schema reference
that cannot be resolved.

Similarity uses rapidfuzz: ``ratio`` (normalised Indel similarity, sensitive to order and
every character) or ``token_set_ratio`` (compares word sets, forgiving order and repeated or
extra words), both scaled to 0-1; with ``normalize`` (the default) both texts are lowercased
and stripped of punctuation first, and two texts empty after that are identical (1.0).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import jsonschema
import orjson
import referencing.exceptions
from rapidfuzz import fuzz, utils

from heliograph.evals.observation import NANO, Observation
from heliograph.evals.scores import EvaluatorError, Outcome, Score, quote, verdict
from heliograph.evals.specs import (
    REGEX_TIMEOUT_S,
    EvaluatorSpec,
    compile_pattern,
    schema_validator,
)

MAX_SCHEMA_ERRORS = 50
Check = Callable[[Observation], Outcome]


@dataclass(frozen=True, slots=True)
class Evaluator:
    """A compiled spec; ``evaluate`` is safe to call from many tasks at once."""

    spec: EvaluatorSpec
    check: Check

    def evaluate(self, observation: Observation) -> Outcome:
        if observation.error is not None:
            return EvaluatorError(f"no output to evaluate: {observation.error}")
        return self.check(observation)


def build(spec: EvaluatorSpec) -> Evaluator:
    """The evaluator of a (parsed) spec; ValueError for ``llm_judge``, which needs a model
    call (see ``evals.judge``)."""
    factory = FACTORIES.get(spec.kind)
    if factory is None:
        raise ValueError(f"{spec.kind} is not a deterministic evaluator")
    return Evaluator(spec, factory(spec.config))


def _exact_match(config: Mapping[str, Any]) -> Check:
    def norm(text: str) -> str:
        if config["normalize_whitespace"]:
            text = " ".join(text.split())
        return text if config["case_sensitive"] else text.casefold()

    def check(obs: Observation) -> Outcome:
        if obs.expected is None:
            return EvaluatorError("needs an expected output, and there is none")
        got, want = norm(obs.output), norm(obs.expected)
        if got == want:
            return verdict(True, "the output equals the expected output")
        at = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), None)
        at = min(len(got), len(want)) if at is None else at
        return verdict(
            False,
            f"the output differs from the expected output at character {at}: "
            f"got {quote(got[at : at + 40])}, expected {quote(want[at : at + 40])}",
        )

    return check


def _contains(config: Mapping[str, Any], *, negate: bool) -> Check:
    sensitive = config["case_sensitive"]
    values: list[str] = config["values"]
    needles = values if sensitive else [v.casefold() for v in values]
    every = config["mode"] == "all"

    def check(obs: Observation) -> Outcome:
        hay = obs.output if sensitive else obs.output.casefold()
        present = [v for v, n in zip(values, needles, strict=True) if n in hay]
        missing = [v for v in values if v not in present]
        total = len(values)
        if not negate:
            passed = not missing if every else bool(present)
            word = "required" if every else "listed"
            reason = f"matched {len(present)} of {total} {word} strings"
            if missing and (every or not present):
                reason += ": missing " + ", ".join(quote(v) for v in missing[:5])
            return verdict(passed, reason)
        passed = not present if every else bool(missing)
        if not present:
            return verdict(passed, f"none of the {total} forbidden strings found")
        reason = f"found {len(present)} of {total} forbidden strings: "
        return verdict(passed, reason + ", ".join(quote(v) for v in present[:5]))

    return check


def _regex(config: Mapping[str, Any]) -> Check:
    pattern = compile_pattern(config)
    full = config["match"] == "fullmatch"

    def check(obs: Observation) -> Outcome:
        try:
            if full:
                match = pattern.fullmatch(obs.output, timeout=REGEX_TIMEOUT_S)
            else:
                match = pattern.search(obs.output, timeout=REGEX_TIMEOUT_S)
        except TimeoutError:
            return EvaluatorError(
                f"the pattern ran past its {REGEX_TIMEOUT_S} s limit on "
                f"{len(obs.output):,} characters of output"
            )
        shown = quote(config["pattern"])
        if match is None:
            how = "does not match the whole output" if full else "found no match"
            return verdict(False, f"the pattern {shown} {how}")
        if full:
            return verdict(True, f"the whole output matches {shown}")
        return verdict(True, f"matched {quote(match.group(0))} at character {match.start()}")

    return check


def _load(output: str, allow_fence: bool) -> tuple[Any, str | None]:
    """The output's JSON value, or the reason it is none (a fenced block when allowed)."""
    text = output.strip()
    if allow_fence and text.startswith("```") and text.endswith("```") and len(text) >= 6:
        first_line_end = text.find("\n")
        text = text[first_line_end + 1 : -3] if first_line_end >= 0 else text[3:-3]
    try:
        return orjson.loads(text), None
    except orjson.JSONDecodeError as exc:
        return None, f"the output is not valid JSON: {exc}"


def _valid_json(config: Mapping[str, Any]) -> Check:
    want = config["type"]

    def check(obs: Observation) -> Outcome:
        doc, problem = _load(obs.output, config["allow_fence"])
        if problem:
            return verdict(False, problem)
        if want == "object" and not isinstance(doc, dict):
            return verdict(False, "the output is JSON but not an object")
        if want == "array" and not isinstance(doc, list):
            return verdict(False, "the output is JSON but not an array")
        return verdict(True, "the output is valid JSON")

    return check


def _json_path(path: Any) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def _json_schema(config: Mapping[str, Any]) -> Check:
    validator = schema_validator(config["schema"])

    def check(obs: Observation) -> Outcome:
        doc, problem = _load(obs.output, config["allow_fence"])
        if problem:
            return verdict(False, problem)
        try:
            errors = []
            for error in validator.iter_errors(doc):
                errors.append(error)
                if len(errors) >= MAX_SCHEMA_ERRORS:
                    break
        except referencing.exceptions.Unresolvable as exc:
            return EvaluatorError(f"the schema has a reference that cannot be resolved: {exc}")
        if not errors:
            return verdict(True, "the output matches the schema")
        best = jsonschema.exceptions.best_match(errors)
        count = f"{len(errors)}+" if len(errors) >= MAX_SCHEMA_ERRORS else str(len(errors))
        noun = "violation" if len(errors) == 1 else "violations"
        where = _json_path(best.absolute_path)
        return verdict(False, f"{count} schema {noun}; at {where}: {best.message[:300]}")

    return check


def _length(config: Mapping[str, Any]) -> Check:
    low, high, unit = config["min"], config["max"], config["unit"]

    def check(obs: Observation) -> Outcome:
        size = len(obs.output) if unit == "characters" else len(obs.output.split())
        if low is not None and size < low:
            return verdict(False, f"{size:,} {unit}, fewer than the minimum {low:,}")
        if high is not None and size > high:
            return verdict(False, f"{size:,} {unit}, more than the maximum {high:,}")
        bounds = f"{low or 0:,}-{high:,}" if high is not None else f"at least {low:,}"
        return verdict(True, f"{size:,} {unit}, within {bounds}")

    return check


def _similarity(config: Mapping[str, Any]) -> Check:
    metric = fuzz.ratio if config["metric"] == "ratio" else fuzz.token_set_ratio
    threshold: float | None = config["threshold"]

    def check(obs: Observation) -> Outcome:
        if obs.expected is None:
            return EvaluatorError("needs an expected output, and there is none")
        got, want = obs.output, obs.expected
        if config["normalize"]:
            got, want = utils.default_process(got), utils.default_process(want)
        value = 1.0 if not got and not want else round(metric(got, want) / 100, 4)
        reason = f"{config['metric']} similarity {value:.2f} to the expected output"
        if threshold is None:
            return Score(value, "number", reason)
        passed = value >= threshold
        reason += f" ({'at least' if passed else 'below'} the threshold {threshold:g})"
        return Score(value, "number", reason, passed)

    return check


def _latency(config: Mapping[str, Any]) -> Check:
    limit = config["max_ms"]

    def check(obs: Observation) -> Outcome:
        if obs.latency_ms is None:
            return EvaluatorError("the latency is unknown")
        passed = obs.latency_ms <= limit
        where = "within" if passed else "above"
        return verdict(passed, f"latency {obs.latency_ms:,.0f} ms, {where} the limit {limit:,g} ms")

    return check


def usd(nusd: int) -> str:
    """Nano-USD as dollars with as many decimals as needed (at least two)."""
    text = f"{nusd / NANO:.9f}".rstrip("0")
    whole, _, decimals = text.partition(".")
    return f"${whole}.{decimals.ljust(2, '0')}"


def _cost(config: Mapping[str, Any]) -> Check:
    limit = round(config["max_usd"] * NANO)

    def check(obs: Observation) -> Outcome:
        if obs.cost_nusd is None:
            return EvaluatorError("the cost is unknown (the model has no price)")
        passed = obs.cost_nusd <= limit
        where = "within" if passed else "above"
        return verdict(passed, f"cost {usd(obs.cost_nusd)}, {where} the limit {usd(limit)}")

    return check


def _tool_called(config: Mapping[str, Any]) -> Check:
    name: str | None = config["name"]
    glob = config["match"] == "glob"

    def check(obs: Observation) -> Outcome:
        names = [c.name for c in obs.tool_calls]
        listed = ", ".join(dict.fromkeys(names))
        if name is None:
            if names:
                return verdict(True, f"{len(names)} tool call(s): {listed}")
            return verdict(False, "no tool call")
        hits = [n for n in names if (fnmatch.fnmatchcase(n, name) if glob else n == name)]
        if hits:
            return verdict(True, f"called {hits[0]}")
        among = f"; called {listed}" if names else "; no tool call at all"
        return verdict(False, f"no call to {quote(name)}{among}")

    return check


FACTORIES: Mapping[str, Callable[[Mapping[str, Any]], Check]] = MappingProxyType(
    {
        "exact_match": _exact_match,
        "contains": lambda config: _contains(config, negate=False),
        "not_contains": lambda config: _contains(config, negate=True),
        "regex": _regex,
        "valid_json": _valid_json,
        "json_schema": _json_schema,
        "length": _length,
        "similarity": _similarity,
        "latency_max_ms": _latency,
        "cost_max_usd": _cost,
        "tool_called": _tool_called,
    }
)
