"""How bodies are kept: zlib-compressed, capped in size (the cap is a setting)."""

from __future__ import annotations

import zlib

ENCODING = "zlib"


def pack_body(data: bytes | None, cap: int) -> tuple[bytes | None, bool]:
    """Compressed body and whether it had to be truncated to ``cap`` bytes."""
    if data is None:
        return None, False
    truncated = len(data) > cap
    if truncated:
        data = data[:cap]
    return zlib.compress(data, 1), truncated


def unpack_body(data: bytes | None, encoding: str) -> bytes | None:
    if data is None:
        return None
    return zlib.decompress(data) if encoding == ENCODING else bytes(data)
