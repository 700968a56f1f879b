"""The prompt Playground and "Save as prompt" against `heliograph serve`, in Chromium.

`heliograph serve` is configured only by environment variables, as the README shows: an
OpenAI upstream (a byte-faithful mock, declared cloud, with a server-side key) and an Ollama
upstream (a mock Ollama), and the first admin. A prompt with two versions is made through the
API; its first version's template and the inputs typed in the browser are hostile HTML. An
admin logs in, runs version 1 on OpenAI against version 2 on Ollama (another model, a one-off
key typed for Ollama), and sees both outputs with tokens, cost and latency, the hostile text
shown literally and no script run. The API then shows two records marked as playground runs
with the right prompt versions, the typed key nowhere in them. Finally one run's request page
is saved as a third version of the prompt, read back through the API.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from e2e_harness import Heliograph, admin_env, assert_never_stored, cloud_and_ollama_env, serving

from browser_support import Watch, chromium_browser, screenshot, sign_in
from mock_ollama import MockOllama
from mock_upstream import DEFAULT_TEXT, MockUpstream

pytestmark = pytest.mark.slow

OPENAI_SERVER_KEY = "sk-proj-serverside-playground-e2e-0123456789abcdef"
TYPED_KEY = "ollama-typed-once-playground-e2e-0123456789"
ADMIN_EMAIL = "ops@example.com"
ADMIN_PASSWORD = "e2e correct horse battery"
HOSTILE = "<script>alert(1)</script>"
HOSTILE_ATTR = '"><img src=x onerror=alert(1)>'
NAME = "e2e-summary"
V1 = {
    "messages": [
        {"role": "system", "content": f"Answer briefly. {HOSTILE}"},
        {"role": "user", "content": "Summarise {{text}} " + HOSTILE_ATTR},
    ],
    "model": "gpt-4o-mini",
    "upstream": "openai",
    "variables": {"text": None},
    "message": "first",
}
V2 = {**V1, "params": {"max_tokens": 3}, "message": "shorter"}


@pytest.fixture(scope="module")
def mocks() -> Iterator[tuple[MockUpstream, MockOllama]]:
    with MockUpstream() as cloud, MockOllama() as local:
        yield cloud, local


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, mocks: tuple[MockUpstream, MockOllama]
) -> Iterator[Heliograph]:
    cloud, local = mocks
    env = {
        **cloud_and_ollama_env(cloud, local, OPENAI_SERVER_KEY),
        **admin_env(ADMIN_EMAIL, ADMIN_PASSWORD),
    }
    with serving(tmp_path_factory.mktemp("playground-home"), env) as serve:
        yield serve


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium_browser()


def test_playground_runs_two_versions_and_a_run_is_saved_as_a_version(
    server: Heliograph, mocks: tuple[MockUpstream, MockOllama], browser: Any
) -> None:
    cloud, local = mocks
    assert server.admin_request("POST", "/api/v1/prompts", {"name": NAME}).status_code == 201
    for body in (V1, V2):
        made = server.admin_request("POST", f"/api/v1/prompts/{NAME}/versions", body)
        assert made.status_code == 201, made.text

    context = browser.new_context(base_url=server.base_url, viewport={"width": 1400, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    watch = Watch(page)
    try:
        page.goto(f"/prompts/{NAME}/playground")
        sign_in(page, ADMIN_EMAIL, ADMIN_PASSWORD)
        page.wait_for_url(f"**/prompts/{NAME}/playground")
        page.fill("textarea[name='input.text']", f"{HOSTILE} and {HOSTILE_ATTR}")
        page.select_option("#a-ref", "v1")
        page.select_option("#a-target", "openai")
        page.select_option("#b-ref", "v2")
        page.select_option("#b-target", "ollama")  # the key field now belongs to Ollama
        page.fill("#b-model", "llama3.2")
        page.fill("#b-key", TYPED_KEY)
        page.click("#run")
        page.wait_for_selector("#results")
        a = page.locator(".playground-result[data-slot=a]")
        b = page.locator(".playground-result[data-slot=b]")
        assert a.locator("h2").inner_text().startswith("A · version 1")
        assert b.locator("h2").inner_text().startswith("B · version 2")
        assert a.locator("pre.output").inner_text() == DEFAULT_TEXT
        assert b.locator("pre.output").inner_text().startswith("Hello")
        for column, upstream in ((a, "openai"), (b, "ollama")):
            assert column.locator("[data-figure=upstream]").inner_text() == upstream
            assert column.locator("[data-figure=status]").inner_text() == "200"
            for figure in ("prompt_tokens", "completion_tokens", "total_tokens", "latency_ms"):
                assert column.locator(f"[data-figure={figure}]").inner_text() not in ("", "—")
            assert column.locator("[data-figure=cost_usd]").inner_text().startswith("$")
            assert column.locator(".not-stored").count() == 0  # the stored figures
        a.locator("summary").click()
        shown = a.locator(".msg").all_inner_texts()
        assert f"Answer briefly. {HOSTILE}" in shown[0]
        assert f"Summarise {HOSTILE} and {HOSTILE_ATTR} {HOSTILE_ATTR}" in shown[1]
        assert TYPED_KEY not in page.content()
        screenshot(page, "playground-e2e")
        ids = [
            link.get_attribute("href").rsplit("/", 1)[1]
            for link in page.locator("a.run-link").all()
        ]
        assert len(ids) == 2

        records = [server.record(rid) for rid in ids]
        assert {r["prompt_version"] for r in records} == {1, 2}
        for rec in records:
            assert rec["prompt_name"] == NAME and rec["properties"]["playground"] == NAME
            assert rec["properties"]["playground_by"] == ADMIN_EMAIL
            assert rec["prompt_inputs"] == {"text": f"{HOSTILE} and {HOSTILE_ATTR}"}
            assert_never_stored(rec, TYPED_KEY, OPENAI_SERVER_KEY)
            assert server.listed(rec["id"], **{"property.playground": NAME}) is not None
        on_ollama = next(r for r in records if r["prompt_version"] == 2)
        assert on_ollama["upstream"] == "ollama" and on_ollama["model"] == "llama3.2"
        seen = [r for r in local.requests if r.path == "/v1/chat/completions"]
        assert len(seen) == 1 and seen[0].headers["authorization"] == f"Bearer {TYPED_KEY}"
        assert all(TYPED_KEY not in orjson.dumps(r.to_dict()).decode() for r in cloud.requests)

        # Save the version 1 run as a new version of the prompt.
        first = next(r for r in records if r["prompt_version"] == 1)
        page.goto(f"/requests/{first['id']}")
        page.click("#save-prompt")
        page.wait_for_selector("#save-prompt-form")
        screenshot(page, "save-as-prompt-e2e")
        page.check("input[name=mode][value=existing]")
        page.select_option("#save-existing", NAME)
        page.fill("#save-message", "saved from a playground run")
        page.click("#save-submit")
        page.wait_for_url(f"**/prompts/{NAME}")
        assert watch.dialogs == [] and watch.csp == []
    finally:
        context.close()

    versions = server.admin_request("GET", f"/api/v1/prompts/{NAME}/versions").json()["data"]
    assert [v["version"] for v in versions] == [3, 2, 1]
    saved = versions[0]
    assert saved["messages"] == first["request_body"]["messages"]
    assert saved["model"] == "gpt-4o-mini" and saved["upstream"] == "openai"
    assert saved["message"] == "saved from a playground run"
    assert saved["created_by"].startswith("user:")
