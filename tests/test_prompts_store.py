"""Prompt store queries on both dialects: versions numbered without gaps or twins under
concurrency, labels and their history, the gateway cache's one-query read, org isolation."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from heliograph.gateway.prompt_cache import PromptCache
from heliograph.prompts.versions import Version, check_version, render
from heliograph.store import orgs
from heliograph.store import prompts as store
from heliograph.store.schema import prompt_versions


def fields(text: str = "Hello {{who}}", **extra: Any) -> dict[str, Any]:
    return check_version({"messages": [{"role": "user", "content": text}], **extra})


@pytest.fixture
def two_orgs(engine: Engine) -> tuple[str, str]:
    return orgs.create_org(engine, "a"), orgs.create_org(engine, "b")


def test_create_list_get_and_duplicate_names(engine: Engine, two_orgs: tuple[str, str]) -> None:
    a, b = two_orgs
    made = store.create_prompt(engine, a, "greeter", "Says hello", "key:1")
    assert made["name"] == "greeter" and made["created_by"] == "key:1"
    with pytest.raises(store.DuplicateName):
        store.create_prompt(engine, a, "greeter", "again", None)
    store.create_prompt(engine, b, "greeter", "other org, same name", None)  # allowed
    store.create_prompt(engine, a, "alpha", "", None)
    listed = store.list_prompts(engine, a)
    assert [p["name"] for p in listed] == ["alpha", "greeter"]
    assert listed[1]["labels"] == {"production": None, "staging": None}
    assert listed[1]["latest_version"] is None and listed[1]["description"] == "Says hello"
    got = store.get_prompt(engine, b, "greeter")
    assert got is not None and got["description"] == "other org, same name"
    assert store.get_prompt(engine, b, "alpha") is None


def test_versions_labels_and_history(engine: Engine, two_orgs: tuple[str, str]) -> None:
    a, b = two_orgs
    store.create_prompt(engine, a, "greeter", "", None)
    assert store.create_version(engine, a, "greeter", fields(message="first"), "key:1") == 1
    assert store.create_version(engine, a, "greeter", fields("Bye {{who}}"), "key:2") == 2
    assert store.create_version(engine, b, "greeter", fields(), None) is None  # not b's
    versions = store.list_versions(engine, a, "greeter")
    assert [v["version"] for v in versions] == [2, 1]
    assert versions[1]["message"] == "first" and versions[1]["created_by"] == "key:1"
    assert versions[0]["messages"] == [{"role": "user", "content": "Bye {{who}}"}]
    assert versions[0]["variables"] == {"who": None} and versions[0]["params"] == {}
    assert store.get_version(engine, a, "greeter", 3) is None
    assert store.get_version(engine, b, "greeter", 1) is None
    assert store.get_label(engine, a, "greeter", "production") == {
        "label": "production",
        "version": None,
    }
    assert store.move_label(engine, a, "greeter", "production", 1, "key:9") == (None, 1)
    assert store.move_label(engine, a, "greeter", "production", 2, "key:9") == (1, 2)
    assert store.move_label(engine, a, "greeter", "beta", 1, None) == (None, 1)  # created
    assert store.move_label(engine, a, "greeter", "beta", 7, None) is None  # no version 7
    assert store.move_label(engine, b, "greeter", "production", 1, None) is None
    labels = {r["label"]: r["version"] for r in store.list_labels(engine, a, "greeter")}
    assert labels == {"beta": 1, "production": 2, "staging": None}
    history = store.label_history(engine, a, "greeter")
    assert [(h["label"], h["from_version"], h["to_version"]) for h in history] == [
        ("beta", None, 1),
        ("production", 1, 2),
        ("production", None, 1),
    ]
    assert history[1]["by"] == "key:9"
    assert store.label_history(engine, b, "greeter") == []
    assert store.get_prompt(engine, a, "greeter")["latest_version"] == 2  # type: ignore[index]


def test_labelled_versions_is_what_the_cache_renders(
    engine: Engine, two_orgs: tuple[str, str]
) -> None:
    a, b = two_orgs
    for org in (a, b):
        store.create_prompt(engine, org, "greeter", "", None)
        store.create_version(engine, org, "greeter", fields(f"{org} says hi to {{{{who}}}}"), None)
    store.create_version(engine, a, "greeter", fields("v2 {{who}}", model="gpt-4o"), None)
    store.move_label(engine, a, "greeter", "production", 2, None)
    store.move_label(engine, a, "greeter", "staging", 1, None)
    store.move_label(engine, b, "greeter", "production", 1, None)
    rows = store.labelled_versions(engine, a)
    assert [(r["label"], r["version"], r["model"]) for r in rows] == [
        ("production", 2, "gpt-4o"),
        ("staging", 1, None),
    ]
    everyone = store.labelled_versions(engine)
    assert sorted((r["org_id"], r["label"]) for r in everyone) == sorted(
        [(a, "production"), (a, "staging"), (b, "production")]
    )
    mine = next(r for r in everyone if r["org_id"] == b)
    rendered = render(Version.from_row(mine), {"who": "you"})
    assert rendered == [{"role": "user", "content": f"{b} says hi to you"}]


def test_concurrent_version_creation_never_repeats_a_number(
    engine: Engine, two_orgs: tuple[str, str]
) -> None:
    a, _ = two_orgs
    store.create_prompt(engine, a, "busy", "", None)
    threads, per_thread = 8, 5
    results: list[int | None] = []
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def worker(n: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                got = store.create_version(engine, a, "busy", fields(message=f"{n}-{i}"), None)
                results.append(got)
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(60)
    assert errors == []
    total = threads * per_thread
    assert sorted(results) == list(range(1, total + 1))  # type: ignore[type-var]
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(prompt_versions)).scalar_one()
    messages = {v["message"] for v in store.list_versions(engine, a, "busy")}
    assert stored == total and len(messages) == total


def test_the_gateway_cache_forgets_a_deleted_prompts_versions(
    engine: Engine, two_orgs: tuple[str, str]
) -> None:
    """Versions loaded by number are kept, but not past their prompt: deleted, it stops
    rendering after the next reload; made again under its name, its own version 1 runs."""
    a, _ = two_orgs
    cache = PromptCache(engine, refresh_interval=60)

    def text(version: Version | None) -> str | None:
        return None if version is None else render(version, {"who": "x"})[0]["content"]

    store.create_prompt(engine, a, "greeter", "", None)
    store.create_version(engine, a, "greeter", fields("Old {{who}}"), None)
    cache.load()
    assert text(asyncio.run(cache.by_version(a, "greeter", 1))) == "Old x"

    store.delete_prompt(engine, a, "greeter")
    store.create_prompt(engine, a, "greeter", "", None)
    store.create_version(engine, a, "greeter", fields("New {{who}}"), None)
    cache.load()  # the refresh
    assert text(asyncio.run(cache.by_version(a, "greeter", 1))) == "New x"

    store.delete_prompt(engine, a, "greeter")
    cache.load()
    assert asyncio.run(cache.by_version(a, "greeter", 1)) is None
