"""One filter language: every field declared in ``store.fields`` is accepted by all four front
doors (the REST API and its export, Helicone's query API, the dashboard's Requests page and its
export, and ``heliograph export``) and selects the same records at each, on both dialects; a bad
time gets the same message at every door.

The records are built from the declarations alone, so a field declared tomorrow is tested here
without a line added: one record per field differs from the base records in that field only,
and another organization holds a record matching every condition (no door may show it).
"""

from __future__ import annotations

import datetime as dt
import html
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from conftest import LiveGateway, create_pg_database, gateway_settings
from heliograph.store import fields, times
from heliograph.store.engine import make_engine
from heliograph.store.feedback import set_feedback, set_scores
from mock_upstream import MockUpstream
from query_support import T0, insert, row
from web_support import WebClient, add_user, row_ids, send

README = Path(__file__).parent.parent / "README.md"
BASE, SPECIAL = 1, 7  # numbers (USD for cost): every base record has 1, the field's record 7
LATER = T0 + 5 * 3_600_000  # created_at of the created_at record (all others are at T0 + i s)
KEY: dict[str, tuple[str, Any, Any]] = {  # keyed fields: name, base value, special value
    "properties": ("team", "blue", "red"),
    "scores": ("accuracy", 1, 5),
}
FIELD_NAMES = [f.name for f in fields.FIELDS]


def text_value(field: fields.Field) -> str:
    return f"v{FIELD_NAMES.index(field.name)}"  # short: some columns are VARCHAR(8)


def columns(chosen: set[str]) -> dict[str, Any]:
    """Every filterable column of ``requests``: the ``chosen`` fields' at their special value,
    the others at the base value."""
    out: dict[str, Any] = {"cost_known": True}
    for field in fields.FIELDS:
        if not field.on_requests or field.column.key == "id":
            continue
        special = field.name in chosen
        if field.kind == "text":
            value: Any = text_value(field) if special else "b"
        elif field.kind == "bool":
            value = special
        elif field.kind == "time":
            value = LATER if special else None  # None: row() numbers the base records
        else:
            value = (SPECIAL if special else BASE) * field.scale
        if value is not None:
            out[field.column.key] = value
    return out


@dataclass
class Site:
    gw: LiveGateway
    web: WebClient
    db_url: str
    names: dict[str, str]  # record id -> the field it was made for, or "base-0", "base-1"
    ids: dict[str, str]

    def named(self, ids: list[str]) -> set[str]:
        return {self.names.get(i, f"foreign {i}") for i in ids}


def _records(engine: Any, org: str, other: str) -> dict[str, str]:
    """Two base records and one per field; the other organization's matches everything."""
    names = ["base-0", "base-1", *FIELD_NAMES]
    rows = [row(org, i, **columns({name})) for i, name in enumerate(names)]
    group = text_value(fields.get("user_group"))
    for r, name in zip(rows, names, strict=True):
        r["properties"] = {"team": "red" if name == "properties" else "blue"}
        r["user_groups"] = [group if name == "user_group" else "b"]
    everything = row(
        other,
        len(names),
        **columns(set(FIELD_NAMES)),
        properties={"team": "red"},
        user_groups=[group],
    )
    insert(engine, [*rows, everything])
    ids = {name: r["id"] for name, r in zip(names, rows, strict=True)}
    for name, rid in ids.items():
        set_scores(engine, org, rid, {"accuracy": 5 if name == "scores" else 1})
        if name in ("feedback", "base-0"):
            set_feedback(engine, org, rid, name == "feedback")
    set_scores(engine, other, everything["id"], {"accuracy": 5})
    set_feedback(engine, other, everything["id"], True)
    return ids


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, mock: MockUpstream
) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("fields")
    drop = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'store.db'}"
    else:
        url, drop = create_pg_database(request.getfixturevalue("pg_admin"))
    gw = LiveGateway(gateway_settings(tmp, url, mock.url)).start()
    try:
        engine = make_engine(url)
        try:
            ids = _records(engine, gw.org.id, gw.other.id)
        finally:
            engine.dispose()
        add_user(gw, "fields@example.com")
        with WebClient(gw, "fields@example.com") as web:
            yield Site(gw, web, url, {v: k for k, v in ids.items()}, ids)
    finally:
        gw.stop()
        if drop is not None:
            drop()


# ---- one condition, in each door's form -------------------------------------------------


@dataclass(frozen=True)
class Condition:
    param: str  # URL spelling
    value: str  # its text in a URL or on the command line
    tree: dict[str, Any]  # the same condition as a Helicone tree
    cli: tuple[str, ...]
    expected: set[str]


def conditions(field: fields.Field, ids: dict[str, str]) -> list[Condition]:
    """Every spelling of ``field``, each with a value and the records it must select (a key
    such as the record id is the field's record's own)."""
    mine = {"base-0", "base-1", *FIELD_NAMES}
    out = []
    for param, op in field.params():
        json_value: Any
        if field.kind == "keyed":
            key, _, json_value = KEY[field.name]
            param, tree_name = f"{field.param}.{key}", f"{field.name}.{key}"
            value = str(json_value)
            command: tuple[str, ...] = (f"--{field.param}", f"{key}={value}")
        else:
            tree_name = field.name
            if field.column.key == "id":
                json_value = value = ids[field.name]
            elif field.kind == "text":
                json_value = value = text_value(field)
            elif field.kind == "bool":
                json_value, value = True, "true"
            elif field.kind == "time":
                json_value = value = iso(LATER)
            else:
                json_value = BASE if op == "lte" else SPECIAL
                value = str(json_value)
            command = (fields.cli_option(param), value)
        expected = {field.name} if op in ("equals", "gte") else mine - {field.name}
        tree = {"request_response_rmt": {tree_name: {op: json_value}}}
        out.append(Condition(param, value, tree, command, expected))
    return out


def iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat().replace("+00:00", "Z")


def cli(site: Site, *args: str) -> subprocess.CompletedProcess[str]:
    home = str(site.gw.settings.home)
    return subprocess.run(
        [sys.executable, "-m", "heliograph", *args, "--home", home, "--database-url", site.db_url],
        env={**os.environ, "HELIOGRAPH_HOME": home},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def jsonl_ids(text: str) -> list[str]:
    return [orjson.loads(line)["id"] for line in text.splitlines()]


@pytest.mark.parametrize("name", FIELD_NAMES)
def test_every_field_filters_the_same_rows_at_every_door(site: Site, name: str) -> None:
    field = fields.get(name)
    gw, web = site.gw, site.web
    headers = {"Authorization": f"Bearer {gw.org.read_key}"}
    for n, c in enumerate(conditions(field, site.ids)):
        got: dict[str, set[str]] = {}
        listed = gw.api("/api/v1/requests", limit=1000, **{c.param: c.value})
        assert listed.status_code == 200, (c.param, listed.text)
        got["api"] = site.named([r["id"] for r in listed.json()["data"]])
        exported = gw.api("/api/v1/requests/export", **{c.param: c.value})
        got["api export"] = site.named(jsonl_ids(exported.text))
        query = httpx.post(
            gw.base_url + "/v1/request/query",
            json={"filter": c.tree, "limit": 1000},
            headers=headers,
            timeout=10,
        )
        assert query.status_code == 200, (c.tree, query.text)
        got["query api"] = site.named([r["id"] for r in query.json()["data"]])
        page = web.get("/requests", limit="500", **{c.param: c.value})
        assert page.status_code == 200 and "notice err" not in page.text, (c.param, page.text)
        got["dashboard"] = site.named(row_ids(page.text))
        page_export = web.get("/requests/export.jsonl", **{c.param: c.value})
        got["dashboard export"] = site.named(jsonl_ids(page_export.text))
        if n == 0:  # one spelling per field on the command line (each run is a process)
            done = cli(site, "export", "--org", gw.org.id, *c.cli)
            assert done.returncode == 0, (c.cli, done.stderr)
            got["cli"] = site.named(jsonl_ids(done.stdout))
        wrong = {door: rows for door, rows in got.items() if rows != c.expected}
        assert not wrong, (c.param, c.value, c.expected, wrong)


def test_the_dashboard_reads_its_old_spellings_and_writes_the_one(site: Site) -> None:
    web = site.web
    user, session = text_value(fields.get("user_id")), text_value(fields.get("session_id"))
    spellings = [
        ("user", user, "user_id", "user_id"),
        ("session", session, "session_id", "session_id"),
        ("prop", "team=red", "property.team", "properties"),
        ("feedback", "good", "feedback", "feedback"),
    ]
    for old, old_value, one, field in spellings:
        new_value = {"prop": "red", "feedback": "true"}.get(old, old_value)
        before = web.get("/requests", **{old: old_value}).text
        after = web.get("/requests", **{one: new_value}).text
        assert site.named(row_ids(before)) == site.named(row_ids(after)) == {field}, old
        links = html.unescape(" ".join(re.findall(r'href="(/requests[^"]*)"', before)))
        assert f"{one}={new_value}" in links, (old, links)
        assert not re.search(rf"[?&]{old}=", links) or old == one, (old, links)


def test_dashboard_links_write_the_one_spelling(gateway: LiveGateway) -> None:
    headers = {"Helicone-User-Id": "ann", "Helicone-Session-Id": "s-9"}
    rid = send(gateway, "hi", **headers, **{"Helicone-Property-Team": "red"})
    gateway.wait_records(1)
    add_user(gateway, "links@example.com")
    with WebClient(gateway, "links@example.com") as web:
        for path in ("/", "/users", "/users/ann", "/sessions", "/sessions/s-9", f"/requests/{rid}"):
            page = web.get(path)
            assert page.status_code == 200, path
            links = html.unescape(" ".join(re.findall(r'href="(/requests\?[^"]*)"', page.text)))
            assert not re.search(r"[?&](user|session|prop)=", links), (path, links)
        assert "user_id=ann" in html.unescape(web.get("/users").text)
        assert "session_id=s-9" in html.unescape(web.get("/sessions").text)
        assert "property.team=red" in html.unescape(web.get(f"/requests/{rid}").text)


def test_a_bad_time_gets_the_same_message_at_every_door(site: Site) -> None:
    gw, web = site.gw, site.web
    said = times.message("since")
    for path in (
        "/api/v1/requests",
        "/api/v1/requests/export",
        "/api/v1/costs",
        "/api/v1/analytics/summary",
    ):
        resp = gw.api(path, since="yesterday")
        assert resp.status_code == 400 and resp.json()["error"]["message"] == said, path
    tree = {"request_response_rmt": {"created_at": {"gte": "yesterday"}}}
    query = httpx.post(
        gw.base_url + "/v1/request/query",
        json={"filter": tree},
        headers={"Authorization": f"Bearer {gw.org.read_key}"},
        timeout=10,
    )
    where = "filter.request_response_rmt.created_at.gte"
    assert query.status_code == 400 and query.json()["error"]["message"] == times.message(where)
    page = html.unescape(web.get("/requests", since="yesterday").text)
    assert f'<p class="notice err">{said}</p>' in page and not row_ids(page)
    window = html.unescape(web.get("/", range="custom", since="yesterday").text)
    assert said in window
    live = web.get("/requests/live.json", after="yesterday")
    assert live.status_code == 400 and live.json()["error"] == times.message("after")
    for command in (["export"], ["tail", "--once"], ["prices", "recompute"]):
        done = cli(site, *command, "--since", "yesterday")
        assert done.returncode == 2 and said in done.stderr, (command, done.stderr)
    for good in ("2026-01-31", "2026-01-31T09:00", "2026-01-31T09:00:00+02:00", "1769850000"):
        assert gw.api("/api/v1/requests", since=good).status_code == 200, good
        assert web.get("/requests", since=good).status_code == 200, good
    assert times.parse_time("1769850000", "t") == times.parse_time("1769850000000", "t")


def test_tail_takes_the_same_filters(gateway: LiveGateway, tmp_path: Path) -> None:
    alice = send(gateway, "hi", **{"Helicone-User-Id": "alice"})
    send(gateway, "hi", **{"Helicone-User-Id": "bob"})
    gateway.wait_records(2)
    where = [
        "--home",
        str(gateway.settings.home),
        "--database-url",
        gateway.settings.sqlalchemy_url,
    ]
    done = subprocess.run(
        [sys.executable, "-m", "heliograph", "tail", "--once", "--user-id", "alice", *where],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()[1:]
    assert len(lines) == 1 and "alice" in lines[0] and "bob" not in done.stdout, alice


def test_readme_field_table_matches_the_declarations() -> None:
    text = README.read_text()
    start = text.index("<!-- filter-fields:start -->") + len("<!-- filter-fields:start -->")
    end = text.index("<!-- filter-fields:end -->")
    assert text[start:end].strip() == fields.markdown().strip(), (
        "README filter table is stale: paste heliograph.store.fields.markdown()"
    )
