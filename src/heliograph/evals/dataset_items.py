"""A dataset item as data: its checks and limits, its content hash, and one made from a record.

Every way of adding items (the API's JSON, an uploaded JSONL or CSV line, a logged request)
ends in ``check_item``, so the same shape and the same limits hold whatever the door:

- ``inputs``: an object of prompt variables (strings, numbers, booleans or null) and/or
  ``messages``, a list of chat messages (objects with a string ``role``); at most
  ``MAX_INPUTS_BYTES`` as JSON, and not empty.
- ``expected``: the expected output as text, or null; at most ``MAX_EXPECTED_CHARS``.
- ``metadata``: any JSON object, at most ``MAX_METADATA_BYTES`` as JSON.

No text may hold a NUL character (PostgreSQL text cannot). The content hash covers the inputs
and the expected output (not the metadata): two items with the same hash in one dataset are
duplicates, and the second is skipped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from heliograph.evals.observation import from_record

MAX_INPUTS_BYTES = 256 * 1024
MAX_EXPECTED_CHARS = 64 * 1024
MAX_METADATA_BYTES = 16 * 1024
MAX_VARIABLES = 100
FIELDS = ("inputs", "messages", "expected", "metadata", "source_request_id")


class ItemError(ValueError):
    """An item that cannot be stored; the message says which field and why."""


@dataclass(frozen=True)
class Item:
    """A checked item, ready to store."""

    inputs: dict[str, Any]
    expected: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    source_request_id: str | None = None

    @property
    def content_hash(self) -> str:
        doc = {"inputs": self.inputs, "expected": self.expected}
        return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, Mapping):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _size(value: Any) -> int:
    try:
        return len(orjson.dumps(value))
    except TypeError as exc:  # e.g. an integer past 64 bits
        raise ItemError(f"not JSON: {exc}") from exc


def _messages(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise ItemError("messages must be a non-empty list of messages")
    for i, message in enumerate(value):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ItemError(f"messages[{i}] must be an object with a string role")
    return value


def _inputs(inputs: Any, messages: Any) -> dict[str, Any]:
    if inputs is None:
        inputs = {}
    if not isinstance(inputs, dict):
        raise ItemError("inputs must be an object of variables (and messages)")
    out = dict(inputs)
    if messages is not None:
        if "messages" in out:
            raise ItemError("give messages inside inputs or beside them, not both")
        out["messages"] = messages
    if "messages" in out:
        out["messages"] = _messages(out["messages"])
    if len(out) > MAX_VARIABLES:
        raise ItemError(f"inputs may hold at most {MAX_VARIABLES} variables")
    for name, value in out.items():
        if name == "messages":
            continue
        if not name or len(name) > 100:
            raise ItemError("a variable name must be 1 to 100 characters")
        if value is not None and not isinstance(value, str | int | float | bool):
            raise ItemError(f"variable {name!r} must be a string, number, boolean or null")
    if not out:
        raise ItemError("inputs must hold at least one variable or messages")
    if _size(out) > MAX_INPUTS_BYTES:
        raise ItemError(f"inputs are larger than {MAX_INPUTS_BYTES} bytes as JSON")
    return out


def check_item(doc: Any) -> Item:
    """The item a JSON document describes (``FIELDS``); ItemError says what is wrong."""
    if not isinstance(doc, dict):
        raise ItemError("an item must be a JSON object")
    unknown = sorted(set(doc) - set(FIELDS))
    if unknown:
        raise ItemError(f"unknown field {unknown[0]!r}; an item has {', '.join(FIELDS)}")
    inputs = _inputs(doc.get("inputs"), doc.get("messages"))
    expected = doc.get("expected")
    if expected is not None and not isinstance(expected, str):
        raise ItemError("expected must be text or null")
    if expected is not None and len(expected) > MAX_EXPECTED_CHARS:
        raise ItemError(f"expected is longer than {MAX_EXPECTED_CHARS} characters")
    metadata = doc.get("metadata")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise ItemError("metadata must be an object")
    if _size(metadata) > MAX_METADATA_BYTES:
        raise ItemError(f"metadata is larger than {MAX_METADATA_BYTES} bytes as JSON")
    source = doc.get("source_request_id")
    if source is not None and (not isinstance(source, str) or not 0 < len(source) <= 36):
        raise ItemError("source_request_id must be a request id")
    if _has_nul(inputs) or _has_nul(expected) or _has_nul(metadata) or _has_nul(source):
        raise ItemError("text must not contain NUL characters")
    return Item(inputs, expected, metadata, source)


def item_from_record(record: Mapping[str, Any], *, with_expected: bool = True) -> Item:
    """An item from a stored request (a row with its bodies, as ``store.datasets`` reads it).

    A request sent through a managed prompt gives its prompt inputs as the variables (an
    experiment renders them with another version); any other chat request gives the messages
    it sent. The answer's text is the expected output when ``with_expected`` and the request
    succeeded. ItemError when the record holds no input an experiment could send again.
    """
    seen = from_record(record)
    prompt_inputs = record.get("prompt_inputs")
    metadata: dict[str, Any] = {"model": seen.model} if seen.model else {}
    if isinstance(prompt_inputs, Mapping) and prompt_inputs:
        inputs: dict[str, Any] = dict(prompt_inputs)
        metadata |= {"prompt": record.get("prompt_name"), "version": record.get("prompt_version")}
    elif seen.messages:
        inputs = {"messages": [dict(m) for m in seen.messages]}
    elif seen.prompt:
        inputs = {"input": seen.prompt}
    else:
        raise ItemError("the request holds no messages or prompt to use as inputs")
    expected = seen.output if with_expected and seen.error is None and seen.output else None
    doc = {
        "inputs": inputs,
        "expected": expected,
        "metadata": metadata,
        "source_request_id": record.get("id"),
    }
    return check_item(doc)
