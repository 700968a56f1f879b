"""The /alerts page over real HTTP: admins create a channel and a rule through the forms (a
bad field named, secrets never echoed back), pause and delete; viewers read only (403 on
every action), and another organization's rule is not found."""

from __future__ import annotations

from conftest import LiveGateway
from web_support import WebClient, add_user


def test_admin_and_viewer(gateway: LiveGateway) -> None:
    gw = gateway
    add_user(gw, "admin@example.com")
    add_user(gw, "viewer@example.com", role="viewer")
    secret = "https://hooks.slack.com/services/T0/B0/verysecretpart"
    channel = {"name": "team", "kind": "slack", "url": secret}
    rule = {
        "name": "spend",
        "metric": "cost_usd",
        "window": "1d",
        "comparison": ">",
        "threshold": "25",
        "min_requests": "0",
        "cooldown": "1h",
        "channels": "team",
        "enabled": "1",
    }
    with WebClient(gw, "admin@example.com") as web, WebClient(gw, "viewer@example.com") as viewer:
        assert viewer.post("/alerts/channels", channel).status_code == 403
        assert viewer.post("/alerts/rules", rule).status_code == 403
        made = web.post("/alerts/channels", channel)
        assert made.status_code == 303, made.text
        bad = web.post("/alerts/rules", {**rule, "metric": "vibes"})
        assert bad.status_code == 400
        assert "Rule not saved: metric: must be one of cost_usd, requests" in bad.text
        assert web.post("/alerts/rules", rule).status_code == 303
        page = web.get("/alerts").text
        assert "spend" in page and "cost_usd &gt; 25" in page and secret not in page
        assert "…part" in page and "Create rule" in page
        viewer_page = viewer.get("/alerts").text
        assert "spend" in viewer_page and "Create rule" not in viewer_page
        assert "Send test notification" not in viewer_page
        rows = [line for line in page.splitlines() if "/toggle" in line]
        toggle = rows[0].split('action="')[1].split('"')[0]
        assert viewer.post(toggle, {}).status_code == 403
        assert web.post(toggle, {}).status_code == 303
        assert "Resume" in web.get("/alerts").text
        delete = toggle.replace("/toggle", "/delete")
        assert viewer.post(delete, {}).status_code == 403
        assert web.post(delete, {}).status_code == 303
        assert web.post(delete, {}).status_code == 404
        assert "No alert rules yet" in web.get("/alerts").text
