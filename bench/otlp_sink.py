"""A minimal OTLP/HTTP trace receiver for benchmarks: counts spans, keeps nothing.

Runs as its own process (so its CPU is not the writer's): ``python bench/otlp_sink.py --port
0`` prints ``READY <port>``; ``GET /count`` answers the number of spans received so far.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

ANSWER = ExportTraceServiceResponse().SerializeToString()


class Sink(ThreadingHTTPServer):
    spans = 0
    lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    server: Sink

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        request = ExportTraceServiceRequest()
        request.ParseFromString(raw)
        count = sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
        with self.server.lock:
            self.server.spans += count
        self._answer(ANSWER, "application/x-protobuf")

    def do_GET(self) -> None:
        self._answer(str(self.server.spans).encode(), "text/plain")

    def _answer(self, body: bytes, ctype: str) -> None:
        self.send_response(200)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


def start() -> tuple[subprocess.Popen[str], str]:
    """Start a sink process; (process, base URL)."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    assert line and line[0] == "READY", line
    return proc, f"http://127.0.0.1:{line[1]}"


def received(url: str) -> int:
    with urllib.request.urlopen(url + "/count", timeout=10) as resp:
        return int(resp.read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = Sink(("127.0.0.1", args.port), Handler)
    print("READY", server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
