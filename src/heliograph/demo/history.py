"""The demo's past week, spooled as the gateway would have spooled it, for the writer to store.

A new demo would otherwise show one bar at the right edge of every chart. So at start
``heliograph demo`` runs the same client sessions (:mod:`heliograph.demo.traffic`) against the
same simulator at past times, in a process beside the server: sessions start through the week
with a daily rhythm (busy working hours, quiet nights and weekends, a nightly batch job), and
each exchange happens in virtual time, taking as long as the simulated answer takes. Each one
becomes the start and end frames the gateway writes for a live request
(:mod:`heliograph.capture.frames`), built with the gateway's own routing, header redaction,
metadata parsing and usage injection, in a spool directory of its own. The writer drains that
directory like any other (while it is being written, then to its end), so tokens, costs,
speeds, cold starts and rollups come out exactly as for live traffic.

Nothing is inserted behind the writer's back, and no request can date itself: only this
command, writing frames into its own data directory, puts a past time in a frame.
"""

from __future__ import annotations

import heapq
import random
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import orjson

from heliograph.capture.frames import EndFrame, StartFrame
from heliograph.capture.ids import new_record_id
from heliograph.capture.spool import KIND_END, KIND_START, SpoolWriter
from heliograph.config import Settings
from heliograph.demo.models import WEEK_S, Conditions
from heliograph.demo.simulator import Simulator
from heliograph.demo.traffic import Call, Heard, Pause, Session, new_session, nightly_digest
from heliograph.demo.wire import Reply
from heliograph.gateway.openwebui import IdentityRefused, OpenWebUIIdentity
from heliograph.gateway.redact import HeaderRedactor, redact_path
from heliograph.gateway.routing import parse_route, protocol_for, upstream_path
from heliograph.gateway.scan import Scanned, scan_headers
from heliograph.gateway.upstreams import Upstream
from heliograph.providers.openai_wire import inject_stream_usage

PEAK_SESSIONS_PER_HOUR = 7.5
# Share of the peak rate by local hour: working hours busy, a lunch dip, quiet nights.
HOURLY = (
    *(0.03, 0.02, 0.02, 0.02, 0.03, 0.05, 0.12, 0.35),
    *(0.75, 1.0, 1.0, 0.95, 0.55, 0.85, 0.95, 0.9),
    *(0.75, 0.45, 0.3, 0.25, 0.22, 0.18, 0.1, 0.05),
)
WEEKEND = 0.3
SERVER = f"Python/{sys.version_info.major}.{sys.version_info.minor} aiohttp/{aiohttp.__version__}"


def activity(ts: float) -> float:
    """How busy the demo's users are at ``ts``, as a share of the weekday peak."""
    local = time.localtime(ts)
    return HOURLY[local.tm_hour] * (WEEKEND if local.tm_wday >= 5 else 1.0)


def schedule(rng: random.Random, since: float, until: float) -> list[tuple[float, Session]]:
    """Sessions over ``[since, until)``: interactive ones at the users' rhythm, and the digest
    job each night at about two."""
    sessions: list[tuple[float, Session]] = []
    candidates = int(PEAK_SESSIONS_PER_HOUR * (until - since) / 3600)
    for t in sorted(rng.uniform(since, until) for _ in range(candidates)):
        if rng.random() < activity(t):
            sessions.append((t, new_session(rng)))
    day = datetime.fromtimestamp(since).replace(hour=0, minute=0, second=0, microsecond=0)
    while day.timestamp() < until:
        at = (day + timedelta(hours=2)).timestamp() + rng.uniform(0, 1800)
        if since <= at < until:
            sessions.append((at, nightly_digest(rng, day.date().isoformat())))
        day += timedelta(days=1)
    return sessions


@dataclass
class Gateway:
    """The gateway's side of a past exchange: the frames it would have written for it."""

    settings: Settings
    org_id: str
    key_id: str
    key: str

    def __post_init__(self) -> None:
        resolved = self.settings.resolved_upstreams()
        self.upstreams = {name: Upstream(name, cfg) for name, cfg in resolved.items()}
        self.redactor = HeaderRedactor()
        self.identity = OpenWebUIIdentity(self.settings)

    def start(self, call: Call, rid: str, ts: float) -> tuple[StartFrame, bytes, str, bytes]:
        """(start frame, request body, the path the upstream is asked for, the body it gets)."""
        route = parse_route(call.url_path(self.key), self.upstreams)
        if route is None:
            raise ValueError(f"not a gateway path: {call.path}")
        upstream = self.upstreams[route.upstream]
        protocol = protocol_for(upstream.protocol, route.rest)
        rest = upstream_path(route.rest) or route.rest
        body = call.payload()
        scan = self.scanned(call, len(body))
        md = scan.md
        if "ow" in md or scan.owjwt:
            try:
                self.identity.settle(md, scan.owjwt)
            except IdentityRefused:  # only a token can be refused, and clients send none
                md.pop("ow", None)
        start: StartFrame = {
            "id": rid,
            "ts": ts,
            "org": self.org_id,
            "key": self.key_id,
            "up": route.upstream,
            "pr": protocol,
            "pv": upstream.provider,
            "m": "POST",
            "p": redact_path(rest),
            "q": "",
            "h": scan.saved,
            "md": md,
        }
        sent = body
        if self.settings.inject_stream_usage and protocol == "openai":
            sent = inject_stream_usage(rest, body) or body
        return start, body, urlsplit(upstream.url + rest).path, sent

    def scanned(self, call: Call, length: int) -> Scanned:
        """The request headers as the gateway's own scan reads and records them."""
        pairs = [*call.header_list(self.key), ("content-length", str(length))]
        raw = [(name.lower().encode("latin-1"), value.encode()) for name, value in pairs]
        return scan_headers(raw, None, self.redactor, self.identity.secret)

    def end(self, rid: str, reply: Reply, body: bytes, net_ms: float) -> EndFrame:
        """The end frame of a response (``body`` is the reply's) that took ``net_ms`` more to
        cross the network."""
        status = reply.status
        headers = [("Content-Type", reply.content_type), ("Server", SERVER)]
        headers += [("heliograph-id", rid), ("helicone-id", rid)]  # as sent on, less Date
        ttfb = round(reply.headers_ms + net_ms, 3)
        end: EndFrame = {"id": rid, "st": status, "ttfb": ttfb, "ct": reply.content_type}
        if reply.stream:
            marks = []
            size = 0
            for at, data in reply.parts:
                size += len(data)
                marks.append((size, round(at + net_ms, 3)))
            lat = round(marks[-1][1] + 0.2, 3)
        else:
            lat = round(ttfb + 0.2, 3)
            marks = [(len(body), lat)]
        end["rh"] = headers
        end["state"] = "ok" if status < 400 else "error"
        end["err"] = None if status < 400 else f"Upstream returned HTTP {status}"
        end["lat"] = lat
        end["ch"] = marks
        return end


def backfill(
    simulator: Simulator,
    gateway: Gateway,
    spool: SpoolWriter,
    since: float,
    until: float,
    rng: random.Random,
) -> int:
    """Run the sessions of ``[since, until)`` in virtual time, in order of time (a local
    model's cold start depends on what ran before), spooling each exchange; returns how
    many requests were spooled."""
    queue: list[tuple[float, int, Session, Call | Pause]] = []
    for n, (at, session) in enumerate(schedule(rng, since, until)):
        first = next(session, None)
        if first is not None:
            queue.append((at, n, session, first))
    heapq.heapify(queue)
    spooled = 0
    while queue:
        at, n, session, step = heapq.heappop(queue)
        if at >= until:
            session.close()
            continue
        try:
            if isinstance(step, Pause):
                at += step.seconds
                step = session.send(None)
            else:
                heard, took = exchange(simulator, gateway, spool, step, at, rng)
                spooled += 1
                at += took
                step = session.send(heard)
        except StopIteration:
            continue
        heapq.heappush(queue, (at, n, session, step))
    return spooled


def exchange(
    simulator: Simulator,
    gateway: Gateway,
    spool: SpoolWriter,
    call: Call,
    at: float,
    rng: random.Random,
) -> tuple[Heard, float]:
    """One request at ``at``: its frames spooled; what the client heard, and the seconds it
    took."""
    rid = new_record_id()
    start, body, path, sent = gateway.start(call, rid, at)
    spool.append(KIND_START, orjson.dumps(start), body)
    net_ms = rng.uniform(0.6, 2.5)  # the gateway's hop to the upstream and back
    reply = simulator.reply("POST", path, sent, at + net_ms / 2000)
    answer = reply.body
    end = gateway.end(rid, reply, answer, net_ms)
    spool.append(KIND_END, orjson.dumps(end), answer)
    return (reply.status, answer), end["lat"] / 1000


def write_history(
    settings: Settings,
    simulator: Simulator,
    gateway: Gateway,
    since: float,
    until: float,
    rng: random.Random | None = None,
) -> tuple[int, Path]:
    """Spool the demo's traffic of ``[since, until)`` into a spool directory of its own, closed
    at once so the writer drains it to the end (and then removes it); returns how many
    requests it holds, and the directory."""
    spool = SpoolWriter(settings.spool_dir, settings.spool_segment_bytes)
    try:
        count = backfill(simulator, gateway, spool, since, until, rng or random.Random())
    finally:
        spool.close()
    return count, spool.dir


def spool_history(
    settings: Settings, org_id: str, key_id: str, key: str, since: float, until: float
) -> tuple[int, dict[str, float], Path]:
    """:func:`write_history` for a process of its own (``heliograph demo`` runs it beside the
    server, so the writer stores the first frames while the rest are being made); returns
    the count, when each local model unloads after it (for the live simulator), and the
    spool directory."""
    simulator = Simulator(conditions=Conditions(week_start=until - WEEK_S))
    gateway = Gateway(settings, org_id, key_id, key)
    count, directory = write_history(settings, simulator, gateway, since, until)
    return count, simulator.conditions.loaded_until, directory
