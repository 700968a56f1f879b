"""How bodies are kept: zstd-compressed, capped in size (the cap is a setting).

Rows written before zstd hold zlib (``encoding = "zlib"``); both are read back.
"""

from __future__ import annotations

import zlib

import zstandard

ENCODING = "zstd"
LEVEL = 1  # level 3 saves ~6% more space on long prompts, for 15-40% more CPU


class BodyPacker:
    """Compresses bodies with one reusable zstd context (one per thread or process).

    A fresh compression context per body costs more than compressing a small body itself.
    """

    def __init__(self) -> None:
        self._zstd = zstandard.ZstdCompressor(level=LEVEL)

    def pack(self, data: bytes | None, cap: int) -> tuple[bytes | None, bool]:
        """Compressed body and whether it had to be truncated to ``cap`` bytes."""
        if data is None:
            return None, False
        truncated = len(data) > cap
        if truncated:
            data = data[:cap]
        return self._zstd.compress(data), truncated


def unpack_body(data: bytes | None, encoding: str) -> bytes | None:
    if data is None:
        return None
    if encoding == "zstd":
        return zstandard.ZstdDecompressor().decompress(bytes(data))
    if encoding == "zlib":
        return zlib.decompress(data)
    return bytes(data)
