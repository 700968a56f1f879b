"""The upstream idle timeout's sweep (``gateway/idle.py``) against a real aiohttp server: what
counts as the upstream's silence, and what does not."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import aiohttp
import pytest
from aiohttp import web

from heliograph.capture.spool import SpoolWriter
from heliograph.config import Settings
from heliograph.gateway.idle import UpstreamWait, UpstreamWaits
from heliograph.gateway.relay import Relay

IDLE = 0.3


async def _slow_headers(request: web.Request) -> web.Response:
    await asyncio.sleep(2)
    return web.Response(text="late")


async def _pause_after_first(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse()
    await resp.prepare(request)
    await resp.write(b"first;")
    await asyncio.sleep(float(request.query.get("pause", "0.8")))
    await resp.write(b"second;")
    await resp.write_eof()
    return resp


async def _trickle(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse()
    await resp.prepare(request)
    for i in range(8):
        await resp.write(f"{i};".encode())
        await asyncio.sleep(0.15)
    await resp.write_eof()
    return resp


@pytest.fixture
async def base() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/headers", _slow_headers)
    app.router.add_get("/pause", _pause_after_first)
    app.router.add_get("/trickle", _trickle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def _open(
    session: aiohttp.ClientSession, waits: UpstreamWaits, url: str
) -> tuple[UpstreamWait, aiohttp.ClientResponse]:
    """What ``Relay.open`` does: the wait for headers, then for the body."""
    wait = waits.start()
    wait.expect()
    resp = await session.get(url)
    wait.expect(resp)
    return wait, resp


async def test_a_silent_body_gets_aiohttps_read_timeout(base: str) -> None:
    waits = UpstreamWaits(IDLE)
    async with aiohttp.ClientSession() as session:
        _, resp = await _open(session, waits, base + "/pause?pause=2")
        started = time.monotonic()
        assert await resp.content.readany() == b"first;"
        with pytest.raises(aiohttp.SocketTimeoutError):
            await resp.content.readany()
        assert IDLE <= time.monotonic() - started < IDLE * 3
        resp.close()
    await waits.close()


async def test_a_trickle_slower_in_total_than_the_timeout_is_read_whole(base: str) -> None:
    waits = UpstreamWaits(IDLE)
    async with aiohttp.ClientSession() as session:
        _, resp = await _open(session, waits, base + "/trickle")
        started = time.monotonic()
        assert await resp.read() == b"".join(f"{i};".encode() for i in range(8))
        assert time.monotonic() - started > 3 * IDLE
    await waits.close()


async def test_time_busy_on_our_side_is_not_the_upstreams_silence(base: str) -> None:
    """A slow client holds the reader: the upstream's pause meanwhile does not count."""
    waits = UpstreamWaits(IDLE)
    async with aiohttp.ClientSession() as session:
        wait, resp = await _open(session, waits, base + "/pause?pause=0.6")
        assert await resp.content.readany() == b"first;"
        wait.busy = True
        await asyncio.sleep(1.0)  # sending to a slow client, while the upstream pauses
        wait.busy = False
        assert await resp.content.read() == b"second;"
        # The same pause with the reader idle, not busy, is the upstream's silence.
        _, resp = await _open(session, waits, base + "/pause?pause=0.6")
        assert await resp.content.readany() == b"first;"
        await asyncio.sleep(1.0)
        with pytest.raises(aiohttp.SocketTimeoutError):
            await resp.content.read()
        resp.close()
    await waits.close()


async def test_waiting_for_headers_is_cancelled_and_the_cancellation_is_ours(base: str) -> None:
    waits = UpstreamWaits(IDLE)
    async with aiohttp.ClientSession() as session:
        wait = waits.start()
        wait.expect()
        task = asyncio.current_task()
        assert task is not None
        started = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            await session.get(base + "/headers")
        assert IDLE <= time.monotonic() - started < IDLE * 3
        assert wait.absorb() and task.cancelling() == 0
        assert not wait.absorb()  # once
        assert len(waits) == 0
    await waits.close()


async def test_a_wait_left_open_by_a_finished_request_is_dropped(base: str) -> None:
    waits = UpstreamWaits(IDLE)

    async def request() -> None:
        waits.start().expect()  # and never closed

    await asyncio.create_task(request())
    assert len(waits) == 1
    await asyncio.sleep(IDLE)
    assert len(waits) == 0
    await waits.close()


class _ClientLeavesAsItEnds(UpstreamWait):
    """The client's cancellation arrives just as the sweep ends the wait."""

    __slots__ = ()

    def _expire(self) -> None:
        super()._expire()
        assert self.task is not None
        self.task.cancel()


async def _relay_open(base: str, tmp_path: Path, kind: type[UpstreamWait] = UpstreamWait) -> object:
    """``Relay.open`` of a request whose upstream never sends its headers."""
    settings = Settings(home=tmp_path, upstream_timeout=IDLE)
    async with aiohttp.ClientSession() as session:
        relay = Relay(settings, cast(SpoolWriter, None), session)
        wait = kind(relay.waits, asyncio.current_task())
        try:
            return await relay.open("GET", base + "/headers", [], b"", wait)
        finally:
            await relay.waits.close()


async def test_relay_answers_504_when_the_headers_never_come(base: str, tmp_path: Path) -> None:
    task = asyncio.current_task()
    assert task is not None
    assert await _relay_open(base, tmp_path) == (
        504,
        "Upstream did not answer in time.",
        "upstream_timeout",
    )
    assert task.cancelling() == 0


async def test_a_client_leaving_as_the_header_wait_ends_is_still_a_cancellation(
    base: str, tmp_path: Path
) -> None:
    """Both cancelled the task: the sweep's is undone, the client's goes on (the gateway
    then records the request as cancelled, not as a 504)."""
    task = asyncio.current_task()
    assert task is not None
    with pytest.raises(asyncio.CancelledError):
        await _relay_open(base, tmp_path, _ClientLeavesAsItEnds)
    assert task.uncancel() == 0  # exactly the client's cancellation was left
