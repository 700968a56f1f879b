"""Dashboard access over real HTTP: login, logout, CSRF, roles, one-time passwords, headers."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import LiveGateway, gateway_settings
from heliograph.auth import users as accounts
from heliograph.auth.sessions import LoginLimiter, client_key
from mock_upstream import MockUpstream
from web_support import PASSWORD, WebClient, add_user, csrf_of, send

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def test_login_logout_and_cookie_flags(gateway: LiveGateway) -> None:
    gw = gateway
    add_user(gw, "Admin@Example.com")
    web = WebClient(gw, "admin@example.com")
    with web.http:
        resp = web.login()
        assert resp.status_code == 303 and resp.headers["location"] == "/"
        cookie = next(h for h in resp.headers.get_list("set-cookie") if h.startswith("hg_session="))
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
        assert web.get("/").status_code == 200
        resp = web.post("/logout", {})
        assert resp.status_code == 303 and resp.headers["location"] == "/login"
        assert web.get("/").status_code == 303
        assert web.get("/requests/live.json").status_code == 401


def test_wrong_passwords_are_rate_limited(gateway: LiveGateway) -> None:
    gw = gateway
    add_user(gw, "admin@example.com")
    with httpx.Client(base_url=gw.base_url) as client:
        token = csrf_of(client.get("/login").text)
        for _ in range(5):
            resp = client.post(
                "/login",
                data={"email": "admin@example.com", "password": "nope", "csrf_token": token},
            )
            assert resp.status_code == 400 and "Wrong email or password" in resp.text
        unknown = client.post(
            "/login", data={"email": "ghost@example.com", "password": "x", "csrf_token": token}
        )
        assert unknown.status_code == 400  # same answer as a wrong password
        blocked = client.post(
            "/login",
            data={"email": "admin@example.com", "password": PASSWORD, "csrf_token": token},
        )
        assert blocked.status_code == 429 and "Too many failed attempts" in blocked.text
        assert "hg_session" not in client.cookies


def test_password_spraying_from_one_address_is_refused(gateway: LiveGateway) -> None:
    """One guess at each of many emails never trips the per-email count; the address's does."""
    gw = gateway
    add_user(gw, "admin@example.com")
    with httpx.Client(base_url=gw.base_url) as client:
        token = csrf_of(client.get("/login").text)

        def attempt(email: str, password: str = "Winter2026!") -> httpx.Response:
            data = {"email": email, "password": password, "csrf_token": token}
            return client.post("/login", data=data)

        for i in range(20):
            resp = attempt(f"user{i}@example.com")
            assert resp.status_code == 400 and "Wrong email or password" in resp.text
        for email in ("user99@example.com", "admin@example.com"):
            blocked = attempt(email, PASSWORD)  # even the right password, from this address
            assert blocked.status_code == 429, blocked.text
            assert "Too many failed attempts" in blocked.text
            assert 840 <= int(blocked.headers["retry-after"]) <= 900
        assert "hg_session" not in client.cookies


def test_per_email_refusal_says_when_to_retry(gateway: LiveGateway) -> None:
    gw = gateway
    add_user(gw, "admin@example.com")
    with httpx.Client(base_url=gw.base_url) as client:
        token = csrf_of(client.get("/login").text)
        data = {"email": "admin@example.com", "password": "nope", "csrf_token": token}
        for _ in range(5):
            assert client.post("/login", data=data).status_code == 400
        blocked = client.post("/login", data={**data, "password": PASSWORD})
        assert blocked.status_code == 429 and 0 < int(blocked.headers["retry-after"]) <= 900


def test_password_checks_run_off_the_loop_one_at_a_time(
    gateway: LiveGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """scrypt is slow on purpose: concurrent logins must neither block the event loop nor
    take every core (the gateway shares them)."""
    gw = gateway
    add_user(gw, "admin@example.com")
    threads: list[int] = []
    running = [0, 0]  # now, most at once
    lock = threading.Lock()

    def slow_check(password: str, stored: str) -> bool:
        with lock:
            threads.append(threading.get_ident())
            running[0] += 1
            running[1] = max(running)
        time.sleep(0.15)
        with lock:
            running[0] -= 1
        return False

    monkeypatch.setattr(accounts, "verify_password", slow_check)

    async def logins() -> list[int]:
        async with httpx.AsyncClient(base_url=gw.base_url, timeout=15) as client:
            token = csrf_of((await client.get("/login")).text)
            data = {"email": "admin@example.com", "password": "nope", "csrf_token": token}
            results = await asyncio.gather(*(client.post("/login", data=data) for _ in range(4)))
            health = await client.get("/health")
            assert health.status_code == 200
            return [r.status_code for r in results]

    assert asyncio.run(logins()) == [400] * 4
    assert len(threads) == 4 and gw.thread.ident not in threads
    assert running[1] == 1


def test_login_limiter_memory_is_bounded() -> None:
    limiter = LoginLimiter(max_failures=3, window_s=60, max_entries=50)
    for i in range(1000):
        limiter.failed(f"user{i}@example.com")
    assert len(limiter) == 50
    for _ in range(100):
        limiter.failed("victim@example.com")
    assert len(limiter._failures["victim@example.com"]) == 3
    assert limiter.retry_after("victim@example.com") > 0
    # One IPv6 host holds a /64: its addresses share one count; IPv4 (mapped too) stays exact.
    assert client_key("2001:db8::1") == client_key("2001:db8::ffff:1") == "2001:db8::/64"
    assert client_key("2001:db8:0:1::1") != client_key("2001:db8::1")
    assert client_key("::ffff:192.0.2.7") == client_key("192.0.2.7") == "192.0.2.7"
    assert client_key(None) == "unknown"


def test_csrf_is_checked_on_every_form(gateway: LiveGateway) -> None:
    gw = gateway
    add_user(gw, "admin@example.com")
    with httpx.Client(base_url=gw.base_url) as client:
        client.get("/login")
        resp = client.post("/login", data={"email": "admin@example.com", "password": PASSWORD})
        assert resp.status_code == 403
        client.cookies.clear()
        resp = client.post(
            "/login",
            data={"email": "admin@example.com", "password": PASSWORD, "csrf_token": "forged"},
        )
        assert resp.status_code == 403 and "hg_session" not in client.cookies
    with WebClient(gw, "admin@example.com") as web:
        for path in ("/settings/keys", "/settings/users", "/logout", "/settings/password"):
            assert web.post(path, {"name": "k", "scope": "read"}, csrf="").status_code == 403
            assert web.post(path, {"name": "k", "scope": "read"}, csrf="wrong").status_code == 403
        other = WebClient(gw, "admin@example.com")
        with other:  # another session's token is not this session's token
            stolen = other.csrf()
            assert (
                web.post("/settings/keys", {"name": "k", "scope": "read"}, stolen).status_code
                == 403
            )
        json_post = web.http.post(
            "/settings/keys", json={"name": "k", "scope": "read", "csrf_token": web.csrf()}
        )
        assert json_post.status_code == 403
        assert web.get("/").status_code == 200  # still logged in: nothing above took effect


def test_viewer_sees_settings_but_cannot_change_them(gateway: LiveGateway) -> None:
    gw = gateway
    add_user(gw, "viewer@example.com", "viewer")
    with WebClient(gw, "viewer@example.com") as web:
        page = web.get("/settings")
        assert page.status_code == 200 and "only admins can change them" in page.text
        assert 'action="/settings/keys"' not in page.text and "Revoke" not in page.text
        key_id = "00000000-0000-0000-0000-000000000000"
        for path in (
            "/settings/keys",
            f"/settings/keys/{key_id}/revoke",
            "/settings/users",
            f"/settings/users/{key_id}/disable",
        ):
            resp = web.post(
                path, {"name": "x", "scope": "admin", "email": "x@y.z", "role": "admin"}
            )
            assert resp.status_code == 403, path
        assert "x@y.z" not in web.get("/settings").text


def test_admin_manages_keys_and_users(gateway: LiveGateway) -> None:
    gw = gateway
    add_user(gw, "admin@example.com")
    with WebClient(gw, "admin@example.com") as web:
        created = web.post("/settings/keys", {"name": "ci <reader>", "scope": "read"})
        assert created.status_code == 200 and "ci &lt;reader&gt;" in created.text
        key = created.text.split('<code class="secret">', 1)[1].split("<", 1)[0]
        assert key.startswith("hg_")
        assert key not in web.get("/settings").text  # shown once
        assert gw.api("/api/v1/requests", key=key).status_code == 200
        listing = gw.api("/api/v1/keys", key=gw.org.admin_key).json()["data"]
        key_id = next(k["id"] for k in listing if k["name"] == "ci <reader>")
        assert web.post(f"/settings/keys/{key_id}/revoke", {}).status_code == 303
        assert gw.api("/api/v1/requests", key=key).status_code == 401
        other_key = next(
            k["id"]
            for k in gw.api("/api/v1/keys", key=gw.other.admin_key).json()["data"]
            if k["scope"] == "read"
        )
        assert web.post(f"/settings/keys/{other_key}/revoke", {}).status_code == 404
        assert web.post("/settings/keys", {"name": "", "scope": "god"}).status_code == 400

        made = web.post("/settings/users", {"email": "New@Example.com", "role": "viewer"})
        assert made.status_code == 200
        one_time = made.text.split('<code class="secret">', 1)[1].split("<", 1)[0]
        dup = web.post("/settings/users", {"email": "new@example.com", "role": "viewer"})
        assert dup.status_code == 400 and "already exists" in dup.text

        newbie = WebClient(gw, "new@example.com", one_time)
        with newbie.http:
            assert newbie.login().headers["location"] == "/settings/password"
            assert newbie.get("/requests").headers["location"] == "/settings/password"
            token = csrf_of(newbie.get("/settings/password").text)
            bad = newbie.post(
                "/settings/password",
                {"current": one_time, "new": "short", "confirm": "short"},
                token,
            )
            assert bad.status_code == 400 and "at least 8" in bad.text
            changed = newbie.post(
                "/settings/password",
                {"current": one_time, "new": "a new password", "confirm": "a new password"},
                token,
            )
            assert changed.status_code == 303
            assert newbie.get("/requests").status_code == 200
            accounts = web.get("/settings").text
            user_id = accounts.split("new@example.com", 1)[1].split("/settings/users/", 1)[1]
            user_id = user_id.split("/", 1)[0]
            assert web.post(f"/settings/users/{user_id}/disable", {}).status_code == 303
            assert newbie.get("/requests").status_code == 303  # their session ended at once
        disabled = WebClient(gw, "new@example.com", "a new password")
        with disabled.http:
            assert disabled.login().status_code == 400


def test_security_headers_and_safe_redirects(gateway: LiveGateway) -> None:
    gw = gateway
    add_user(gw, "admin@example.com")
    rid = send(gw)
    gw.wait_records(1)
    with WebClient(gw, "admin@example.com") as web:
        for path in ("/", "/requests", f"/requests/{rid}", "/static/app.css"):
            resp = web.get(path)
            assert resp.headers["content-security-policy"] == CSP
            assert resp.headers["x-content-type-options"] == "nosniff"
            assert resp.headers["referrer-policy"] == "same-origin"
        assert web.get("/").headers["cache-control"] == "no-store"
        for html in (web.get("/").text, web.get(f"/requests/{rid}").text):
            assert "<script>" not in html and " onclick=" not in html and "style=" not in html
    gateway_resp = httpx.post(
        f"{gw.openai_url}/chat/completions",
        json={"model": "m", "messages": []},
        headers={"authorization": "Bearer sk-x"},
    )
    assert "content-security-policy" not in gateway_resp.headers  # the gateway path is untouched
    with httpx.Client(base_url=gw.base_url) as client:
        for target, expected in (
            ("//evil.example/x", "/"),
            ("https://evil.example", "/"),
            ("/models?range=7d", "/models?range=7d"),
        ):
            token = csrf_of(client.get("/login", params={"next": target}).text)
            resp = client.post(
                "/login",
                data={
                    "email": "admin@example.com",
                    "password": PASSWORD,
                    "csrf_token": token,
                    "next": target,
                },
            )
            assert resp.headers["location"] == expected
            client.cookies.delete("hg_session")


@pytest.fixture
def secure_gateway(tmp_path: Path, mock: MockUpstream) -> Iterator[LiveGateway]:
    settings = gateway_settings(
        tmp_path,
        f"sqlite:///{tmp_path / 'gw.db'}",
        mock.url,
        secure_cookies=True,
        prices=[{"model": "ft:<b>x</b>*", "input_per_mtok": 0.3, "output_per_mtok": 1.2}],
        upstreams={
            "local-llm": {"url": "http://10.0.0.5:8000/v1", "api_key": "sk-upstream-secret"}
        },
    )
    gw = LiveGateway(settings).start()
    try:
        yield gw
    finally:
        gw.stop()


def test_secure_cookies_and_settings_listing(secure_gateway: LiveGateway) -> None:
    gw = secure_gateway
    add_user(gw, "admin@example.com")
    with httpx.Client(base_url=gw.base_url) as client:
        page = client.get("/login")
        assert "Secure" in page.headers["set-cookie"]
        resp = client.post(
            "/login",
            data={
                "email": "admin@example.com",
                "password": PASSWORD,
                "csrf_token": csrf_of(page.text),
            },
            headers={"cookie": f"hg_login_csrf={page.cookies['hg_login_csrf']}"},
        )
        assert resp.status_code == 303
        cookie = resp.headers["set-cookie"]
        assert cookie.startswith("hg_session=") and "Secure" in cookie and "HttpOnly" in cookie
        session = cookie.split(";", 1)[0]
        settings = client.get("/settings", headers={"cookie": session}).text
        assert "ft:&lt;b&gt;x&lt;/b&gt;*" in settings and "1.2" in settings
        assert "http://10.0.0.5:8000/v1" in settings and "configured" in settings
        assert "sk-upstream-secret" not in settings
