"""The experiment results API over HTTP: scopes, another organization's experiment absent,
results with intervals, the matrix paged, exports streamed (CSV formulas defused), and
promotion (admin only, prompt variants only, the label moved and recorded as key:<id>)."""

from __future__ import annotations

import csv
import io
import uuid

import httpx
import orjson
from sqlalchemy import Engine

from conftest import LiveGateway
from experiment_support import Built, build
from heliograph.prompts.versions import check_version
from heliograph.store import prompts as prompt_store
from heliograph.store.engine import make_engine

PROMPTS = (
    {"kind": "prompt", "prompt": "support", "version": 1, "label": "production"},
    {"kind": "prompt", "prompt": "support", "version": 2},
    {"kind": "model", "upstream": "openai", "model": "gpt-4o"},
)


def _engine(gw: LiveGateway) -> Engine:
    return make_engine(gw.settings.sqlalchemy_url)


def seeded(gw: LiveGateway, org_id: str | None = None, **kw: object) -> Built:
    engine = _engine(gw)
    try:
        return build(engine, org_id or gw.org.id, **kw)  # type: ignore[arg-type]
    finally:
        engine.dispose()


def post(gw: LiveGateway, path: str, key: str, body: object) -> httpx.Response:
    return httpx.post(
        gw.base_url + path, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=10
    )


def test_results_cells_and_isolation(gateway: LiveGateway) -> None:
    gw = gateway
    built = seeded(
        gw,
        items=12,
        variants=PROMPTS,
        evaluators={
            "correct": lambda i, v: (float(v > 0 or i % 2), v > 0 or i % 2 == 1, "r", None),
            "judge": lambda i, v: (
                (None, None, None, "unparseable") if i == 0 else (3.0, None, "", None)
            ),
        },
    )
    base = f"/api/v1/experiments/{built.experiment_id}"
    resp = gw.api(f"{base}/results")
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    assert doc["experiment"]["cells_total"] == 36 and doc["experiment"]["dataset"] == built.dataset
    assert [v["position"] for v in doc["variants"]] == [0, 1, 2]
    first = doc["variants"][0]["summary"]
    assert first["evaluators"]["correct"]["pass_rate"] == 0.5
    assert (
        first["evaluators"]["judge"]["errors"] == 1 and first["evaluators"]["judge"]["scored"] == 11
    )
    pairs = [(c["evaluator"], c["label"]) for c in doc["comparisons"]]
    assert ("correct", "B - A") in pairs and ("correct", "C - B") in pairs and len(pairs) == 6
    ba = next(
        c for c in doc["comparisons"] if c["evaluator"] == "correct" and c["label"] == "B - A"
    )
    assert ba["n"] == 12 and ba["diff"] == 0.5 and ba["significant"] is True
    assert ba["ci_low"] > 0 and ba["verdict"].startswith("B is better")
    # pages of the matrix
    page = gw.api(f"{base}/cells", limit=5).json()
    assert [r["item_position"] for r in page["data"]] == [0, 1, 2, 3, 4]
    assert page["next_after"] == 4 and len(page["data"][0]["cells"]) == 3
    rest = gw.api(f"{base}/cells", after=4, limit=500).json()
    assert rest["next_after"] is None and len(rest["data"]) == 7
    assert gw.api(f"{base}/cells", limit=0).status_code == 400
    assert gw.api(f"{base}/cells", bogus=1).status_code == 400
    # scopes and org isolation
    assert gw.api(f"{base}/results", key=gw.org.write_key).status_code == 403
    assert gw.api(f"{base}/results", key=gw.other.read_key).status_code == 404
    assert gw.api(f"{base}/cells", key=gw.other.admin_key).status_code == 404
    assert gw.api(f"{base}/export.csv", key=gw.other.read_key).status_code == 404
    assert gw.api(f"/api/v1/experiments/{uuid.uuid4()}/results").status_code == 404
    assert gw.api("/api/v1/experiments/not-an-id/results").status_code == 404


def test_exports_stream_every_cell(gateway: LiveGateway) -> None:
    gw = gateway
    hostile = '=HYPERLINK("http://x")'
    built = seeded(gw, items=230, output=lambda i, v: hostile if i == 1 else f"out {i}\n{v}")
    base = f"/api/v1/experiments/{built.experiment_id}"
    resp = gw.api(f"{base}/export.jsonl")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith(
        "application/x-ndjson"
    )
    lines = [orjson.loads(line) for line in resp.content.splitlines()]
    assert len(lines) == 460
    assert [(x["item_position"], x["variant_position"]) for x in lines[:3]] == [
        (0, 0),
        (0, 1),
        (1, 0),
    ]
    assert lines[0]["correct.reason"] == "item 0 variant 0" and lines[0]["output"] == "out 0\n0"
    resp = gw.api(f"{base}/export.csv")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    assert len(rows) == 460 and float(rows[0]["correct.value"]) == 0.0
    assert rows[2]["output"] == "'" + hostile  # a spreadsheet never runs it
    assert rows[0]["output"] == "out 0\n0"


def test_promote_moves_the_label_for_admins_only(gateway: LiveGateway) -> None:
    gw = gateway
    engine = _engine(gw)
    try:
        prompt_store.create_prompt(engine, gw.org.id, "support", "", None)
        for text in ("v1", "v2"):
            fields = check_version({"messages": [{"role": "system", "content": text}]})
            prompt_store.create_version(engine, gw.org.id, "support", fields, None)
        prompt_store.move_label(engine, gw.org.id, "support", "production", 1, None)
        built = build(engine, gw.org.id, items=3, variants=PROMPTS)
    finally:
        engine.dispose()
    path = f"/api/v1/experiments/{built.experiment_id}/promote"
    body = {"variant": 1, "label": "production"}
    assert post(gw, path, gw.org.read_key, body).status_code == 403
    assert post(gw, path, gw.org.write_key, body).status_code == 403
    assert post(gw, path, gw.other.admin_key, body).status_code == 404
    not_prompt = post(gw, path, gw.org.admin_key, {"variant": 2})
    assert not_prompt.status_code == 400 and "not a prompt version" in not_prompt.text
    assert post(gw, path, gw.org.admin_key, {"variant": 7}).status_code == 400
    assert post(gw, path, gw.org.admin_key, {"variant": 1, "label": "Bad!"}).status_code == 400
    assert post(gw, path, gw.org.admin_key, {"variant": 1, "x": 1}).status_code == 400
    resp = post(gw, path, gw.org.admin_key, body)
    assert resp.status_code == 200, resp.text
    assert resp.json()["from_version"] == 1 and resp.json()["to_version"] == 2
    labels = gw.api("/api/v1/prompts/support/labels", key=gw.org.read_key)
    assert labels.status_code == 200, labels.text
    production = next(x for x in labels.json()["data"] if x["label"] == "production")
    assert production["version"] == 2
    by_id = post(gw, path, gw.org.admin_key, {"variant": built.variant_ids[0], "label": "staging"})
    assert by_id.status_code == 200 and by_id.json()["to_version"] == 1
    doc = gw.api("/api/v1/prompts/support/labels", key=gw.org.read_key).json()
    staging = next(x for x in doc["data"] if x["label"] == "staging")
    assert staging["version"] == 1 and staging["updated_by"].startswith("key:")
    moves = [(h["label"], h["to_version"], h["by"]) for h in doc["history"]]
    assert ("production", 2, staging["updated_by"]) in moves
