"""Helpers for dashboard tests: accounts, a logged-in HTTP client, and traffic to look at."""

from __future__ import annotations

import re
from types import TracebackType
from typing import Any

import httpx

from conftest import LiveGateway
from heliograph.auth.users import create_user
from heliograph.store.engine import make_engine

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
PAGES = (
    "/",
    "/requests",
    "/models",
    "/users",
    "/sessions",
    "/traces",
    "/settings",
    "/tasks",
    "/groups",
)


def add_user(
    gw: LiveGateway, email: str, role: str = "admin", org_id: str | None = None, **kw: Any
) -> str:
    engine = make_engine(gw.settings.sqlalchemy_url)
    try:
        return create_user(
            engine,
            org_id=org_id or gw.org.id,
            email=email,
            role=role,
            password=kw.pop("password", PASSWORD),
            **kw,
        )
    finally:
        engine.dispose()


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


class WebClient:
    """An httpx client that logged in through the real login form."""

    def __init__(self, gw: LiveGateway, email: str, password: str = PASSWORD) -> None:
        self.http = httpx.Client(base_url=gw.base_url, timeout=15)
        self.email, self.password = email, password

    def login(self) -> httpx.Response:
        page = self.http.get("/login")
        return self.http.post(
            "/login",
            data={"email": self.email, "password": self.password, "csrf_token": csrf_of(page.text)},
        )

    def __enter__(self) -> WebClient:
        resp = self.login()
        assert resp.status_code == 303, resp.text
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.http.close()

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(path, params=params or None)

    def csrf(self) -> str:
        return csrf_of(self.http.get("/settings").text)

    def post(self, path: str, data: dict[str, str], csrf: str | None = None) -> httpx.Response:
        token = self.csrf() if csrf is None else csrf
        return self.http.post(path, data={**data, "csrf_token": token} if token else data)


def send(
    gw: LiveGateway,
    content: str = "hi",
    model: str = "gpt-4o-mini",
    key: str | None = None,
    **headers: str,
) -> str:
    """One chat request through the real gateway; returns the record id."""
    resp = httpx.post(
        f"{gw.base_url}/v1/{key or gw.org.write_key}/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": content}]},
        headers={"authorization": "Bearer sk-test", **headers},
        timeout=15,
    )
    assert resp.status_code == int(headers.get("x-mock-status", 200)), resp.text
    return resp.headers["heliograph-id"]


def row_ids(html: str) -> list[str]:
    """Record ids of the request table rows, in page order."""
    return re.findall(r'<tr data-id="([^"]+)"', html)
