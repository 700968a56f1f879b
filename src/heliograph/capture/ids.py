"""Record ids: UUIDv7 (RFC 9562), so ids sort by creation time.

Random (v4) ids scatter every insert across the primary-key index of ``requests``, its bodies
and its properties: each batch then dirties nearly every leaf page of three B-trees, and the
database writes all of them. Time-ordered ids append at the right edge instead. Clients that
choose their own id (``Helicone-Request-Id``) keep it, whatever its version.
"""

from __future__ import annotations

import hashlib
import os
import time


def new_record_id() -> str:
    """A UUIDv7: 48 bits of Unix milliseconds, the version and variant, 74 random bits."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10))
    value = (
        (ms & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76
        | (rand >> 62 & 0xFFF) << 64
        | 0b10 << 62
        | rand & 0x3FFF_FFFF_FFFF_FFFF
    )
    return _format(value)


def derived_record_id(ms: int, *parts: str) -> str:
    """A UUIDv8 laid out like a v7: Unix milliseconds first, so it sorts by time like the
    others, then 74 bits of a hash of ``parts``, so the same thing (an ingested span that
    an exporter sends again) always gets the same id and is stored once."""
    digest = hashlib.sha256("\x00".join(parts).encode()).digest()
    bits = int.from_bytes(digest[:10])
    value = (
        (ms & 0xFFFF_FFFF_FFFF) << 80
        | 0x8 << 76
        | (bits >> 62 & 0xFFF) << 64
        | 0b10 << 62
        | bits & 0x3FFF_FFFF_FFFF_FFFF
    )
    return _format(value)


def _format(value: int) -> str:
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
