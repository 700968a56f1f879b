"""Variants and evaluators of an experiment as people write them, turned into specs.

A variant is ``prompt:<name>@<label>``, ``prompt:<name>:<version>``, ``prompt:<name>``
(its ``production`` label) or ``model:<upstream>/<model>`` (the item's messages sent as they
are), or the spec itself: ``{"kind": "prompt", "prompt", "version" | "label", "model"?,
"upstream"?, "params"?, "name"?}`` or ``{"kind": "model", "upstream", "model", "params"?,
"name"?}``. Labels are resolved to versions when the experiment is created (by
``evals.experiments``), so a label moved during the run changes nothing.

An evaluator is a saved evaluator's name, a spec (``evals.specs``), or a shorthand:
``exact``, ``contains:<text>``, ``regex:<pattern>``, ``json``, ``similarity:<min>``,
``judge:<prompt>@<label>`` (scale 0-1, passing at 0.5) or ``judge:<prompt>:<version>``.
``json-schema:<file>`` is the CLI's: it reads the file and sends the spec.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from heliograph.evals.specs import EvaluatorSpec, SpecError, parse_spec

MAX_VARIANTS = 10
MAX_EVALUATORS = 20
PARAM_NAMES = ("temperature", "max_tokens", "top_p", "response_format", "tools", "stop", "seed")
_PROMPT = re.compile(r"prompt:([^@:]{1,100})(?:@([A-Za-z0-9_.-]{1,100})|:([0-9]{1,9}))?")
_MODEL = re.compile(r"model:([a-z0-9][a-z0-9_-]{0,63})/(.{1,255})")
_JUDGE = re.compile(r"judge:([^@:]{1,100})(?:@([A-Za-z0-9_.-]{1,100})|:([0-9]{1,9}))")


class VariantError(ValueError):
    """A variant that cannot run (the message says which and why)."""


def parse_variant(value: object) -> dict[str, Any]:
    """A variant spec (labels not yet resolved) from a spelling or a spec object."""
    if isinstance(value, str):
        return _spelled(value)
    if not isinstance(value, Mapping):
        raise VariantError("a variant is a spelling such as prompt:name@label, or an object")
    doc = dict(value)
    unknown = set(doc) - {"kind", "prompt", "version", "label", "model", "upstream", "params"}
    unknown -= {"name"}
    if unknown:
        raise VariantError(f"unknown variant field {sorted(unknown)[0]!r}")
    kind = doc.get("kind")
    if kind == "prompt":
        if not isinstance(doc.get("prompt"), str) or not doc["prompt"]:
            raise VariantError("a prompt variant needs prompt (the prompt's name)")
        version, label = doc.get("version"), doc.get("label")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            raise VariantError("version must be a version number")
        if label is not None and not isinstance(label, str):
            raise VariantError("label must be a label's name")
        if version is None and label is None:
            doc["label"] = "production"
    elif kind == "model":
        for key in ("upstream", "model"):
            if not isinstance(doc.get(key), str) or not doc[key]:
                raise VariantError(f"a model variant needs {key}")
    else:
        raise VariantError('a variant\'s kind is "prompt" or "model"')
    for key in ("model", "upstream", "name"):
        if key in doc and doc[key] is not None and not isinstance(doc[key], str):
            raise VariantError(f"{key} must be text")
    params = doc.get("params") or {}
    if not isinstance(params, Mapping) or set(params) - set(PARAM_NAMES):
        raise VariantError(f"params may hold only {', '.join(PARAM_NAMES)}")
    doc["params"] = dict(params)
    return doc


def _spelled(text: str) -> dict[str, Any]:
    text = text.strip()
    match = _PROMPT.fullmatch(text)
    if match:
        name, label, version = match.groups()
        out: dict[str, Any] = {"kind": "prompt", "prompt": name, "params": {}}
        if version is not None:
            out["version"] = int(version)
        else:
            out["label"] = label or "production"
        return out
    match = _MODEL.fullmatch(text)
    if match:
        return {"kind": "model", "upstream": match[1], "model": match[2], "params": {}}
    raise VariantError(
        f"variant {text[:100]!r}: write prompt:<name>@<label>, prompt:<name>:<version> "
        "or model:<upstream>/<model>"
    )


def variant_name(spec: Mapping[str, Any]) -> str:
    """The variant's name as shown: its own name, else its spelling (version resolved)."""
    if spec.get("name"):
        return str(spec["name"])
    if spec["kind"] == "model":
        return f"model:{spec['upstream']}/{spec['model']}"
    name = f"prompt:{spec['prompt']}:{spec['version']}"
    if spec.get("label"):
        name += f" ({spec['label']})"
    if spec.get("model"):
        name += f" {spec['model']}"
    return name


def shorthand(text: str) -> dict[str, Any] | None:
    """The spec dict of an evaluator shorthand, or None (then it names a saved evaluator)."""
    kind, sep, rest = text.partition(":")
    if text == "exact":
        return {"name": "exact", "kind": "exact_match"}
    if text == "json":
        return {"name": "json", "kind": "valid_json"}
    if sep and kind == "contains":
        return {"name": "contains", "kind": "contains", "config": {"values": [rest]}}
    if sep and kind == "regex":
        return {"name": "regex", "kind": "regex", "config": {"pattern": rest}}
    if sep and kind == "similarity":
        try:
            threshold = float(rest)
        except ValueError as exc:
            raise SpecError("similarity", "write similarity:<min>, e.g. similarity:0.8") from exc
        return {"name": "similarity", "kind": "similarity", "config": {"threshold": threshold}}
    if sep and kind == "judge":
        match = _JUDGE.fullmatch(text)
        if match is None:
            raise SpecError("judge", "write judge:<prompt>@<label> or judge:<prompt>:<version>")
        prompt, label, version = match.groups()
        config: dict[str, Any] = {"prompt": prompt, "scale": "0-1", "threshold": 0.5}
        config |= {"label": label} if label else {"version": int(version)}
        return {"name": f"judge-{prompt}", "kind": "llm_judge", "config": config}
    return None


def parse_evaluator(value: object) -> EvaluatorSpec | str:
    """A parsed spec, or the name of a saved evaluator to look up; raises SpecError."""
    if isinstance(value, str):
        doc = shorthand(value.strip())
        return value.strip() if doc is None else parse_spec(doc)
    return parse_spec(value)


def unique_names(specs: list[EvaluatorSpec]) -> list[EvaluatorSpec]:
    """The specs with names made unique (``contains``, ``contains-2``): scores are per name."""
    seen: dict[str, int] = {}
    out = []
    for spec in specs:
        count = seen.get(spec.name, 0) + 1
        seen[spec.name] = count
        name = spec.name if count == 1 else f"{spec.name}-{count}"
        out.append(EvaluatorSpec(name, spec.kind, spec.config, spec.description))
    return out
