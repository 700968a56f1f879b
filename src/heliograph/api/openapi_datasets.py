"""The datasets part of the OpenAPI document: its paths and component schemas.

Kept apart from ``openapi`` like the prompts part; ``openapi.document`` merges it. Limits
(page sizes, batch sizes, upload size, the from-requests cap, item caps) come from the code
that enforces them.
"""

from __future__ import annotations

from typing import Any

from heliograph.api import dataset_imports as imports
from heliograph.api import datasets as datasets_api
from heliograph.api import prompts as prompts_api
from heliograph.api.openapi import error, op, path_param, q
from heliograph.api.openapi_schemas import INT, STR, nullable, obj, ref
from heliograph.evals import dataset_items as items

TIME: dict[str, Any] = {"type": "string", "format": "date-time"}
NAME_PATTERN = "^" + prompts_api.NAME.pattern + "$"
NO_DATASET = {"404": error("No such dataset (or item) in this organization.")}
TOO_LARGE = {"413": error("Body larger than 1 MiB.")}
LIMITS = (
    f"Inputs are at most {items.MAX_INPUTS_BYTES} bytes as JSON, expected at most "
    f"{items.MAX_EXPECTED_CHARS} characters, metadata at most {items.MAX_METADATA_BYTES} "
    "bytes as JSON."
)
ERROR_LIST = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"line": INT, "request_id": STR, "reason": STR},
        "required": ["reason"],
    },
    "description": f"The first {imports.MAX_REPORTED_ERRORS} problems, each with its line "
    "(uploads) or request id.",
}


def schemas() -> dict[str, Any]:
    inputs = {
        "type": "object",
        "description": "Prompt variables (strings, numbers, booleans or null) and/or "
        "messages, a list of chat messages.",
    }
    return {
        "Dataset": obj(
            {
                "name": STR,
                "description": STR,
                "item_count": INT,
                "created_at": TIME,
                "created_by": nullable(STR),
                "updated_at": TIME,
            }
        ),
        "DatasetItem": obj(
            {
                "id": STR,
                "inputs": inputs,
                "expected": nullable(STR),
                "metadata": {"type": "object"},
                "source_request_id": nullable(STR),
                "content_hash": STR,
                "created_at": TIME,
                "created_by": nullable(STR),
                "archived_at": nullable(TIME),
                "replaced_by": nullable(STR),
            }
        ),
        "DatasetItemBody": obj(
            {
                "inputs": inputs,
                "messages": {"type": "array", "items": {"type": "object"}},
                "expected": nullable(STR),
                "metadata": {"type": "object"},
                "source_request_id": nullable(STR),
            },
            additionalProperties=False,
            description="Give inputs and/or messages. " + LIMITS,
        ),
        "DatasetImport": obj(
            {
                "added": INT,
                "skipped": INT,
                "error_count": INT,
                "errors": ERROR_LIST,
            }
        ),
    }


def _dataset_paths() -> dict[str, Any]:
    name = path_param("name")
    description = {"type": "string", "maxLength": prompts_api.MAX_DESCRIPTION}
    return {
        "/api/v1/datasets": {
            "get": op(
                "List datasets with their item counts.",
                "read",
                obj({"data": {"type": "array", "items": ref("Dataset")}}),
            ),
            "post": op(
                "Create an empty dataset.",
                "admin",
                ref("Dataset"),
                status="201",
                body=obj(
                    {
                        "name": {"type": "string", "pattern": NAME_PATTERN},
                        "description": description,
                    },
                    "name",
                    additionalProperties=False,
                ),
                errors={"409": error("A dataset with this name exists."), **TOO_LARGE},
            ),
        },
        "/api/v1/datasets/{name}": {
            "get": op("One dataset.", "read", ref("Dataset"), params=[name], errors=NO_DATASET),
            "patch": op(
                "Change the dataset's description.",
                "admin",
                ref("Dataset"),
                params=[name],
                body=obj({"description": description}, additionalProperties=False),
                errors={**NO_DATASET, **TOO_LARGE},
            ),
            "delete": op(
                "Delete the dataset: it and its items are archived (items stay readable by id "
                "for experiments that pinned them); the name is free again.",
                "admin",
                {"description": "Deleted."},
                status="204",
                params=[name],
                errors=NO_DATASET,
            ),
        },
    }


def _item_paths() -> dict[str, Any]:
    name, item = path_param("name"), path_param("item_id")
    body = {
        "oneOf": [
            ref("DatasetItemBody"),
            obj(
                {
                    "items": {
                        "type": "array",
                        "items": ref("DatasetItemBody"),
                        "minItems": 1,
                        "maxItems": datasets_api.MAX_ITEMS_PER_POST,
                    }
                },
                additionalProperties=False,
            ),
        ]
    }
    return {
        "/api/v1/datasets/{name}/items": {
            "get": op(
                "Live items, oldest first, a page at a time (next_cursor is null at the end); "
                "archived=true lists archived items instead.",
                "read",
                obj(
                    {
                        "data": {"type": "array", "items": ref("DatasetItem")},
                        "next_cursor": nullable(STR),
                    }
                ),
                params=[
                    name,
                    q("limit", {"type": "integer", "minimum": 1, "maximum": datasets_api.MAX_PAGE}),
                    q("cursor", STR, "next_cursor of the previous page."),
                    q("archived", {"enum": ["true", "false"]}),
                ],
                errors=NO_DATASET,
            ),
            "post": op(
                "Add one item, or a batch as {items: [...]}; an item with the content (inputs "
                "and expected) of a live item is skipped and counted.",
                "admin",
                obj({"added": INT, "skipped": INT, "ids": {"type": "array", "items": STR}}),
                status="201",
                params=[name],
                body=body,
                errors={**NO_DATASET, **TOO_LARGE},
            ),
        },
        "/api/v1/datasets/{name}/items/{item_id}": {
            "get": op(
                "One item, archived or not.",
                "read",
                ref("DatasetItem"),
                params=[name, item],
                errors=NO_DATASET,
            ),
            "put": op(
                "Edit an item: it is archived (replaced_by names the new one) and a new item "
                "is made and answered. Items never change under an experiment.",
                "admin",
                ref("DatasetItem"),
                status="201",
                params=[name, item],
                body=ref("DatasetItemBody"),
                errors={
                    **NO_DATASET,
                    **TOO_LARGE,
                    "409": error("Another live item has this content."),
                },
            ),
            "delete": op(
                "Archive an item (it stays readable at its id).",
                "admin",
                {"description": "Archived."},
                status="204",
                params=[name, item],
                errors=NO_DATASET,
            ),
        },
    }


def _import_paths() -> dict[str, Any]:
    name = path_param("name")
    cap = imports.MAX_FROM_REQUESTS
    report = ref("DatasetImport")
    return {
        "/api/v1/datasets/{name}/items/from-requests": {
            "post": op(
                "Add an item per logged request: by ids, or every request matching a filter "
                "(newest first, at most limit). dry_run answers the count and adds nothing. "
                "Inputs are the prompt inputs of a request sent through a prompt, else its "
                "messages; expected is its answer unless expected is false.",
                "admin",
                {
                    "type": "object",
                    "properties": {
                        "matching": INT,
                        "limit": INT,
                        "would_add": INT,
                        "added": INT,
                        "skipped": INT,
                        "error_count": INT,
                        "errors": ERROR_LIST,
                        "ids": {"type": "array", "items": STR},
                    },
                    "title": "With a filter: matching, limit and would_add (all a "
                    "dry run answers); then what was added, as an upload answers, and the "
                    "new item ids.",
                },
                params=[name],
                body={
                    "type": "object",
                    "properties": {
                        "ids": {
                            "type": "array",
                            "items": STR,
                            "minItems": 1,
                            "maxItems": cap,
                        },
                        "filter": {"oneOf": [ref("Filter"), {"const": "all"}]},
                        "params": {"type": "object", "additionalProperties": STR},
                        "dry_run": {"type": "boolean"},
                        "limit": {"type": "integer", "minimum": 1, "maximum": cap},
                        "expected": {"type": "boolean"},
                    },
                    "additionalProperties": False,
                    "description": "Give ids, or filter and/or params (URL filter spellings "
                    "of GET /api/v1/requests).",
                },
                errors={**NO_DATASET, **TOO_LARGE},
            )
        },
        "/api/v1/datasets/{name}/items/upload": {
            "post": op(
                "Upload JSONL (one item a line) or CSV (columns input or inputs, input.<name>, "
                "messages, expected, metadata), streamed. Good lines are kept, duplicates "
                "skipped, bad lines reported by line number.",
                "admin",
                report,
                params=[name],
                errors={
                    **NO_DATASET,
                    "413": error(f"Upload larger than {imports.MAX_UPLOAD_BYTES} bytes."),
                    "415": error("Content-Type is not JSONL or CSV."),
                },
            )
            | {
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/x-ndjson": {"schema": STR},
                        "text/csv": {"schema": STR},
                    },
                }
            }
        },
        "/api/v1/datasets/{name}/items/export.jsonl": {
            "get": op(
                "Every live item as JSONL (id, inputs, expected, metadata, source_request_id), "
                "streamed; uploading it elsewhere makes new items.",
                "read",
                {
                    "description": "The export.",
                    "content": {"application/x-ndjson": {"schema": STR}},
                },
                params=[name],
                errors=NO_DATASET,
            )
        },
    }


def paths() -> dict[str, Any]:
    return _dataset_paths() | _item_paths() | _import_paths()
