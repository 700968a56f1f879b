"""The gateway path for requests that ask for features: rate limits, cache, retries,
fallbacks and target URLs. Plain requests never come here, so they pay nothing for it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from heliograph.gateway import cache as response_cache
from heliograph.gateway import ratelimit
from heliograph.gateway.exchange import Exchange
from heliograph.gateway.features import (
    RETRY_STATUSES,
    FeatureError,
    Features,
    RateLimitPolicy,
    parse_features,
)
from heliograph.gateway.headers import user_of
from heliograph.gateway.relay import Relay, ms_since, pass_on, pass_rest
from heliograph.gateway.routing import protocol_for
from heliograph.gateway.state import CachedResponse, SharedState
from heliograph.gateway.targets import check_target
from heliograph.gateway.upstreams import (
    AUTH_HEADERS,
    Upstream,
    with_auth,
    without_auth,
    without_secret_params,
)
from heliograph.providers import analyser
from heliograph.providers.analysis import Analysis
from heliograph.providers.openai_wire import UsageChunkStripper

log = logging.getLogger(__name__)


@dataclass
class Target:
    upstream: Upstream
    base_url: str
    on_codes: frozenset[int] | None
    body: bytes
    headers: list[tuple[str, str]]


class Policies:
    """Runs the feature path: the relay talks to client, upstream and spool; ``upstreams``
    are the gateway's, for targets and fallbacks; ``state`` is shared by all workers."""

    def __init__(self, relay: Relay, upstreams: dict[str, Upstream], state: SharedState) -> None:
        self.relay = relay
        self.upstreams = upstreams
        self.state = state
        self.rng = random.Random()

    async def _refuse(self, ex: Exchange, status: int, message: str, code: str) -> None:
        extra = ex.id_headers + ex.extra_headers
        await self.relay.refuse(
            ex.watch.send, ex.end, ex.t0, extra, ex.protocol, status, message, code
        )

    async def run(self, ex: Exchange) -> None:
        try:
            features = parse_features(ex.found, ex.cache_control)
            primary = self._primary(ex, features)
            plan = [primary, *self._fallbacks(ex, features)]
        except FeatureError as exc:
            await self._refuse(ex, 400, str(exc), "invalid_gateway_header")
            return
        if features.rate_limit is not None:
            key = self._counter_key(ex, features.rate_limit)
            ex.end["rlk"] = key  # the writer charges this same counter (cents policies)
            decision = await ratelimit.check(self.state, features.rate_limit, key)
            # The policy the client named speaks for the Helicone-RateLimit-* headers; a
            # budget's (Heliograph-Budget-* stay) would have sent each of them twice.
            ex.id_headers = [
                h for h in ex.id_headers if not h[0].startswith(b"helicone-ratelimit-")
            ]
            ex.extra_headers += decision.headers()
            if not decision.allowed:
                msg = f"{ratelimit.REFUSED_MESSAGE}{features.rate_limit.raw!r}."
                await self._refuse(ex, 429, msg, "rate_limited")
                return
        cache_key = None
        if features.cache:
            cache_key = response_cache.cache_key(
                ex.org_id,
                primary.upstream.name,
                primary.base_url,
                ex.method,
                ex.rest,
                ex.query,
                ex.body,
                features.cache_seed,
            )
            entries = await self._cache_entries(cache_key)
            hit = response_cache.choose(entries, features.cache_bucket, self.rng)
            if hit is not None:
                await self._replay(ex, hit)
                return
            ex.extra_headers.append((b"helicone-cache", b"MISS"))
            ex.end["cache"] = "miss"
            slot = len(entries)
        resp, error = await self._attempts(ex, features, plan)
        if resp is None:
            status, msg, code = error
            await self._refuse(ex, status, msg, code)
            return
        on_complete = None
        if cache_key is not None:
            key, org_id, ttl = cache_key, ex.org_id, features.cache_max_age

            async def on_complete(status: int, ctype: str, body: bytes) -> None:
                if status == 200 and body:
                    entry = CachedResponse(slot, status, ctype, body, ex.end["id"])
                    await self._cache_put(key, org_id, entry, ttl)

        await self.relay.forward(
            ex.watch,
            ex.wait,
            resp,
            ex.t0,
            ex.end,
            ex.id_headers + ex.extra_headers,
            ex.injected,
            ex.protocol,
            on_complete,
        )

    def _counter_key(self, ex: Exchange, policy: RateLimitPolicy) -> str:
        """The rate-limit counter of this request, from the same user and properties the
        record will carry (so the check and the writer's charge use one counter)."""
        body_user = None
        if policy.segment == "user" and "user" not in ex.md:
            analysis = Analysis()
            ctype = next((v for k, v in ex.forward if k == "content-type"), "")
            analyser(ex.protocol).analyse_request(ex.method, ex.rest, ex.body, ctype, analysis)
            body_user = analysis.user
        return ratelimit.counter_key(
            ex.org_id, policy, user_of(ex.md, body_user), ex.md.get("props") or {}
        )

    def _primary(self, ex: Exchange, features: Features) -> Target:
        upstream, base = ex.upstream, ex.upstream.url
        if features.target_url:
            name, base = check_target(features.target_url, self._declared())
            upstream = ex.keyed = self.upstreams[name]  # addressed by the client itself
            ex.end["srv"] = name
        headers = with_auth(ex.forward, upstream, upstream is ex.keyed)
        return Target(upstream, base, None, ex.send_body, headers)

    def _declared(self) -> list[tuple[str, str]]:
        return [(name, u.url) for name, u in self.upstreams.items()]

    def _fallbacks(self, ex: Exchange, features: Features) -> list[Target]:
        out = []
        for fb in features.fallbacks:
            if fb.target_url:
                name, base = check_target(fb.target_url, self._declared())
            else:
                name = str(fb.upstream)
                if name not in self.upstreams:
                    raise FeatureError(f"fallback upstream {name!r} is not configured")
                base = self.upstreams[name].url
            upstream = self.upstreams[name]
            if protocol_for(upstream.protocol, ex.rest) != ex.protocol:
                raise FeatureError(f"fallback {name!r} speaks another protocol than {ex.protocol}")
            body = ex.send_body
            if fb.body_override:
                try:
                    doc = orjson.loads(body)
                except orjson.JSONDecodeError as exc:
                    raise FeatureError("bodyKeyOverride needs a JSON body") from exc
                if isinstance(doc, dict):
                    doc.update(fb.body_override)
                    body = orjson.dumps(doc)
            names = {k for k, _ in fb.headers}
            headers = [(k, v) for k, v in ex.forward if k not in names]
            if any(k in AUTH_HEADERS for k, _ in fb.headers):
                # The fallback names its own key: no other credential goes with it.
                headers = without_auth(headers)
                headers += fb.headers
            else:
                # The client's key was meant for the upstream it addressed; elsewhere the
                # fallback gets that upstream's own server-side key, if it has one. The
                # entry's own headers go with it either way.
                headers = [*with_auth(headers, upstream, upstream is ex.keyed), *fb.headers]
            out.append(Target(upstream, base, fb.on_codes, body, headers))
        return out

    async def _attempts(
        self, ex: Exchange, features: Features, plan: list[Target]
    ) -> tuple[aiohttp.ClientResponse | None, tuple[int, str, str]]:
        """Try the plan in order; each target with its retries. Every attempt is noted."""
        attempts: list[dict[str, Any]] = []
        ex.end["att"] = attempts
        retry = features.retry
        error: tuple[int, str, str] = (502, "Upstream unreachable.", "upstream_unreachable")
        resp: aiohttp.ClientResponse | None = None
        for index, target in enumerate(plan):
            tries = 1 + (retry.attempts if retry else 0)
            # A key the client put in the query was meant for the upstream it addressed.
            query = ex.query if target.upstream is ex.keyed else without_secret_params(ex.query)
            url = target.base_url + ex.rest + ("?" + query if query else "")
            for n in range(tries):
                started = time.perf_counter()
                note: dict[str, Any] = {"upstream": target.upstream.name}
                retry_after = None
                opened = await self.relay.open(ex.method, url, target.headers, target.body, ex.wait)
                if isinstance(opened, aiohttp.ClientResponse):
                    resp = opened
                else:
                    resp, error = None, opened
                    note["error"] = opened[1][:200]
                note["ms"] = ms_since(started)
                if resp is not None:
                    note["status"] = resp.status
                    retry_after = resp.headers.get("Retry-After")
                attempts.append(note)
                retryable = resp is None or resp.status in RETRY_STATUSES
                if retry is None or not retryable or n == tries - 1:
                    break
                if resp is not None:
                    await _discard(resp)
                await asyncio.sleep(retry.delay_ms(n, retry_after) / 1000.0)
            ex.end["srv"] = target.upstream.name
            nxt = plan[index + 1] if index + 1 < len(plan) else None
            if nxt is None:
                break
            if resp is None or (
                resp.status >= 400 and nxt.on_codes and resp.status in nxt.on_codes
            ):
                if resp is not None:
                    await _discard(resp)
                    resp = None
                continue
            break
        return resp, error

    async def _cache_entries(self, key: str) -> list[CachedResponse]:
        try:
            return await self.state.cache_get(key)
        except Exception:  # an unavailable cache is a miss, never an error
            return []

    async def _cache_put(self, key: str, org_id: str, entry: CachedResponse, ttl: int) -> None:
        try:
            await asyncio.wait_for(self.state.cache_put(key, org_id, entry, ttl), 1.0)
        except Exception as exc:  # a cache that cannot store is a cache that misses
            log.warning("could not store cache entry: %s", exc)

    async def _replay(self, ex: Exchange, hit: CachedResponse) -> None:
        """Answer from the cache, streams event by event, and record a cache hit."""
        headers = [
            (b"content-type", hit.content_type.encode("latin-1")),
            (b"helicone-cache", b"HIT"),
            *ex.id_headers,
            *ex.extra_headers,
        ]
        chunks = response_cache.replay_chunks(hit)
        stripper = UsageChunkStripper() if ex.injected else None
        ttfb = ms_since(ex.t0)
        if len(chunks) == 1 and stripper is None:
            headers.append((b"content-length", str(len(hit.body)).encode()))
        send = ex.watch.send
        await send({"type": "http.response.start", "status": hit.status, "headers": headers})
        marks = []
        size = 0
        for chunk in chunks:
            size += len(chunk)
            marks.append((size, ms_since(ex.t0)))
            await pass_on(send, stripper, chunk)
        await pass_rest(send, stripper)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        ex.end.update(
            {
                "st": hit.status,
                "state": "ok",
                "err": None,
                "lat": ms_since(ex.t0),
                "ttfb": ttfb,
                "ct": hit.content_type,
                "ch": marks,
                "cache": "hit",
                "srv": "cache",
            }
        )
        self.relay.end(ex.end, hit.body)

    async def close(self) -> None:
        await self.state.close()


async def _discard(resp: aiohttp.ClientResponse) -> None:
    try:
        await resp.read()
    except (aiohttp.ClientError, TimeoutError, OSError):
        resp.close()
    finally:
        resp.release()
