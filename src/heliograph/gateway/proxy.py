"""The hot path: authenticate, forward to the upstream, stream back, spool a start and an end.

Every microsecond here is paid by every request, so this module parses nothing it can leave
to the writer: it scans the headers once (forwarding, redacting and reading our metadata in
the same pass), forwards bytes as they arrive, notes timestamps, and appends two frames to the
spool. The one exception is the include_usage injection for OpenAI streams, which has to
change the request before it leaves. Requests that ask for features (cache, retries, rate
limits, fallbacks, target URLs) go on to the policies; plain ones never pay for them.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp

from heliograph.auth.keys import KeyCache, KeyInfo
from heliograph.budgets.guard import Verdict
from heliograph.capture.frames import EndFrame, StartFrame
from heliograph.capture.ids import new_record_id
from heliograph.capture.spool import SpoolWriter
from heliograph.config import Settings, UpstreamConfig
from heliograph.gateway import prompt_models
from heliograph.gateway.budget_check import BudgetCheck
from heliograph.gateway.exchange import Exchange
from heliograph.gateway.openwebui import IdentityRefused, OpenWebUIIdentity
from heliograph.gateway.policies import Policies
from heliograph.gateway.prompt_body import PromptRefused, render_body, wants_prompt
from heliograph.gateway.prompt_cache import PromptCache
from heliograph.gateway.prompt_models import prompt_upstream
from heliograph.gateway.redact import HeaderRedactor, redact_path, redact_query
from heliograph.gateway.relay import IdHeaders, Receive, Relay, Scope, Send
from heliograph.gateway.routing import Route, protocol_for, upstream_path
from heliograph.gateway.scan import Scanned, scan_headers
from heliograph.gateway.streaming import ClientWatch, Watches
from heliograph.gateway.upstreams import Upstream, without_auth, without_secret_params
from heliograph.providers.openai_wire import inject_stream_usage

TOO_LARGE = "Request body larger than {} bytes."


class Gateway:
    """Forwards requests to named upstreams; one instance per app."""

    def __init__(
        self,
        settings: Settings,
        keys: KeyCache,
        spool: SpoolWriter,
        session: aiohttp.ClientSession,
        upstreams: dict[str, UpstreamConfig],
    ) -> None:
        self.keys = keys
        self.upstreams = {name: Upstream(name, cfg) for name, cfg in upstreams.items()}
        self.relay = Relay(settings, spool, session)
        self.policies: Policies | None = None  # set by the app once shared state exists
        self.prompts: PromptCache | None = None  # set by the app once the store is open
        self.budgets: BudgetCheck | None = None  # set by the app once the store is open
        self.max_body = settings.max_body_bytes
        self.redactor = HeaderRedactor()
        self.watches = Watches()
        self.inject_usage = settings.inject_stream_usage
        self.identity = OpenWebUIIdentity(settings)

    async def handle(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        route: Route,
        internal: KeyInfo | None = None,
    ) -> None:
        """Forward one request; ``internal`` is the identity of a call Heliograph itself makes
        (a replay from the dashboard), which skips key lookup but nothing else."""
        t0 = time.perf_counter()
        wall = time.time()
        upstream = self.upstreams[route.upstream]
        if upstream.doubled and route.rest.startswith("/openai/"):
            route = Route(route.upstream, route.key, route.rest[len("/openai") :])
        protocol = protocol_for(upstream.protocol, route.rest)
        scan = scan_headers(scope["headers"], route.key, self.redactor, self.identity.secret)
        rid = scan.request_id or new_record_id()
        id_headers = [(b"heliograph-id", rid.encode()), (b"helicone-id", rid.encode())]
        info = await self._authenticate(send, scan.key, internal, id_headers, protocol)
        if info is None:
            return
        refused = self._settle_identity(scan) if scan.owjwt or "ow" in scan.md else None
        rest = upstream_path(route.rest)
        query = scope.get("query_string", b"").decode("latin-1")
        start: StartFrame = {
            "id": rid,
            "ts": wall,
            "org": info.org_id,
            "key": info.id or None,
            "up": route.upstream,
            "pr": protocol,
            "pv": upstream.provider,
            "m": scope["method"],
            "p": redact_path(route.rest if rest is None else rest),
            "q": redact_query(query),
            "h": scan.saved,
            "md": scan.md,  # even empty: the writer then never re-reads the headers
        }
        relay = self.relay
        if rest is None:
            msg = "The request path climbs above the upstream's base URL ('..'); refused."
            await relay.refuse_early(send, start, t0, id_headers, protocol, 400, msg, "bad_path")
            return
        if scan.declared_length > self.max_body:
            msg = TOO_LARGE.format(self.max_body)
            await relay.refuse_early(
                send, start, t0, id_headers, protocol, 413, msg, "request_too_large"
            )
            return
        body = await self._read_body(receive, send, start, t0, id_headers, protocol, scan)
        if body is None:
            return
        prompted: PromptRefused | None = None
        served = upstream
        writer = wants_prompt(protocol, start["m"], rest, body)
        if writer is not None and refused is None and self.prompts is not None:
            try:
                rendered = await render_body(self.prompts, info.org_id, body, writer)
                if rendered is not None:  # recorded as it goes upstream, the inputs in md
                    served = self._prompt_upstream(
                        rendered.upstream, upstream, rest, protocol, scan
                    )
                    body = rendered.body
                    scan.md["prompt"] = rendered.frame
            except PromptRefused as exc:
                prompted = exc
        if served is not upstream:
            start["pv"] = served.provider
            query = without_secret_params(query)  # a key in the query stays behind too
        relay.start(start, body)
        if refused is not None:  # recorded with its body: who tried to spend as whom
            code = "invalid_openwebui_identity"
            end: EndFrame = {"id": rid}
            await relay.refuse(send, end, t0, id_headers, protocol, 401, refused, code)
            return
        if prompted is not None:  # nothing forwarded; the record says why
            await relay.refuse(
                send,
                {"id": rid},
                t0,
                id_headers,
                protocol,
                prompted.status,
                str(prompted),
                prompted.code,
            )
            return
        checked = self.budgets
        if checked is not None and checked.applies(info.org_id, protocol, start["m"], rest):
            admitted = checked.admit(
                info.org_id, info.id or None, scan.md, body, rest, protocol,
                served.provider, served.name, wall,
            )  # fmt: skip
            verdict = admitted if isinstance(admitted, Verdict) else await admitted
            if verdict.refused is not None:  # recorded, never forwarded
                await relay.refuse(
                    send, {"id": rid}, t0, id_headers, protocol, 429, verdict.message,
                    "budget_exceeded", state="refused",
                )  # fmt: skip
                return
            id_headers = id_headers + verdict.headers
        else:
            verdict = None
        await self._dispatch(
            receive, send, scan, start, body, rest, query, served, protocol, t0, id_headers,
            verdict,
        )  # fmt: skip

    def _prompt_upstream(
        self, named: str | None, routed: Upstream, rest: str, protocol: str, scan: Scanned
    ) -> Upstream:
        """Where a rendered request goes: the version's upstream, unless the client chose one
        with a Target-URL. The client's provider key stays behind when it moves."""
        if named is None or (scan.found is not None and "target-url" in scan.found):
            return routed
        served = prompt_upstream(self.upstreams, routed, named, rest, protocol)
        if served is not routed:
            scan.forward = without_auth(scan.forward)
            scan.has_auth = False  # so the served upstream's own key, if any, goes with it
        return served

    def _listing(
        self, start: StartFrame, upstream: Upstream, protocol: str, rest: str
    ) -> prompt_models.Listing | None:
        """The virtual models to merge into this answer, when it is a models list."""
        if self.prompts is None:
            return None
        return prompt_models.listing(
            self.prompts, self.upstreams, upstream, start["org"], protocol, "GET", rest
        )

    def _settle_identity(self, scan: Scanned) -> str | None:
        """Decide which Open WebUI identity to trust; the refusal message, if refused."""
        try:
            self.identity.settle(scan.md, scan.owjwt)
        except IdentityRefused as exc:
            return str(exc)
        return None

    async def _authenticate(
        self,
        send: Send,
        key: str | None,
        internal: KeyInfo | None,
        id_headers: IdHeaders,
        protocol: str,
    ) -> KeyInfo | None:
        """The caller's key, or None once it was told why not (401 or 403)."""
        info = internal or (self.keys.get(key) if key else None)
        if info is None and key:
            info = await self.keys.lookup(key)
        if info is None:
            reason = (
                "Invalid Heliograph key."
                if key
                else "Missing Heliograph key: put it in the path (/v1/<key>/...) "
                "or send 'Heliograph-Auth: Bearer <key>'."
            )
            await self.relay.reply_error(
                send, 401, reason, "invalid_heliograph_key", id_headers, protocol
            )
            return None
        if not info.allows("write"):
            message = "This key cannot send traffic (it is not a write key)."
            await self.relay.reply_error(
                send, 403, message, "insufficient_scope", id_headers, protocol
            )
            return None
        return info

    async def _read_body(
        self,
        receive: Receive,
        send: Send,
        start: StartFrame,
        t0: float,
        id_headers: IdHeaders,
        protocol: str,
        scan: Scanned,
    ) -> bytes | None:
        """The whole request body, or None once the request was refused or abandoned."""
        body = b""
        parts: list[bytes] | None = None
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.relay.upload_cancelled(start, t0, size, scan.declared_length)
                return None
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > self.max_body:
                    msg = TOO_LARGE.format(self.max_body)
                    await self.relay.refuse_early(
                        send, start, t0, id_headers, protocol, 413, msg, "request_too_large"
                    )
                    return None
                if not body:
                    body = chunk
                elif parts is None:
                    parts = [body, chunk]
                else:
                    parts.append(chunk)
            more = message.get("more_body", False)
        if parts is not None:
            body = b"".join(parts)  # linear, however many chunks the upload came in
        return body

    async def _dispatch(
        self,
        receive: Receive,
        send: Send,
        scan: Scanned,
        start: StartFrame,
        body: bytes,
        rest: str,
        query: str,
        upstream: Upstream,
        protocol: str,
        t0: float,
        id_headers: IdHeaders,
        verdict: Verdict | None = None,
    ) -> None:
        """Send the request on (through the policies when it asked for features) and answer."""
        method = start["m"]
        injected = False
        send_body = body
        if self.inject_usage and method == "POST" and protocol == "openai":
            new_body = inject_stream_usage(rest, body)
            if new_body is not None:
                send_body = new_body
                injected = True
        forward = scan.forward
        forward.append(("accept-encoding", "identity"))
        end: EndFrame = {"id": start["id"]}
        if verdict is not None:
            if verdict.entries:
                end["bud"] = verdict.entries
            if verdict.note:
                end["bnote"] = verdict.note
        keyed = self.upstreams[start["up"]]
        if upstream is not keyed:
            end["srv"] = upstream.name  # a prompt's upstream serves it
        relay = self.relay
        watch = ClientWatch(self.watches, receive, send)
        wait = relay.waits.start()
        try:
            if scan.found is not None and self.policies is not None:
                exchange = Exchange(
                    watch=watch,
                    wait=wait,
                    method=method,
                    rest=rest,
                    query=query,
                    upstream=upstream,
                    keyed=keyed,
                    protocol=protocol,
                    org_id=start["org"],
                    t0=t0,
                    body=body,
                    send_body=send_body,
                    injected=injected,
                    forward=forward,
                    id_headers=id_headers,
                    end=end,
                    found=scan.found,
                    cache_control=scan.cache_control,
                    md=scan.md,
                )
                await self.policies.run(exchange)
                return
            if not scan.has_auth and upstream.auth is not None:
                forward.append(upstream.auth)  # the server's key, to its own upstream only
            url = upstream.url + rest
            if query:
                url = url + "?" + query
            resp = await relay.open(method, url, forward, send_body, wait)
            add = self._listing(start, upstream, protocol, rest) if method == "GET" else None
            if add is not None:
                await prompt_models.answer(
                    relay, watch.send, resp, add, upstream.name, t0, end, id_headers
                )
                return
            if isinstance(resp, aiohttp.ClientResponse):
                await relay.forward(watch, wait, resp, t0, end, id_headers, injected, protocol)
                return
            status, msg, code = resp
            await relay.refuse(watch.send, end, t0, id_headers, protocol, status, msg, code)
        except asyncio.CancelledError:
            if not watch.absorb():
                raise
            relay.client_left(end, t0)
        finally:
            watch.close()
            wait.close()
