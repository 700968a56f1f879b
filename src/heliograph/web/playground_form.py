"""The Playground's form: which versions run where, with which inputs, and why a run cannot.

A column is a version (``v3``) or a label (``label:production``) of the prompt, optionally
another model, and an upstream that can take an OpenAI chat completions request (the body the
gateway renders a prompt into: OpenAI-compatible upstreams, and Ollama and Anthropic through
their OpenAI layers). Every check happens before anything is sent: an unknown version, an
upstream that cannot take the request, a key typed for another upstream, no model, or inputs
the version cannot render with (a missing variable names it) send nothing.

An input left empty counts as not given, so the variable's default applies (the fields are
pre-filled with the defaults; an empty field is how a form says "nothing here").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from heliograph.config import UpstreamConfig
from heliograph.prompts.templates import InputError, as_text, check_inputs
from heliograph.prompts.versions import Version, render
from heliograph.store import prompts as prompt_store
from heliograph.web.gateway_call import key_problem
from heliograph.web.replay_form import Target, chat_targets

SLOTS = ("a", "b")
LABEL_PREFIX = "label:"
INPUT_PREFIX = "input."
MAX_MODEL = 255


class Refused(Exception):
    """A run that cannot go ahead as asked; ``status`` 400 (413 for oversized inputs)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Column:
    """One column as the form holds it (a typed key is never kept, only whom it was for)."""

    slot: str
    ref: str  # "v<N>", "label:<name>" or "" (no column)
    model: str = ""
    target: str = ""
    key_for: str = ""


@dataclass
class Ready:
    """A column checked and ready to send."""

    column: Column
    version: dict[str, Any]  # the stored version row (a label resolved to its version now)
    label: str | None
    target: Target
    key: str
    messages: list[dict[str, str]]  # as rendered, to show beside the output


@dataclass
class PlaygroundForm:
    inputs: dict[str, str]
    columns: list[Column]
    error: str = ""
    slot: str = ""  # which column the error is about, "" for the inputs or the whole form
    extra: dict[str, Any] = field(default_factory=dict)


def ref_of(version: int | None = None, label: str | None = None) -> str:
    return f"{LABEL_PREFIX}{label}" if label else (f"v{version}" if version else "")


def variables(versions: list[dict[str, Any]]) -> dict[str, str]:
    """Every variable any version declares (newest versions first), with the newest default,
    as the inputs' initial values."""
    out: dict[str, str] = {}
    for row in versions:
        for name, value in (row["variables"] or {}).items():
            if not out.get(name):
                out[name] = "" if value is None else as_text(name, value)
    return out


def default_ref(prompt: dict[str, Any], versions: list[dict[str, Any]]) -> str:
    """Column A before any choice: the production version, else the newest."""
    production = (prompt.get("labels") or {}).get("production")
    if production:
        return ref_of(label="production")
    return ref_of(versions[0]["version"]) if versions else ""


def initial(
    prompt: dict[str, Any], versions: list[dict[str, Any]], query: dict[str, str]
) -> PlaygroundForm:
    """The form before any run: ``?a=v2&b=label:staging`` chooses the columns (the prompt
    page links here that way); each column on its version's own upstream."""
    columns = [
        Column("a", query.get("a") or default_ref(prompt, versions)),
        Column("b", query.get("b") or ""),
    ]
    return PlaygroundForm(variables(versions), columns)


def from_post(form: dict[str, str], names: list[str]) -> PlaygroundForm:
    """The form as posted: the inputs of the known variables and both columns."""
    inputs = {n: form.get(INPUT_PREFIX + n, "") for n in names}
    columns = [
        Column(
            s,
            form.get(f"{s}_ref", "").strip(),
            form.get(f"{s}_model", "").strip(),
            form.get(f"{s}_target", "").strip(),
            form.get(f"{s}_key_for", "").strip(),
        )
        for s in SLOTS
    ]
    return PlaygroundForm(inputs, columns)


def number_of(ref: str, labels: dict[str, int | None]) -> int | None:
    """The version number a column's choice names (a label by where it points now)."""
    if ref.startswith(LABEL_PREFIX):
        return labels.get(ref.removeprefix(LABEL_PREFIX))
    digits = ref[1:]
    if ref.startswith("v") and digits.isascii() and digits.isdigit() and len(digits) < 11:
        return int(digits)
    return None


def place(
    form: PlaygroundForm, prompt: dict[str, Any], versions: list[Any], names: list[str]
) -> None:
    """Give each column without an upstream its version's own (when it can take the
    request), else the first column's, else the first that can; its key is for that one."""
    upstream_of = {v["version"]: v["upstream"] for v in versions}
    labels = prompt.get("labels") or {}
    first = ""
    for column in form.columns:
        if not column.target:
            own = upstream_of.get(number_of(column.ref, labels))
            column.target = own if own in names else (first or next(iter(names), ""))
        first = first or column.target
        column.key_for = column.target


def _version_row(
    engine: Any, org_id: str, name: str, ref: str
) -> tuple[dict[str, Any], str | None]:
    """The stored version a column names (blocking: runs in a worker thread)."""
    label = None
    if ref.startswith(LABEL_PREFIX):
        label = ref.removeprefix(LABEL_PREFIX)
        found = prompt_store.get_label(engine, org_id, name, label)
        if found is None:
            raise Refused(f"Prompt {name!r} has no label {label!r}.")
        if found["version"] is None:
            raise Refused(f"Label {label!r} points at no version yet.")
        number: int | None = int(found["version"])
    else:
        number = number_of(ref, {})
    if number is None:
        raise Refused(f"Choose a version or a label, not {ref!r}.")
    row = prompt_store.get_version(engine, org_id, name, number)
    if row is None:
        raise Refused(f"Prompt {name!r} has no version {number}.")
    return row, label


def capable(upstreams: dict[str, UpstreamConfig], served: set[str]) -> list[Target]:
    """The upstreams a prompt can run on (configured, and serving this gateway)."""
    return [t for t in chat_targets(upstreams) if t.endpoint and t.name in served]


def check_column(
    engine: Any,
    org_id: str,
    name: str,
    column: Column,
    typed_key: str,
    inputs: dict[str, str],
    targets: list[Target],
) -> Ready:
    """A column ready to send, or Refused saying why (blocking: runs in a worker thread)."""
    row, label = _version_row(engine, org_id, name, column.ref)
    by_name = {t.name: t for t in targets}
    if not column.target:  # the version's own upstream when it can, else the first that can
        column.target = row["upstream"] if row["upstream"] in by_name else ""
        column.target = column.target or (targets[0].name if targets else "")
    target = by_name.get(column.target)
    if target is None:
        raise Refused(
            f"{column.target or 'No upstream'} cannot take a prompt's chat request; choose "
            f"one of: {', '.join(by_name) or 'none is configured'}."
        )
    problem = key_problem(typed_key, column.key_for, target.name)
    if problem:
        raise Refused(problem)
    if len(column.model) > MAX_MODEL:
        raise Refused(f"The model name is longer than {MAX_MODEL} characters.")
    if not (column.model or row["model"]):
        raise Refused(f"Version {row['version']} names no model: type one for this column.")
    version = Version.from_row({**row, "name": name})
    try:
        messages = render(version, inputs)
    except InputError as exc:
        raise Refused(f"Version {row['version']}: {exc}.", exc.status) from exc
    return Ready(column, row, label, target, typed_key.strip(), messages)


def given_inputs(form: PlaygroundForm) -> dict[str, str]:
    """The inputs filled in (an empty field is not given: the default applies); Refused
    when they are too large."""
    given = {k: v for k, v in form.inputs.items() if v != ""}
    try:
        return check_inputs(given)
    except InputError as exc:
        raise Refused(str(exc), exc.status) from exc
