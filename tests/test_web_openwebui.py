"""The dashboard with Open WebUI traffic: names and emails instead of ids, what background tasks
cost, groups, and the analytics API's task and group dimensions, on both store dialects.

Traffic goes through the in-process gateway with the headers Open WebUI sends (user info
forwarding, ``X-OpenWebUI-Task``, ``X-OpenWebUI-Chat-Id``); expected figures are computed
from the stored records read back through the API, never from the pages' own code. The task
rollup is checked against raw rows across hour boundaries like the other rollups.
"""

from __future__ import annotations

import html
import random
import re
import time
import urllib.parse
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jwt
from markupsafe import escape
from pydantic import SecretStr
from sqlalchemy import select

from conftest import LiveGateway, gateway_settings
from heliograph.store import aggregate, analytics, rollups, tasks
from heliograph.store.engine import make_engine, migrate
from heliograph.store.inserts import insert_records
from heliograph.store.stats import Stats
from heliograph.web.format import pct
from mock_upstream import MockUpstream
from test_rollups import HOUR, ORG, T0, add_plain, make_row, rounded
from web_support import WebClient, add_user, row_ids, send

TITLE_PROMPT = (
    "### Task:\nGenerate a concise title summarizing the chat history.\n### Guidelines:\n"
    "- Keep it short: 2-4 words is best.\n### Output:\n"
    'JSON format: { "title": "your concise title here" }\n### Chat History:\n'
    "<chat_history>\nUSER: hello\nASSISTANT: hi\n</chat_history>"
)
ALICE = ("u-alice", "Alice Ünïcode", "alice@example.com", "Research,Équipe Nord")
BOB = ("u-bob", "Bob <b>Bold</b>", "bob@example.com", "Research")
HOSTILE = ("u-evil", "<img src=x onerror=alert(1)>", '"><script>alert(2)</script>@x.io', "")
DAVE = ("u-dave", "Dave Elsewhere", "dave@other.example", "Research")
SECRET = "a-shared-secret-of-32-bytes-or-more!!"
CHAT_A = "c0ffee00-1111-2222-3333-444455556666"
TITLE = "Otters & <friends>"
TASKS = ("title_generation", "tags_generation", "follow_up_generation")


def owui(person: tuple[str, str, str, str], **extra: str) -> dict[str, str]:
    """The headers Open WebUI sends with ENABLE_FORWARD_USER_INFO_HEADERS=true."""
    user, name, email, groups = person
    out = {
        "x-openwebui-user-id": user,
        "x-openwebui-user-name": urllib.parse.quote(name, safe=" "),
        "x-openwebui-user-email": urllib.parse.quote(email, safe="@"),
        "x-openwebui-user-role": "user",
        **extra,
    }
    if groups:
        out["x-openwebui-user-groups"] = urllib.parse.quote(groups, safe=", ")
    return out


def seed(gw: LiveGateway) -> dict[str, Any]:
    """Chats and background tasks from three people in org A, one in org B, one plain user."""
    ids: dict[str, Any] = {"a": [], "b": []}
    chat = {"x-openwebui-chat-id": CHAT_A}
    ids["chat"] = send(gw, "tell me about otters " * 30, "gpt-4o", **owui(ALICE, **chat))
    ids["a"].append(send(gw, "and sea otters?", "gpt-4o", **owui(ALICE, **chat)))
    ids["title"] = send(
        gw,
        TITLE_PROMPT,
        "gpt-4o-mini",
        **owui(
            ALICE,
            **chat,
            **{"x-openwebui-task": "title_generation", "x-mock-title": urllib.parse.quote(TITLE)},
        ),
    )
    ids["a"].append(
        send(gw, "tags please", "gpt-4o-mini", **owui(ALICE, **{"x-openwebui-task": TASKS[1]}))
    )
    ids["a"].append(send(gw, "hello from bob", "gpt-4o-mini", **owui(BOB)))
    ids["a"].append(
        send(gw, "follow ups " * 20, "gpt-4o", **owui(BOB, **{"x-openwebui-task": TASKS[2]}))
    )
    ids["evil"] = send(gw, "hostile", "gpt-4o-mini", **owui(HOSTILE))
    ids["a"].append(send(gw, "plain", "gpt-4o-mini", **{"Helicone-User-Id": "carol"}))
    ids["b"].append(
        send(
            gw,
            "other org",
            "gpt-4o-mini",
            key=gw.other.write_key,
            **owui(DAVE, **{"x-openwebui-task": TASKS[0]}),
        )
    )
    gw.wait_records(8)
    gw.wait_records(1, key=gw.other.read_key)
    return ids


def esc(text: str) -> str:
    """Text as the templates write it (Jinja's autoescape)."""
    return str(escape(text))


def cost(records: list[dict[str, Any]]) -> float:
    return sum(r["cost_usd"] or 0.0 for r in records if r["cost_known"])


def hrefs(page: str, prefix: str) -> list[str]:
    return [html.unescape(h) for h in re.findall(r'href="(' + re.escape(prefix) + r'[^"]*)"', page)]


def params_of(href: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(href).query))


def test_pages_show_names_tasks_and_groups(gateway_any: LiveGateway) -> None:
    gw = gateway_any
    ids = seed(gw)
    records = gw.records()
    assert len(records) == 8
    by_id = {r["id"]: r for r in records}
    assert by_id[ids["title"]]["task"] == "title_generation"
    assert by_id[ids["title"]]["session_name"] == TITLE
    task_records = [r for r in records if r["task"]]
    assert {r["task"] for r in task_records} == set(TASKS)
    share = cost(task_records) / cost(records)
    assert 0 < share < 1
    add_user(gw, "admin@example.com")
    with WebClient(gw, "admin@example.com") as web:
        alice = esc("Alice Ünïcode <alice@example.com>")
        bob = esc("Bob <b>Bold</b> <bob@example.com>")

        users = web.get("/users", range="30d").text
        assert alice in users and bob in users and ">carol</a>" in users
        assert 'href="/users/u-alice?range=30d"' in users
        # opened without a range, a young install's page shows (and links) the last hour
        assert 'href="/users/u-alice?range=1h"' in web.get("/users").text
        assert 'href="/users?range=30d&amp;group=%C3%89quipe+Nord"' in users
        research = web.get("/users", group="Research").text
        assert alice in research and bob in research and "carol" not in research
        assert "Dave" not in research  # a member of a group of the same name, in org B
        nord = web.get("/users", group="Équipe Nord").text
        assert alice in nord and bob not in nord

        me = web.get("/users/u-alice").text
        assert 'class="person-name">Alice Ünïcode</span>' in me
        assert "alice@example.com" in me and "<strong>user</strong>" in me
        assert ">from headers</span>" in me and ">Research</a>" in me

        listing = web.get("/requests").text
        assert alice in listing and bob in listing
        assert 'title="u-alice"' in listing
        for task in TASKS:
            badge = f'href="/requests?task={task}" title="Open WebUI background task">{task}</a>'
            assert badge in listing, task
        titled = web.get("/requests", task="title_generation").text
        assert row_ids(titled) == [ids["title"]]
        grouped = web.get("/requests", user_group="Research").text
        research_ids = {r["id"] for r in records if "Research" in r["user_groups"]}
        assert set(row_ids(grouped)) == research_ids and len(research_ids) == 6
        assert 'name="task"' in listing and 'name="user_group"' in listing

        detail = web.get(f"/requests/{ids['title']}").text
        assert alice in detail and ">from headers</span>" in detail
        assert 'class="badge task" href="/requests?task=title_generation"' in detail
        assert esc(TITLE) in detail

        session = web.get(f"/sessions/{CHAT_A}").text
        assert esc(TITLE) in session and alice in session

        home = web.get("/").text
        assert alice in home and f"<strong>{pct(share)}</strong> of spend" in home

        page = web.get("/tasks").text
        headline = re.search(r'<p class="headline" id="task-headline">(.*?)</p>', page, re.S)
        assert headline, page[:2000]
        text = " ".join(re.sub(r"<[^>]+>", "", headline.group(1)).split())
        assert text.startswith(f"Open WebUI background tasks were {pct(share)} of spend"), text
        assert alice in page and bob in page and "Dave" not in page
        # every drill-through lists exactly the records it counts
        drills = [h for h in hrefs(page, "/requests?") if "task=" in h]
        assert len(drills) >= 3 + 2 + 2
        for href in drills:
            want = params_of(href)
            expected = {
                r["id"]
                for r in records
                if r["task"] == want["task"]
                and all(r[k] == want[k] for k in ("user_id", "model") if k in want)
            }
            assert expected and set(row_ids(web.get(href).text)) == expected, href
        # the per-user share: the task part of that user's own spend
        bob_records = [r for r in records if r["user_id"] == "u-bob"]
        bob_share = cost([r for r in bob_records if r["task"]]) / cost(bob_records)
        row = re.search(
            r"<tr>\s*<td class=\"clip person\"><a href=\"/users/u-bob.*?</tr>", page, re.S
        )
        assert row and f"</svg> {pct(bob_share)}</span>" in row.group(0)

        groups = web.get("/groups", range="30d").text
        members = [r for r in records if r["user_id"] in ("u-alice", "u-bob")]
        research_row = re.search(
            r"<tr>\s*<td class=\"clip\"><a href=\"/users\?range=30d&amp;group=Research\">Research</a></td>(.*?)</tr>",
            groups,
            re.S,
        )
        assert research_row, groups[:3000]
        cells = re.findall(r'<td class="num">([^<]*)', research_row.group(1))
        assert cells[:2] == ["2", str(len(members))]
        assert "Équipe Nord" in groups and "Dave" not in groups


def test_the_analytics_api_breaks_down_by_task_and_group(gateway_any: LiveGateway) -> None:
    gw = gateway_any
    seed(gw)
    records = gw.records()

    def get(path: str, **params: str) -> Any:
        resp = gw.api(path, **params)
        assert resp.status_code == 200, resp.text
        return resp.json()

    by_task = {r["key"]: r for r in get("/api/v1/analytics/breakdown", dimension="task")["data"]}
    assert set(by_task) == {None, *TASKS}
    for task, row in by_task.items():
        mine = [r for r in records if r["task"] == task]
        assert row["requests"] == len(mine), task
        assert abs(row["cost_usd"] - cost(mine)) < 1e-9, task
    title = get("/api/v1/analytics/summary", task="title_generation")
    assert title["requests"] == 1 and title["active_users"] == 1
    by_group = {
        r["key"]: r for r in get("/api/v1/analytics/breakdown", dimension="user_group")["data"]
    }
    members = [r for r in records if r["user_id"] in ("u-alice", "u-bob")]
    assert by_group["Research"]["requests"] == len(members)
    assert by_group["Équipe Nord"]["requests"] == sum(r["user_id"] == "u-alice" for r in records)
    in_group = get("/api/v1/analytics/breakdown", dimension="user_id", user_group="Research")
    assert {r["key"] for r in in_group["data"]} == {"u-alice", "u-bob"}
    nobody = get("/api/v1/analytics/summary", user_group="No such group")
    assert nobody["requests"] == 0
    # the other organization sees its own tasks only
    other = gw.api("/api/v1/analytics/breakdown", gw.other.read_key, dimension="task").json()
    assert {r["key"]: r["requests"] for r in other["data"]} == {"title_generation": 1}
    bad = gw.api("/api/v1/analytics/breakdown", dimension="user_name")
    assert bad.status_code == 400


def test_one_organization_never_sees_anothers_people(gateway_any: LiveGateway) -> None:
    gw = gateway_any
    seed(gw)
    add_user(gw, "b@example.com", "viewer", org_id=gw.other.id)
    with WebClient(gw, "b@example.com") as b:
        for path in ("/", "/users", "/tasks", "/groups", "/requests", "/users?group=Research"):
            text = b.get(path).text
            assert "Alice" not in text and "alice@example.com" not in text, path
            assert "u-bob" not in text and "Bob" not in text, path
        assert "Dave Elsewhere &lt;dave@other.example&gt;" in b.get("/tasks").text
        groups = b.get("/groups").text
        assert "Équipe Nord" not in groups and ">Research</a>" in groups
        assert b.get("/users/u-alice").status_code == 404


def test_hostile_names_are_text(gateway_any: LiveGateway) -> None:
    gw = gateway_any
    ids = seed(gw)
    add_user(gw, "admin@example.com")
    with WebClient(gw, "admin@example.com") as web:
        shown = esc(f"{HOSTILE[1]} <{HOSTILE[2]}>")
        for path in ("/", "/users", "/requests", f"/requests/{ids['evil']}", "/users/u-evil"):
            text = web.get(path).text
            assert "<img src=x" not in text and "<script>alert" not in text, path
            assert esc(HOSTILE[1]) in text, path
        assert shown in web.get("/users").text
        live = web.get("/requests/live.json", after="0").json()["rows"]
        evil = next(r for r in live if r["id"] == ids["evil"])
        assert evil["user"] == f"{HOSTILE[1]} <{HOSTILE[2]}>" and evil["user_id"] == "u-evil"


# ---------------------------------------------------------------- the task rollup


def matches(row: dict[str, Any], where: dict[str, Any]) -> bool:
    for k, v in where.items():
        if v is aggregate.PRESENT:
            if not row[k]:
                return False
        elif (row[k] or "") not in (v if isinstance(v, tuple) else (v,)):
            return False
    return True


def reference(
    rows: list[dict[str, Any]], since: int, until: int, groups: tuple[str, ...], where: Any = None
) -> dict[Any, Any]:
    """Plain Python over the inserted rows: chats have task None, "" selects them."""
    out: dict[Any, Stats] = {}
    for row in rows:
        if row["kind"] != "llm" or not since <= row["created_at"] < until:
            continue
        if not matches(row, where or {}):
            continue
        key = tuple(row[g] for g in groups)
        add_plain(out.setdefault(key, Stats()), SimpleNamespace(**row))
    api = {k: v.to_api() for k, v in out.items()}
    for value in api.values():  # the task rollup keeps no histograms: no percentiles
        value.update({k: None for k in value if re.match(r"p\d+_", k)})
    return api


def test_task_rollup_matches_raw_rows(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    rng = random.Random(5)
    rows = [
        make_row(rng, T0 + rng.randint(0, 6 * HOUR - 1), task=rng.choice([None, None, *TASKS]))
        for _ in range(700)
    ]
    with engine.begin() as conn:
        insert_records(conn, rows, [], [])
    since, until = T0 + 1234, T0 + 5 * HOUR + 777  # ragged edges, four whole hours between
    with engine.connect() as conn:
        for dims in (
            ("task",),
            ("task", "model"),
            ("task", "user_id"),
            ("task", "model", "user_id"),
        ):
            got = {
                k: v.stats.to_api()
                for k, v in aggregate.collect(conn, ORG, since, until, dims).items()
            }
            assert got == reference(rows, since, until, dims), dims
        for where in (
            {"task": "title_generation"},
            {"task": ""},
            {"task": TASKS[1], "user_id": ("alice", "bob")},
            {"task": TASKS[2], "model": "gpt-4o"},
            {"task": aggregate.PRESENT},
            {"task": aggregate.PRESENT, "user_id": "bob"},
        ):
            got = {
                k: v.stats.to_api()
                for k, v in aggregate.collect(conn, ORG, since, until, ("model",), where).items()
            }
            assert got == reference(rows, since, until, ("model",), where), where
            users = {
                r["user_id"]
                for r in rows
                if r["kind"] == "llm"
                and since <= r["created_at"] < until
                and r["user_id"]
                and matches(r, where)
            }
            assert aggregate.distinct_users(conn, ORG, since, until, where) == len(users), where
        # a user with a model reads the task rollup too, summing only what is asked
        measures = ("requests", "errors", "prompt_tokens", "cost_nusd", "unpriced")
        for where in ({}, {"user_id": ("alice", "")}, {"task": aggregate.PRESENT}):
            got = aggregate.sums(conn, ORG, since, until, ("model", "user_id"), where, measures)
            want = reference(rows, since, until, ("model", "user_id"), where)
            assert {k: v.requests for k, v in got.items()} == {
                k: v["requests"] for k, v in want.items()
            }
            assert {k: v.cost_nusd / 1e9 for k, v in got.items()} == {
                k: v["cost_usd"] for k, v in want.items()
            }
            assert {k: (v.errors, v.prompt_tokens, v.unpriced) for k, v in got.items()} == {
                k: (v["errors"], v["prompt_tokens"], v["unpriced_requests"])
                for k, v in want.items()
            }
    top = analytics.top_pairs(engine, ORG, "user_id", "model", ["alice", "bob"], since, until, 5)
    for user in ("alice", "bob"):
        mine = reference(rows, since, until, ("model",), {"user_id": user})
        assert top[user] == sorted(
            ((k[0], v["requests"]) for k, v in mine.items() if k[0]), key=lambda kv: (-kv[1], kv[0])
        )
    # the Tasks page's figures are the same sums
    report = tasks.report(engine, ORG, since, until)
    llm = [r for r in rows if r["kind"] == "llm" and since <= r["created_at"] < until]
    task_rows = [r for r in llm if r["task"]]
    known = sum(r["cost_nusd"] or 0 for r in llm if r["cost_known"])
    task_cost = sum(r["cost_nusd"] or 0 for r in task_rows if r["cost_known"])
    assert report["totals"]["tasks"]["requests"] == len(task_rows)
    assert report["totals"]["chats"]["requests"] == len(llm) - len(task_rows)
    assert report["totals"]["share"]["cost"] == task_cost / known
    assert {r["key"]: r["requests"] for r in report["by_task"]} == {
        t: sum(r["task"] == t for r in llm) for t in (None, *TASKS)
    }
    alice = next(r for r in report["by_user"] if r["key"] == "alice")
    mine = [r for r in llm if r["user_id"] == "alice"]
    assert alice["all"]["requests"] == len(mine)
    assert alice["tasks"]["requests"] == sum(1 for r in mine if r["task"])
    breakdown = analytics.breakdown(engine, ORG, "task", since, until)
    assert {r["key"]: r["requests"] for r in breakdown} == {
        r["key"]: r["requests"] for r in report["by_task"]
    }
    # the SQL rebuild gives the same task rollup rows as the writer's incremental path
    table = rollups.rollup_task_hourly
    with engine.connect() as conn:
        before = conn.execute(select(table).order_by(*table.primary_key)).all()
    with engine.begin() as conn:
        rollups.rebuild(conn)
    with engine.connect() as conn:
        after = conn.execute(select(table).order_by(*table.primary_key)).all()
    assert [rounded(r) for r in after] == [rounded(r) for r in before] and before
    engine.dispose()


def test_identity_badges_say_where_a_name_came_from(tmp_path: Path, mock: MockUpstream) -> None:
    """A verified token, and a token that failed (recorded, as the setting allows)."""
    mock.reset()
    settings = gateway_settings(
        tmp_path,
        f"sqlite:///{tmp_path / 'gw.db'}",
        mock.url,
        openwebui_jwt_secret=SecretStr(SECRET),
        openwebui_jwt_failure="record",
    )
    gw = LiveGateway(settings).start()
    try:
        send(gw, "signed", **{"x-openwebui-user-jwt": token(SECRET, "u-signed", "Sig Ned")})
        forged = send(gw, "forged", **{"x-openwebui-user-jwt": token("x" * 40, "u-ceo", "The CEO")})
        gw.wait_records(2)
        add_user(gw, "admin@example.com")
        with WebClient(gw, "admin@example.com") as web:
            signed = web.get("/users/u-signed").text
            assert 'class="person-name">Sig Ned</span>' in signed
            assert 'class="badge identity ok"' in signed and ">verified</span>" in signed
            ceo = web.get("/users/u-ceo").text  # never in the directory: the id, and a warning
            assert 'class="person-name">u-ceo</span>' in ceo and "The CEO" not in ceo
            assert "carried an Open WebUI token that was not verified" in ceo
            detail = web.get(f"/requests/{forged}").text
            assert ">unverified</span>" in detail and "sent as" in detail and "The CEO" in detail
            assert "The CEO" not in web.get("/users").text
    finally:
        gw.stop()


def token(secret: str, user: str, name: str) -> str:
    now = int(time.time())
    claims = {"sub": user, "name": name, "email": f"{user}@example.com", "role": "user"}
    return jwt.encode({**claims, "iat": now, "exp": now + 300}, secret, algorithm="HS256")
