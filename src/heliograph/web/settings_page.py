"""Settings: API keys, dashboard accounts, configured upstreams and price overrides.

Everyone in the organization can look; only admins can change anything (``page(...,
admin=True)`` answers 403 to viewers). A new key or generated password is shown once, in the
response to the form that created it, and never put in a URL.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import RedirectResponse, Response

from heliograph.auth import users as accounts
from heliograph.auth.keys import SCOPES, KeyInfo, create_key
from heliograph.store import keys as key_store
from heliograph.store import users as user_store
from heliograph.web.context import Ctx


def _upstreams(ctx: Ctx) -> list[dict[str, Any]]:
    out = []
    for name, config in sorted(ctx.settings.resolved_upstreams().items()):
        out.append(
            {
                "name": name,
                "url": config.url,
                "protocol": config.protocol,
                "provider": config.provider or name,
                "has_key": config.api_key is not None,
                "gpu_usd_per_hour": config.gpu_usd_per_hour,
            }
        )
    return out


PRICE_COLUMNS = (
    "model",
    "provider",
    "input_per_mtok",
    "output_per_mtok",
    "cache_read_per_mtok",
    "cache_write_per_mtok",
    "discount_percent",
)


def _price_overrides(ctx: Ctx) -> list[dict[str, Any]]:
    """The configured price overrides (the ``prices`` setting), one row per override."""
    return [{c: item.get(c) for c in PRICE_COLUMNS} for item in ctx.settings.prices]


async def settings_view(ctx: Ctx, status: int = 200, **extra: Any) -> Response:
    keys = await ctx.run(key_store.list_keys, ctx.engine, ctx.org_id)
    accounts_list = await ctx.run(user_store.list_users, ctx.engine, ctx.org_id)
    context: dict[str, Any] = {
        "keys": keys,
        "accounts": accounts_list,
        "upstreams": _upstreams(ctx),
        "overrides": _price_overrides(ctx),
        "scopes": SCOPES,
        "roles": accounts.ROLES,
        "new_key": None,
        "new_user": None,
        "error": "",
    }
    context.update(extra)
    return ctx.render("settings.html", status, **context)


async def settings_page(ctx: Ctx) -> Response:
    return await settings_view(ctx)


async def create_key_action(ctx: Ctx) -> Response:
    name = ctx.form.get("name", "").strip()
    scope = ctx.form.get("scope", "")
    if not name or len(name) > 200 or scope not in SCOPES:
        return await settings_view(ctx, 400, error="A key needs a name and a valid scope.")
    key_id, key = await ctx.run(create_key, ctx.engine, org_id=ctx.org_id, name=name, scope=scope)
    ctx.request.app.state.keys.add(key, KeyInfo(key_id, ctx.org_id, scope))
    return await settings_view(ctx, new_key={"name": name, "scope": scope, "key": key})


async def revoke_key_action(ctx: Ctx) -> Response:
    key_id = ctx.request.path_params["key_id"]
    revoked = await ctx.run(key_store.revoke_key, ctx.engine, key_id, ctx.org_id)
    if not revoked:
        return await settings_view(ctx, 404, error="No such active key in your organization.")
    await ctx.run(ctx.request.app.state.keys.load)
    return RedirectResponse("/settings#keys", 303)


async def create_user_action(ctx: Ctx) -> Response:
    email = ctx.form.get("email", "")
    role = ctx.form.get("role", "")
    password = ctx.form.get("password", "")
    generated = not password
    if generated:
        password = accounts.generate_password()
    try:
        await ctx.run(
            accounts.create_user,
            ctx.engine,
            org_id=ctx.org_id,
            email=email,
            role=role,
            password=password,
            one_time=generated,
        )
    except ValueError as exc:
        return await settings_view(ctx, 400, error=f"Could not create the user: {exc}.")
    shown = {
        "email": email.strip().lower(),
        "role": role,
        "password": password if generated else None,
    }
    return await settings_view(ctx, new_user=shown)


async def disable_user_action(ctx: Ctx) -> Response:
    user_id = ctx.request.path_params["user_id"]
    target = await ctx.run(user_store.get_user, ctx.engine, user_id)
    if target is None or target["org_id"] != ctx.org_id:
        return await settings_view(ctx, 404, error="No such user in your organization.")
    if target["id"] == ctx.user.id:
        return await settings_view(ctx, 400, error="You cannot disable your own account.")
    await ctx.run(user_store.disable_user, ctx.engine, user_id)
    return RedirectResponse("/settings#users", 303)
