"""Evaluator specs, the deterministic evaluators, observations from stored records, judge
rendering (issue 16): each kind passing, failing and unable to score."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from heliograph.evals.checks import FACTORIES, build, usd
from heliograph.evals.judge import (
    MAX_FIELD_BYTES,
    JudgeInputError,
    judge_inputs,
    judge_messages,
    judge_outcome,
)
from heliograph.evals.observation import Observation, from_record
from heliograph.evals.scores import EvaluatorError, Score
from heliograph.evals.specs import EvaluatorSpec, SpecError, parse_spec
from heliograph.prompts.versions import Version
from heliograph.providers.transcript import ToolCall, answer

SAMPLES = Path(__file__).parent / "samples"
WEATHER = ToolCall("get_weather", {"location": "Paris", "unit": "celsius"})


def spec(kind: str, **config: Any) -> EvaluatorSpec:
    return parse_spec({"name": f"t-{kind}", "kind": kind, "config": config})


def run(kind: str, observation: Observation, **config: Any) -> Score | EvaluatorError:
    return build(spec(kind, **config)).evaluate(observation)


def obs(output: str = "", **fields: Any) -> Observation:
    return Observation(output=output, **fields)


# Specs


def test_spec_is_normalised_and_round_trips() -> None:
    parsed = parse_spec({"name": "has-refund", "kind": "contains", "config": {"values": "refund"}})
    assert parsed.to_dict() == {
        "name": "has-refund",
        "kind": "contains",
        "description": "",
        "config": {"values": ["refund"], "mode": "all", "case_sensitive": True},
    }
    assert parse_spec(orjson.loads(orjson.dumps(parsed.to_dict()))) == parsed


@pytest.mark.parametrize(
    ("kind", "config"),
    [
        ("exact_match", {"case_sensitive": False, "normalize_whitespace": True}),
        ("not_contains", {"values": ["a", "b"], "mode": "any"}),
        ("regex", {"pattern": r"^\d+$", "flags": ["multiline"], "match": "fullmatch"}),
        ("valid_json", {"type": "object", "allow_fence": True}),
        ("json_schema", {"schema": {"type": "object", "required": ["a"]}}),
        ("length", {"unit": "words", "max": 50}),
        ("similarity", {"metric": "token_set_ratio", "threshold": 0.8}),
        ("latency_max_ms", {"max_ms": 1500}),
        ("cost_max_usd", {"max_usd": 0.01}),
        ("tool_called", {"name": "get_*", "match": "glob"}),
        ("llm_judge", {"prompt": "helpfulness", "label": "production", "scale": "1-5"}),
        ("llm_judge", {"prompt": "tone", "version": 3, "scale": ["polite", "rude"]}),
    ],
)
def test_every_kind_parses_and_round_trips(kind: str, config: dict[str, Any]) -> None:
    parsed = spec(kind, **config)
    assert parsed.kind == kind
    for key, value in config.items():
        assert parsed.config[key] == value
    assert parse_spec(parsed.to_dict()) == parsed


@pytest.mark.parametrize(
    ("doc", "field", "words"),
    [
        ([], "spec", "object"),
        ({"name": "x", "kind": "contains", "config": {"values": "a"}, "extra": 1}, "extra", ""),
        ({"name": "", "kind": "regex"}, "name", "letters"),
        ({"name": "a:b", "kind": "regex"}, "name", "letters"),
        ({"name": "x", "kind": "levenshtein"}, "kind", "exact_match"),
        ({"name": "x", "kind": "contains", "config": []}, "config", "object"),
        ({"name": "x", "kind": "contains", "config": {}}, "config.values", "list"),
        ({"name": "x", "kind": "contains", "config": {"values": ["a", ""]}}, "config.values[1]", ""),
        ({"name": "x", "kind": "contains", "config": {"values": "a", "mode": "most"}}, "config.mode", "all, any"),
        ({"name": "x", "kind": "contains", "config": {"values": "a", "case_sensitive": "no"}}, "config.case_sensitive", "true or false"),
        ({"name": "x", "kind": "exact_match", "config": {"trim": True}}, "config.trim", "unknown option"),
        ({"name": "x", "kind": "regex", "config": {}}, "config.pattern", "non-empty"),
        ({"name": "x", "kind": "regex", "config": {"pattern": "ab(c"}}, "config.pattern", "at position 4"),
        ({"name": "x", "kind": "regex", "config": {"pattern": "a{2,1}"}}, "config.pattern", "does not compile"),
        ({"name": "x", "kind": "regex", "config": {"pattern": "a", "flags": ["x"]}}, "config.flags", "ignore_case"),
        ({"name": "x", "kind": "json_schema", "config": {"schema": "object"}}, "config.schema", "JSON Schema"),
        ({"name": "x", "kind": "json_schema", "config": {"schema": {"type": "thing"}}}, "config.schema['type']", "not a valid schema"),
        ({"name": "x", "kind": "json_schema", "config": {"schema": {"properties": {"a": {"minLength": -1}}}}}, "config.schema['properties']['a']['minLength']", "not a valid schema"),
        ({"name": "x", "kind": "length", "config": {}}, "config.min", "min or max"),
        ({"name": "x", "kind": "length", "config": {"min": 5, "max": 2}}, "config.max", "at least min"),
        ({"name": "x", "kind": "length", "config": {"min": 1.5}}, "config.min", "whole number"),
        ({"name": "x", "kind": "length", "config": {"max": 10, "unit": "tokens"}}, "config.unit", "characters, words"),
        ({"name": "x", "kind": "similarity", "config": {"threshold": 1.5}}, "config.threshold", "from 0 to 1"),
        ({"name": "x", "kind": "similarity", "config": {"metric": "jaro"}}, "config.metric", "ratio"),
        ({"name": "x", "kind": "latency_max_ms", "config": {}}, "config.max_ms", "required"),
        ({"name": "x", "kind": "latency_max_ms", "config": {"max_ms": True}}, "config.max_ms", "number"),
        ({"name": "x", "kind": "cost_max_usd", "config": {"max_usd": -1}}, "config.max_usd", "number"),
        ({"name": "x", "kind": "tool_called", "config": {"name": ""}}, "config.name", "non-empty"),
        ({"name": "x", "kind": "llm_judge", "config": {"prompt": "p", "scale": "1-5"}}, "config.label", "exactly one"),
        ({"name": "x", "kind": "llm_judge", "config": {"prompt": "p", "label": "l", "scale": "5-1"}}, "config.scale", "pass/fail"),
        ({"name": "x", "kind": "llm_judge", "config": {"prompt": "p", "label": "l", "scale": "1-5", "threshold": 7}}, "config.threshold", "within the scale"),
        ({"name": "x", "kind": "llm_judge", "config": {"prompt": "p", "label": "l", "scale": "pass/fail", "threshold": 1}}, "config.threshold", "numeric"),
    ],
)  # fmt: skip
def test_spec_errors_name_the_field(doc: Any, field: str, words: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(doc)
    assert caught.value.field == field
    assert words in caught.value.problem
    assert str(caught.value).startswith(field + ": ")


def test_llm_judge_is_not_built_as_a_deterministic_evaluator() -> None:
    with pytest.raises(ValueError, match="not a deterministic"):
        build(spec("llm_judge", prompt="p", label="production", scale="pass/fail"))


# Deterministic evaluators: (kind, config, observation, expected value or None for an error,
# words in the reason)

CASES: list[tuple[str, dict[str, Any], Observation, bool | None, str]] = [
    ("exact_match", {}, obs("Paris", expected="Paris"), True, "equals"),
    ("exact_match", {}, obs("paris", expected="Paris"), False, "at character 0: got 'paris'"),
    ("exact_match", {}, obs("Paris.", expected="Paris"), False, "at character 5: got '.', expected ''"),
    ("exact_match", {"case_sensitive": False}, obs("PARIS", expected="paris"), True, "equals"),
    ("exact_match", {"normalize_whitespace": True}, obs(" Paris\n is  big ", expected="Paris is big"), True, "equals"),
    ("exact_match", {}, obs(" Paris", expected="Paris"), False, "differs"),
    ("exact_match", {}, obs("Paris"), None, "expected output"),
    ("contains", {"values": ["refund", "order", "sorry"]}, obs("Sorry, your order refund is on its way"), False, "matched 2 of 3 required strings: missing 'sorry'"),
    ("contains", {"values": ["refund", "order"], "case_sensitive": False}, obs("REFUND for ORDER 12"), True, "matched 2 of 2"),
    ("contains", {"values": ["refund", "credit"], "mode": "any"}, obs("a credit note"), True, "matched 1 of 2 listed"),
    ("contains", {"values": ["refund", "credit"], "mode": "any"}, obs("nothing"), False, "missing 'refund', 'credit'"),
    ("contains", {"values": "x"}, obs(""), False, "matched 0 of 1"),
    ("not_contains", {"values": ["as an AI", "I cannot"]}, obs("Here is the answer."), True, "none of the 2 forbidden"),
    ("not_contains", {"values": ["as an AI", "I cannot"]}, obs("As an AI, I cannot"), False, "found 1 of 2 forbidden strings: 'I cannot'"),
    ("not_contains", {"values": ["as an AI", "I cannot"], "case_sensitive": False}, obs("As an AI, I cannot"), False, "found 2 of 2"),
    ("not_contains", {"values": ["a", "b"], "mode": "any"}, obs("only a here"), True, "found 1 of 2"),
    ("not_contains", {"values": ["a", "b"], "mode": "any"}, obs("a and b"), False, "found 2 of 2"),
    ("regex", {"pattern": r"\b[A-Z]{2}-\d{4}\b"}, obs("ticket FR-1234 opened"), True, "matched 'FR-1234' at character 7"),
    ("regex", {"pattern": r"\b[A-Z]{2}-\d{4}\b"}, obs("no ticket"), False, "found no match"),
    ("regex", {"pattern": r"\d+", "match": "fullmatch"}, obs("123 "), False, "does not match the whole output"),
    ("regex", {"pattern": r"\d+", "match": "fullmatch"}, obs("123"), True, "whole output matches"),
    ("regex", {"pattern": "^yes$", "flags": ["ignore_case", "multiline"]}, obs("Well\nYES\n"), True, "matched 'YES'"),
    ("valid_json", {}, obs(' {"a": [1, 2]} '), True, "valid JSON"),
    ("valid_json", {}, obs('{"a": 1,}'), False, "not valid JSON"),
    ("valid_json", {}, obs("NaN"), False, "not valid JSON"),
    ("valid_json", {}, obs('```json\n{"a": 1}\n```'), False, "not valid JSON"),
    ("valid_json", {"allow_fence": True}, obs('```json\n{"a": 1}\n```'), True, "valid JSON"),
    ("valid_json", {"type": "object"}, obs("[1]"), False, "not an object"),
    ("valid_json", {"type": "array"}, obs("[1]"), True, "valid JSON"),
    ("json_schema", {"schema": {"type": "object", "properties": {"price": {"type": "number"}}, "required": ["price"]}}, obs('{"price": 3.5}'), True, "matches the schema"),
    ("json_schema", {"schema": {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "number"}}}}}, obs('{"items": [1, 2, "abc"]}'), False, "1 schema violation; at $.items[2]: 'abc' is not of type 'number'"),
    ("json_schema", {"schema": {"type": "object", "required": ["a", "b"]}}, obs("{}"), False, "2 schema violations"),
    ("json_schema", {"schema": {"type": "object"}}, obs("not json"), False, "not valid JSON"),
    ("json_schema", {"schema": {"type": "string", "format": "email"}}, obs('"not an email"'), False, "is not a 'email'"),
    ("json_schema", {"schema": {"$schema": "http://json-schema.org/draft-07/schema#", "items": [{"type": "integer"}]}}, obs('["x"]'), False, "not of type 'integer'"),
    ("length", {"max": 5}, obs("123456"), False, "6 characters, more than the maximum 5"),
    ("length", {"min": 2, "max": 5}, obs("1"), False, "1 characters, fewer than the minimum 2"),
    ("length", {"min": 2, "max": 5}, obs("12345"), True, "5 characters, within 2-5"),
    ("length", {"unit": "words", "min": 3}, obs("one  two\nthree"), True, "3 words, within at least 3"),
    ("length", {"unit": "words", "max": 2}, obs("one two three"), False, "3 words, more than"),
    ("latency_max_ms", {"max_ms": 1000}, obs(latency_ms=812.4), True, "latency 812 ms, within the limit 1,000 ms"),
    ("latency_max_ms", {"max_ms": 1000}, obs(latency_ms=1240.0), False, "latency 1,240 ms, above"),
    ("latency_max_ms", {"max_ms": 1000}, obs(), None, "latency is unknown"),
    ("cost_max_usd", {"max_usd": 0.01}, obs(cost_nusd=4_200_000), True, "cost $0.0042, within the limit $0.01"),
    ("cost_max_usd", {"max_usd": 0.01}, obs(cost_nusd=10_000_000), True, "within"),
    ("cost_max_usd", {"max_usd": 0.01}, obs(cost_nusd=10_000_001), False, "cost $0.010000001, above"),
    ("cost_max_usd", {"max_usd": 0}, obs(cost_nusd=0), True, "cost $0.00, within"),
    ("cost_max_usd", {"max_usd": 0.01}, obs(), None, "cost is unknown"),
    ("tool_called", {}, obs(tool_calls=(WEATHER,)), True, "1 tool call(s): get_weather"),
    ("tool_called", {}, obs("just text"), False, "no tool call"),
    ("tool_called", {"name": "get_weather"}, obs(tool_calls=(ToolCall("search", {}), WEATHER)), True, "called get_weather"),
    ("tool_called", {"name": "get_Weather"}, obs(tool_calls=(WEATHER,)), False, "no call to 'get_Weather'; called get_weather"),
    ("tool_called", {"name": "get_*", "match": "glob"}, obs(tool_calls=(WEATHER,)), True, "called get_weather"),
    ("tool_called", {"name": "get_*"}, obs(tool_calls=(WEATHER,)), False, "no call to 'get_*'"),
    ("tool_called", {"name": "search_*", "match": "glob"}, obs(), False, "no tool call at all"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "config", "observation", "value", "words"), CASES)
def test_deterministic_evaluators(
    kind: str, config: dict[str, Any], observation: Observation, value: bool | None, words: str
) -> None:
    outcome = run(kind, observation, **config)
    if value is None:
        assert isinstance(outcome, EvaluatorError)
    else:
        assert isinstance(outcome, Score)
        assert (outcome.value, outcome.kind, outcome.passed) == (value, "boolean", value)
    assert words in outcome.reason


def test_every_deterministic_kind_has_cases() -> None:
    kinds = {case[0] for case in CASES} | {"similarity"}
    assert kinds == set(FACTORIES)


@pytest.mark.parametrize(
    ("config", "output", "expected", "value", "passed"),
    [
        ({}, "The refund was issued", "The refund was issued", 1.0, None),
        ({}, "The refund was issued!", "the refund was issued", 1.0, None),
        ({"normalize": False}, "The refund was issued!", "the refund was issued", 0.9302, None),
        (
            {"metric": "token_set_ratio"},
            "issued was the refund",
            "The refund was issued",
            1.0,
            None,
        ),
        ({}, "issued was the refund", "The refund was issued", 0.4762, None),
        ({"threshold": 0.9}, "The refund was issued", "The refund is issued", 0.9268, True),
        ({"threshold": 0.95}, "The refund was issued", "The refund is issued", 0.9268, False),
        ({}, "", "", 1.0, None),
        ({}, "?!", "...", 1.0, None),
        ({"metric": "token_set_ratio"}, "", "something", 0.0, None),
    ],
)
def test_similarity(
    config: dict[str, Any], output: str, expected: str, value: float, passed: bool | None
) -> None:
    outcome = run("similarity", obs(output, expected=expected), **config)
    assert isinstance(outcome, Score)
    assert outcome.kind == "number"
    assert outcome.value == pytest.approx(value, abs=1e-4)
    assert outcome.passed is passed
    assert "similarity" in outcome.reason


def indel_similarity(a: str, b: str) -> float:
    """The reference: twice the longest common subsequence over the total length."""
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return 2 * previous[-1] / (len(a) + len(b))


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("The refund was issued", "The refund is issued"),
        ("issued was the refund", "The refund was issued"),
        ("Paris is the capital", "The capital is Paris"),
        ("ok", "a much longer expected answer"),
    ],
)
def test_ratio_is_the_indel_similarity(output: str, expected: str) -> None:
    outcome = run("similarity", obs(output, expected=expected), normalize=False)
    assert isinstance(outcome, Score)
    assert outcome.value == pytest.approx(indel_similarity(output, expected), abs=1e-4)


def test_similarity_needs_an_expected_output() -> None:
    outcome = run("similarity", obs("anything"), threshold=0.5)
    assert isinstance(outcome, EvaluatorError)
    assert "expected output" in outcome.reason


@pytest.mark.parametrize("kind", ["exact_match", "contains", "latency_max_ms", "tool_called"])
def test_a_failed_request_is_an_error_not_a_score(kind: str) -> None:
    config: dict[str, Any] = {"contains": {"values": "x"}, "latency_max_ms": {"max_ms": 1}}
    failed = obs("", expected="x", latency_ms=3.0, error="the request failed with status 500")
    outcome = run(kind, failed, **config.get(kind, {}))
    assert outcome == EvaluatorError("no output to evaluate: the request failed with status 500")


def test_a_catastrophic_regex_is_cut_off_as_an_error() -> None:
    evaluator = build(spec("regex", pattern=r"(a|a)*$"))
    started = time.monotonic()
    outcome = evaluator.evaluate(obs("a" * 60 + "b"))
    assert time.monotonic() - started < 2
    assert isinstance(outcome, EvaluatorError)
    assert "limit on 61 characters" in outcome.reason
    assert evaluator.evaluate(obs("aaa")) == Score(
        True, "boolean", "matched 'aaa' at character 0", True
    )


def test_a_schema_reference_that_cannot_be_resolved_is_an_error() -> None:
    evaluator = build(spec("json_schema", schema={"$ref": "https://example.invalid/s.json"}))
    started = time.monotonic()
    outcome = evaluator.evaluate(obs("{}"))
    assert time.monotonic() - started < 2
    assert isinstance(outcome, EvaluatorError)
    assert "cannot be resolved" in outcome.reason


def test_usd_shows_what_the_money_is() -> None:
    assert [usd(n) for n in (0, 10_000_000, 1_234_500_000, 1)] == [
        "$0.00",
        "$0.01",
        "$1.2345",
        "$0.000000001",
    ]


# Observations from stored records


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


CHAT_REQUEST = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What's the weather in Paris?"},
    ],
    "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}],
}
ANTHROPIC_REQUEST = {
    "model": "claude-sonnet-4-6",
    "system": "You are terse.",
    "max_tokens": 100,
    "messages": [{"role": "user", "content": "What's the weather in Paris?"}],
}
OLLAMA_REQUEST = {
    "model": "llama3.2",
    "messages": [{"role": "user", "content": "What's the weather in Paris?"}],
}


def record(protocol: str, endpoint: str, **fields: Any) -> dict[str, Any]:
    """A record as ``store.requests.get_request`` returns it (the fields read here)."""
    return {
        "protocol": protocol,
        "provider": protocol,
        "endpoint": endpoint,
        "status": 200,
        "state": "ok",
        "error": None,
        "latency_ms": 812.5,
        "cost_usd": 0.000123,
        "cost_known": True,
        "model": "m",
        "response_model": None,
        "prompt_inputs": None,
        "response_headers": {},
        **fields,
    }


def test_observation_of_an_openai_chat_as_the_api_returns_it() -> None:
    row = record(
        "openai",
        "/v1/chat/completions",
        model="gpt-4o-mini",
        response_model="gpt-4o-mini-2024-07-18",
        prompt_inputs={"city": "Paris", "days": 3},
        request_body=CHAT_REQUEST,
        response_body=orjson.loads(sample("chat.json")),
    )
    seen = from_record(row, expected="Hello")
    assert seen.output == "Hello from the mock upstream."
    assert seen.tool_calls == ()
    assert seen.messages == tuple(CHAT_REQUEST["messages"])  # type: ignore[arg-type]
    assert seen.variables == {"city": "Paris", "days": "3"}
    assert (seen.latency_ms, seen.cost_nusd, seen.cost_usd) == (812.5, 123_000, 0.000123)
    assert (seen.model, seen.expected, seen.error) == ("gpt-4o-mini-2024-07-18", "Hello", None)
    assert seen.input_text == "system: You are terse.\n\nuser: What's the weather in Paris?"


def test_observation_of_a_stream_stored_as_raw_events_is_reassembled() -> None:
    row = record(
        "openai",
        "/v1/chat/completions",
        response_headers={"Content-Type": "text/event-stream; charset=utf-8"},
    )
    seen = from_record(row, orjson.dumps(CHAT_REQUEST), sample("chat_stream_tool_call.sse"))
    assert seen.output == ""
    assert seen.tool_calls == (WEATHER,)
    parallel = from_record(
        record("openai", "/v1/chat/completions"),
        None,
        sample("chat_stream_parallel_tools.handmade.sse"),
    )
    assert [c.name for c in parallel.tool_calls] == ["get_weather", "get_time"]
    assert parallel.tool_calls[1].arguments == {"tz": "CET"}


def test_observation_of_an_anthropic_tool_use_leaves_thinking_out() -> None:
    body = sample("anthropic/messages_tool_use.json")
    seen = from_record(record("anthropic", "/v1/messages"), ANTHROPIC_REQUEST, body)
    assert seen.output == "I'll check the weather."
    assert seen.tool_calls == (WEATHER,)
    assert seen.input_text.startswith("system: You are terse.\n\nuser: What's")
    streamed = from_record(
        record("anthropic", "/v1/messages"),
        ANTHROPIC_REQUEST,
        sample("anthropic/messages_stream_tool_use.sse").decode(),
    )
    assert (streamed.output, streamed.tool_calls) == (seen.output, seen.tool_calls)
    thinking = from_record(
        record("anthropic", "/v1/messages"), None, sample("anthropic/messages_stream_thinking.sse")
    )
    assert thinking.output == "Hello from the mock Claude."


def test_observation_of_ollama_chat_whole_and_streamed() -> None:
    whole = from_record(record("ollama", "/api/chat"), OLLAMA_REQUEST, sample("ollama/chat.json"))
    assert whole.output == "Hello from the mock Ollama."
    streamed = from_record(
        record("ollama", "/api/chat"), None, sample("ollama/chat_stream_tool_call.ndjson")
    )
    assert streamed.tool_calls == (WEATHER,)
    thinking = from_record(
        record("ollama", "/api/chat"), None, sample("ollama/chat_stream_thinking.ndjson")
    )
    assert thinking.output == "Hello from the mock Ollama."
    generate = from_record(record("ollama", "/api/generate"), None, sample("ollama/generate.json"))
    assert generate.output == "Hello from the mock Ollama."


def test_observation_of_a_responses_api_call() -> None:
    seen = from_record(record("openai", "/v1/responses"), {"input": "Hi"}, sample("responses.json"))
    assert seen.output == "Hello from the mock upstream."
    assert seen.prompt == "user: Hi"
    streamed = from_record(record("openai", "/v1/responses"), None, sample("responses_stream.sse"))
    assert streamed.output == "Hello from the mock upstream."


def test_observation_of_a_store_row_reads_nano_usd_and_unknown_cost() -> None:
    row = record("openai", "/v1/chat/completions", cost_nusd=42, cost_usd=None, cost_known=True)
    assert from_record(row, None, sample("chat.json")).cost_nusd == 42
    unknown = record("openai", "/v1/chat/completions", cost_usd=None, cost_known=False)
    assert from_record(unknown, None, sample("chat.json")).cost_usd is None


@pytest.mark.parametrize(
    ("fields", "body", "error"),
    [
        (
            {"status": 429, "error": None},
            "anthropic/error_429.json",
            "the request failed with status 429: This request would exceed the rate limit",
        ),
        (
            {"state": "interrupted", "status": 0, "error": "killed"},
            None,
            "the request is interrupted: killed",
        ),
        ({"state": "cancelled"}, "chat.json", "the request is cancelled"),
        ({"status": 200}, "ollama/error_404.json", "the response is an error: model"),
    ],
)
def test_observation_of_a_failed_request_carries_the_error(
    fields: dict[str, Any], body: str | None, error: str
) -> None:
    seen = from_record(
        record("anthropic", "/v1/messages", **fields), None, sample(body) if body else None
    )
    assert seen.error is not None
    assert seen.error.startswith(error)
    outcome = build(spec("valid_json")).evaluate(seen)
    assert isinstance(outcome, EvaluatorError)


def test_the_whole_way_from_a_record_to_a_score() -> None:
    seen = from_record(
        record("anthropic", "/v1/messages"),
        ANTHROPIC_REQUEST,
        sample("anthropic/messages_tool_use.json"),
    )
    assert run("tool_called", seen, name="get_weather") == Score(
        True, "boolean", "called get_weather", True
    )
    assert run("contains", seen, values=["weather"]).passed is True  # type: ignore[union-attr]
    assert run("cost_max_usd", seen, max_usd=0.0001).passed is False  # type: ignore[union-attr]


# Judge rendering and outcome

RUBRIC_ROW: dict[str, Any] = {
    "name": "helpfulness",
    "version": 2,
    "messages": [
        {"role": "system", "content": "Grade 1-5. Answer as JSON."},
        {"role": "user", "content": "Q: {{input}}\nA: {{output}}\nReference: {{expected}}"},
    ],
    "model": "gpt-4o-mini",
    "upstream": None,
    "params": {},
    "variables": {"input": None, "output": None, "expected": None},
}
RUBRIC = Version.from_row(RUBRIC_ROW)


def test_judge_messages_fill_input_output_and_expected() -> None:
    seen = obs(
        "It is sunny.",
        messages=({"role": "user", "content": "Weather?"},),
        tool_calls=(WEATHER,),
        expected="Sunny",
    )
    messages = judge_messages(RUBRIC, seen)
    assert messages == [
        {"role": "system", "content": "Grade 1-5. Answer as JSON."},
        {
            "role": "user",
            "content": 'Q: user: Weather?\nA: It is sunny.\n[tool call get_weather: {"location":"Paris","unit":"celsius"}]\nReference: Sunny',
        },
    ]


def test_judge_messages_without_an_expected_output() -> None:
    seen = obs("It is sunny.", variables={"city": "Paris", "question": "Weather?"})
    with pytest.raises(JudgeInputError, match="missing variable 'expected'"):
        judge_messages(RUBRIC, seen)
    defaults = {"input": None, "output": None, "expected": "(none)"}
    optional = Version.from_row({**RUBRIC_ROW, "variables": defaults})
    content = judge_messages(optional, seen)[1]["content"]
    assert content == "Q: city: Paris\nquestion: Weather?\nA: It is sunny.\nReference: (none)"


def test_judge_inputs_are_cut_to_fit_the_renderer() -> None:
    huge = obs("é" * 50_000, prompt="p" * 80_000, expected="x" * 10)
    inputs = judge_inputs(huge)
    assert inputs["expected"] == "x" * 10
    assert inputs["output"].endswith(f"[… cut: {50_000 - MAX_FIELD_BYTES // 2:,} more characters]")
    assert inputs["input"].endswith(f"[… cut: {80_000 - MAX_FIELD_BYTES:,} more characters]")
    content = judge_messages(RUBRIC, huge)[1]["content"]
    assert content == f"Q: {inputs['input']}\nA: {inputs['output']}\nReference: {'x' * 10}"
    assert len(content.encode()) > 2 * MAX_FIELD_BYTES


@pytest.mark.parametrize(
    ("config", "answer", "expected"),
    [
        ({"scale": "1-5"}, '{"score": 4, "reason": "Mostly right."}', Score(4.0, "number", "Mostly right.")),
        ({"scale": "1-5", "threshold": 4}, "Score: 3/5", Score(3.0, "number", "(the judge gave no reason)", False)),
        ({"scale": "0-1", "threshold": 0.5}, "0.9", Score(0.9, "number", "(the judge gave no reason)", True)),
        ({"scale": "pass/fail"}, "Verdict: fail\nReason: wrong city", Score(False, "boolean", "wrong city", False)),
        ({"scale": ["polite", "rude"]}, "The reply is polite.", Score("polite", "label", "(the judge gave no reason)")),
    ],
)  # fmt: skip
def test_judge_outcome(config: dict[str, Any], answer: str, expected: Score) -> None:
    assert judge_outcome(answer, config) == expected


def test_an_unreadable_judge_answer_is_an_error_never_a_zero() -> None:
    outcome = judge_outcome("I'd give it 4, not 2", {"scale": "1-5"})
    assert isinstance(outcome, EvaluatorError)
    assert outcome.reason.startswith("the judge's answer could not be read: ")


@pytest.mark.parametrize(
    ("body", "text", "calls"),
    [
        (None, "", []),
        ("plain text", "plain text", []),
        ({"error": {"message": "boom"}}, "", []),
        ({"choices": [{"text": "completion"}]}, "completion", []),
        (
            {"choices": [{"message": {"content": None, "refusal": "I can't help with that."}}]},
            "I can't help with that.",
            [],
        ),
        (
            {"choices": [{"message": {"content": "ok", "reasoning_content": "hmm", "function_call": {"name": "f", "arguments": "not json"}}}]},
            "ok",
            [ToolCall("f", "not json")],
        ),
        (
            {"output": [
                {"type": "reasoning", "summary": [{"text": "thinking"}]},
                {"type": "function_call", "name": "search", "arguments": '{"q": "x"}'},
                {"type": "message", "content": [{"type": "output_text", "text": "Done."}]},
            ]},
            "Done.",
            [ToolCall("search", {"q": "x"})],
        ),
        (
            {"type": "message", "content": [
                {"type": "thinking", "thinking": "secret"},
                {"type": "text", "text": "A"},
                {"type": "image", "source": {}},
                {"type": "text", "text": "B"},
            ]},
            "A\nB",
            [],
        ),
        ({"message": {"content": "hi", "thinking": "hmm"}}, "hi", []),
    ],
)  # fmt: skip
def test_answer_is_the_text_without_reasoning_and_the_calls_as_data(
    body: Any, text: str, calls: list[ToolCall]
) -> None:
    assert answer(body) == (text, calls)
