"""Costs through the API on both dialects: unknown is never $0, breakdowns, recompute."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx

from conftest import LiveGateway

CHAT = {"messages": [{"role": "user", "content": "What is the weather in Paris?"}]}
PROMPT, COMPLETION = 14, 5  # the mock's token counts for CHAT


def send(gw: LiveGateway, model: str, **headers: str) -> None:
    resp = httpx.post(
        f"{gw.openai_url}/chat/completions",
        json={**CHAT, "model": model},
        headers={"authorization": "Bearer sk-p", **headers},
    )
    assert resp.status_code == 200


def costs(gw: LiveGateway, **params: str) -> dict:  # type: ignore[type-arg]
    resp = gw.api("/api/v1/costs", **params)
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def test_unknown_price_is_flagged_then_recomputed_with_an_override(
    gateway_any: LiveGateway,
) -> None:
    gw = gateway_any
    send(gw, "my-finetune", **{"Helicone-User-Id": "u1", "Helicone-Property-Team": "red"})
    send(gw, "gpt-4o-mini", **{"Helicone-User-Id": "u2", "Helicone-Property-Team": "red"})
    send(gw, "gpt-4o", **{"Helicone-User-Id": "u2", "Helicone-Property-Team": "blue"})
    rows = {r["model"]: r for r in gw.wait_records(3)}
    assert rows["my-finetune"]["cost_usd"] is None and rows["my-finetune"]["cost_known"] is False
    mini = (PROMPT * 150 + COMPLETION * 600) / 1e9  # $0.15 / $0.60 per million
    big = (PROMPT * 2500 + COMPLETION * 10000) / 1e9  # $2.50 / $10 per million
    assert rows["gpt-4o-mini"]["cost_usd"] == mini and rows["gpt-4o"]["cost_usd"] == big

    unpriced = gw.api("/api/v1/costs/unpriced-models").json()["data"]
    assert [(u["provider"], u["model"], u["requests"]) for u in unpriced] == [
        ("openai", "my-finetune", 1)
    ]
    by_model = {g["group"]: g for g in costs(gw, group_by="model")["data"]}
    assert by_model["my-finetune"]["unpriced_requests"] == 1
    assert by_model["my-finetune"]["cost_usd"] == 0  # nothing known; flagged, not hidden
    assert by_model["gpt-4o"]["cost_usd"] == big
    total = costs(gw, group_by="provider")
    assert total["unpriced_requests"] == 1
    assert total["total_cost_usd"] == round(mini + big, 9)
    by_team = {g["group"]: g["cost_usd"] for g in costs(gw, group_by="property.team")["data"]}
    assert by_team == {"red": mini, "blue": big}
    by_user = {g["group"]: g["requests"] for g in costs(gw, group_by="user_id")["data"]}
    assert by_user == {"u1": 1, "u2": 2}
    [day] = costs(gw, group_by="day")["data"]
    assert day["requests"] == 3 and len(day["group"]) == 10
    assert gw.api("/api/v1/costs", group_by="nonsense").status_code == 400
    assert gw.api("/api/v1/costs", key=gw.org.write_key).status_code == 403

    env = {
        **os.environ,
        "HELIOGRAPH_HOME": str(gw.settings.home),
        "HELIOGRAPH_DATABASE_URL": gw.settings.database_url or "",
        "HELIOGRAPH_PRICES": json.dumps(
            [{"model": "my-finetune", "input_per_mtok": 1, "output_per_mtok": 2}]
        ),
    }
    done = subprocess.run(
        [sys.executable, "-m", "heliograph", "prices", "recompute"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Recomputed 3 requests: 3 priced, 0 with no known price" in done.stdout
    rows = {r["model"]: r for r in gw.records()}
    assert rows["my-finetune"]["cost_usd"] == (PROMPT * 1000 + COMPLETION * 2000) / 1e9
    assert rows["my-finetune"]["cost_source"] == "override"
    assert rows["gpt-4o"]["cost_usd"] == big  # unchanged
    assert gw.api("/api/v1/costs/unpriced-models").json()["data"] == []
