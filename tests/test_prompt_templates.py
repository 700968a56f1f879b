"""``{{name}}`` templates and version checks: hostile and edge cases, with no store."""

from __future__ import annotations

from typing import Any

import pytest

from heliograph.prompts.templates import (
    MAX_INPUT_BYTES,
    MAX_RENDERED_CHARS,
    InputError,
    TemplateError,
    parse,
    placeholders,
)
from heliograph.prompts.versions import Version, VersionError, check_version, render


def version(*contents: str, variables: dict[str, Any] | None = None) -> Version:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": c} for c in contents]}
    if variables is not None:
        body["variables"] = variables
    checked = check_version(body)
    return Version.from_row({"name": "p", "version": 1, **checked})


def test_plain_and_spaced_placeholders() -> None:
    assert parse("Hi {{name}}, {{ name }} and {{\tother\t}}!").parts == (
        "Hi ",
        "name",
        ", ",
        "name",
        " and ",
        "other",
        "!",
    )
    assert parse("no placeholders").parts == ("no placeholders",)
    assert parse("").parts == ("",)
    assert placeholders([parse("{{b}} {{a}}"), parse("{{b}} {{c}}")]) == ["b", "a", "c"]


@pytest.mark.parametrize(
    ("text", "position", "problem"),
    [
        ("Hello {{name", 6, "unclosed"),
        ("{{", 0, "unclosed"),
        ("ok {{ }}", 3, "not followed by a variable name"),
        ("{{1abc}}", 0, "not followed"),
        ("{{a.b}}", 0, "not followed"),  # no attribute access
        ("{{a|upper}}", 0, "not followed"),  # no filters
        ("{{ a b }}", 0, "not followed"),
        ("{{{x}}}", 0, "not followed"),  # nested braces
        ("x {{café}}", 2, "not followed"),  # identifiers are ASCII
        ("{{ имя }}", 0, "not followed"),
        ("{{x}} then {{", 11, "unclosed"),
    ],
)
def test_malformed_templates_name_the_position(text: str, position: int, problem: str) -> None:
    with pytest.raises(TemplateError) as caught:
        parse(text, index=3)
    assert caught.value.index == 3 and caught.value.position == position
    assert problem in str(caught.value) and f"character {position}" in str(caught.value)
    assert str(caught.value).startswith("messages[3].content")


def test_lone_closing_braces_are_text() -> None:
    assert parse('{"a": {"b": 1}}').parts == ('{"a": {"b": 1}}',)
    assert version("}} {x} }").templates[0].parts == ("}} {x} }",)


def test_values_are_never_expanded_again() -> None:
    v = version("A {{a}} B {{b}}")
    out = render(v, {"a": "{{b}}", "b": "{{a}} {{ __class__ }}"})
    assert out == [{"role": "user", "content": "A {{b}} B {{a}} {{ __class__ }}"}]


def test_numbers_and_booleans_render_as_json() -> None:
    v = version("{{i}} {{f}} {{t}} {{n}} {{e}}")
    got = render(v, {"i": 3, "f": 1.5, "t": True, "n": False, "e": 1e20})
    assert got[0]["content"] == "3 1.5 true false 1e+20"


def test_defaults_missing_and_extra_inputs() -> None:
    v = version("{{greeting}}, {{who}}", variables={"greeting": "Hello", "who": None})
    assert render(v, {"who": "Ada", "unused": "x"})[0]["content"] == "Hello, Ada"
    assert render(v, {"who": "Ada", "greeting": "Hi"})[0]["content"] == "Hi, Ada"
    with pytest.raises(InputError) as caught:
        render(v, {"greeting": "Hi"})
    assert caught.value.status == 400 and "'who'" in str(caught.value)
    assert caught.value.code == "missing_variable"


@pytest.mark.parametrize("inputs", [[], "who", None, 3, {"who": None}, {"who": ["a"]}])
def test_inputs_must_be_an_object_of_scalars(inputs: Any) -> None:
    with pytest.raises(InputError) as caught:
        render(version("{{who}}"), inputs)
    assert caught.value.status == 400 and caught.value.code == "invalid_inputs"


def test_huge_inputs_are_413() -> None:
    v = version("{{who}}")
    assert render(v, {"who": "x" * (MAX_INPUT_BYTES - 100)})[0]["content"].startswith("xxx")
    with pytest.raises(InputError) as caught:
        render(v, {"who": "x" * MAX_INPUT_BYTES})
    assert caught.value.status == 413
    with pytest.raises(InputError) as many:  # many small ones add up
        render(v, {f"k{i}": "y" * 100 for i in range(1000)})
    assert many.value.status == 413


def test_a_rendering_too_long_is_413_before_it_is_made() -> None:
    """Inputs are bounded, but a value goes wherever its name appears: 60 KiB in a template
    naming it 2,000 times would be 120 M characters."""
    v = version("{{x}}" * 2000)
    with pytest.raises(InputError) as caught:
        render(v, {"x": "y" * 60_000})
    assert caught.value.status == 413 and "longer than" in str(caught.value)
    fits = MAX_RENDERED_CHARS // 2000
    assert len(render(v, {"x": "y" * fits})[0]["content"]) == fits * 2000


def test_variables_declared_or_derived() -> None:
    derived = check_version({"messages": [{"role": "system", "content": "{{b}} {{a}} {{b}}"}]})
    assert derived["variables"] == {"b": None, "a": None}
    with pytest.raises(VersionError, match="'a' is used but not declared"):
        check_version({"messages": [{"role": "user", "content": "{{a}}"}], "variables": {"b": "x"}})
    ok = check_version(
        {"messages": [{"role": "user", "content": "{{a}}"}], "variables": {"a": 1, "b": None}}
    )
    assert ok["variables"] == {"a": 1, "b": None}  # unused declarations are kept
    for bad in ({"a b": None}, {"a": {"x": 1}}, ["a"]):
        with pytest.raises(VersionError):
            check_version({"messages": [{"role": "user", "content": "x"}], "variables": bad})


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"messages": []},
        {"messages": [{"role": "robot", "content": "x"}]},
        {"messages": [{"role": "user", "content": 3}]},
        {"messages": [{"role": "user", "content": "x", "name": "n"}]},
        {"messages": [{"role": "user", "content": "x"}], "surprise": 1},
        {"messages": [{"role": "user", "content": "x"}], "model": 4},
    ],
)
def test_bad_version_bodies(body: dict[str, Any]) -> None:
    with pytest.raises(VersionError):
        check_version(body)


def test_template_error_on_save_names_the_message() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "fine {{x}}"},
            {"role": "user", "content": "broken {{x"},
        ]
    }
    with pytest.raises(TemplateError) as caught:
        check_version(body)
    assert (caught.value.index, caught.value.position) == (1, 7)


GOOD_PARAMS: dict[str, Any] = {
    "temperature": 0.2,
    "max_tokens": 100,
    "top_p": 1,
    "response_format": {"type": "json_object"},
    "tools": [{"type": "function", "function": {"name": "f"}}],
    "stop": ["\n"],
    "seed": 7,
}


@pytest.mark.parametrize(
    "params",
    [
        {"temperature": 3},
        {"temperature": "hot"},
        {"temperature": True},
        {"max_tokens": 0},
        {"max_tokens": 1.5},
        {"top_p": -0.1},
        {"stop": []},
        {"stop": ["a", "b", "c", "d", "e"]},
        {"stop": [1]},
        {"seed": "7"},
        {"response_format": "json"},
        {"tools": {"type": "function"}},
        {"tools": [{"x": "y" * 70000}]},
        {"frequency_penalty": 1},
        ["temperature"],
    ],
)
def test_params_are_limited_and_typed(params: Any) -> None:
    base: dict[str, Any] = {"messages": [{"role": "user", "content": "x"}]}
    assert check_version({**base, "params": GOOD_PARAMS})["params"] == GOOD_PARAMS
    with pytest.raises(VersionError, match="params"):
        check_version({**base, "params": params})
