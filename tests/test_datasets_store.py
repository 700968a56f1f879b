"""Dataset store queries on both dialects: names unique among live datasets, duplicates by
content skipped, items immutable (an edit archives and inserts, a delete archives) so pinned
ids keep reading what they were, keyset pages, org isolation; and the item and file checks."""

from __future__ import annotations

import io
import threading

import pytest
from sqlalchemy import Engine

from heliograph.evals.dataset_files import read_items
from heliograph.evals.dataset_items import (
    MAX_EXPECTED_CHARS,
    Item,
    ItemError,
    check_item,
    item_from_record,
)
from heliograph.store import datasets as store
from heliograph.store import orgs


def item(q: str, expected: str | None = None) -> Item:
    return check_item({"inputs": {"q": q}, "expected": expected})


@pytest.fixture
def two_orgs(engine: Engine) -> tuple[str, str]:
    return orgs.create_org(engine, "a"), orgs.create_org(engine, "b")


def test_datasets_names_counts_and_isolation(engine: Engine, two_orgs: tuple[str, str]) -> None:
    a, b = two_orgs
    made = store.create_dataset(engine, a, "golden", "the good ones", "user:u1")
    assert made["created_by"] == "user:u1" and made["item_count"] == 0
    with pytest.raises(store.DuplicateName):
        store.create_dataset(engine, a, "golden", "", None)
    store.create_dataset(engine, b, "golden", "b's", None)  # other org, same name
    store.add_items(engine, a, "golden", [item("1"), item("2")], "key:k")
    assert [(d["name"], d["item_count"]) for d in store.list_datasets(engine, a)] == [("golden", 2)]
    other = store.get_dataset(engine, b, "golden")
    assert other is not None and other["item_count"] == 0 and other["description"] == "b's"
    assert store.add_items(engine, b, "nope", [item("1")], None) is None
    assert store.set_description(engine, a, "golden", "better")
    got = store.get_dataset(engine, a, "golden")
    assert got is not None and got["description"] == "better"
    assert store.dataset_names(engine, a) == ["golden"]


def test_duplicates_skipped_and_pages(engine: Engine, two_orgs: tuple[str, str]) -> None:
    a, _ = two_orgs
    store.create_dataset(engine, a, "d", "", None)
    batch = [item(str(i), "x") for i in range(7)] + [item("3", "x"), item("3", "y")]
    added = store.add_items(engine, a, "d", batch, None)
    assert added is not None and len(added.ids) == 8 and added.skipped == 1
    again = store.add_items(engine, a, "d", [item("0", "x"), item("new")], None)
    assert again is not None and len(again.ids) == 1 and again.skipped == 1
    seen, cursor = [], None
    while True:
        rows, cursor = store.list_items(engine, a, "d", 3, cursor)
        seen += rows
        if cursor is None:
            break
    assert len(seen) == 9 and len({r["id"] for r in seen}) == 9
    assert seen[0]["inputs"] == {"q": "0"} and seen[-1]["inputs"] == {"q": "new"}
    assert [r["id"] for r in store.iter_items(engine, a, "d")] == [r["id"] for r in seen]
    with pytest.raises(ValueError):
        store.list_items(engine, a, "d", 3, "garbage")


def test_items_are_immutable_and_pinned_ids_stay_readable(
    engine: Engine, two_orgs: tuple[str, str]
) -> None:
    a, b = two_orgs
    store.create_dataset(engine, a, "d", "", None)
    added = store.add_items(engine, a, "d", [item("one", "1"), item("two", "2")], None)
    assert added is not None
    pinned = added.ids  # what an experiment would pin
    new = store.replace_item(engine, a, "d", pinned[0], item("one", "uno"), "key:k")
    assert new is not None and new["id"] not in pinned
    with pytest.raises(store.DuplicateItem):  # the content of the other live item
        store.replace_item(engine, a, "d", new["id"], item("two", "2"), None)
    assert store.replace_item(engine, a, "d", pinned[0], item("x"), None) is None  # archived
    assert store.archive_item(engine, a, "d", pinned[1])
    assert not store.archive_item(engine, a, "d", pinned[1])
    assert not store.archive_item(engine, b, "d", new["id"])
    live, _ = store.list_items(engine, a, "d", 10)
    assert [r["id"] for r in live] == [new["id"]]
    archived, _ = store.list_items(engine, a, "d", 10, archived=True)
    assert {r["id"] for r in archived} == set(pinned)
    old = store.items_by_ids(engine, a, pinned)
    assert [r["expected"] for r in old] == ["1", "2"]  # exactly what was pinned
    assert old[0]["replaced_by"] == new["id"] and old[0]["archived_at"] is not None
    assert store.items_by_ids(engine, b, pinned) == []
    # an archived item's content may come back as a new item
    back = store.add_items(engine, a, "d", [item("two", "2")], None)
    assert back is not None and len(back.ids) == 1
    # deleting the dataset archives it and its items; its name is free; pins still read
    assert store.delete_dataset(engine, a, "d")
    assert store.get_dataset(engine, a, "d") is None and not store.delete_dataset(engine, a, "d")
    store.create_dataset(engine, a, "d", "again", None)
    assert store.list_items(engine, a, "d", 10)[0] == []
    assert len(store.items_by_ids(engine, a, [*pinned, new["id"]])) == 3
    assert store.get_item(engine, a, "d", pinned[0]) is None  # not this new dataset's


def test_concurrent_adds_of_the_same_content_store_it_once(
    engine: Engine, two_orgs: tuple[str, str]
) -> None:
    a, _ = two_orgs
    store.create_dataset(engine, a, "d", "", None)
    results: list[int] = []

    def add() -> None:
        added = store.add_items(engine, a, "d", [item(str(i)) for i in range(20)], None)
        assert added is not None
        results.append(len(added.ids))

    threads = [threading.Thread(target=add) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results) == 20
    got = store.get_dataset(engine, a, "d")
    assert got is not None and got["item_count"] == 20


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ([], "must be a JSON object"),
        ({"inputs": {}}, "at least one variable"),
        ({"inputs": {"a": {"b": 1}}}, "variable 'a'"),
        ({"inputs": {"a": 1}, "expected": 3}, "expected must be text"),
        ({"inputs": {"a": 1}, "bogus": 1}, "unknown field 'bogus'"),
        ({"messages": [{"content": "hi"}]}, "messages[0]"),
        ({"messages": []}, "non-empty list"),
        ({"inputs": {"a": "x\x00"}}, "NUL"),
        ({"inputs": {"a": 1}, "expected": "x" * (MAX_EXPECTED_CHARS + 1)}, "longer than"),
        ({"inputs": {"a": "x" * 300_000}}, "larger than"),
        ({"inputs": {"a": 1}, "metadata": []}, "metadata must be an object"),
        ({"inputs": {"messages": [{"role": "user"}]}, "messages": [{"role": "u"}]}, "not both"),
    ],
)
def test_item_checks(doc: object, problem: str) -> None:
    with pytest.raises(ItemError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        check_item(doc)


def test_messages_beside_inputs_and_the_hash() -> None:
    one = check_item({"inputs": {"a": 1}, "messages": [{"role": "user", "content": "hi"}]})
    assert one.inputs == {"a": 1, "messages": [{"role": "user", "content": "hi"}]}
    same = check_item({"inputs": {"messages": [{"role": "user", "content": "hi"}], "a": 1}})
    assert one.content_hash == same.content_hash
    meta = check_item(
        {**{"inputs": {"a": 1}}, "metadata": {"m": 1}, "messages": one.inputs["messages"]}
    )
    assert meta.content_hash == one.content_hash  # metadata is not content
    assert check_item({"inputs": {"a": 1}, "expected": "x"}).content_hash != one.content_hash


def test_item_from_records() -> None:
    body = b'{"model": "m", "messages": [{"role": "user", "content": "Hi <b>"}]}'
    answer = b'{"choices": [{"message": {"role": "assistant", "content": "Hello"}}]}'
    record = {"id": "r1", "status": 200, "state": "ok", "model": "m"}
    made = item_from_record(record | {"request_body": body, "response_body": answer})
    assert made.inputs == {"messages": [{"role": "user", "content": "Hi <b>"}]}
    assert made.expected == "Hello" and made.source_request_id == "r1"
    assert made.metadata == {"model": "m"}
    bare = item_from_record(
        record | {"request_body": body, "response_body": answer}, with_expected=False
    )
    assert bare.expected is None
    failed = record | {"status": 500, "request_body": body, "response_body": b"{}"}
    assert item_from_record(failed).expected is None
    prompted = record | {
        "request_body": body,
        "response_body": answer,
        "prompt_inputs": {"name": "Ada"},
        "prompt_name": "greeter",
        "prompt_version": 2,
    }
    got = item_from_record(prompted)
    assert got.inputs == {"name": "Ada"}
    assert got.metadata == {"model": "m", "prompt": "greeter", "version": 2}
    with pytest.raises(ItemError, match="no messages"):
        item_from_record(record | {"request_body": b"{}", "response_body": answer})


def test_jsonl_and_csv_lines() -> None:
    jsonl = b"\n".join(
        [
            b'{"inputs": {"q": "a"}, "expected": "A"}',
            b"",
            b"{not json",
            b'{"id": "old", "messages": [{"role": "user", "content": "m"}]}',
            b'{"inputs": 3}',
        ]
    )
    got = list(read_items("jsonl", io.BytesIO(jsonl)))
    assert [n for n, _ in got] == [1, 3, 4, 5]
    assert isinstance(got[0][1], Item) and isinstance(got[2][1], Item)
    assert isinstance(got[1][1], str) and "not JSON" in got[1][1]
    assert isinstance(got[3][1], str) and "inputs must be an object" in got[3][1]
    text = (
        "input,input.lang,expected,metadata\n"
        'plain text,en,"two\nlines",\n'
        '"{""q"": 1}",,x,"{""k"": 2}"\n'
        ",,,\n"
        "a,b,c,[1]\n"
        "too,many,cells,here,!\n"
    )
    rows = list(read_items("csv", io.BytesIO(text.encode())))
    assert [n for n, _ in rows] == [2, 4, 6, 7]
    first, second = rows[0][1], rows[1][1]
    assert isinstance(first, Item) and first.inputs == {"input": "plain text", "lang": "en"}
    assert first.expected == "two\nlines"
    assert isinstance(second, Item) and second.inputs == {"q": 1, "lang": ""}
    assert second.metadata == {"k": 2}
    assert rows[2][1] == "column metadata must be a JSON object"
    assert rows[3][1] == "5 cells for 4 columns"
    bad_header = list(read_items("csv", io.BytesIO(b"prompt,expected\nx,y\n")))
    assert bad_header == [(1, bad_header[0][1])] and "unknown column 'prompt'" in str(
        bad_header[0][1]
    )
