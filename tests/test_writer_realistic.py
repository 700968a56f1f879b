"""An Open WebUI chat as stored: every field of its record, compared with a golden copy.

The sample is the writer benchmark's realistic traffic (``bench/openwebui_traffic.py``): a
~2,000-token prompt, Open WebUI's user and chat headers read by the gateway's header scan,
and a 300-event answer in OpenAI's chunk format with a usage chunk. The golden file was
written by the writer before its stream analysis took the shortcut for uniform streams
(``providers/openai_streams.py``), so any change in what is stored shows up here.
Regenerate only on purpose: ``HELIOGRAPH_WRITE_GOLDEN=1 pytest tests/test_writer_realistic.py``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, select

from heliograph.capture.builder import make_pricebook
from heliograph.capture.spool import KIND_END, KIND_START, SpoolWriter
from heliograph.capture.writer import Writer
from heliograph.config import Settings
from heliograph.store.bodies import unpack_body
from heliograph.store.schema import request_bodies, requests

SAMPLES = Path(__file__).parent / "samples"
GOLDEN = SAMPLES / "openwebui_chat_record.json"


def _stored(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        row = {str(k): v for k, v in conn.execute(select(requests)).mappings().one().items()}
        found = conn.execute(select(request_bodies)).mappings().one()
        body = {str(k): v for k, v in found.items()}
    for name in ("request_body", "response_body"):
        raw = unpack_body(body[name], body["encoding"])
        body[name] = orjson.loads(raw) if raw else raw
    return orjson.loads(orjson.dumps({"request": row, "body": body}, default=str))


def test_an_openwebui_chat_is_stored_exactly_as_before(engine: Engine, tmp_path: Path) -> None:
    frames = orjson.loads((SAMPLES / "openwebui_chat_frames.json").read_bytes())
    spool = SpoolWriter(tmp_path / "spool", 64 * 1024 * 1024)
    request = (SAMPLES / "openwebui_chat_request.json").read_bytes()
    spool.append(KIND_START, orjson.dumps(frames["start"]), request)
    stream = (SAMPLES / "openwebui_chat_stream.sse").read_bytes()
    spool.append(KIND_END, orjson.dumps(frames["end"]), stream)
    spool.close()
    book = make_pricebook(Settings(home=tmp_path))  # priced as `heliograph serve` prices
    Writer(engine, tmp_path / "spool", pricebook=book).drain()
    stored = _stored(engine)
    if os.environ.get("HELIOGRAPH_WRITE_GOLDEN"):
        GOLDEN.write_bytes(orjson.dumps(stored, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    golden = orjson.loads(GOLDEN.read_bytes())
    assert stored == golden
    # What the answer's 300 events reassemble to, spelled out.
    row = stored["request"]
    assert (row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == (
        2048,
        297,
        2345,
    )
    assert row["user_name"] and row["session_id"] and row["response_model"]
    message = stored["body"]["response_body"]["choices"][0]["message"]
    assert message["role"] == "assistant" and len(message["content"]) > 1000
