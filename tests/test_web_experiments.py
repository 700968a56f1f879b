"""The Experiments pages and the review queue over HTTP: hostile outputs escaped, the summary
with its interval in words, the diff, exports, another organization's experiment absent,
promotion in two steps for admins (viewers see no button and get 403), and review scores
stored on the cell and on its request record."""

from __future__ import annotations

import uuid

from conftest import LiveGateway
from experiment_support import Built, build
from heliograph.prompts.versions import check_version
from heliograph.store import experiment_results as results
from heliograph.store import feedback
from heliograph.store import prompts as prompt_store
from heliograph.store.engine import make_engine
from web_support import WebClient, add_user, send

HOSTILE = ("<script>alert(1)</script>", '"><img src=x onerror=alert(1)>')
PROMPTS = (
    {"kind": "prompt", "prompt": "support", "version": 1},
    {"kind": "prompt", "prompt": "support", "version": 2},
)


def setup(gw: LiveGateway, rid: str | None = None) -> Built:
    engine = make_engine(gw.settings.sqlalchemy_url)
    try:
        prompt_store.create_prompt(engine, gw.org.id, "support", "", None)
        for text in ("v1", "v2"):
            fields = check_version({"messages": [{"role": "system", "content": text}]})
            prompt_store.create_version(engine, gw.org.id, "support", fields, None)
        prompt_store.move_label(engine, gw.org.id, "support", "production", 1, None)
        return build(
            engine,
            gw.org.id,
            name="tone <b>test</b>",
            items=12,
            variants=PROMPTS,
            evaluators={"correct": lambda i, v: (float(v), v == 1, HOSTILE[1], None)},
            output=lambda i, v: f"{HOSTILE[v]} answer {i}",
            request_ids=lambda i, v: rid if rid and (i, v) == (0, 0) else str(uuid.uuid4()),
        )
    finally:
        engine.dispose()


def test_pages_escape_and_compare(gateway: LiveGateway) -> None:
    built = setup(gateway)
    add_user(gateway, "admin@example.com")
    here = f"/experiments/{built.experiment_id}"
    with WebClient(gateway, "admin@example.com") as web:
        listing = web.get("/experiments")
        assert listing.status_code == 200 and "tone &lt;b&gt;test&lt;/b&gt;" in listing.text
        assert 'href="/experiments"' in listing.text  # the nav entry
        page = web.get(here)
        assert page.status_code == 200, page.text
        for text in HOSTILE:
            assert text not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt; answer 0" in page.text
        assert 'B \u2212 A: <span class="ci">+1.00 [1.00, 1.00]</span> — B is better' in page.text
        assert 'id="promote"' in page.text and f"{here}/export.csv" in page.text
        diff = web.get(f"{here}/diff", item="3")
        assert diff.status_code == 200 and "<del>" in diff.text and "<script>" not in diff.text
        assert web.get(f"{here}/diff", item="99").status_code == 404
        export = web.get(f"{here}/export.jsonl")
        assert export.status_code == 200 and len(export.text.splitlines()) == 24
        progress = web.get(f"{here}/progress.json").json()
        assert progress["percent"] == 100 and progress["running"] is False
        assert web.get(f"/experiments/{uuid.uuid4()}").status_code == 404


def test_other_org_and_viewers(gateway: LiveGateway) -> None:
    built = setup(gateway)
    add_user(gateway, "viewer@example.com", role="viewer")
    add_user(gateway, "other@example.com", org_id=gateway.other.id)
    here = f"/experiments/{built.experiment_id}"
    with WebClient(gateway, "other@example.com") as web:
        assert web.get(here).status_code == 404
        assert web.get(f"{here}/export.csv").status_code == 404
        assert web.get("/review", experiment=built.experiment_id).status_code == 404
    with WebClient(gateway, "viewer@example.com") as web:
        page = web.get(here)
        assert page.status_code == 200 and 'id="promote"' not in page.text
        resp = web.post(f"{here}/promote", {"variant": "1", "confirm": "promote"})
        assert resp.status_code == 403
        queue = web.get("/review", experiment=built.experiment_id)
        assert queue.status_code == 200 and 'id="review-form"' not in queue.text
        form = {"query": f"experiment={built.experiment_id}", "score": "pass", "cell_id": ""}
        assert web.post("/review", form).status_code == 403


def test_promote_takes_two_steps(gateway: LiveGateway) -> None:
    built = setup(gateway)
    add_user(gateway, "admin@example.com")
    here = f"/experiments/{built.experiment_id}"
    engine = make_engine(gateway.settings.sqlalchemy_url)
    try:
        with WebClient(gateway, "admin@example.com") as web:
            assert web.post(f"{here}/promote", {"variant": "1"}, csrf="").status_code == 403
            first = web.post(f"{here}/promote", {"variant": "1", "label": "production"})
            assert first.status_code == 200 and 'id="confirm-promote"' in first.text
            prompt = prompt_store.get_prompt(engine, gateway.org.id, "support")
            assert prompt is not None and prompt["labels"]["production"] == 1
            done = web.post(
                f"{here}/promote", {"variant": "1", "label": "production", "confirm": "promote"}
            )
            assert done.status_code == 303
            prompt = prompt_store.get_prompt(engine, gateway.org.id, "support")
            assert prompt is not None and prompt["labels"]["production"] == 2
            history = prompt_store.label_history(engine, gateway.org.id, "support")
            assert history[0]["by"].startswith("user:")
    finally:
        engine.dispose()


def test_review_stores_scores(gateway: LiveGateway) -> None:
    rid = send(gateway, "review me")
    gateway.wait_records(1)
    built = setup(gateway, rid)
    add_user(gateway, "admin@example.com")
    engine = make_engine(gateway.settings.sqlalchemy_url)
    try:
        with WebClient(gateway, "admin@example.com") as web:
            queue = web.get("/review", experiment=built.experiment_id)
            assert queue.status_code == 200 and "question 0" in queue.text
            assert HOSTILE[0] not in queue.text and "expected 0" in queue.text
            query = f"experiment={built.experiment_id}"
            form = {"query": query, "i": "0", "cell_id": built.cells[(0, 0)], "score": "fail"}
            saved = web.post("/review", form | {"comment": "too <b>curt</b>"})
            assert saved.status_code == 303 and "i=1" in saved.headers["location"]
            cell = results.get_cell(
                engine, gateway.org.id, built.experiment_id, built.cells[(0, 0)]
            )
            assert cell is not None
            assert cell["scores"]["human"]["passed"] is False
            assert cell["scores"]["human"]["reason"] == "too <b>curt</b>"
            with engine.connect() as conn:
                notes = feedback.annotations_for(conn, gateway.org.id, [rid])[rid]
            assert notes == {"feedback": False, "scores": {"human": 0}}
            four = {"query": query, "i": "1", "cell_id": built.cells[(0, 1)], "score": "4"}
            assert web.post("/review", four).status_code == 303
            page = web.get(f"/experiments/{built.experiment_id}").text
            assert "human" in page and "too &lt;b&gt;curt&lt;/b&gt;" in page
            assert web.post("/review", {"query": query, "score": "9"}).status_code == 400
            by_filter = web.get("/review", model="gpt-4o-mini")
            assert by_filter.status_code == 200 and "review me" in by_filter.text
            plain = {"query": "model=gpt-4o-mini", "i": "0", "request_id": rid, "score": "5"}
            assert web.post("/review", plain).status_code == 303
            with engine.connect() as conn:
                notes = feedback.annotations_for(conn, gateway.org.id, [rid])[rid]
            assert notes["scores"] == {"human": 5}
    finally:
        engine.dispose()
