"""Logging in and out, and changing one's password (required after a one-time password).

The login form has no session yet, so its CSRF token is a double-submit cookie: a random
value set by GET /login that the form must echo. Failed attempts count per email and per
client address (so spraying one guess over many emails is stopped too); a refused attempt
answers 429 with ``Retry-After``, before any password is hashed. Hashing runs in a worker
thread, one check at a time, so logins never stall the event loop or take both cores.
"""

from __future__ import annotations

import math

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from heliograph.auth import users as accounts
from heliograph.auth.sessions import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    client_key,
    load_session,
    new_token,
    start_session,
    tokens_match,
)
from heliograph.config import Settings
from heliograph.store import users as user_store
from heliograph.web.context import (
    PASSWORD_PATH,
    UI,
    Ctx,
    Endpoint,
    FormTooLarge,
    read_form,
    safe_next,
)


def _login_page(
    ui: UI, request: Request, token: str, status: int = 200, error: str = "", email: str = ""
) -> Response:
    response = ui.html(
        "login.html",
        status,
        user=None,
        current="/login",
        csrf_token=token,
        error=error,
        email=email,
        next=safe_next(request.query_params.get("next")),
    )
    settings: Settings = request.app.state.settings
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=3600,
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
    )
    return response


def _too_many(ui: UI, request: Request, token: str, email: str, wait: float) -> Response:
    minutes = int(wait // 60) + 1
    message = f"Too many failed attempts. Try again in {minutes} minute(s)."
    response = _login_page(ui, request, token, 429, message, email)
    response.headers["Retry-After"] = str(math.ceil(wait))
    return response


def login_views(ui: UI) -> tuple[Endpoint, Endpoint]:
    async def login_form(request: Request) -> Response:
        engine = request.app.state.engine
        user = await run_in_threadpool(load_session, engine, request.cookies.get(SESSION_COOKIE))
        if user is not None:
            return RedirectResponse(safe_next(request.query_params.get("next")), 303)
        token = request.cookies.get(LOGIN_CSRF_COOKIE) or new_token()
        return _login_page(ui, request, token[:100])

    async def login(request: Request) -> Response:
        try:
            form = await read_form(request)
        except FormTooLarge:
            form = None
        cookie = request.cookies.get(LOGIN_CSRF_COOKIE)
        if form is None or not tokens_match(cookie, form.get("csrf_token")):
            return _login_page(ui, request, new_token(), 403, "The form expired. Try again.")
        assert cookie is not None
        email = form.get("email", "").strip().lower()[:320]
        password = form.get("password", "")[:1024]
        address = client_key(request.client.host if request.client else None)
        wait = max(ui.limiter.retry_after(email), ui.address_limiter.retry_after(address))
        if wait > 0:
            return _too_many(ui, request, cookie, email, wait)
        engine = request.app.state.engine
        user = await run_in_threadpool(user_store.find_by_email, engine, email)
        if user is None or user["disabled_at"] is not None:
            await ui.hash_work(accounts.burn_time, password)
            ok = False
        else:
            ok = await ui.hash_work(accounts.verify_password, password, user["password_hash"])
        if not ok or user is None:
            ui.limiter.failed(email)
            ui.address_limiter.failed(address)
            return _login_page(ui, request, cookie, 400, "Wrong email or password.", email)
        # Only the email's count is cleared: an attacker's own account must not reset the
        # count of the address it sprays from.
        ui.limiter.succeeded(email)
        settings: Settings = request.app.state.settings
        token = await run_in_threadpool(
            start_session, engine, user["id"], settings.session_max_age_hours
        )
        target = safe_next(form.get("next"))
        if accounts.is_one_time(user["password_hash"]):
            target = PASSWORD_PATH
        response = RedirectResponse(target, 303)
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=int(settings.session_max_age_hours * 3600),
            httponly=True,
            samesite="lax",
            secure=settings.secure_cookies,
        )
        response.delete_cookie(LOGIN_CSRF_COOKIE)
        return response

    return login_form, login


async def logout(ctx: Ctx) -> Response:
    await ctx.run(user_store.delete_session, ctx.engine, ctx.user.token_hash)
    response = RedirectResponse("/login", 303)
    response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="lax")
    return response


async def password_form(ctx: Ctx) -> Response:
    return ctx.render("password.html", error="", one_time=ctx.user.must_change_password)


async def change_password(ctx: Ctx) -> Response:
    form = ctx.form
    current, new, again = form.get("current", ""), form.get("new", ""), form.get("confirm", "")
    email = ctx.user.email

    def fail(message: str, status: int = 400) -> Response:
        return ctx.render(
            "password.html", status, error=message, one_time=ctx.user.must_change_password
        )

    wait = ctx.ui.limiter.retry_after(email)
    if wait > 0:
        response = fail("Too many failed attempts. Try again later.", 429)
        response.headers["Retry-After"] = str(math.ceil(wait))
        return response
    row = await ctx.run(user_store.find_by_email, ctx.engine, email)
    if row is None or not await ctx.ui.hash_work(
        accounts.verify_password, current, row["password_hash"]
    ):
        ctx.ui.limiter.failed(email)
        return fail("The current password is wrong.")
    if new != again:
        return fail("The two new passwords differ.")
    if new == current:
        return fail("Choose a password different from the current one.")
    try:
        await ctx.ui.hash_work(accounts.set_password, ctx.engine, ctx.user.id, new)
    except ValueError as exc:
        return fail(str(exc).capitalize() + ".")
    await ctx.run(user_store.delete_other_sessions, ctx.engine, ctx.user.id, ctx.user.token_hash)
    return RedirectResponse("/", 303)
