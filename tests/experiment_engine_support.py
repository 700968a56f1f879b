"""Helpers for experiment tests: a live gateway on a store with a priced mock upstream, a
prompt with labelled versions, a dataset, and the experiment job run in this process."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from conftest import LiveGateway
from heliograph.capture.builder import make_pricebook
from heliograph.config import Settings
from heliograph.evals import experiments
from heliograph.evals.dataset_items import check_item
from heliograph.evals.runner import run_experiment_job
from heliograph.jobs.runner import JobContext, owner_id
from heliograph.prompts.versions import check_version
from heliograph.store import datasets as dataset_store
from heliograph.store import jobs as job_store
from heliograph.store import prompts as prompt_store
from heliograph.store.engine import make_engine
from mock_upstream import MockUpstream


@contextmanager
def live_store(db_url: str, tmp_path: Path, mock: MockUpstream) -> Iterator[LiveGateway]:
    settings = Settings(
        home=tmp_path,
        database_url=db_url,
        writer_poll_interval=0.02,
        upstreams={"mock": {"url": mock.url, "provider": "openai"}},
    )
    live = LiveGateway(settings).start()
    live.settings = settings.model_copy(update={"port": live.port})
    try:
        yield live
    finally:
        live.stop()


def add_prompt(engine: Engine, org: str, name: str, *texts: str, **extra: Any) -> None:
    """A prompt whose version i+1 is ``texts[i]``; production -> the last, staging -> the first."""
    prompt_store.create_prompt(engine, org, name, "", None)
    for text in texts:
        fields = check_version(
            {"messages": [{"role": "user", "content": text}], "model": "gpt-4o-mini", **extra}
        )
        prompt_store.create_version(engine, org, name, fields, None)
    prompt_store.move_label(engine, org, name, "production", len(texts), None)
    prompt_store.move_label(engine, org, name, "staging", 1, None)


def add_dataset(engine: Engine, org: str, name: str, docs: list[dict[str, Any]]) -> None:
    dataset_store.create_dataset(engine, org, name, "", None)
    dataset_store.add_items(engine, org, name, [check_item(d) for d in docs], None)


def create(live: LiveGateway, engine: Engine, **doc: Any) -> dict[str, Any]:
    doc.setdefault("name", "test")
    doc.setdefault("evaluators", [])
    doc.setdefault("concurrency", 4)
    book = make_pricebook(live.settings)
    return experiments.create(engine, live.org.id, doc, live.settings, book, "test")


def run_job(live: LiveGateway, exp_id: str) -> None:
    """The experiment's queued job, run to its end in this process."""
    engine = make_engine(live.settings.sqlalchemy_url)
    try:
        job = job_store.lease(engine, "test-runner", ["experiment"], 60)
        assert job is not None and job["ref_id"] == exp_id
        context = JobContext(live.settings, engine, owner_id())
        asyncio.run(_run(context, job))
        job_store.finish(engine, job["id"], "test-runner")
    finally:
        engine.dispose()


async def _run(context: JobContext, job: dict[str, Any]) -> None:
    try:
        await run_experiment_job(context, job)
    finally:
        keys = context.extras.get("system_keys")
        assert keys is None or len(keys.keys) <= 1
