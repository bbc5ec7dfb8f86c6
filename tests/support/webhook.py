"""A real webhook receiver on 127.0.0.1 (http.server in a thread), scripted per path.

Each path answers from its queue of replies, then with its default (200 unless set): a reply
is a status, a body, headers, and how long to hang before answering. Every request is recorded
on arrival, in order, so tests can check what arrived and when relative to the others.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    hang_s: float = 0.0


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # names in lower case
    body: Any  # the JSON body, parsed (raw bytes when it is not JSON)

    @property
    def key(self) -> str:
        return self.headers["idempotency-key"]


class LoopbackServer:
    """An HTTP server on 127.0.0.1 in a thread: what the test receivers share."""

    def __init__(self, port: int, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._unblock()
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(10)
        self._server.server_close()

    def _unblock(self) -> None:
        """Let go of replies held back on purpose, so the server can stop."""

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"


class Receiver(LoopbackServer):
    def __init__(self, port: int = 0) -> None:
        self.requests: list[Received] = []
        self._replies: dict[str, deque[Reply]] = defaultdict(deque)
        self._defaults: dict[str, Reply] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        super().__init__(port, self._handler())

    def _unblock(self) -> None:
        self._closing.set()  # hanging replies give up

    def reply(self, path: str, *replies: Reply, then: Reply | None = None) -> None:
        """Answer the next requests to ``path`` with ``replies``, then with ``then``."""
        with self._lock:
            self._replies[path].extend(replies)
            if then is not None:
                self._defaults[path] = then

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def wait_for(
        self, path: str, done: Callable[[list[Received]], bool], timeout_s: float = 60.0
    ) -> bool:
        """Poll until `done(requests to path)` holds or the timeout passes; the caller
        asserts on the result (for tests whose own thread is not an event loop)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if done(self.at(path)):
                return True
            time.sleep(0.05)
        return done(self.at(path))

    def _next(self, received: Received) -> Reply:
        with self._lock:
            self.requests.append(received)
            queue = self._replies[received.path]
            return queue.popleft() if queue else self._defaults.get(received.path, Reply())

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"null")
                except ValueError:  # not JSON (an OTLP protobuf): kept as bytes
                    body = raw
                headers = {name.lower(): value for name, value in self.headers.items()}
                reply = receiver._next(Received(self.path, headers, body))
                if reply.hang_s and receiver._closing.wait(reply.hang_s):
                    return
                payload = reply.body.encode()
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client gave up (a timeout test)
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
