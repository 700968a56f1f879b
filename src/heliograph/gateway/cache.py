"""The exact-match response cache: keys, bucket choice and replaying a cached response.

The key covers the organization, the upstream and the URL actually called, the method and path, the exact body bytes and
the client's cache seed, so nothing is ever served across organizations or to a different
request. A bucket holds up to N responses for one key: while it is filling, requests go to the
upstream and their answers are added; once full, each hit returns one of them at random.
"""

from __future__ import annotations

import hashlib
import random
import re

from heliograph.gateway.state import CachedResponse

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\n")


def cache_key(
    org_id: str,
    upstream: str,
    base_url: str,
    method: str,
    rest: str,
    query: str,
    body: bytes,
    seed: str,
) -> str:
    """The entry a request reads and fills: everything that decides where it goes and what
    it asks (a Target-URL is part of it, so one host's answer is never served for another)."""
    digest = hashlib.sha256()
    for part in (org_id, upstream, base_url, method, rest, query, seed):
        digest.update(part.encode())
        digest.update(b"\x00")
    digest.update(body)
    return digest.hexdigest()


def choose(entries: list[CachedResponse], bucket: int, rng: random.Random) -> CachedResponse | None:
    """A cached answer once the bucket is full; None while it is still filling."""
    if len(entries) < bucket or not entries:
        return None
    return rng.choice(entries[:bucket])


def replay_chunks(entry: CachedResponse) -> list[bytes]:
    """A cached stream is replayed event by event, the way it first arrived."""
    if not (entry.content_type.startswith("text/event-stream") or "ndjson" in entry.content_type):
        return [entry.body]
    chunks = []
    pos = 0
    separator = b"\n" if "ndjson" in entry.content_type else None
    body = entry.body
    while pos < len(body):
        if separator is not None:
            nxt = body.find(separator, pos)
            end = len(body) if nxt < 0 else nxt + 1
        else:
            match = re.compile(rb"\r\n\r\n|\n\n").search(body, pos)
            end = len(body) if match is None else match.end()
        chunks.append(body[pos:end])
        pos = end
    return chunks
