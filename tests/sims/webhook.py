"""A webhook receiver on loopback: records every POST (path, headers, body) it is sent.

It answers 204, or whatever status `status` is set to, so tests can show that a failing
receiver costs a warning and nothing else.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    content_type: str
    body: bytes


@dataclass
class WebhookSim:
    url: str
    received: list[Received] = field(default_factory=list)
    status: int = 204
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.received) >= count, timeout)
            return list(self.received)


@contextmanager
def webhook_sim(path: str = "/hooks/audit") -> Iterator[WebhookSim]:
    sim: WebhookSim

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            with sim.arrived:
                sim.received.append(Received(self.path, self.headers.get("Content-Type", ""), body))
                sim.arrived.notify_all()
            self.send_response(sim.status)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: the test asserts on what arrived

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    host, port = server.server_address[:2]
    sim = WebhookSim(f"http://{host!s}:{port}{path}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sim
    finally:
        server.shutdown()
        server.server_close()
