"""The filter engine and Helicone's query API, on both store dialects with the same data.

Every case below runs unchanged on SQLite and PostgreSQL and must select exactly the named
records, so the two dialects are checked against each other and against intent.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select

from conftest import LiveGateway
from heliograph.store import filters
from heliograph.store import query as query_store
from heliograph.store.engine import make_engine
from heliograph.store.requests import RequestFilter, list_requests
from heliograph.store.schema import requests
from query_support import T0, dataset

ORG, OTHER = "org-q", "org-other"
MINE = {"r0", "r1", "r2", "r3"}


def rmt(field: str, op: str, value: Any) -> dict[str, Any]:
    return {"request_response_rmt": {field: {op: value}}}


def both(operator: str, left: Any, right: Any) -> dict[str, Any]:
    return {"left": left, "operator": operator, "right": right}


CASES: list[tuple[Any, set[str]]] = [
    ("all", MINE),
    (rmt("model", "equals", "gpt-4o"), {"r0"}),
    (rmt("model", "not-equals", "gpt-4o"), {"r1", "r2", "r3"}),
    (rmt("model", "like", "gpt-4o%"), {"r0", "r1"}),  # case-sensitive on both dialects
    (rmt("model", "like", "GPT%"), {"r3"}),
    (rmt("model", "like", "claude-3\\_5\\%sonnet"), {"r2"}),
    (rmt("model", "like", "gpt-4_"), {"r0"}),
    (rmt("model", "ilike", "gpt-4o%"), {"r0", "r1", "r3"}),
    (rmt("model", "contains", "4O-"), {"r1"}),
    (rmt("model", "contains", "%"), {"r2"}),  # % and _ are literal in contains
    (rmt("model", "contains", "_"), {"r2"}),
    (rmt("model", "not-contains", "gpt"), {"r2"}),
    (rmt("user_id", "equals", "alice"), {"r0"}),
    (rmt("user_id", "not-equals", "alice"), {"r1", "r2", "r3"}),  # NULL is "not equal"
    (rmt("status", "gte", 400), {"r1", "r3"}),
    (rmt("status", "equals", 429.0), {"r3"}),
    (rmt("latency", "lt", 100), {"r3"}),
    (rmt("latency", "not-equals", 100), {"r1", "r2", "r3"}),
    ({"request_response_rmt": {"latency": {"gte": 100, "lte": 250.5}}}, {"r0", "r1"}),
    (rmt("time_to_first_token", "gt", 0), {"r0"}),
    (rmt("properties.team", "equals", "Red"), {"r0"}),
    ({"request_response_rmt": {"properties": {"Team": {"ilike": "red"}}}}, {"r0"}),
    (rmt("properties.team", "not-equals", "Red"), {"r1", "r2", "r3"}),
    (rmt("properties.env", "contains", "RO"), {"r0"}),
    (rmt("scores.accuracy", "gte", 3), {"r0"}),
    ({"request_response_rmt": {"scores": {"accuracy": {"lt": "3"}}}}, {"r3"}),
    (rmt("scores.helpful", "equals", True), {"r0"}),
    (rmt("feedback", "equals", True), {"r0"}),
    (rmt("feedback", "equals", False), {"r1"}),
    (rmt("feedback", "not-equals", True), {"r1", "r2", "r3"}),
    (rmt("helicone-score-feedback", "equals", True), {"r0"}),
    (rmt("cost", "gt", 0.001), {"r0"}),
    (rmt("cost", "equals", 0), {"r2"}),  # r1's cost is unknown, not zero
    (rmt("cost", "lte", 0.002), {"r0", "r2"}),
    (rmt("created_at", "gte", "1970-01-01T00:00:00Z"), MINE),
    (rmt("request_created_at", "gte", (T0 + 1000) / 1000), {"r1", "r2", "r3"}),
    (rmt("created_at", "lt", T0 + 1000), {"r0"}),
    (rmt("cache_hit", "equals", True), {"r2"}),
    (rmt("provider", "equals", "anthropic"), {"r2"}),
    (rmt("upstream", "not-equals", "openai"), {"r2"}),
    (rmt("endpoint", "contains", "messages"), {"r2"}),
    (rmt("kind", "equals", "other"), {"r3"}),
    (rmt("state", "equals", "error"), {"r1", "r3"}),
    (rmt("session_id", "equals", "s1"), {"r0"}),
    (rmt("total_tokens", "gt", 25), {"r0"}),
    (rmt("prompt_tokens", "equals", 10), {"r0"}),
    (rmt("completion_tokens", "lte", 20), {"r0"}),
    (rmt("retries", "equals", 0), MINE),
    (
        both(
            "and",
            both("or", rmt("model", "equals", "gpt-4o"), rmt("status", "equals", 500)),
            rmt("user_id", "equals", "bob"),
        ),
        {"r1"},
    ),
    (both("or", "all", rmt("model", "equals", "nothing")), MINE),
    ({}, MINE),
    ({"request": {"model": {"contains": "gpt"}}}, {"r0", "r1", "r3"}),
    ({"request": {"user_id": {"equals": "bob"}, "path": {"equals": "/v1/messages"}}}, set()),
    ({"response": {"status": {"equals": 200}}}, {"r0", "r2"}),
    ({"properties": {"team": {"equals": "blue"}}}, {"r1"}),
    ({"feedback": {"rating": {"equals": True}}}, {"r0"}),
    (rmt("model", "equals", "'; DROP TABLE requests; --"), set()),
]


def test_filter_cases_on_both_dialects(engine: Engine) -> None:
    ids = dataset(engine, ORG, OTHER)
    names = {v: k for k, v in ids.items()}
    failures = []
    for tree, expected in CASES:
        where = filters.parse(tree)
        rows = query_store.query_requests(engine, ORG, where, limit=1000)
        got = {names[r["id"]] for r in rows}
        count = query_store.count_requests(engine, ORG, where)
        if got != expected or count != len(expected):
            failures.append((tree, expected, got, count))
    assert not failures
    with engine.connect() as conn:  # the "injection" was only ever a bound value
        assert conn.execute(select(func.count()).select_from(requests)).scalar_one() == 5


def test_get_parameters_compile_to_the_same_engine(engine: Engine) -> None:
    ids = dataset(engine, ORG, OTHER)
    names = {v: k for k, v in ids.items()}

    def pick(**kw: Any) -> set[str]:
        rows, _ = list_requests(engine, ORG, RequestFilter(**kw), 100)
        return {names[r["id"]] for r in rows}

    assert pick(model="gpt-4o") == {"r0"}
    assert pick(status=500) == {"r1"}
    assert pick(properties={"team": "Red"}) == {"r0"}
    assert pick(since_ms=T0 + 1000, until_ms=T0 + 3000) == {"r1", "r2"}
    assert pick(where=filters.parse(rmt("scores.accuracy", "gt", 0))) == {"r0", "r3"}
    assert pick(user_id="alice", where=filters.parse(rmt("feedback", "equals", True))) == {"r0"}
    tree = RequestFilter(model="m", since_ms=5).tree()
    assert tree == filters.Branch(
        "and", (filters.Leaf("model", "equals", "m"), filters.Leaf("created_at", "gte", 5))
    )


def test_sorting_offset_and_nulls_last(engine: Engine) -> None:
    ids = dataset(engine, ORG, OTHER)
    names = {v: k for k, v in ids.items()}

    def order(sort: str, ascending: bool, **kw: Any) -> list[str]:
        rows = query_store.query_requests(
            engine, ORG, filters.ALL, sort=sort, ascending=ascending, **kw
        )
        return [names[r["id"]] for r in rows]

    assert order("created_at", False) == ["r3", "r2", "r1", "r0"]
    assert order("latency", True) == ["r3", "r0", "r1", "r2"]
    assert order("latency", False) == ["r1", "r0", "r3", "r2"]
    assert order("cost", True) == ["r2", "r0", "r1", "r3"]
    assert order("cost", False) == ["r0", "r2", "r3", "r1"]
    assert order("created_at", True, offset=1, limit=2) == ["r1", "r2"]
    rows = query_store.query_requests(engine, ORG, filters.parse(rmt("model", "equals", "gpt-4o")))
    assert rows[0]["feedback"] is True and rows[0]["scores"] == {"accuracy": 5, "helpful": 1}


BAD_TREES: list[tuple[Any, str]] = [
    (None, "filter must be"),
    ([], "filter must be"),
    ({"left": {}, "operator": "and", "right": "all"}, "filter.left must be"),
    ("everything", "filter must be"),
    (rmt("nope", "equals", "x"), "unknown field"),
    ({"request_response_rmt": {"model; DROP TABLE requests": {"equals": "x"}}}, "unknown field"),
    ({"bogus_table": {"model": {"equals": "x"}}}, "unknown table"),
    ({"request": {"prompt": {"equals": "x"}}}, "unknown field"),
    (rmt("model", "regex", "x"), "operator not allowed"),
    (rmt("status", "like", "5%"), "operator not allowed"),
    (rmt("feedback", "gt", True), "operator not allowed"),
    (rmt("model", "equals", 5), "must be a string"),
    (rmt("model", "equals", "x" * 1001), "must be a string"),
    (rmt("status", "equals", "500"), "must be a number"),
    (rmt("status", "equals", True), "must be a number"),
    (rmt("latency", "gt", 1e300), "out of range"),
    (rmt("cost", "gt", 1e12), "at most"),
    (rmt("created_at", "gte", "yesterday"), "ISO 8601"),
    (rmt("created_at", "gte", 1e20), "out of range"),
    (rmt("created_at", "gte", "0000-12-31T23:00:00-02:00"), "ISO 8601"),
    (rmt("created_at", "gte", -62_135_596_800_001), "years 1 to 9999"),
    (rmt("created_at", "lt", "9999-12-31T23:59:59-01:00"), "years 1 to 9999"),
    (rmt("model", "contains", "\x00"), "NUL"),
    (rmt("user_id", "equals", "a\x00b"), "NUL"),
    (rmt("properties.env", "like", "%\x00%"), "NUL"),
    (rmt("properties.e\x00v", "equals", "x"), "no NUL"),
    (rmt("created_at", "gte", None), "ISO 8601"),
    (rmt("feedback", "equals", "true"), "true or false"),
    (rmt("scores.x", "gte", "high"), "must be a number"),
    (rmt("properties." + "k" * 256, "equals", "v"), "1 to 255"),
    ({"request_response_rmt": {"model": {}}}, "non-empty object"),
    ({"request_response_rmt": {"model": "gpt"}}, "non-empty object"),
    ({"left": "all", "operator": "xor", "right": "all"}, '"and" or "or"'),
    ({"left": "all", "operator": "and"}, "exactly the keys"),
    ({"left": "all", "operator": "and", "right": "all", "x": 1}, "exactly the keys"),
]


@pytest.mark.parametrize(("tree", "message"), BAD_TREES)
def test_invalid_trees_are_refused(tree: Any, message: str) -> None:
    with pytest.raises(filters.FilterError, match=message):
        filters.parse(tree)


def test_nul_characters_match_nothing_on_both_dialects(engine: Engine) -> None:
    """A NUL once made ``contains`` match every row on SQLite (its LIKE stops at the NUL) and
    failed the query on PostgreSQL; conditions built without ``parse`` match nothing."""
    ids = dataset(engine, ORG, OTHER)
    names = {v: k for k, v in ids.items()}

    def pick(where: filters.Filter) -> set[str]:
        return {names[r["id"]] for r in query_store.query_requests(engine, ORG, where)}

    for op in ("contains", "equals", "like", "ilike"):
        assert pick(filters.Leaf("model", op, "\x00")) == set(), op
        assert pick(filters.Leaf("properties", op, "\x00", "team")) == set(), op
    assert pick(filters.Leaf("model", "not-contains", "\x00")) == MINE
    assert pick(filters.Leaf("model", "not-equals", "a\x00")) == MINE
    assert pick(filters.Leaf("properties", "equals", "Red", "te\x00am")) == set()
    rows, _ = list_requests(engine, ORG, RequestFilter(model="\x00", user_id="a\x00"), 100)
    assert rows == []


def test_nul_characters_over_http(gateway_any: LiveGateway) -> None:
    gw = gateway_any
    engine = make_engine(gw.settings.sqlalchemy_url)
    try:
        dataset(engine, gw.org.id, gw.other.id)
    finally:
        engine.dispose()
    for op in ("contains", "not-contains", "equals", "like", "ilike"):
        resp = post(gw, "/v1/request/query", {"filter": rmt("model", op, "\x00")})
        assert resp.status_code == 400 and "NUL" in resp.json()["error"]["message"], resp.text
    for name in ("model", "user_id", "property.team", "filter"):
        resp = gw.api("/api/v1/requests", **{name: "\x00"})
        assert resp.status_code == 400 and "NUL" in resp.json()["error"]["message"], name
    assert gw.api("/api/v1/requests/a%00b").status_code == 404


def test_size_limits() -> None:
    deep: Any = "all"
    for _ in range(filters.MAX_DEPTH + 1):
        deep = both("and", deep, "all")
    with pytest.raises(filters.FilterError, match="deeper"):
        filters.parse(deep)
    level: list[Any] = [rmt("model", "equals", str(i)) for i in range(256)]
    while len(level) > 1:  # a balanced tree: shallow, but too many conditions
        level = [both("or", level[i], level[i + 1]) for i in range(0, len(level), 2)]
    with pytest.raises(filters.FilterError, match="more than"):
        filters.parse(level[0])
    many_ops = {"request_response_rmt": {f"properties.p{i}": {"equals": "v"} for i in range(201)}}
    with pytest.raises(filters.FilterError, match="more than"):
        filters.parse(many_ops)


@pytest.mark.parametrize(
    ("like", "glob"),
    [("a%b_c", "a*b?c"), ("x\\%y\\_z", "x%y_z"), ("*?[", "[*][?][[]"), ("end\\", "end\\")],
)
def test_like_to_glob(like: str, glob: str) -> None:
    assert filters.like_to_glob(like) == glob


# ---- over HTTP --------------------------------------------------------------------------


def post(gw: LiveGateway, path: str, body: Any, key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key or gw.org.read_key}"}
    return httpx.post(gw.base_url + path, json=body, headers=headers, timeout=10)


def test_query_endpoints(gateway_any: LiveGateway) -> None:
    gw = gateway_any
    engine = make_engine(gw.settings.sqlalchemy_url)
    try:
        ids = dataset(engine, gw.org.id, gw.other.id)
    finally:
        engine.dispose()
    names = {v: k for k, v in ids.items()}
    body = {
        "filter": both("or", rmt("properties.team", "equals", "Red"), rmt("status", "gte", 400)),
        "sort": {"latency": "desc"},
        "offset": 0,
        "limit": 10,
        "isCached": False,
    }
    for prefix in ("/v1/request/query", "/api/v1/requests/query"):
        resp = post(gw, prefix, body)
        assert resp.status_code == 200, resp.text
        doc = resp.json()
        assert doc["error"] is None
        assert [names[r["id"]] for r in doc["data"]] == ["r1", "r0", "r3"]
        count = post(gw, prefix + "/count", body).json()
        assert count == {"data": 3, "error": None}
    first = post(gw, "/v1/request/query", {"filter": "all", "limit": 1.0}).json()["data"]
    assert [names[r["id"]] for r in first] == ["r3"]
    assert post(gw, "/v1/request/query", {}).json()["data"][-1]["id"] == ids["r0"]
    other = post(gw, "/v1/request/query", {"filter": "all"}, gw.other.read_key).json()["data"]
    assert [r["id"] for r in other] == [ids["x9"]] and other[0]["scores"] == {"accuracy": 9}
    # A GET filter tree goes through the same engine.
    tree = '{"request_response_rmt": {"scores.accuracy": {"gte": 1}}}'
    got = gw.api("/api/v1/requests", filter=tree).json()["data"]
    assert {names[r["id"]] for r in got} == {"r0", "r3"}
    assert gw.api("/api/v1/requests", filter="all").status_code == 200
    assert gw.api("/api/v1/requests", filter="{bad").status_code == 400


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"filter": rmt("nope", "equals", 1)}, 400, "invalid_filter"),
        ({"filter": "all", "limit": 0}, 400, "invalid_parameter"),
        ({"filter": "all", "limit": 1001}, 400, "invalid_parameter"),
        ({"filter": "all", "limit": 2.5}, 400, "invalid_parameter"),
        ({"filter": "all", "offset": -1}, 400, "invalid_parameter"),
        ({"filter": "all", "offset": True}, 400, "invalid_parameter"),
        ({"filter": "all", "sort": {"model": "asc"}}, 400, "invalid_sort"),
        ({"filter": "all", "sort": {"latency": "up"}}, 400, "invalid_sort"),
        ({"filter": "all", "sort": {"latency": "asc", "cost": "asc"}}, 400, "invalid_sort"),
        ([1, 2], 400, "invalid_json"),
    ],
)
def test_query_errors(gateway: LiveGateway, body: Any, status: int, code: str) -> None:
    resp = post(gateway, "/v1/request/query", body)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["code"] == code and resp.json()["error"]["message"]


def test_query_auth_and_raw_bodies(gateway: LiveGateway) -> None:
    gw = gateway
    assert post(gw, "/v1/request/query", {}, gw.org.write_key).status_code == 403
    assert httpx.post(gw.base_url + "/v1/request/query", json={}).status_code == 401
    headers = {"Authorization": f"Bearer {gw.org.read_key}"}
    url = gw.base_url + "/v1/request/query"
    assert httpx.post(url, content=b"{nope", headers=headers).status_code == 400
    assert httpx.post(url, content=b"", headers=headers).status_code == 200
    huge = b'{"filter": "all", "pad": "' + b"x" * (1 << 20) + b'"}'
    assert httpx.post(url, content=huge, headers=headers).status_code == 413
    deep = b'{"filter": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    assert httpx.post(url, content=deep, headers=headers).status_code == 400


def test_real_traffic_with_helicone_headers(gateway_any: LiveGateway) -> None:
    gw = gateway_any
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    sent = []
    for i, (user, team, status) in enumerate(
        [("ann", "Red", "200"), ("ben", "blue", "200"), ("ann", "blue", "500")]
    ):
        resp = httpx.post(
            gw.openai_url + "/chat/completions",
            json=chat,
            headers={
                "Helicone-User-Id": user,
                "Helicone-Property-Team": team,
                "Heliograph-Property-N": str(i),
                "x-mock-status": status,
            },
        )
        sent.append(resp.headers["helicone-id"])
    gw.wait_records(3)
    tree = both("and", rmt("user_id", "equals", "ann"), rmt("properties.team", "equals", "blue"))
    got = post(gw, "/v1/request/query", {"filter": tree}).json()["data"]
    assert [r["id"] for r in got] == [sent[2]] and got[0]["status"] == 500
    legacy = {"properties": {"n": {"equals": "1"}}}
    assert [r["id"] for r in post(gw, "/v1/request/query", {"filter": legacy}).json()["data"]] == [
        sent[1]
    ]
    assert post(gw, "/v1/request/query/count", {"filter": rmt("status", "equals", 500)}).json() == {
        "data": 1,
        "error": None,
    }


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_the_default_order_is_one_an_index_can_deliver(dialect: str) -> None:
    """Ordering by ``created_at`` spells no NULLS-last expression: a ``CASE`` there hid the
    column's NOT NULL from PostgreSQL, which then sorted every match (2.5 s at 10M)."""
    from sqlalchemy.dialects import postgresql, sqlite

    from heliograph.api.requests import parse_tree

    target = postgresql.dialect() if dialect == "postgresql" else sqlite.dialect()
    where = parse_tree({"request_response_rmt": {"user_id": {"equals": "u1"}}})

    def order_of(sort: str) -> str:
        sql = str(query_store.page_query("org", where, 0, 10, sort, False).compile(dialect=target))
        return sql.split("ORDER BY", 1)[1].upper()

    assert "CASE" not in order_of("created_at") and "NULLS" not in order_of("created_at")
    assert "NULLS LAST" in order_of("latency")
    assert "NULLS LAST" in order_of("cost")
