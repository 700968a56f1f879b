"""The dashboard: server-rendered pages, our own CSS/JS, SVG charts."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from heliograph.web import (
    alerts,
    budgets_page,
    compare,
    dashboard,
    dataset_upload,
    datasets,
    evaluations,
    evaluators,
    experiment_new,
    experiments,
    groups,
    login,
    models,
    openwebui_page,
    people,
    playground,
    prompt_actions,
    prompts,
    replay,
    request_detail,
    request_pages,
    retention_page,
    review,
    save_prompt,
    scores,
    sessions,
    settings_page,
    tasks,
    traces_page,
    webhooks_page,
)
from heliograph.web.context import PASSWORD_PATH, REPLAY_FORM_BYTES, UI, Ctx, page

STATIC = Path(__file__).parent / "static"


async def _favicon(_request: Request) -> Response:
    """Browsers ask for /favicon.ico on every page whatever the HTML says: our own mark."""
    return FileResponse(
        STATIC / "favicon.ico",
        media_type="image/x-icon",
        headers={"Cache-Control": "public, max-age=86400"},
    )


async def _export(ctx: Ctx) -> Response:
    if ctx.request.path_params["fmt"] not in ("csv", "jsonl"):
        return ctx.not_found("Export formats are csv and jsonl.")
    return await request_pages.export(ctx)


def _dataset_routes(ui: UI) -> list[BaseRoute]:
    add = page(ui, datasets.add_requests_action, admin=True)
    return [
        Route("/datasets", page(ui, datasets.datasets_page), methods=["GET"]),
        Route("/datasets", page(ui, datasets.create_action, admin=True), methods=["POST"]),
        Route("/datasets/add-matching", page(ui, datasets.add_matching_page), methods=["GET"]),
        Route("/datasets/add-requests", add, methods=["POST"]),  # the dataset from the form
        Route("/datasets/{name}", page(ui, datasets.dataset_page), methods=["GET"]),
        Route("/datasets/{name}/export.jsonl", page(ui, datasets.export_file), methods=["GET"]),
        Route("/datasets/{name}/add-requests", add, methods=["POST"]),
        Route("/datasets/{name}/upload", dataset_upload.upload, methods=["POST"]),
        Route(
            "/datasets/{name}/items/{item_id}/archive",
            page(ui, datasets.archive_action, admin=True),
            methods=["POST"],
        ),
    ]


def _experiment_routes(ui: UI) -> list[BaseRoute]:
    one = "/experiments/{exp_id}"
    return [
        Route("/experiments", page(ui, experiment_new.experiments_page), methods=["GET"]),
        Route("/experiments", page(ui, experiment_new.new_action, admin=True), methods=["POST"]),
        Route(one, page(ui, experiments.experiment_page), methods=["GET"]),
        Route(
            f"{one}/cancel", page(ui, experiment_new.cancel_action, admin=True), methods=["POST"]
        ),
        Route(
            f"{one}/progress.json",
            page(ui, experiments.progress_json, json=True),
            methods=["GET"],
        ),
        Route(f"{one}/diff", page(ui, experiments.diff_page), methods=["GET"]),
        Route(one + "/export.{fmt}", page(ui, experiments.export), methods=["GET"]),
        Route(
            f"{one}/promote",
            page(ui, experiments.promote_action, admin=True),
            methods=["POST"],
        ),
        Route("/review", page(ui, review.review_page), methods=["GET"]),
        Route("/review", page(ui, review.save_action, admin=True), methods=["POST"]),
    ]


def _webhook_routes(ui: UI) -> list[BaseRoute]:
    here, one = "/settings/webhooks", "/settings/webhooks/{endpoint_id}"
    return [
        Route(here, page(ui, webhooks_page.webhooks_page), methods=["GET"]),
        Route(here, page(ui, webhooks_page.create_action, admin=True), methods=["POST"]),
        Route(
            f"{one}/enabled", page(ui, webhooks_page.toggle_action, admin=True), methods=["POST"]
        ),
        Route(f"{one}/delete", page(ui, webhooks_page.delete_action, admin=True), methods=["POST"]),
        Route(f"{one}/test", page(ui, webhooks_page.test_action, admin=True), methods=["POST"]),
    ]


def _budget_routes(ui: UI) -> list[BaseRoute]:
    here, one = "/settings/budgets", "/settings/budgets/{budget_id}"
    return [
        Route(here, page(ui, budgets_page.budgets_page), methods=["GET"]),
        Route(here, page(ui, budgets_page.create_action, admin=True), methods=["POST"]),
        Route(f"{one}/edit", page(ui, budgets_page.edit_page), methods=["GET"]),
        Route(one, page(ui, budgets_page.update_action, admin=True), methods=["POST"]),
        Route(f"{one}/delete", page(ui, budgets_page.delete_action, admin=True), methods=["POST"]),
    ]


def _retention_routes(ui: UI) -> list[BaseRoute]:
    here = "/settings/retention"
    return [
        Route(here, page(ui, retention_page.retention_page), methods=["GET"]),
        Route(here, page(ui, retention_page.save_action, admin=True), methods=["POST"]),
    ]


def _alert_routes(ui: UI) -> list[BaseRoute]:
    rule, channel = "/alerts/rules/{rule_id}", "/alerts/channels/{channel_id}"
    return [
        Route("/alerts", page(ui, alerts.alerts_page), methods=["GET"]),
        Route("/alerts/rules", page(ui, alerts.create_rule_action, admin=True), methods=["POST"]),
        Route(f"{rule}/toggle", page(ui, alerts.toggle_rule_action, admin=True), methods=["POST"]),
        Route(f"{rule}/delete", page(ui, alerts.delete_rule_action, admin=True), methods=["POST"]),
        Route(
            "/alerts/channels", page(ui, alerts.create_channel_action, admin=True), methods=["POST"]
        ),
        Route(
            f"{channel}/test", page(ui, alerts.test_channel_action, admin=True), methods=["POST"]
        ),
        Route(
            f"{channel}/delete",
            page(ui, alerts.delete_channel_action, admin=True),
            methods=["POST"],
        ),
    ]


def _evaluation_routes(ui: UI) -> list[BaseRoute]:
    here = "/settings/evaluations"
    one = "/evaluators/{name}"
    return [
        Route("/evaluators", page(ui, evaluators.evaluators_page), methods=["GET"]),
        Route("/evaluators", page(ui, evaluators.create_action, admin=True), methods=["POST"]),
        Route(one, page(ui, evaluators.update_action, admin=True), methods=["POST"]),
        Route(f"{one}/delete", page(ui, evaluators.delete_action, admin=True), methods=["POST"]),
        Route("/scores", page(ui, scores.scores_page), methods=["GET"]),
        Route(here, page(ui, evaluations.evaluations_page), methods=["GET"]),
        Route(here, page(ui, evaluations.create_action, admin=True), methods=["POST"]),
        Route(
            here + "/{rule_id}", page(ui, evaluations.update_action, admin=True), methods=["POST"]
        ),
        Route(
            here + "/{rule_id}/delete",
            page(ui, evaluations.delete_action, admin=True),
            methods=["POST"],
        ),
    ]


def routes() -> list[BaseRoute]:
    """Dashboard routes, mounted by ``app.create_app``; one ``UI`` per app."""
    ui = UI()
    login_form, login_post = login.login_views(ui)
    return [
        Route("/favicon.ico", _favicon, methods=["GET"]),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login_post, methods=["POST"]),
        Route("/logout", page(ui, login.logout), methods=["POST"]),
        Route(PASSWORD_PATH, page(ui, login.password_form), methods=["GET"]),
        Route(PASSWORD_PATH, page(ui, login.change_password), methods=["POST"]),
        Route("/", page(ui, dashboard.dashboard), methods=["GET"]),
        Route("/models", page(ui, models.models_page), methods=["GET"]),
        Route("/models/{model:path}", page(ui, models.model_page), methods=["GET"]),
        Route("/compare", page(ui, compare.compare_page), methods=["GET"]),
        Route("/requests", page(ui, request_pages.requests_page), methods=["GET"]),
        Route(
            "/requests/live.json", page(ui, request_pages.requests_json, json=True), methods=["GET"]
        ),
        Route("/requests/export.{fmt}", page(ui, _export), methods=["GET"]),
        Route("/requests/{request_id}", page(ui, request_detail.request_detail), methods=["GET"]),
        # Replay calls the provider (with the server's key): it spends money, so admins only.
        Route(
            "/requests/{request_id}/replay",
            page(ui, replay.replay, admin=True, max_form=REPLAY_FORM_BYTES),
            methods=["POST"],
        ),
        Route("/prompts", page(ui, prompts.prompts_page), methods=["GET"]),
        Route("/prompts", page(ui, prompts.create_action, admin=True), methods=["POST"]),
        Route("/prompts/{name}", page(ui, prompts.prompt_page), methods=["GET"]),
        Route(
            "/prompts/{name}/description",
            page(ui, prompt_actions.description_action, admin=True),
            methods=["POST"],
        ),
        Route(
            "/prompts/{name}/labels",
            page(ui, prompt_actions.move_label_action, admin=True),
            methods=["POST"],
        ),
        Route(
            "/prompts/{name}/delete",
            page(ui, prompt_actions.delete_action, admin=True),
            methods=["POST"],
        ),
        # The Playground runs prompts through the gateway: it spends money, so admins only
        # run it (viewers may read the page).
        Route(
            "/prompts/{name}/playground",
            page(ui, playground.playground_page),
            methods=["GET"],
        ),
        Route(
            "/prompts/{name}/playground",
            page(ui, playground.playground_run, admin=True, max_form=REPLAY_FORM_BYTES),
            methods=["POST"],
        ),
        Route(
            "/requests/{request_id}/save-prompt",
            page(ui, save_prompt.save_prompt_form),
            methods=["GET"],
        ),
        Route(
            "/requests/{request_id}/save-prompt",
            page(ui, save_prompt.save_prompt_action, admin=True),
            methods=["POST"],
        ),
        *_dataset_routes(ui),
        *_experiment_routes(ui),
        Route("/users", page(ui, people.users_page), methods=["GET"]),
        Route("/users/{user_id:path}", page(ui, people.user_page), methods=["GET"]),
        Route("/groups", page(ui, groups.groups_page), methods=["GET"]),
        Route("/tasks", page(ui, tasks.tasks_page), methods=["GET"]),
        Route("/sessions", page(ui, sessions.sessions_page), methods=["GET"]),
        Route("/sessions/{session_id:path}", page(ui, sessions.session_page), methods=["GET"]),
        Route("/traces", page(ui, traces_page.traces_page), methods=["GET"]),
        Route("/traces/{trace_id}", page(ui, traces_page.trace_page), methods=["GET"]),
        Route("/settings", page(ui, settings_page.settings_page), methods=["GET"]),
        Route("/settings/openwebui", page(ui, openwebui_page.openwebui_page), methods=["GET"]),
        *_evaluation_routes(ui),
        *_webhook_routes(ui),
        *_budget_routes(ui),
        *_retention_routes(ui),
        *_alert_routes(ui),
        Route(
            "/settings/keys",
            page(ui, settings_page.create_key_action, admin=True),
            methods=["POST"],
        ),
        Route(
            "/settings/keys/{key_id}/revoke",
            page(ui, settings_page.revoke_key_action, admin=True),
            methods=["POST"],
        ),
        Route(
            "/settings/users",
            page(ui, settings_page.create_user_action, admin=True),
            methods=["POST"],
        ),
        Route(
            "/settings/users/{user_id}/disable",
            page(ui, settings_page.disable_user_action, admin=True),
            methods=["POST"],
        ),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
