"""Dataset items read from an uploaded JSONL or CSV file, one line (or CSV record) at a time.

The file is read from a binary file object (the API spools the upload to a temporary file),
so a large upload is never held in memory. Each line yields either an item or the reason it
was refused, with its line number, so good lines are kept and bad ones reported.

JSONL: one item per line, ``{"inputs": {...}, "messages": [...], "expected": "...",
"metadata": {...}}`` (``evals.dataset_items.FIELDS``; an ``id``, as exports write, is
ignored); blank lines are skipped.

CSV (UTF-8, a header row): ``input`` or ``inputs`` (a JSON object of inputs, or else text,
stored as the variable ``input``), ``input.<name>`` (one variable each), ``messages`` (a JSON
list), ``expected`` (text; empty is none) and ``metadata`` (a JSON object). A cell may hold
at most ``MAX_CSV_CELL`` bytes (Python's csv limit); a record spanning lines is numbered by
its first line.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import IO, Any

import orjson

from heliograph.evals.dataset_items import Item, ItemError, check_item

FORMATS = ("jsonl", "csv")
MAX_CSV_CELL = 131_072
CSV_COLUMNS = ("input", "inputs", "messages", "expected", "metadata")
Line = tuple[int, Item | str]


def read_items(kind: str, file: IO[bytes]) -> Iterator[Line]:
    """``(line number, item or reason)`` for each line of the file."""
    return _jsonl(file) if kind == "jsonl" else _csv(file)


def _jsonl(file: IO[bytes]) -> Iterator[Line]:
    for number, raw in enumerate(file, 1):
        if not raw.strip():
            continue
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            yield number, f"not JSON: {exc}"
            continue
        if isinstance(doc, dict) and isinstance(doc.get("id"), str):
            del doc["id"]  # an exported line names its item: imported, it is a new one
        try:
            yield number, check_item(doc)
        except ItemError as exc:
            yield number, str(exc)


def _json_cell(text: str, column: str, kind: type) -> Any:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ItemError(f"column {column} is not JSON: {exc}") from exc
    if not isinstance(value, kind):
        raise ItemError(f"column {column} must be a JSON {'object' if kind is dict else 'list'}")
    return value


def _csv_item(header: list[str], cells: list[str]) -> Item:
    if len(cells) != len(header):
        raise ItemError(f"{len(cells)} cells for {len(header)} columns")
    inputs: dict[str, Any] = {}
    doc: dict[str, Any] = {}
    for column, text in zip(header, cells, strict=True):
        if column in ("input", "inputs") and text:
            value: Any = None
            if text.lstrip().startswith("{"):
                value = _json_cell(text, column, dict)
            inputs |= value if isinstance(value, dict) else {"input": text}
        elif column.startswith("input."):
            inputs[column[len("input.") :]] = text
        elif column == "messages" and text:
            doc["messages"] = _json_cell(text, column, list)
        elif column == "expected" and text:
            doc["expected"] = text
        elif column == "metadata" and text:
            doc["metadata"] = _json_cell(text, column, dict)
    return check_item(doc | {"inputs": inputs})


def _header_problem(header: list[str]) -> str | None:
    for column in header:
        if column not in CSV_COLUMNS and not (column.startswith("input.") and len(column) > 6):
            return (
                f"unknown column {column[:100]!r}; columns are input or inputs, "
                "input.<name>, messages, expected and metadata"
            )
    if len(set(header)) != len(header):
        return "a column is named twice"
    return None


def _csv(file: IO[bytes]) -> Iterator[Line]:
    text = io.TextIOWrapper(file, encoding="utf-8-sig", newline="")
    reader = csv.reader(text)
    header: list[str] | None = None
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except (csv.Error, UnicodeDecodeError) as exc:
            yield start, f"the file cannot be read from here on: {exc}"
            return
        if header is None:
            header = [c.strip() for c in cells]
            problem = _header_problem(header)
            if problem:
                yield start, problem
                return
            continue
        if not any(c.strip() for c in cells):
            continue
        try:
            yield start, _csv_item(header, cells)
        except ItemError as exc:
            yield start, str(exc)
