"""Parsing a well-formed OpenAI stream's events in one go, off the request path.

A Chat Completions stream is ``data: <json>`` lines separated by blank lines, ending in
``data: [DONE]``. Joined with commas its events make one JSON array, which orjson parses
several times faster than event by event (:func:`data_array`).

Most of what it then parses is repeated: every chunk of OpenAI's (and vLLM's, llama.cpp's,
Ollama's ``/v1``) streams begins with the same head fields (``id``, ``object``, ``created``,
``model``, ``service_tier``, ``system_fingerprint``), about half of a 300-byte content chunk.
:func:`uniform_events` strips that head from every event after the first with one bytes
split and join and parses it once, so orjson builds half the objects. It only applies when
the strip provably changes nothing the analysis reads: the head holds only those scalar
fields, every later event begins with the same bytes, and no later event has any of them
again among its own keys (else the general path runs, whose result is the same).
"""

from __future__ import annotations

from typing import Any

import orjson

DONE = b"data: [DONE]\n\n"
HEAD_FIELDS = ("id", "created", "model", "system_fingerprint", "service_tier", "object")
_HEAD_SET = frozenset(HEAD_FIELDS)
_EVENT = b"\n\ndata: "
_CHOICES = b',"choices":'


def data_array(body: bytes) -> list[Any] | None:
    """Every event of a well-formed OpenAI stream, parsed in one go; None if it is not one.

    Anything else than that framing (comments, ``event:`` lines, CRs, extra blank lines, a
    torn last event, a payload that is not JSON) leaves a newline behind or fails to parse
    or to count, and takes the general path.
    """
    trimmed = body[: -len(DONE)] if body.endswith(DONE) else body
    if not trimmed.startswith(b"data: ") or not trimmed.endswith(b"\n\n") or b"\r" in body:
        return None
    inner = trimmed[6:-2]
    joined = inner.replace(_EVENT, b",")
    if b"\n" in joined:  # a line the join did not consume: not this framing
        return None
    try:
        docs = orjson.loads(b"".join((b"[", joined, b"]")))
    except orjson.JSONDecodeError:
        return None
    # Each separator replaced shortened the text by 7 bytes: one more event than that.
    if not isinstance(docs, list) or len(docs) != (len(inner) - len(joined)) // 7 + 1:
        return None
    return docs


def uniform_events(body: bytes) -> tuple[list[Any], dict[str, Any]] | None:
    """The events of a well-formed stream whose events all begin with the first event's
    head fields, with those fields left out of every event but the first, and the head
    fields parsed once; None when the stream is not such a one.

    What the analysis reads of an event other than its head (``error``, ``usage``,
    ``timings``, ``choices``) is the same in the stripped event, and the head fields of
    every later event are the head returned (checked: no later event has such a key left).
    """
    trimmed = body[: -len(DONE)] if body.endswith(DONE) else body
    if not trimmed.startswith(b'data: {"') or not trimmed.endswith(b"\n\n") or b"\r" in body:
        return None
    first_end = trimmed.find(b"\n\n")
    cut = trimmed.find(_CHOICES, 7, first_end)
    if cut < 0:
        return None
    fields = trimmed[7 : cut + 1]  # '"id":"...",...,' up to the comma before "choices"
    if b"{" in fields or b"[" in fields:  # scalars only: each field is then a top-level one
        return None
    try:
        head = orjson.loads(b"".join((b"{", fields[:-1], b"}")))
    except orjson.JSONDecodeError:
        return None
    if type(head) is not dict or not head.keys() <= _HEAD_SET:
        return None
    # Split where a later event begins with the same head, join without it: one pass each.
    # An event that did not begin with it stays glued to the one before ("}\n\ndata: {"),
    # which is not JSON; two values in one event would make one doc too many.
    pieces = trimmed.split(_EVENT + b"{" + fields)
    if len(pieces) < 2:
        return None
    pieces[0] = b"[" + pieces[0][6:]
    pieces[-1] = pieces[-1][:-2] + b"]"
    joined = b",{".join(pieces)
    if b"\n" in joined:  # a blank line too many, a comment: not this framing
        return None
    try:
        docs = orjson.loads(joined)
    except orjson.JSONDecodeError:
        return None
    if type(docs) is not list or len(docs) != len(pieces):
        return None
    try:  # the top-level keys of every later event, gathered in C
        later = set().union(*docs[1:])
    except TypeError:  # an event that is a number: the general path
        return None
    if not _HEAD_SET.isdisjoint(later):  # a later event names a head field again
        return None
    return docs, head
