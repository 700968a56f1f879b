"""Experiment results in a real browser (Debian's Chromium, Playwright): the matrix with its
outputs, scores and reasons, the diff of two outputs, the review queue driven by its keyboard
shortcuts (the scores checked in the store), promotion in two steps (the label checked in the
store; a viewer sees no button), and a running experiment's live progress. Every output and reason is hostile text: it must show
literally, never run (no dialog) and never break the Content Security Policy.

One server for the module; each test builds its own experiment (the rows the engine writes,
``tests/experiment_support.py``) over two versions of one prompt.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, update

from browser_support import Watch, chromium_browser, screenshot
from conftest import LiveGateway, gateway_settings
from experiment_support import Built, build
from heliograph.prompts.versions import check_version
from heliograph.store import experiment_results as results
from heliograph.store import prompts as prompt_store
from heliograph.store.engine import make_engine
from heliograph.store.schema import experiments
from mock_upstream import MockUpstream
from web_support import PASSWORD, add_user

ADMIN, VIEWER = "admin@example.com", "viewer@example.com"
HOSTILE = ("<script>alert(1)</script>", '"><img src=x onerror=alert(1)>')
PROMPTS = (
    {"kind": "prompt", "prompt": "support", "version": 1},
    {"kind": "prompt", "prompt": "support", "version": 2},
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium_browser()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, mock: MockUpstream) -> Iterator[LiveGateway]:
    tmp = tmp_path_factory.mktemp("experiments-browser")
    gw = LiveGateway(gateway_settings(tmp, f"sqlite:///{tmp / 'gw.db'}", mock.url)).start()
    try:
        add_user(gw, ADMIN)
        add_user(gw, VIEWER, role="viewer")
        engine = make_engine(gw.settings.sqlalchemy_url)
        try:
            prompt_store.create_prompt(engine, gw.org.id, "support", "", None)
            for text in ("v1", "v2"):
                fields = check_version({"messages": [{"role": "system", "content": text}]})
                prompt_store.create_version(engine, gw.org.id, "support", fields, None)
        finally:
            engine.dispose()
        yield gw
    finally:
        gw.stop()


@pytest.fixture
def store(live: LiveGateway) -> Iterator[Engine]:
    engine = make_engine(live.settings.sqlalchemy_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def experiment(live: LiveGateway, store: Engine) -> Built:
    """12 items x 2 prompt versions; B passes where A fails; every text hostile."""
    prompt_store.move_label(store, live.org.id, "support", "production", 1, None)
    return build(
        store,
        live.org.id,
        name=f"tone {HOSTILE[0]}",
        items=12,
        variants=PROMPTS,
        evaluators={
            "correct": lambda i, v: (float(v), v == 1, f"reason {HOSTILE[1]}", None),
            "judge": lambda i, v: (
                (None, None, None, f"unparseable {HOSTILE[0]}")
                if i == 2
                else (float(3 + v), None, f"rubric {HOSTILE[0]}", None)
            ),
        },
        output=lambda i, v: f"{HOSTILE[v]} answer {i}",
    )


def open_page(browser: Any, live: LiveGateway, email: str) -> Any:
    context = browser.new_context(base_url=live.base_url, viewport={"width": 1400, "height": 900})
    context.set_default_timeout(10_000)
    tab = context.new_page()
    tab.watch = Watch(tab)
    tab.goto("/login")
    tab.fill("input[name=email]", email)
    tab.fill("input[name=password]", PASSWORD)
    tab.click("button[type=submit]")
    tab.wait_for_url(lambda url: "/login" not in url)
    return tab


@pytest.fixture
def admin(browser: Any, live: LiveGateway) -> Iterator[Any]:
    tab = open_page(browser, live, ADMIN)
    try:
        yield tab
    finally:
        tab.context.close()


@pytest.fixture
def viewer(browser: Any, live: LiveGateway) -> Iterator[Any]:
    tab = open_page(browser, live, VIEWER)
    try:
        yield tab
    finally:
        tab.context.close()


def nothing_ran(page: Any) -> None:
    """No dialog, no CSP breach, and the hostile markup never became elements."""
    assert page.watch.dialogs == [] and page.watch.csp == []
    assert page.locator("img[src=x]").count() == 0
    assert page.locator("script", has_text="alert").count() == 0


def test_matrix_shows_outputs_scores_and_the_diff(
    admin: Any, experiment: Built, live: LiveGateway
) -> None:
    here = f"/experiments/{experiment.experiment_id}"
    admin.goto(here)
    assert admin.locator("h1").inner_text() == f"tone {HOSTILE[0]}"
    first = admin.locator('#matrix tr[data-item="0"]')
    assert first.locator('td[data-variant="0"] pre.output').inner_text() == f"{HOSTILE[0]} answer 0"
    assert first.locator('td[data-variant="1"] pre.output').inner_text() == f"{HOSTILE[1]} answer 0"
    assert admin.locator("#matrix tbody tr").count() == 12
    # A score's reason opens under its summary, literally.
    score = first.locator('td[data-variant="1"] details.score', has_text="correct")
    assert score.locator("summary").inner_text() == "correct: pass"
    assert not score.locator("p.reason").is_visible()
    score.locator("summary").click()
    assert score.locator("p.reason").inner_text() == f"reason {HOSTILE[1]}"
    # An evaluator error is shown as an error with its message, not as a score.
    error = admin.locator('#matrix tr[data-item="2"] td[data-variant="0"] details.score').filter(
        has_text="judge"
    )
    assert error.locator("summary").inner_text() == "judge: error"
    error.locator("summary").click()
    assert error.locator("p.reason").inner_text() == f"unparseable {HOSTILE[0]}"
    # The summary and the difference from the baseline, in words.
    differences = admin.locator("#differences li")
    assert differences.count() == 2
    correct = admin.locator('#differences li[data-evaluator="correct"]').inner_text()
    assert "B \u2212 A: +1.00 [1.00, 1.00]" in correct and "B is better" in correct
    judge = admin.locator('#differences li[data-evaluator="judge"]').inner_text()
    assert "(11 items scored by both)" in judge
    summary_a = admin.locator('#summary tr[data-variant="0"]').inner_text()
    assert "baseline" in summary_a
    nothing_ran(admin)
    screenshot(admin, "experiment-matrix")

    first.locator("th a", has_text="diff").click()
    admin.wait_for_url(re.compile(r"/diff\?item=0"))
    panes = admin.locator(".grid-2 pre.output").all_inner_texts()
    assert panes == [f"{HOSTILE[0]} answer 0", f"{HOSTILE[1]} answer 0"]
    diff = admin.locator("#output-diff")
    assert diff.locator("del").count() >= 1 and diff.locator("ins").count() >= 1
    # Word by word: '">' and 'img src=x onerror=' added, 'script>' and '</script' removed.
    assert diff.locator("del").all_inner_texts() == ["script>", "</script"]
    assert diff.locator("ins").all_inner_texts() == ['">', "img src=x onerror="]
    assert diff.inner_text() == '"><script>img src=x onerror=alert(1)</script> answer 0'
    nothing_ran(admin)
    screenshot(admin, "experiment-diff")


def checked(page: Any) -> str | None:
    boxes = page.locator('#review-form input[name="score"]:checked')
    return boxes.get_attribute("value") if boxes.count() else None


def test_review_queue_by_keyboard(
    admin: Any, experiment: Built, live: LiveGateway, store: Engine
) -> None:
    exp = experiment.experiment_id
    admin.goto(f"/review?experiment={exp}")
    assert admin.locator("#review-output").inner_text() == f"{HOSTILE[0]} answer 0"
    assert admin.locator("#review-expected").inner_text() == "expected 0"
    assert checked(admin) is None
    admin.keyboard.press("f")
    assert checked(admin) == "fail"
    # Keys typed in the comment are text, not shortcuts; Ctrl+Enter saves from there.
    admin.locator("textarea[name=comment]").click()
    admin.keyboard.type(f"jk5p {HOSTILE[1]}")
    assert checked(admin) == "fail" and "i=" not in admin.url
    admin.keyboard.press("Control+Enter")
    admin.wait_for_url(re.compile(r"i=1"))
    assert admin.locator("#review-saved").inner_text() == "saved #1"
    assert admin.locator("#review-output").inner_text() == f"{HOSTILE[1]} answer 0"
    nothing_ran(admin)
    screenshot(admin, "experiment-review")

    admin.keyboard.press("4")
    assert checked(admin) == "4"
    admin.keyboard.press("Enter")
    admin.wait_for_url(re.compile(r"i=2"))
    admin.keyboard.press("p")
    admin.keyboard.press("j")  # next without saving
    admin.wait_for_url(re.compile(r"i=3(&|$)"))
    admin.keyboard.press("k")
    admin.wait_for_url(re.compile(r"i=2(&|$)"))
    assert checked(admin) is None  # the pass was never saved
    admin.keyboard.press("k")
    admin.wait_for_url(re.compile(r"i=1(&|$)"))
    assert checked(admin) == "4"  # the saved score comes back
    nothing_ran(admin)

    org = live.org.id
    first = results.get_cell(store, org, exp, experiment.cells[(0, 0)])
    second = results.get_cell(store, org, exp, experiment.cells[(0, 1)])
    third = results.get_cell(store, org, exp, experiment.cells[(1, 0)])
    assert first is not None and second is not None and third is not None
    assert first["scores"]["human"]["passed"] is False
    assert first["scores"]["human"]["value"] == 0.0
    assert first["scores"]["human"]["reason"] == f"jk5p {HOSTILE[1]}"
    assert second["scores"]["human"]["value"] == 4.0
    assert second["scores"]["human"]["passed"] is None
    assert "human" not in third["scores"]
    # The matrix shows the human score and its (hostile) comment literally.
    admin.goto(f"/experiments/{exp}")
    human = admin.locator('#matrix tr[data-item="0"] td[data-variant="0"] details.score').filter(
        has_text="human"
    )
    assert human.locator("summary").inner_text() == "human: fail"
    human.locator("summary").click()
    assert human.locator("p.reason").inner_text() == f"jk5p {HOSTILE[1]}"
    nothing_ran(admin)


def test_promotion_takes_two_steps(
    admin: Any, viewer: Any, experiment: Built, live: LiveGateway, store: Engine
) -> None:
    here = f"/experiments/{experiment.experiment_id}"
    viewer.goto(here)
    assert viewer.locator("#matrix tbody tr").count() == 12
    assert viewer.locator("#promote").count() == 0
    assert viewer.get_by_role("button", name=re.compile("Promote")).count() == 0
    nothing_ran(viewer)

    admin.goto(here)
    admin.locator("#promote summary").click()
    admin.select_option("#promote select[name=variant]", "1")
    admin.locator("#promote button[type=submit]").click()
    admin.wait_for_url(re.compile(r"/promote$"))
    confirm = admin.locator("#confirm").inner_text()
    assert "Promote support version 2?" in confirm
    assert "version 1" in confirm and "will point at version 2" in confirm
    prompt = prompt_store.get_prompt(store, live.org.id, "support")
    assert prompt is not None and prompt["labels"]["production"] == 1  # nothing moved yet
    nothing_ran(admin)
    screenshot(admin, "experiment-promote-confirm")

    admin.locator("#confirm-promote").click()
    admin.wait_for_url(re.compile(r"promoted="))
    assert admin.locator("#promoted").inner_text() == "Promoted: support@production=v2."
    prompt = prompt_store.get_prompt(store, live.org.id, "support")
    assert prompt is not None and prompt["labels"]["production"] == 2
    history = prompt_store.label_history(store, live.org.id, "support")
    assert history[0]["by"].startswith("user:")
    nothing_ran(admin)
    screenshot(admin, "experiment-promoted")


def test_progress_is_live_and_the_page_reloads_when_done(
    admin: Any, live: LiveGateway, store: Engine
) -> None:
    """A running experiment's page polls its progress: the bar and the counts follow the
    store, and the page reloads with the final status once the run ends."""
    from playwright.sync_api import expect  # as browser_support: only once Chromium is there

    running = build(
        store,
        live.org.id,
        name="still running",
        items=4,
        variants=PROMPTS,
        status=lambda i, v: "done" if i < 2 else "pending",
        exp_status="running",
    )
    admin.goto(f"/experiments/{running.experiment_id}")
    assert admin.locator("#progress-status").inner_text() == "running"
    assert admin.locator("#progress-bar").get_attribute("value") == "50"
    where = experiments.c.id == running.experiment_id
    with store.begin() as conn:
        conn.execute(update(experiments).where(where).values(cells_done=6, cells_failed=1))
    text = admin.locator("#progress-text")
    expect(text).to_contain_text("6 done, 1 failed of 8 cells")
    assert admin.locator("#progress-bar").evaluate("bar => bar.value") == 88
    with store.begin() as conn:
        conn.execute(update(experiments).where(where).values(status="completed", cells_done=7))
    expect(admin.locator("#progress-status")).to_have_text("completed")
    assert admin.locator("#progress").get_attribute("data-running") == "false"  # reloaded
    nothing_ran(admin)
