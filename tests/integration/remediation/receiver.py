"""A real webhook receiver for the tests: checks the signature, applies each key once.

``ThreadingHTTPServer`` on 127.0.0.1. Every POST is a *delivery* (counted by
``Idempotency-Key``); the first delivery of a key with a valid HMAC is the
*effect* (counted separately); a repeat of a key is answered 200 again and
changes nothing -- what a receiver must do for the worker's exactly-once.
``on_delivery`` runs after the effect and before the answer (the tests kill
the worker there: the call made, the commit not). ``status`` forces an answer.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson

SECRET = b"test-webhook-secret"


class Receiver:
    def __init__(self) -> None:
        self.deliveries: Counter[str] = Counter()
        self.effects: Counter[str] = Counter()
        self.ok_answers: Counter[str] = Counter()
        self.bad_signatures = 0
        self.bodies: dict[str, dict[str, object]] = {}
        self.lock = threading.Lock()
        self.on_delivery: Callable[[str, int], None] | None = None
        self.status: int | None = None
        self.url = ""

    def handle(self, key: str, body: bytes, signature: str) -> int:
        expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        with self.lock:
            self.deliveries[key] += 1
            count = sum(self.deliveries.values())
            if not hmac.compare_digest(expected, signature):
                self.bad_signatures += 1
                return 401
            if self.status is not None:
                return self.status
            if self.effects[key] == 0:
                self.effects[key] += 1
                self.bodies[key] = orjson.loads(body)
        if self.on_delivery is not None:
            self.on_delivery(key, count)
        with self.lock:
            self.ok_answers[key] += 1
        return 200


@contextmanager
def serving() -> Iterator[Receiver]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = receiver.handle(
                self.headers.get("Idempotency-Key", ""),
                body,
                self.headers.get("X-Kernel-Signature", ""),
            )
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", receiver.url + "/moved")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: object, client_address: object) -> None:
            pass  # a worker killed mid-answer: its connection is gone, as expected

    server = Server(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
