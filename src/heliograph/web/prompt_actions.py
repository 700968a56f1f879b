"""What admins change on a prompt's page: its description, its labels, the prompt itself.

Moving ``production`` changes what live traffic runs within seconds, and deleting a prompt
breaks every client that names it; both take two steps. The first POST only shows what would
happen and a form to confirm it; the change is made by a POST that carries the confirmation
field (``confirm=move``, or the prompt's name typed again for a delete). A script or a
mistaken click that posts the first form changes nothing, and a browser with JavaScript off
gets the same confirmation. A label move also carries the version the admin saw the label
at: if someone moved it in between, the admin is asked again with the new state.

Moves go through ``store.prompts.move_label``, the function the API uses, recorded as
``user:<id>``. Every route here is ``admin=True``: viewers get 403 and see no forms.
"""

from __future__ import annotations

from starlette.responses import RedirectResponse, Response

from heliograph.api.prompts import DESCRIPTION_RULE, LABEL, description_problem
from heliograph.store import prompts as prompt_store
from heliograph.web.context import Ctx
from heliograph.web.format import path, query_url
from heliograph.web.prompts import by_user, prompt_name

CONFIRM_MOVE = "move"
LABEL_RULE = (
    "A label is 1 to 64 characters: lowercase letters, digits, '-' and '_', starting with a "
    "letter or digit."
)


def _missing(ctx: Ctx) -> Response:
    return ctx.not_found("No such prompt in your organization.")


async def description_action(ctx: Ctx) -> Response:
    name = prompt_name(ctx)
    if name is None:
        return _missing(ctx)
    description = ctx.form.get("description", "")
    if description_problem(description):
        return ctx.render(
            "error.html", 400, title="Not saved", message=DESCRIPTION_RULE.capitalize() + "."
        )
    done = await ctx.run(prompt_store.set_description, ctx.engine, ctx.org_id, name, description)
    if not done:
        return _missing(ctx)
    return RedirectResponse(query_url(path("prompts", name), {"saved": "description"}), 303)


def _confirm_page(
    ctx: Ctx, context: dict[str, object], status: int = 200, error: str = ""
) -> Response:
    return ctx.render("prompt_confirm.html", status, error=error, **context)


def _version(value: str) -> int | None:
    return int(value) if value.isascii() and value.isdigit() and len(value) < 10 else None


async def move_label_action(ctx: Ctx) -> Response:
    """Step one shows the move; step two (``confirm=move``) makes it."""
    name = prompt_name(ctx)
    if name is None:
        return _missing(ctx)
    form = ctx.form
    label = (form.get("new_label", "").strip() or form.get("label", "")).strip()
    version = _version(form.get("version", ""))
    prompt = await ctx.run(prompt_store.get_prompt, ctx.engine, ctx.org_id, name)
    if prompt is None:
        return _missing(ctx)
    here = path("prompts", name)
    if not LABEL.fullmatch(label):
        return ctx.render("error.html", 400, title="Not moved", message=LABEL_RULE)
    target = None
    if version is not None:
        target = await ctx.run(prompt_store.get_version, ctx.engine, ctx.org_id, name, version)
    if target is None:
        message = f"Prompt {name!r} has no version {form.get('version', '')!r}."
        return ctx.render("error.html", 400, title="Not moved", message=message)
    current = prompt["labels"].get(label)
    seen = form.get("from", "")
    context: dict[str, object] = {
        "kind": "move",
        "name": name,
        "here": here,
        "label": label,
        "version": version,
        "was": current,
        "target": target,
        "is_new": label not in prompt["labels"],
    }
    if form.get("confirm") != CONFIRM_MOVE:
        return _confirm_page(ctx, context)
    if seen != ("" if current is None else str(current)):
        was = "nothing" if not seen else f"version {seen}"
        error = f"The label moved while you were confirming (you saw it at {was}); check again."
        return _confirm_page(ctx, context, 409, error)
    assert version is not None
    moved = await ctx.run(
        prompt_store.move_label, ctx.engine, ctx.org_id, name, label, version, by_user(ctx)
    )
    if moved is None:  # deleted in between
        return _missing(ctx)
    return RedirectResponse(query_url(here, {"moved": label}) + "#labels", 303)


async def delete_action(ctx: Ctx) -> Response:
    """Step one asks for the name; step two (``confirm`` = the name) deletes."""
    name = prompt_name(ctx)
    if name is None:
        return _missing(ctx)
    prompt = await ctx.run(prompt_store.get_prompt, ctx.engine, ctx.org_id, name)
    if prompt is None:
        return _missing(ctx)
    context: dict[str, object] = {
        "kind": "delete",
        "name": name,
        "here": path("prompts", name),
        "prompt": prompt,
    }
    typed = ctx.form.get("confirm")
    if typed is None:
        return _confirm_page(ctx, context)
    if typed.strip() != name:
        error = "Type the prompt's name exactly to delete it."
        return _confirm_page(ctx, context, 400, error)
    if not await ctx.run(prompt_store.delete_prompt, ctx.engine, ctx.org_id, name):
        return _missing(ctx)
    return RedirectResponse(query_url("/prompts", {"deleted": name}), 303)
