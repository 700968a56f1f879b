"""One request on the feature path, as the gateway hands it to the policies."""

from __future__ import annotations

from dataclasses import dataclass, field

from heliograph.capture.frames import EndFrame, MetaFrame
from heliograph.gateway.idle import UpstreamWait
from heliograph.gateway.streaming import ClientWatch
from heliograph.gateway.upstreams import Upstream


@dataclass(kw_only=True, slots=True)
class Exchange:
    """A request once authenticated and read, with what its answer needs."""

    watch: ClientWatch  # sends to the client; notices when it leaves
    wait: UpstreamWait  # times the upstream's silence
    method: str
    rest: str  # path below the upstream's base URL, safe to send
    query: str
    upstream: Upstream  # as routed, or the prompt's (a Target-URL may choose another)
    keyed: Upstream  # the upstream the client addressed: the only one its provider key goes to
    protocol: str
    org_id: str
    t0: float
    body: bytes  # as the client sent it (a prompt it named already rendered)
    send_body: bytes  # as it goes upstream (include_usage added for OpenAI streams)
    injected: bool  # whether include_usage was added (the usage chunk is then hidden)
    forward: list[tuple[str, str]]  # the client's headers (its provider key, if it sent one)
    id_headers: list[tuple[bytes, bytes]]
    end: EndFrame
    found: dict[str, str]  # feature headers, by name without prefix
    cache_control: str | None
    md: MetaFrame  # the request's metadata, parsed once
    extra_headers: list[tuple[bytes, bytes]] = field(default_factory=list)
