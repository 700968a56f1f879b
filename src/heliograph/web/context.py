"""What every dashboard view shares: templates, the logged-in user, CSRF checks, responses.

``routes()`` builds one ``UI`` per app (templates, the failed-login limiters and the password
check slots live there, not in module globals) and wraps each view with ``page``: no session
means a redirect to /login, a one-time password means the password page first, every POST must
carry the session's CSRF token (403 otherwise), and admin-only actions (settings, replay)
answer 403 to viewers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, urlencode

import anyio.to_thread
from anyio import CapacityLimiter
from jinja2 import Environment, PackageLoader, StrictUndefined
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from heliograph.auth.sessions import (
    SESSION_COOKIE,
    LoginLimiter,
    SessionUser,
    load_session,
    tokens_match,
)
from heliograph.config import Settings
from heliograph.store.requests import time_bounds
from heliograph.web import format as fmt
from heliograph.web import names
from heliograph.web.query import KEPT, Window, default_range, now_ms, parse_tz, parse_window

MAX_FORM_BYTES = 64 * 1024
# An edited replay body may grow past a settings form; replay refuses bodies it cannot send
# with an inline error that keeps the edit, so the form limit must not cut it off first.
REPLAY_FORM_BYTES = 256 * 1024
# scrypt takes ~16 MiB and tens of milliseconds of CPU per check: one check at a time leaves
# the other core to the gateway however many logins arrive at once.
PASSWORD_CHECKS = 1
# Per client address: enough for a few people behind one NAT mistyping, far too few to spray.
ADDRESS_MAX_FAILURES = 20
PASSWORD_PATH = "/settings/password"  # noqa: S105 (a URL)
T = TypeVar("T")


class UI:
    """Per-app dashboard state: the template environment, login limiters, password checks."""

    def __init__(self) -> None:
        self.env = Environment(
            loader=PackageLoader("heliograph.web", "templates"),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(fmt.FILTERS)
        self.env.globals.update(
            path=fmt.path,
            query_url=fmt.query_url,
            cost_hint=fmt.cost_hint,
            DASH=fmt.DASH,
            who=names.label,
            person_text=names.person_text,
            identity_of=names.identity,
        )
        self.limiter = LoginLimiter()  # per email
        self.address_limiter = LoginLimiter(max_failures=ADDRESS_MAX_FAILURES)
        self.password_checks = CapacityLimiter(PASSWORD_CHECKS)

    async def hash_work(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a password hash or check in a worker thread, one at a time (never on the loop)."""
        return await anyio.to_thread.run_sync(fn, *args, limiter=self.password_checks)

    def html(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        body = self.env.get_template(template).render(**context)
        return HTMLResponse(body, status, headers={"Cache-Control": "no-store"})


@dataclass
class Ctx:
    """One dashboard request: the request, the UI and the logged-in user."""

    request: Request
    ui: UI
    user: SessionUser
    form: dict[str, str] = field(default_factory=dict)

    @property
    def engine(self) -> Engine:
        engine: Engine = self.request.app.state.engine
        return engine

    @property
    def settings(self) -> Settings:
        settings: Settings = self.request.app.state.settings
        return settings

    @property
    def org_id(self) -> str:
        return self.user.org_id

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A blocking store call, off the event loop."""
        return await run_in_threadpool(fn, *args, **kwargs)

    @property
    def tz(self) -> dt.tzinfo:
        """The timezone the page shows times in (``?tz=``; UTC by default)."""
        return parse_tz(self.request.query_params.get("tz"))[0]

    async def window(self, default: str | None = None) -> Window:
        """The page's time window. Without ``range`` in the URL (and no ``default`` the page
        insists on) it is the range that shows this organization's traffic."""
        q = self.request.query_params
        if not q.get("range") and default is None:
            first, last = await self.run(time_bounds, self.engine, self.org_id)
            default = default_range(first, last, now_ms())
        window = parse_window(q, default or "24h", self.tz)
        problem = parse_tz(q.get("tz"))[1]
        if problem:
            window.error = f"{window.error} {problem}".strip()
        return window

    def keep(self) -> dict[str, str]:
        """The state every page keeps (time range and timezone) for the navigation links."""
        q = self.request.query_params
        kept = {k: q[k] for k in KEPT if q.get(k)}
        if kept.get("range") != "custom":
            kept.pop("since", None)
            kept.pop("until", None)
        return kept

    def render(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("tz", self.tz)
        return self.ui.html(
            template,
            status,
            user=self.user,
            csrf_token=self.user.csrf_token,
            current=self.request.url.path,
            base_url=self.settings.base_url(),
            demo=self.settings.demo,
            keep=self.keep(),
            zone=fmt.zone_label(context["tz"]),
            **context,
        )

    def not_found(self, what: str) -> HTMLResponse:
        return self.render("error.html", 404, title="Not found", message=what)


View = Callable[[Ctx], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


class FormTooLarge(ValueError):
    """A posted form over the route's limit (answered 413, not as a bad CSRF token)."""


async def read_form(request: Request, limit: int = MAX_FORM_BYTES) -> dict[str, str] | None:
    """A URL-encoded form (first value of each field), or None if it is not one; raises
    ``FormTooLarge`` past ``limit`` bytes."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise FormTooLarge(f"The form is larger than {limit // 1024} KB.")
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=200)
    except (UnicodeDecodeError, ValueError):
        return None
    form: dict[str, str] = {}
    for key, value in pairs:
        form.setdefault(key, value)
    return form


def safe_next(target: str | None) -> str:
    """Where to go after login: only a local path (never //host or a scheme)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def login_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse("/login?next=" + quote(target, safe=""), 303)


def forbidden(ui: UI, user: SessionUser, message: str) -> HTMLResponse:
    return ui.html(
        "error.html",
        403,
        title="Forbidden",
        message=message,
        user=user,
        csrf_token=user.csrf_token,
        current="",
        base_url="",
    )


def _has_empty(request: Request) -> bool:
    return any(not v.strip() for _, v in request.query_params.multi_items())


def page(
    ui: UI, view: View, *, admin: bool = False, json: bool = False, max_form: int = MAX_FORM_BYTES
) -> Endpoint:
    """Wrap a view with login, one-time-password, CSRF and role checks; a POST's form may
    take ``max_form`` bytes (replay's edited bodies need more than a settings form)."""

    async def endpoint(request: Request) -> Response:
        engine = request.app.state.engine
        user = await run_in_threadpool(load_session, engine, request.cookies.get(SESSION_COOKIE))
        if user is None:
            if json:
                return JSONResponse({"error": "not logged in"}, 401)
            return login_redirect(request)
        if user.must_change_password and request.url.path != PASSWORD_PATH:
            if json:
                return JSONResponse({"error": "password change required"}, 403)
            return RedirectResponse(PASSWORD_PATH, 303)
        if request.method == "GET" and not json and _has_empty(request):
            # A GET form submits every input, filled or not: keep URLs to what was chosen.
            kept = [(k, v) for k, v in request.query_params.multi_items() if v.strip()]
            target = request.url.path + (f"?{urlencode(kept)}" if kept else "")
            return RedirectResponse(target, 303)
        form: dict[str, str] = {}
        if request.method == "POST":
            try:
                parsed = await read_form(request, max_form)
            except FormTooLarge as exc:
                return ui.html(
                    "error.html",
                    413,
                    title="Too large",
                    message=f"{exc} Nothing was changed; go back to keep what you typed.",
                    user=user,
                    csrf_token=user.csrf_token,
                    current="",
                    base_url="",
                )
            if parsed is None or not tokens_match(user.csrf_token, parsed.get("csrf_token")):
                return forbidden(ui, user, "Invalid or missing CSRF token. Reload the page.")
            if admin and not user.is_admin:
                return forbidden(ui, user, "Only admins can do this; you are a viewer.")
            form = parsed
        return await view(Ctx(request, ui, user, form))

    return endpoint
