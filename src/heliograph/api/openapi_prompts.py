"""The prompt management part of the OpenAPI document: its paths and component schemas.

Kept apart from ``openapi`` so that module stays about records; ``openapi.document`` merges
both. Limits (roles, parameters, name patterns) come from the code that enforces them.
"""

from __future__ import annotations

from typing import Any

from heliograph.api import prompts as prompts_api
from heliograph.api.openapi import error, op, path_param, q
from heliograph.api.openapi_schemas import INT, STR, nullable, obj, ref
from heliograph.prompts import versions

TIME: dict[str, Any] = {"type": "string", "format": "date-time"}
SCALAR: dict[str, Any] = {"type": ["string", "number", "boolean"]}
NAME_PATTERN = "^" + prompts_api.NAME.pattern + "$"
LABEL_PATTERN = "^" + prompts_api.LABEL.pattern + "$"
MESSAGE = obj({"role": {"enum": list(versions.ROLES)}, "content": STR}, additionalProperties=False)
NO_PROMPT = {"404": error("No such prompt (or label, or version) in this organization.")}
TOO_LARGE = {"413": error("Body larger than 1 MiB.")}
VERSION_Q = q(
    "version", {"type": "integer", "minimum": 1}, "A version number (instead of a label)."
)
LABEL_Q = q("label", STR, "A label; default production.")


def schemas() -> dict[str, Any]:
    params = {
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "max_tokens": {"type": "integer", "minimum": 1},
        "top_p": {"type": "number", "minimum": 0, "maximum": 1},
        "response_format": obj({"type": STR}, "type"),
        "tools": {"type": "array", "items": {"type": "object"}},
        "stop": {"oneOf": [STR, {"type": "array", "items": STR, "minItems": 1, "maxItems": 4}]},
        "seed": INT,
    }
    assert set(params) == set(versions.PARAMS)
    params_schema = {"type": "object", "properties": params, "additionalProperties": False}
    variables = {
        "type": "object",
        "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
    }
    version_fields = {
        "messages": {"type": "array", "items": MESSAGE},
        "model": nullable(STR),
        "upstream": nullable(STR),
        "params": params_schema,
    }
    return {
        "Prompt": obj(
            {
                "name": STR,
                "description": STR,
                "latest_version": nullable(INT),
                "labels": {"type": "object", "additionalProperties": nullable(INT)},
                "created_at": TIME,
                "created_by": nullable(STR),
                "updated_at": TIME,
            }
        ),
        "PromptVersion": obj(
            {"name": STR, "version": INT}
            | version_fields
            | {"variables": variables, "message": STR}
            | {"created_at": TIME, "created_by": nullable(STR)}
        ),
        "VersionBody": obj(
            version_fields
            | {
                "messages": {
                    "type": "array",
                    "items": MESSAGE,
                    "minItems": 1,
                    "maxItems": versions.MAX_MESSAGES,
                },
                "variables": variables,
                "message": STR,
            },
            "messages",
            additionalProperties=False,
            description="Message contents are templates: {{name}} placeholders, nothing else. "
            "Without variables, every placeholder is a required variable; with them, every "
            "placeholder must be declared (name: default, or null for none).",
        ),
        "CompileBody": obj(
            {
                "inputs": {"type": "object", "additionalProperties": SCALAR},
                "label": STR,
                "version": {"type": "integer", "minimum": 1},
            },
            additionalProperties=False,
            description="Give label or version (default: label production). Inputs are "
            "strings, numbers or booleans, 64 KiB at most; numbers render as JSON.",
        ),
        "CompiledPrompt": obj(
            {"name": STR, "version": INT, "label": nullable(STR)}
            | {k: v for k, v in version_fields.items()}
        ),
        "PromptLabel": obj(
            {
                "label": STR,
                "version": nullable(INT),
                "updated_at": TIME,
                "updated_by": nullable(STR),
            }
        ),
        "PromptLabelEvent": obj(
            {
                "label": STR,
                "from_version": nullable(INT),
                "to_version": nullable(INT),
                "at": TIME,
                "by": nullable(STR),
            }
        ),
    }


def paths() -> dict[str, Any]:
    name = path_param("name")
    resolved = ref("PromptVersion")
    resolved = {"allOf": [resolved, obj({"label": nullable(STR)})]}
    cache_headers = {
        "ETag": {"schema": STR, "description": "Of the answer's content."},
        "Cache-Control": {"schema": STR},
    }
    return {
        "/api/v1/prompts": {
            "get": op(
                "List prompts with their labels and latest version.",
                "read",
                obj({"data": {"type": "array", "items": ref("Prompt")}}),
            ),
            "post": op(
                "Create a prompt (labels production and staging point at nothing yet).",
                "admin",
                ref("Prompt"),
                status="201",
                body=obj(
                    {
                        "name": {"type": "string", "pattern": NAME_PATTERN},
                        "description": {
                            "type": "string",
                            "maxLength": prompts_api.MAX_DESCRIPTION,
                        },
                    },
                    "name",
                    additionalProperties=False,
                ),
                errors={"409": error("A prompt with this name exists."), **TOO_LARGE},
            ),
        },
        "/api/v1/prompts/{name}": {
            "get": op(
                "The version a label points at (default production), or a numbered one. "
                "Answers 304 when If-None-Match holds its ETag.",
                "read",
                {
                    "description": "The resolved version.",
                    "headers": cache_headers,
                    "content": {"application/json": {"schema": resolved}},
                },
                params=[
                    name,
                    LABEL_Q,
                    VERSION_Q,
                    {"name": "If-None-Match", "in": "header", "schema": STR},
                ],
                errors={
                    **NO_PROMPT,
                    "304": {"description": "Not modified.", "headers": cache_headers},
                },
            ),
            "patch": op(
                "Change the prompt's description (its versions never change).",
                "admin",
                ref("Prompt"),
                params=[name],
                body=obj(
                    {"description": {"type": "string", "maxLength": prompts_api.MAX_DESCRIPTION}},
                    "description",
                    additionalProperties=False,
                ),
                errors={**NO_PROMPT, **TOO_LARGE},
            ),
            "delete": op(
                "Delete the prompt with its versions, labels and label history. Records that "
                "used it keep its name and version; the gateway stops serving it within the "
                "key refresh interval.",
                "admin",
                {"description": "Deleted."},
                status="204",
                params=[name],
                errors=NO_PROMPT,
            ),
        },
        "/api/v1/prompts/{name}/versions": {
            "get": op(
                "Every version, newest first.",
                "read",
                obj({"data": {"type": "array", "items": ref("PromptVersion")}}),
                params=[name],
                errors=NO_PROMPT,
            ),
            "post": op(
                "Save a new version (numbered next; versions never change). A template that "
                "does not parse is refused with the message index and character position.",
                "admin",
                obj({"version": INT}),
                status="201",
                params=[name],
                body=ref("VersionBody"),
                errors={**NO_PROMPT, **TOO_LARGE},
            ),
        },
        "/api/v1/prompts/{name}/labels": {
            "get": op(
                "Labels and the history of their moves (newest first).",
                "read",
                obj(
                    {
                        "data": {"type": "array", "items": ref("PromptLabel")},
                        "history": {"type": "array", "items": ref("PromptLabelEvent")},
                    }
                ),
                params=[name],
                errors=NO_PROMPT,
            )
        },
        "/api/v1/prompts/{name}/labels/{label}": {
            "put": op(
                "Point a label at a version (a new label is created); the move is recorded.",
                "admin",
                obj({"label": STR, "version": INT, "previous_version": nullable(INT)}),
                params=[name, path_param("label")],
                body=obj(
                    {"version": {"type": "integer", "minimum": 1}}, additionalProperties=False
                ),
                errors={**NO_PROMPT, **TOO_LARGE},
            )
        },
        "/api/v1/prompts/{name}/compile": {
            "post": op(
                "Render a version's messages with inputs; also its model, upstream and params.",
                "read",
                ref("CompiledPrompt"),
                params=[name],
                body=ref("CompileBody"),
                errors={
                    **NO_PROMPT,
                    "413": error("Body larger than 1 MiB, or inputs larger than 64 KiB."),
                },
            )
        },
    }
