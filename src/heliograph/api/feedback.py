"""Feedback and scores on a record: ``POST /v1/request/{id}/feedback`` and ``.../score``.

These take a *write* key, like the gateway itself: the application that made the LLM call
reports how it went. A write key can add feedback but never read records back (Helicone's
keys can; ours cannot). Both calls are upserts, so retries are harmless.

Records reach the store through the spool and the writer, a fraction of a second after the
response was sent, while clients often send feedback right away. So when a UUID is not in the
caller's organization, the call waits briefly for the writer before answering 404. It waits
the same whether or not the id exists in another organization: answering those at once would
tell any write key which ids exist elsewhere (an existence oracle).
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from heliograph.api.auth import require
from heliograph.api.query import read_json_object
from heliograph.api.responses import ApiError, JSONResponse
from heliograph.store import feedback as feedback_store

WAIT_FOR_WRITER_S = 3.0
POLL_S = 0.1
MAX_SCORES = 100
MAX_NAME = 255
MAX_VALUE = 2**53


def _looks_like_id(rid: str) -> bool:
    try:
        uuid.UUID(rid)
    except ValueError:
        return False
    return True


async def _apply(request: Request, rid: str, write: Callable[[], bool]) -> None:
    """Run ``write`` (which returns False if ``rid`` is not in the org), waiting for the writer.

    Only the caller's own organization is ever looked at, so an id stored in another one is
    answered exactly like an id stored nowhere: same wait, same 404.
    """
    wait = getattr(request.app.state, "feedback_wait_s", WAIT_FOR_WRITER_S)
    deadline = time.monotonic() + wait
    while True:
        if await run_in_threadpool(write):
            return
        if not _looks_like_id(rid) or time.monotonic() >= deadline:
            raise ApiError(404, f"No request {rid!r} in this organization.", "not_found")
        await asyncio.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))


async def feedback(request: Request) -> Response:
    info = await require(request, "write")
    rid = request.path_params["request_id"]
    doc = await read_json_object(request)
    rating = doc.get("rating")
    if not isinstance(rating, bool):
        raise ApiError(
            400, 'body must be {"rating": true} or {"rating": false}', "invalid_parameter"
        )
    engine = request.app.state.engine
    await _apply(
        request, rid, lambda: feedback_store.set_feedback(engine, info.org_id, rid, rating)
    )
    return JSONResponse({"data": {"request_id": rid, "rating": rating}, "error": None})


def parse_scores(doc: dict[str, Any]) -> dict[str, float | int]:
    """``{"scores": {name: int | float | bool}}`` validated; booleans become 1 and 0."""
    scores = doc.get("scores")
    if not isinstance(scores, dict) or not scores:
        raise ApiError(
            400, 'body must be {"scores": {"<name>": <number or boolean>}}', "invalid_parameter"
        )
    if len(scores) > MAX_SCORES:
        raise ApiError(400, f"at most {MAX_SCORES} scores per call", "invalid_parameter")
    out: dict[str, float | int] = {}
    for name, value in scores.items():
        if not name or len(name) > MAX_NAME:
            raise ApiError(
                400, f"score names must be 1 to {MAX_NAME} characters", "invalid_parameter"
            )
        if isinstance(value, bool):
            value = int(value)
        if (
            not isinstance(value, int | float)
            or not math.isfinite(value)
            or abs(value) >= MAX_VALUE
        ):
            raise ApiError(
                400, f"score {name!r} must be a finite number or a boolean", "invalid_parameter"
            )
        out[name] = value
    return out


async def score(request: Request) -> Response:
    info = await require(request, "write")
    rid = request.path_params["request_id"]
    scores = parse_scores(await read_json_object(request))
    engine = request.app.state.engine
    await _apply(request, rid, lambda: feedback_store.set_scores(engine, info.org_id, rid, scores))
    return JSONResponse({"data": {"request_id": rid, "scores": scores}, "error": None})


routes = [
    Route("/v1/request/{request_id}/feedback", feedback, methods=["POST"]),
    Route("/v1/request/{request_id}/score", score, methods=["POST"]),
]
