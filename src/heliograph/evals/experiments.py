"""Creating an experiment: its items pinned, its variants and evaluators resolved, its cost
estimated, its cells made, and the job that runs it queued.

Everything that could change under a run is fixed here: the items are the dataset's live
items now (by id; an item edited later is archived, never changed), a label is resolved to
the version it points at, a saved evaluator is copied, and a judge's label becomes a version.
A sample of production requests (``{"filter": <Requests-page params>, "sample": N}``, the N
newest matching) becomes a dataset of its own named ``sample-<experiment>-<id>``, so it is
pinned the same way and can be run again.

The estimate renders every cell's input and counts its prompt tokens offline
(``pricing.tokens``), adds ``max_tokens`` (the variant's, else the version's, else
``DEFAULT_OUTPUT_TOKENS``) and prices both with the model's price; a judge call is counted
as the cell's input and output plus the rubric, answering ``JUDGE_OUTPUT_TOKENS``. What has
no price is listed (``unpriced``) and left out of the figure, never counted as free.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from heliograph.config import Settings
from heliograph.evals.dataset_items import ItemError, item_from_record
from heliograph.evals.experiment_specs import (
    parse_evaluator,
    parse_variant,
    unique_names,
    variant_name,
)
from heliograph.evals.specs import EvaluatorSpec, SpecError, parse_spec
from heliograph.pricing.book import PriceBook
from heliograph.pricing.cost import Usage
from heliograph.pricing.tokens import estimate_chat_prompt_tokens
from heliograph.prompts.templates import InputError
from heliograph.prompts.versions import Version, render
from heliograph.store import dataset_sources, filter_params, filters
from heliograph.store import datasets as dataset_store
from heliograph.store import evaluators as evaluator_store
from heliograph.store import experiments as experiment_store
from heliograph.store import prompts as prompt_store
from heliograph.store.selection import RequestFilter

DEFAULT_OUTPUT_TOKENS = 256
JUDGE_OUTPUT_TOKENS = 100
MAX_CELLS = 100_000
MAX_SAMPLE = 10_000
MAX_CONCURRENCY = 64
DEFAULT_CONCURRENCY = 8


class ExperimentError(ValueError):
    """The experiment cannot be created; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Plan:
    """A resolved experiment, before (or instead of, for a dry run) storing it."""

    name: str
    items: list[dict[str, Any]]
    variants: list[dict[str, Any]]
    evaluators: list[EvaluatorSpec]
    dataset: dict[str, Any] | None = None
    sample: dict[str, Any] | None = None
    estimate_nusd: int = 0
    unpriced: list[str] = field(default_factory=list)
    unrenderable: int = 0

    def estimate_api(self) -> dict[str, Any]:
        return {
            "items": len(self.items),
            "variants": [v["name"] for v in self.variants],
            "cells": len(self.items) * len(self.variants),
            "evaluators": [e.name for e in self.evaluators],
            "estimated_cost_usd": self.estimate_nusd / 1e9,
            "unpriced": self.unpriced,
            "unrenderable_cells": self.unrenderable,
        }


def resolve_version(engine: Engine, org_id: str, prompt: str, spec: Mapping[str, Any]) -> Version:
    number = spec.get("version")
    if number is None:
        label = str(spec.get("label") or "production")
        found = prompt_store.get_label(engine, org_id, prompt, label)
        if found is None or found["version"] is None:
            raise ExperimentError(f"prompt {prompt!r} has no version labelled {label!r}")
        number = found["version"]
    row = prompt_store.get_version(engine, org_id, prompt, int(number))
    if row is None:
        raise ExperimentError(f"prompt {prompt!r} has no version {number}")
    return Version.from_row(row)


def resolve_variant(
    engine: Engine, org_id: str, value: object, settings: Settings
) -> tuple[dict[str, Any], Version | None]:
    spec = parse_variant(value)
    version = None
    if spec["kind"] == "prompt":
        version = resolve_version(engine, org_id, spec["prompt"], spec)
        spec["version"] = version.version
    upstream = spec.get("upstream") or (version.upstream if version else None) or "openai"
    if upstream not in settings.resolved_upstreams():
        raise ExperimentError(f"no upstream named {upstream!r} is configured")
    model = spec.get("model") or (version.model if version else None)
    if not model:
        raise ExperimentError(f"variant {variant_name(spec)!r} names no model")
    spec["upstream"], spec["model"] = upstream, model
    spec["name"] = variant_name(spec)
    return spec, version


def resolve_evaluator(engine: Engine, org_id: str, value: object) -> EvaluatorSpec:
    try:
        found = parse_evaluator(value)
        if isinstance(found, str):
            row = evaluator_store.get_evaluator(engine, org_id, found)
            if row is None:
                raise ExperimentError(f"no evaluator named {found[:100]!r} (nor a shorthand)")
            found = parse_spec(row["spec"])
    except SpecError as exc:
        raise ExperimentError(f"evaluator: {exc}") from exc
    if found.kind != "llm_judge":
        return found
    config = dict(found.config)
    version = resolve_version(engine, org_id, config["prompt"], config)
    config |= {"version": version.version, "label": None}
    if not config.get("model") and not version.model:
        raise ExperimentError(f"judge prompt {config['prompt']!r} names no model; give one")
    return EvaluatorSpec(found.name, found.kind, config, found.description)


def cell_messages(item_inputs: Mapping[str, Any], version: Version | None) -> list[Any]:
    """What a cell sends: the version rendered with the item's variables, or the item's
    messages as they are (an item of variables only is sent as one user message)."""
    variables = {k: v for k, v in item_inputs.items() if k != "messages"}
    if version is not None:
        return render(version, variables)
    messages = item_inputs.get("messages")
    if isinstance(messages, list):
        return messages
    if set(variables) == {"input"}:
        return [{"role": "user", "content": str(variables["input"])}]
    text = "\n".join(f"{k}: {v}" for k, v in variables.items())
    return [{"role": "user", "content": text}]


def provider_of(settings: Settings, upstream: str) -> str:
    config = settings.resolved_upstreams().get(upstream)
    return (config.provider if config and config.provider else None) or upstream


def _price(
    book: PriceBook, settings: Settings, upstream: str, model: str, tokens_in: int, out: int
) -> int | None:
    usage = Usage(tokens_in, out)
    cost = book.cost(
        provider=provider_of(settings, upstream), model=model, usage=usage, upstream=upstream
    )
    return cost.total_nusd if cost.known else None


def estimate(
    plan: Plan, versions: list[Version | None], book: PriceBook, settings: Settings
) -> None:
    """Fill ``plan.estimate_nusd``, ``unpriced`` and ``unrenderable``."""
    total, unpriced = 0, set()
    judges = [e for e in plan.evaluators if e.kind == "llm_judge"]
    for variant, version in zip(plan.variants, versions, strict=True):
        model, upstream = variant["model"], variant["upstream"]
        params = {**(version.params if version else {}), **variant.get("params", {})}
        out = params.get("max_tokens")
        out = out if isinstance(out, int) and out > 0 else DEFAULT_OUTPUT_TOKENS
        for item in plan.items:
            try:
                tokens = estimate_chat_prompt_tokens(cell_messages(item["inputs"], version), model)
            except InputError:
                plan.unrenderable += 1
                continue
            cost = _price(book, settings, upstream, model, tokens, out)
            if cost is None:
                unpriced.add(f"{variant['name']}: {model} on {upstream}")
            else:
                total += cost
            for judge in judges:
                jmodel = judge.config.get("model") or model
                jup = judge.config.get("upstream") or upstream
                jcost = _price(book, settings, jup, jmodel, tokens + out + 200, JUDGE_OUTPUT_TOKENS)
                if jcost is None:
                    unpriced.add(f"judge {judge.name}: {jmodel} on {jup}")
                else:
                    total += jcost
    plan.estimate_nusd, plan.unpriced = total, sorted(unpriced)


def sample_items(
    engine: Engine, org_id: str, params: Mapping[str, str], size: int
) -> list[dict[str, Any]]:
    try:
        where = RequestFilter(where=filter_params.parse(params.items()))
    except filters.FilterError as exc:
        raise ExperimentError(f"sample filter: {exc}") from exc
    ids = dataset_sources.matching_ids(engine, org_id, where, size)
    items = []
    for record in dataset_sources.records_with_bodies(engine, org_id, ids):
        try:
            item = item_from_record(record)
        except ItemError:
            continue
        items.append(
            {
                "inputs": item.inputs,
                "expected": item.expected,
                "metadata": item.metadata,
                "source_request_id": item.source_request_id,
                "_item": item,
            }
        )
    return items


def plan_experiment(
    engine: Engine, org_id: str, doc: Mapping[str, Any], settings: Settings, book: PriceBook
) -> tuple[Plan, list[Version | None]]:
    """Resolve a (checked) creation body into a plan with its estimate."""
    variants, versions = [], []
    for value in doc["variants"]:
        spec, version = resolve_variant(engine, org_id, value, settings)
        variants.append(spec)
        versions.append(version)
    names = [v["name"] for v in variants]
    if len(set(names)) != len(names):
        raise ExperimentError("two variants have the same name; give one a name")
    evaluators = unique_names([resolve_evaluator(engine, org_id, e) for e in doc["evaluators"]])
    if "dataset" in doc:
        dataset = dataset_store.get_dataset(engine, org_id, doc["dataset"])
        if dataset is None:
            raise ExperimentError(f"no dataset {doc['dataset']!r} in this organization", 404)
        items = list(dataset_store.iter_items(engine, org_id, doc["dataset"]))
        plan = Plan(doc["name"], items, variants, evaluators, dataset=dataset)
    else:
        sample = doc["sample"]
        items = sample_items(engine, org_id, sample["filter"], sample["sample"])
        plan = Plan(doc["name"], items, variants, evaluators, sample=dict(sample))
    if not plan.items:
        raise ExperimentError("there are no items to run on")
    if len(plan.items) * len(variants) > MAX_CELLS:
        raise ExperimentError(f"at most {MAX_CELLS} cells (items x variants)")
    estimate(plan, versions, book, settings)
    return plan, versions


def _sample_dataset(engine: Engine, org_id: str, plan: Plan, by: str | None) -> dict[str, Any]:
    slug = re.sub(r"[^a-z0-9_-]+", "-", plan.name.lower()).strip("-")[:60] or "experiment"
    name = f"sample-{slug}-{uuid.uuid4().hex[:8]}"
    dataset = dataset_store.create_dataset(
        engine, org_id, name, f"Sampled for experiment {plan.name[:200]!r}", by
    )
    added = dataset_store.add_items(engine, org_id, name, [i["_item"] for i in plan.items], by)
    ids = added.ids if added is not None else []
    plan.items = dataset_store.items_by_ids(engine, org_id, ids)
    return dataset


def create(
    engine: Engine,
    org_id: str,
    doc: Mapping[str, Any],
    settings: Settings,
    book: PriceBook,
    by: str | None,
) -> dict[str, Any]:
    """Store the experiment a (checked) body describes and queue its run; its row."""
    plan, _versions = plan_experiment(engine, org_id, doc, settings, book)
    if plan.sample is not None:
        plan.dataset = _sample_dataset(engine, org_id, plan, by)
    now = experiment_store.now_ms()
    exp_id = str(uuid.uuid4())
    source: dict[str, Any] = {"dataset": plan.dataset["name"] if plan.dataset else None}
    if plan.sample is not None:
        source |= {"sample": plan.sample}
    source |= {"unpriced": plan.unpriced}
    cap = doc.get("cost_cap_usd")
    experiment = {
        "id": exp_id,
        "org_id": org_id,
        "name": plan.name,
        "description": doc.get("description", ""),
        "dataset_id": plan.dataset["id"] if plan.dataset else None,
        "source": source,
        "evaluators": [e.to_dict() for e in plan.evaluators],
        "status": "queued",
        "stop_reason": None,
        "concurrency": doc.get("concurrency", DEFAULT_CONCURRENCY),
        "cost_cap_nusd": None if cap is None else round(cap * 1e9),
        "estimated_cost_nusd": plan.estimate_nusd,
        "spent_nusd": 0,
        "cells_total": len(plan.items) * len(plan.variants),
        "cells_done": 0,
        "cells_failed": 0,
        "created_at": now,
        "created_by": by,
        "started_at": None,
        "finished_at": None,
        "updated_at": now,
    }
    variants = [
        {
            "id": str(uuid.uuid4()),
            "experiment_id": exp_id,
            "org_id": org_id,
            "position": position,
            "name": spec["name"],
            "spec": spec,
        }
        for position, spec in enumerate(plan.variants)
    ]
    cells = [
        {
            "id": str(uuid.uuid4()),
            "experiment_id": exp_id,
            "org_id": org_id,
            "variant_id": variant["id"],
            "item_id": item["id"],
            "item_position": position,
            "status": experiment_store.PENDING,
            "request_id": str(uuid.uuid4()),
            "attempts": 0,
        }
        for position, item in enumerate(plan.items)
        for variant in variants
    ]
    experiment_store.create_experiment(engine, experiment, variants, cells, str(uuid.uuid4()))
    return experiment
