"""The metrics port of a worker process: ``/metrics`` and ``/health``.

``/metrics`` is the default prometheus-client registry (what
``start_http_server`` would serve); ``/health`` answers 200 with a JSON body
while every worker's heartbeat is fresh and 503 naming the stale or dead
worker otherwise (:meth:`ops.liveness.Heartbeats.health`). A standard-library
threading server: it must keep answering while the workers are stuck.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from ops.liveness import Heartbeats

__all__ = ["WorkerHttpServer"]


class WorkerHttpServer:
    """Serve ``/metrics`` and ``/health`` on ``host:port`` from a daemon thread."""

    def __init__(self, heartbeats: Heartbeats, port: int, host: str = "127.0.0.1") -> None:
        beats = heartbeats

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/health":
                    ok, body = beats.health()
                    self._send(200 if ok else 503, "application/json", json.dumps(body).encode())
                elif path in ("/metrics", "/"):
                    self._send(200, CONTENT_TYPE_LATEST, generate_latest(REGISTRY))
                else:
                    self._send(404, "text/plain", b"not found: try /metrics or /health\n")

            def _send(self, code: int, content_type: str, data: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                """Scrapes every few seconds are not worth a log line each."""

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> WorkerHttpServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
