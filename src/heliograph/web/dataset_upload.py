"""The dashboard's dataset upload: the file as the request body, as the API takes it.

A browser form can only send a file as multipart, which would need a multipart parser and
buffering; instead ``datasets.js`` sends the chosen file itself as the body, with its type
(JSONL or CSV) as Content-Type and the session's CSRF token in the ``X-CSRF-Token`` header
(a page of another site cannot set that header, nor read the token). The body is spooled and
read a line at a time by the API's own functions, with the same limits, and the report is
answered as JSON for the script to show. Viewers get 403; no session, 401.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from heliograph.api.dataset_imports import Gone, import_file, spool_body, upload_kind
from heliograph.api.prompts import NAME
from heliograph.api.responses import ApiError
from heliograph.auth.sessions import SESSION_COOKIE, load_session, tokens_match
from heliograph.store import datasets as dataset_store

CSRF_HEADER = "x-csrf-token"


async def upload(request: Request) -> Response:
    engine = request.app.state.engine
    user = await run_in_threadpool(load_session, engine, request.cookies.get(SESSION_COOKIE))
    if user is None:
        raise ApiError(401, "not logged in", "not_logged_in")
    if user.must_change_password or not tokens_match(
        user.csrf_token, request.headers.get(CSRF_HEADER)
    ):
        raise ApiError(403, "Invalid or missing CSRF token. Reload the page.", "csrf")
    if not user.is_admin:
        raise ApiError(403, "Only admins can do this; you are a viewer.", "insufficient_role")
    name: str = request.path_params["name"]
    kind = upload_kind(request.headers.get("content-type", ""))
    found = None
    if NAME.fullmatch(name):
        found = await run_in_threadpool(dataset_store.get_dataset, engine, user.org_id, name)
    if found is None:
        raise ApiError(404, "No such dataset in your organization.", "not_found")
    spool = await spool_body(request)
    try:
        report = await run_in_threadpool(
            import_file, engine, user.org_id, name, kind, spool, f"user:{user.id}"
        )
    except Gone as exc:
        raise ApiError(404, "No such dataset in your organization.", "not_found") from exc
    finally:
        spool.close()
    return JSONResponse(report.api(), headers={"Cache-Control": "no-store"})
