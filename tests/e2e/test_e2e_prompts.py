"""Prompts through `heliograph serve` as users run it: two workers, configured only by
environment variables, driven over HTTP the way the README shows (create, save versions,
move a label, fetch with an ETag and a 304, compile), and what was stored read back through
the API. Versions saved at once through both workers get distinct, consecutive numbers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_harness import Heliograph, serving

pytestmark = pytest.mark.slow

VERSION = {
    "messages": [
        {"role": "system", "content": "Answer in {{language}}."},
        {"role": "user", "content": "Summarise: {{ text }}"},
    ],
    "model": "gpt-4o-mini",
    "upstream": "openai",
    "params": {"temperature": 0.2, "stop": ["END"]},
    "variables": {"language": "English", "text": None},
    "message": "first cut",
}


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Heliograph]:
    home: Path = tmp_path_factory.mktemp("prompts-home")
    with serving(home, workers=2) as server:
        yield server


def call(serve: Heliograph, method: str, path: str, key: str, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}", **kw.pop("headers", {})}
    return httpx.request(method, serve.base_url + path, headers=headers, timeout=15, **kw)


def test_prompt_lifecycle(serve: Heliograph) -> None:
    admin = serve.admin_key
    made = call(serve, "POST", "/api/v1/keys", admin, json={"name": "sdk", "scope": "read"})
    assert made.status_code == 201, made.text
    read = made.json()["key"]
    deadline, accepted = time.monotonic() + 15, 0  # both workers learn the new key
    while accepted < 8:  # in a row, so whichever worker answers knows it
        ok = call(serve, "GET", "/api/v1/prompts", read).status_code == 200
        accepted = accepted + 1 if ok else 0
        assert time.monotonic() < deadline, "the new read key was never accepted"
        time.sleep(0 if ok else 0.1)

    created = call(serve, "POST", "/api/v1/prompts", admin, json={"name": "summary"})
    assert created.status_code == 201, created.text + serve.output()[-2000:]
    assert call(serve, "POST", "/api/v1/prompts", read, json={"name": "x"}).status_code == 403
    path = "/api/v1/prompts/summary"
    v1 = call(serve, "POST", path + "/versions", admin, json=VERSION)
    assert v1.status_code == 201 and v1.json() == {"version": 1}
    broken = {**VERSION, "messages": [{"role": "user", "content": "Hi {{name"}]}
    refused = call(serve, "POST", path + "/versions", admin, json=broken)
    assert refused.status_code == 400 and "character 3" in refused.json()["error"]["message"]

    moved = call(serve, "PUT", path + "/labels/production", admin, json={"version": 1})
    assert moved.status_code == 200 and moved.json()["previous_version"] is None
    first = call(serve, "GET", path, read)
    assert first.status_code == 200 and first.json()["version"] == 1
    etag = first.headers["etag"]
    for _ in range(6):  # either worker: the same answer, and 304 for the same ETag
        again = call(serve, "GET", path, read, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.headers["etag"] == etag

    v2 = call(serve, "POST", path + "/versions", admin, json={**VERSION, "message": "second"})
    assert v2.json() == {"version": 2}
    call(serve, "PUT", path + "/labels/production", admin, json={"version": 2})
    for _ in range(6):  # the move is seen by both workers at once (they read the store)
        after = call(serve, "GET", path, read, headers={"If-None-Match": etag})
        assert after.status_code == 200 and after.json()["version"] == 2

    compiled = call(serve, "POST", path + "/compile", read, json={"inputs": {"text": "{{x}}"}})
    assert compiled.status_code == 200, compiled.text
    assert compiled.json()["messages"] == [
        {"role": "system", "content": "Answer in English."},
        {"role": "user", "content": "Summarise: {{x}}"},
    ]
    assert compiled.json()["params"] == {"temperature": 0.2, "stop": ["END"]}
    missing = call(serve, "POST", path + "/compile", read, json={"inputs": {}})
    assert missing.status_code == 400 and "'text'" in missing.json()["error"]["message"]
    big = call(serve, "POST", path + "/compile", read, json={"inputs": {"text": "x" * 70000}})
    assert big.status_code == 413

    # what is stored, read back
    versions = call(serve, "GET", path + "/versions", read).json()["data"]
    assert [(v["version"], v["message"]) for v in versions] == [(2, "second"), (1, "first cut")]
    assert versions[1]["messages"] == VERSION["messages"]
    labels = call(serve, "GET", path + "/labels", read).json()
    assert {r["label"]: r["version"] for r in labels["data"]} == {
        "production": 2,
        "staging": None,
    }
    assert [(h["from_version"], h["to_version"]) for h in labels["history"]] == [
        (1, 2),
        (None, 1),
    ]
    assert call(serve, "GET", path, serve.write_key).status_code == 403  # write keys never read


def test_versions_saved_at_once_through_two_workers(serve: Heliograph) -> None:
    admin = serve.admin_key
    assert call(serve, "POST", "/api/v1/prompts", admin, json={"name": "busy"}).is_success
    bodies = [{**VERSION, "message": f"m{i}"} for i in range(16)]

    def save(body: dict[str, Any]) -> int:
        resp = call(serve, "POST", "/api/v1/prompts/busy/versions", admin, json=body)
        assert resp.status_code == 201, resp.text
        number: int = resp.json()["version"]
        return number

    with ThreadPoolExecutor(8) as pool:
        numbers = list(pool.map(save, bodies))
    assert sorted(numbers) == list(range(1, 17))
    stored = call(serve, "GET", "/api/v1/prompts/busy/versions", admin).json()["data"]
    by_number = {v["version"]: v["message"] for v in stored}
    assert by_number == {n: b["message"] for n, b in zip(numbers, bodies, strict=True)}
