"""Migrations upgrade a store that already holds data, on both dialects."""

from __future__ import annotations

import time

from sqlalchemy import Engine, inspect, text

from heliograph.evals.dataset_items import check_item
from heliograph.store.datasets import add_items, create_dataset, list_datasets, list_items
from heliograph.store.engine import current_revision, make_engine, migrate
from heliograph.store.prompts import create_prompt, list_prompts
from heliograph.store.requests import RequestFilter, get_request, list_requests


def index_sql(engine: Engine, name: str) -> str:
    """The index's definition as the database itself reports it."""
    query = (
        "SELECT indexdef FROM pg_indexes WHERE indexname = :n"
        if engine.dialect.name == "postgresql"
        else "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = :n"
    )
    with engine.connect() as conn:
        return str(conn.execute(text(query), {"n": name}).scalar_one())


def test_upgrade_from_first_schema_keeps_data(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate(engine, "0001")
    assert current_revision(engine) == "0001"
    now = int(time.time() * 1000)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO organizations (id, name, created_at) VALUES ('o1', 'old', :now)"),
            {"now": now},
        )
        conn.execute(
            text(
                "INSERT INTO requests (id, org_id, created_at, kind, provider, upstream, method,"
                " endpoint, model, stream, status, state, prompt_tokens, properties)"
                " VALUES ('r1', 'o1', :now, 'llm', 'openai', 'openai', 'POST',"
                " '/chat/completions', 'gpt-4o', :f, 200, 'ok', 12, :props)"
            ),
            {"now": now, "f": False, "props": '{"team": "a"}'},
        )
        conn.execute(
            text(
                "INSERT INTO request_properties (request_id, name, value, org_id)"
                " VALUES ('r1', 'team', 'a', 'o1')"
            )
        )
    migrate(engine)
    assert current_revision(engine) == "0023"
    assert "trace_id IS NOT NULL" in index_sql(engine, "ix_requests_org_trace")
    assert "session_id IS NOT NULL" in index_sql(engine, "ix_requests_org_session")
    assert "prompt_name IS NOT NULL" in index_sql(engine, "ix_requests_org_prompt")
    columns = {c["name"] for c in inspect(engine).get_columns("requests")}
    assert {"cost_known", "cache_write_tokens", "load_ms", "protocol"} <= columns
    assert {"user_name", "user_email", "user_groups", "identity", "task", "message_id"} <= columns
    tables = set(inspect(engine).get_table_names())
    assert {"prompt_name", "prompt_version", "prompt_label", "prompt_inputs"} <= columns
    assert {"request_groups", "end_users", "rollup_task_hourly"} <= tables
    rows, _ = list_requests(engine, "o1", RequestFilter(properties={"team": "a"}), 10)
    assert [r["id"] for r in rows] == ["r1"]
    row = rows[0]
    assert row["model"] == "gpt-4o" and row["prompt_tokens"] == 12
    assert row["cost_known"] is False and row["cost_usd"] is None
    assert row["protocol"] == "openai" and row["tokens_estimated"] is False
    assert row["task"] is None and row["user_groups"] == [] and row["identity"] is None
    assert row["prompt_name"] is None and row["prompt_inputs"] is None
    assert row["source"] == "gateway" and row["trace_id"] is None  # 0020's default
    with engine.connect() as conn:  # the stored request was rolled up as a chat
        tasks = conn.execute(text("SELECT task, model, requests FROM rollup_task_hourly")).all()
    assert [tuple(t) for t in tasks] == [("", "gpt-4o", 1)]
    with engine.connect() as conn:  # and into the task rollup's projections (migration 0009)
        pairs = conn.execute(text("SELECT task, model, requests FROM rollup_task_model_hourly"))
        assert [tuple(t) for t in pairs] == [("", "gpt-4o", 1)]
        users = conn.execute(text("SELECT user_id, requests FROM rollup_user_hourly")).all()
        assert [tuple(u) for u in users] == [("", 1)]  # kept when SQLite's table was clustered
        daily = conn.execute(text("SELECT user_id, requests FROM rollup_user_daily")).all()
        assert [tuple(u) for u in daily] == [("", 1)]  # and its daily twin (migration 0010)
    assert get_request(engine, "o1", "r1") is not None
    # prompts (migration 0011) work in the upgraded store, for the org it already held
    created = create_prompt(engine, "o1", "greeter", "", None)
    assert created["name"] == "greeter"
    assert list_prompts(engine, "o1")[0]["labels"] == {"production": None, "staging": None}
    # datasets (migration 0014): an item from the request the old store held
    create_dataset(engine, "o1", "golden", "", None)
    item = check_item({"inputs": {"q": "hi"}, "expected": "hello", "source_request_id": "r1"})
    added = add_items(engine, "o1", "golden", [item, item], "key:k")
    assert added is not None and len(added.ids) == 1 and added.skipped == 1
    assert list_datasets(engine, "o1")[0]["item_count"] == 1
    rows, _ = list_items(engine, "o1", "golden", 10)
    assert rows[0]["source_request_id"] == "r1" and rows[0]["inputs"] == {"q": "hi"}
    assert "archived_at IS NULL" in index_sql(engine, "uq_dataset_items_hash")
    # online evaluation (migration 0016): reasons on scores, leases on the queue
    assert "reason" in {c["name"] for c in inspect(engine).get_columns("request_scores")}
    queue = {c["name"] for c in inspect(engine).get_columns("eval_queue")}
    assert {"lease_owner", "lease_until"} <= queue
    # record webhooks (migration 0018): endpoints, the outbox, the delivery log
    assert {"webhook_endpoints", "webhook_outbox", "webhook_deliveries"} <= set(
        inspect(engine).get_table_names()
    )
    migrate(engine)  # idempotent
    # budgets (migration 0017): a budget on the old organization, settled and reserved
    from heliograph.store import budgets as budget_store
    from heliograph.store.budgets import Settlement

    fields = {
        "name": "team", "scope": {"user_id": "u"}, "window": "day", "timezone": "UTC",
        "limit_unit": "requests", "limit_amount": 3, "action": "block", "thresholds": [80],
    }  # fmt: skip
    budget = budget_store.create_budget(engine, "o1", fields, None)
    assert budget_store.reserve(engine, budget["id"], 3, (0, 0, 0), "h1", 1, 1, 60_000) == (1, 1)
    budget_store.settle(engine, [Settlement(budget["id"], "h1", 0, 1, 0, 1)])
    assert budget_store.usage(engine, budget["id"], (0, 0, 0)) == (1, 0)
    assert "budget_note" in {c["name"] for c in inspect(engine).get_columns("requests")}
    # alerts (migration 0019): rules, channels, events and the notification outbox
    assert {"alert_rules", "alert_channels", "alert_events", "alert_notifications"} <= set(
        inspect(engine).get_table_names()
    )
    from heliograph.alerts.definitions import check_channel, check_rule
    from heliograph.store import alerts as alert_store

    hook = check_channel({"name": "hook", "kind": "webhook", "url": "http://127.0.0.1:9/h"})
    alert_store.create_channel(engine, "o1", hook)
    doc = {"name": "r", "metric": "requests", "window": "1h", "comparison": ">", "threshold": 1}
    rule = check_rule({**doc, "channels": ["hook"]}, alert_store.channel_refs(engine, "o1"))
    assert alert_store.create_rule(engine, "o1", rule, None)["state"] == "ok"
    # retention (migration 0022): an override on the old organization, and its indexes
    from heliograph.store import retention as retention_store

    row = retention_store.set_override(engine, "o1", {"bodies_days": 7, "records_days": 30}, "t")
    assert (row["bodies_days"], row["records_days"], row["rollups_days"]) == (7, 30, None)
    assert "request_id IS NOT NULL" in index_sql(engine, "ix_spans_request")
    assert retention_store.count_records(engine, "o1", now + 1) == 1
    migrate(engine)  # idempotent
    assert current_revision(engine) == "0023"
    assert "trace_id IS NOT NULL" in index_sql(engine, "ix_requests_org_trace")
    engine.dispose()
