"""Record ids: UUIDv7 (RFC 9562), so ids sort by creation time.

Random (v4) ids scatter every insert across the primary-key index of ``requests``, its bodies
and its properties: each batch then dirties nearly every leaf page of three B-trees, and the
database writes all of them. Time-ordered ids append at the right edge instead. Clients that
choose their own id (``Helicone-Request-Id``) keep it, whatever its version.
"""

from __future__ import annotations

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
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
