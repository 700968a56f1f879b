"""Starting an experiment and cancelling one from the dashboard, over HTTP: the estimate step
(the API's dry run, inputs kept, nothing created), a bad variant's message beside the
variants with 400 and nothing created, the start redirecting to the new experiment (queued
with its job, made by the same engine as the API), hostile names escaped, viewers without the
form and answered 403, and Cancel through the API's logic with its confirmation."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from conftest import LiveGateway
from experiment_engine_support import add_dataset, add_prompt
from heliograph.store import evaluators as evaluator_store
from heliograph.store import experiment_results as results
from heliograph.store import experiments as experiment_store
from heliograph.store.engine import make_engine
from web_support import WebClient, add_user

HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(1)>'
FORM = {
    "name": "support v1 vs v2",
    "dataset": "golden",
    "v1.prompt": "prompt:support@production",
    "v2.prompt": "prompt:support:1",
    "v2.params": '{"temperature": 0}',
    "evaluators": "contains:refund\nsimilarity:0.8",
    "ev.polite": "1",
    "concurrency": "4",
    "cost_cap": "2.5",
}


@pytest.fixture
def store(gateway: LiveGateway) -> Iterator[Engine]:
    engine = make_engine(gateway.settings.sqlalchemy_url)
    try:
        add_prompt(engine, gateway.org.id, "support", "v1 {{q}}", "v2 {{q}}")
        add_dataset(
            engine, gateway.org.id, "golden", [{"inputs": {"q": f"q{i}"}} for i in range(3)]
        )
        spec = {
            "name": "polite",
            "kind": "contains",
            "description": "",
            "config": {"values": ["please"]},
        }
        evaluator_store.create_evaluator(engine, gateway.org.id, "polite", spec, None)
        add_user(gateway, "admin@example.com")
        add_user(gateway, "viewer@example.com", role="viewer")
        yield engine
    finally:
        engine.dispose()


def count(engine: Engine, org_id: str) -> int:
    return len(results.list_experiments(engine, org_id))


def test_estimate_then_start(gateway: LiveGateway, store: Engine) -> None:
    with WebClient(gateway, "admin@example.com") as web:
        page = web.get("/experiments")
        assert 'id="new-experiment"' in page.text and 'href="/evaluators"' in page.text
        assert 'value="prompt:support@production"' in page.text  # the label picker
        assert 'value="prompt:support:2"' in page.text and 'value="model:openai/"' in page.text
        estimate = web.post("/experiments", {**FORM, "step": "estimate"})
        assert estimate.status_code == 200, estimate.text
        assert 'id="estimate"' in estimate.text and "<strong>6</strong> cells" in estimate.text
        assert "polite, contains, similarity" in estimate.text
        assert 'id="start-experiment"' in estimate.text
        assert 'value="support v1 vs v2"' in estimate.text  # inputs kept
        assert "contains:refund\nsimilarity:0.8</textarea>" in estimate.text
        assert 'name="ev.polite" value="1" checked' in estimate.text
        assert count(store, gateway.org.id) == 0
        started = web.post("/experiments", {**FORM, "step": "start"})
        assert started.status_code == 303, started.text
        exp_id = started.headers["location"].rsplit("/", 1)[1]
        row = experiment_store.get_experiment(store, exp_id, gateway.org.id)
        assert row is not None and row["status"] == "queued" and row["cells_total"] == 6
        assert row["concurrency"] == 4 and row["cost_cap_nusd"] == 2_500_000_000
        assert row["created_by"] and row["created_by"].startswith("user:")
        variants = experiment_store.list_variants(store, exp_id)
        assert [v["spec"]["version"] for v in variants] == [2, 1]
        assert variants[1]["spec"]["params"] == {"temperature": 0}
        page = web.get(started.headers["location"])
        assert page.status_code == 200 and 'id="cancel"' in page.text


def test_unpriced_models_are_listed(gateway: LiveGateway, store: Engine) -> None:
    form = {"name": "local", "dataset": "golden", "v1.model": "model:openai/no-such-model-xyz"}
    with WebClient(gateway, "admin@example.com") as web:
        estimate = web.post("/experiments", {**form, "step": "estimate"})
        assert estimate.status_code == 200, estimate.text
        assert re.search(
            r'<ul id="unpriced"><li>[^<]*no-such-model-xyz on openai</li>', estimate.text
        )


@pytest.mark.parametrize(
    ("change", "where", "message"),
    [
        ({"v1.prompt": "", "v1.model": "model:nowhere"}, "variants", "variant 1: variant"),
        ({"v2.prompt": "prompt:support:9"}, "variants", "has no version 9"),
        ({"v1.model": "model:openai/gpt-4o"}, "variants", "choose a prompt or a model, not both"),
        ({"v1.model": "", "v2.params": "{nope"}, "variants", "variant 2 params: not valid JSON"),
        ({"evaluators": "judge:nothing"}, "evaluators", "judge:"),
        ({"evaluators": "no-such-saved"}, "evaluators", "no evaluator named"),
        ({"concurrency": "500"}, "concurrency", "concurrency must be from 1 to"),
        ({"cost_cap": "-1"}, "cost_cap", "cost_cap_usd must be"),
        ({"name": ""}, "name", "name must be"),
        ({"dataset": "nothing-here"}, "dataset", "no dataset"),
    ],
)
def test_bad_input_is_shown_beside_its_field(
    gateway: LiveGateway, store: Engine, change: dict[str, str], where: str, message: str
) -> None:
    with WebClient(gateway, "admin@example.com") as web:
        for step in ("estimate", "start"):
            resp = web.post("/experiments", {**FORM, **change, "step": step})
            assert resp.status_code == 400, resp.text
            found = re.search(
                rf'<p class="field-error small" role="alert" id="error-{where}">([^<]*)</p>',
                resp.text,
            )
            assert found and message in found.group(1).replace("&#39;", "'"), resp.text[-3000:]
            if "name" not in change:
                assert 'value="support v1 vs v2"' in resp.text  # the inputs kept
    assert count(store, gateway.org.id) == 0


def test_hostile_name_is_escaped(gateway: LiveGateway, store: Engine) -> None:
    with WebClient(gateway, "admin@example.com") as web:
        resp = web.post("/experiments", {**FORM, "name": HOSTILE, "step": "start"})
        assert resp.status_code == 303
        listing = web.get("/experiments")
        assert (
            HOSTILE not in listing.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in listing.text
        )
        estimate = web.post("/experiments", {**FORM, "name": HOSTILE, "step": "estimate"})
        assert HOSTILE not in estimate.text and "<img src=x" not in estimate.text


def test_viewers_cannot_start_or_cancel(gateway: LiveGateway, store: Engine) -> None:
    with WebClient(gateway, "admin@example.com") as web:
        exp_id = (
            web.post("/experiments", {**FORM, "step": "start"})
            .headers["location"]
            .rsplit("/", 1)[1]
        )
    with WebClient(gateway, "viewer@example.com") as web:
        page = web.get("/experiments")
        assert page.status_code == 200 and 'id="new-experiment"' not in page.text
        assert web.post("/experiments", {**FORM, "step": "start"}).status_code == 403
        assert 'id="cancel"' not in web.get(f"/experiments/{exp_id}").text
        assert web.post(f"/experiments/{exp_id}/cancel", {"confirm": "cancel"}).status_code == 403
    with WebClient(gateway, "admin@example.com") as web:  # and without the CSRF token
        assert web.post("/experiments", {**FORM, "step": "start"}, csrf="").status_code == 403
    assert count(store, gateway.org.id) == 1


def test_cancel_needs_confirmation_and_stops_the_run(gateway: LiveGateway, store: Engine) -> None:
    with WebClient(gateway, "admin@example.com") as web:
        here = web.post("/experiments", {**FORM, "step": "start"}).headers["location"]
        exp_id = here.rsplit("/", 1)[1]
        assert web.post(f"{here}/cancel", {}).status_code == 400
        assert experiment_store.get_experiment(store, exp_id, gateway.org.id)["status"] == "queued"
        done = web.post(f"{here}/cancel", {"confirm": "cancel"})
        assert done.status_code == 303 and done.headers["location"] == here
        row = experiment_store.get_experiment(store, exp_id, gateway.org.id)
        assert row["status"] == "stopped" and row["stop_reason"] == "cancelled"
        page = web.get(here)
        assert 'id="cancel"' not in page.text and "stopped: cancelled" in page.text
        other = web.post(
            "/experiments/00000000-0000-0000-0000-000000000000/cancel", {"confirm": "cancel"}
        )
        assert other.status_code == 404
