"""The record webhooks part of the OpenAPI document: endpoints and their delivery log.

Kept apart from ``openapi`` like the online evaluation part; ``openapi.document`` merges it.
"""

from __future__ import annotations

from typing import Any

from heliograph.alerts.webhook_specs import MAX_URL, SECRET_MAX, SECRET_MIN
from heliograph.api.openapi import error, op, path_param, q
from heliograph.api.openapi_online_eval import FILTER
from heliograph.api.openapi_schemas import BOOL, INT, STR, nullable, obj, ref
from heliograph.store.webhook_queue import LOG_LIMIT

TIME: dict[str, Any] = {"type": "string", "format": "date-time"}
NO_ENDPOINT = {"404": error("No such webhook endpoint in this organization.")}
CONFIG = {"409": error("Another endpoint has this name, or the endpoint is kept in config.toml.")}
STATUS: dict[str, Any] = {"enum": ["pending", "delivered", "failed"]}
ENDPOINT_PROPS: dict[str, Any] = {
    "id": STR,
    "name": STR,
    "url": STR,
    "filter": {"type": "object", "additionalProperties": STR},
    "enabled": BOOL,
    "include_bodies": BOOL,
    "source": {"enum": ["api", "config"]},
    "secret_hint": nullable(STR),
    "created_at": TIME,
    "updated_at": TIME,
    "last_error": nullable(STR),
    "last_error_at": nullable(TIME),
    "last_success_at": nullable(TIME),
}


def schemas() -> dict[str, Any]:
    return {
        "WebhookEndpoint": obj(ENDPOINT_PROPS),
        "WebhookEndpointCreated": obj(
            ENDPOINT_PROPS
            | {"secret": {"type": "string", "description": "The signing secret, shown once."}}
        ),
        "WebhookDelivery": obj(
            {
                "id": STR,
                "request_id": STR,
                "event": STR,
                "status": STATUS,
                "attempts": INT,
                "last_status": nullable(INT),
                "last_error": nullable(STR),
                "created_at": TIME,
                "updated_at": TIME,
                "next_attempt_at": nullable(TIME),
                "delivered_at": nullable(TIME),
            }
        ),
    }


def paths() -> dict[str, Any]:
    endpoint = path_param("endpoint_id")
    fields = {
        "name": {"type": "string", "description": "Unique in the organization."},
        "url": {
            "type": "string",
            "maxLength": MAX_URL,
            "description": "http:// or https://; redirects are not followed.",
        },
        "filter": FILTER,
        "secret": {
            "type": "string",
            "minLength": SECRET_MIN,
            "maxLength": SECRET_MAX,
            "description": "HMAC-SHA256 signing secret; generated when left out.",
        },
        "enabled": BOOL,
        "include_bodies": {
            "type": "boolean",
            "description": "Put request and response bodies in the payload (each up to "
            "HELIOGRAPH_WEBHOOK_MAX_BODY_BYTES).",
        },
    }
    return {
        "/api/v1/webhooks": {
            "get": op(
                "List the organization's record webhook endpoints (secrets masked).",
                "read",
                obj({"data": {"type": "array", "items": ref("WebhookEndpoint")}}),
            ),
            "post": op(
                "Create an endpoint: every record stored from now on (or those matching the "
                "filter) is POSTed to the URL, signed (Heliograph-Signature and Helicone's "
                "helicone-signature), with the record id as Idempotency-Key; retried with "
                "backoff. The answer holds the secret, the only time it is shown.",
                "admin",
                ref("WebhookEndpointCreated"),
                status="201",
                body=obj(fields, "name", "url", additionalProperties=False),
                errors=CONFIG,
            ),
        },
        "/api/v1/webhooks/{endpoint_id}": {
            "get": op(
                "One endpoint.",
                "read",
                ref("WebhookEndpoint"),
                params=[endpoint],
                errors=NO_ENDPOINT,
            ),
            "patch": op(
                "Change an endpoint (only the fields given); endpoints from config.toml answer 409.",
                "admin",
                ref("WebhookEndpoint"),
                params=[endpoint],
                body=obj(fields, additionalProperties=False),
                errors={**NO_ENDPOINT, **CONFIG},
            ),
            "delete": op(
                "Delete an endpoint and its delivery log; endpoints from config.toml answer 409.",
                "admin",
                {"description": "Deleted."},
                status="204",
                params=[endpoint],
                errors={**NO_ENDPOINT, **CONFIG},
            ),
        },
        "/api/v1/webhooks/{endpoint_id}/deliveries": {
            "get": op(
                "The endpoint's delivery log, newest first: status, attempts, the receiver's "
                "last HTTP status and error, the next attempt.",
                "read",
                obj({"data": {"type": "array", "items": ref("WebhookDelivery")}}),
                params=[
                    endpoint,
                    q("limit", {"type": "integer", "minimum": 1, "maximum": LOG_LIMIT}),
                    q("status", STATUS),
                ],
                errors=NO_ENDPOINT,
            )
        },
        "/api/v1/webhooks/{endpoint_id}/test": {
            "post": op(
                "Queue a test event (event webhook.test, no record) for the endpoint.",
                "admin",
                obj({"delivery_id": STR, "event": STR}),
                status="202",
                params=[endpoint],
                errors=NO_ENDPOINT,
            )
        },
    }
