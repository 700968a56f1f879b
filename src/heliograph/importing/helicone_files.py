"""Reading Helicone's export files, one request object at a time, in bounded memory.

Three shapes come out of Helicone (see :mod:`heliograph.importing.helicone` for the sources):

- the REST API's pages, ``{"data": [HeliconeRequest, ...], "error": null}``, as saved by
  ``curl`` (one page per file, or one page per line when pages are appended);
- JSON Lines of request objects (the dashboard's JSONL export, ``@helicone/export --format
  jsonl``), or a bare JSON list;
- CSV: one column per field, nested objects (bodies, properties, scores, the dashboard's
  ``raw`` and ``heliconeMetadata``) written as JSON text (``JSON.stringify`` then
  ``Papa.unparse``).

JSON Lines and CSV are streamed line by line and row by row. A file that is one JSON document
spread over several lines (a pretty-printed page) is loaded whole: keep such files to a page
(Helicone's ``limit`` is at most 1,000 requests) or use JSON Lines.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson


@dataclass(slots=True)
class Item:
    """One request object read from a file, or why a piece of the file gave none."""

    where: str  # "export.jsonl:12" — file and line, row or record number
    row: dict[str, Any] | None
    problem: str | None = None


class Unreadable(Exception):
    """A file that cannot be read at all (missing, not text, neither JSON nor CSV)."""


class _Counted(io.RawIOBase):
    """A file that reports how many bytes were read from it (the progress bar's measure)."""

    def __init__(self, raw: io.FileIO, progress: Callable[[int], None]) -> None:
        self.raw = raw
        self.progress = progress

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.raw.seek(offset, whence)

    def tell(self) -> int:
        return self.raw.tell()

    def readinto(self, buffer: Any) -> int:
        n = self.raw.readinto(buffer) or 0
        self.progress(n)
        return n

    def close(self) -> None:
        self.raw.close()
        super().close()


def _open(path: Path, progress: Callable[[int], None]) -> io.BufferedReader:
    try:
        return io.BufferedReader(_Counted(io.FileIO(path, "rb"), progress))
    except OSError as exc:
        raise Unreadable(f"{path}: {exc.strerror or exc}") from exc


def read_file(path: Path, progress: Callable[[int], None] = lambda n: None) -> Iterator[Item]:
    """Every request object in ``path``, in order; bad pieces come out as problems.

    ``progress`` is told each number of bytes read (a seek back re-counts; the bar caps)."""
    if path.is_dir():
        raise Unreadable(f"{path}: a directory")
    handle = _open(path, progress)
    with handle:
        head = handle.read(4096)
        handle.seek(0)
        if path.suffix.lower() == ".csv" or _looks_csv(head):
            yield from _csv_items(path, handle)
            return
        first = handle.readline()
        if _parses(first) or not first.strip():
            handle.seek(0)
            yield from _jsonl_items(path, handle)
            return
        whole = first + handle.read()
    try:
        doc = orjson.loads(whole)
    except orjson.JSONDecodeError:
        del whole
        with path.open("rb") as again:  # not one document: JSON Lines with a bad first line
            if all(i.row is None for i in _first_items(path, again)):
                raise Unreadable(f"{path}: neither JSON, JSON Lines nor CSV") from None
        with _open(path, lambda n: None) as again:
            yield from _jsonl_items(path, again)
        return
    yield from _objects_of(doc, path.name, "record", 0)


def _first_items(path: Path, handle: Any, lines: int = 50) -> Iterator[Item]:
    for number, line in enumerate(handle, 1):
        if number > lines:
            return
        yield from _line_items(path.name, number, line)


def _looks_csv(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    return not text.startswith((b"{", b"[")) and b"," in text.split(b"\n", 1)[0]


def _parses(line: bytes) -> bool:
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True


def _jsonl_items(path: Path, handle: Any) -> Iterator[Item]:
    for number, line in enumerate(handle, 1):
        yield from _line_items(path.name, number, line)


def _line_items(name: str, number: int, line: bytes) -> Iterator[Item]:
    if not line.strip():
        return
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        yield Item(f"{name}:{number}", None, "malformed JSON line")
        return
    yield from _objects_of(doc, f"{name}:{number}", "record", -1)


def _objects_of(doc: Any, where: str, label: str, base: int) -> Iterator[Item]:
    """The request objects of one parsed document: a page, a list, or one request."""
    if isinstance(doc, dict) and "data" in doc and "request_id" not in doc:
        if doc.get("error"):
            yield Item(where, None, f"page returned an error: {str(doc['error'])[:80]}")
        doc = doc["data"]
        if doc is None:
            return
    if isinstance(doc, dict):
        yield Item(where if base < 0 else f"{where}:{label} 1", doc)
        return
    if not isinstance(doc, list):
        yield Item(where, None, "not a request object")
        return
    for index, obj in enumerate(doc, 1):
        at = f"{where}:{label} {index}" if base >= 0 else f"{where} {label} {index}"
        if isinstance(obj, dict):
            yield Item(at, obj)
        else:
            yield Item(at, None, "not a request object")


def _csv_items(path: Path, binary: io.BufferedReader) -> Iterator[Item]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # bodies are long cells
    try:
        with io.TextIOWrapper(binary, encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames:
                raise Unreadable(f"{path}: empty CSV")
            for number, raw in enumerate(reader, 2):
                if None in raw:  # more cells than the header names
                    raw.pop(None)
                yield Item(f"{path.name}:{number}", _csv_row(raw))
    except UnicodeDecodeError as exc:
        raise Unreadable(f"{path}: not UTF-8 text ({exc.reason})") from exc
    except csv.Error as exc:
        raise Unreadable(f"{path}: {exc}") from exc


def _csv_row(raw: dict[str, str | None]) -> dict[str, Any]:
    """A CSV row as the JSON object it was written from: empty cells are nulls, object and
    list cells parsed (a cell that is not JSON stays text, and the mapping decides)."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if value is None or value == "":
            out[key] = None
        elif value[:1] in ("{", "["):
            try:
                out[key] = orjson.loads(value)
            except orjson.JSONDecodeError:
                out[key] = value
        else:
            out[key] = value
    return out
