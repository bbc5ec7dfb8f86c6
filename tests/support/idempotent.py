"""An idempotent webhook receiver on 127.0.0.1: what a careful downstream service does with
inferd's at-least-once delivery.

inferd sends every delivery of one action with the same ``Idempotency-Key`` header (and the
same body). This receiver keeps a ledger of the keys it has processed, the way Stripe-style
APIs (and the IETF "Idempotency-Key" draft) do:

- a key seen for the first time is *applied* (its effect happens, once), its response is
  stored, and 200 is answered;
- the same key again, with the same body, is a *replay*: the stored response is answered
  (with ``Idempotent-Replayed: true``) and nothing is applied again;
- the same key with a different body is a misuse: 422, and it is recorded as a conflict;
- no key at all: 400 (inferd always sends one).

Every arrival is recorded too (``deliveries``), before it is answered, so a test sees the raw
at-least-once traffic as well as the exactly-once effects.

``hold_next()`` makes the next first-time delivery apply its effect and then withhold its
response until ``release()``: the receiver did the work, the sender has not heard so. A
sender killed in that window must deliver the action again after its restart, and the ledger
must turn that second delivery into a replay.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.webhook import LoopbackServer

KEY_HEADER = "idempotency-key"
HOLD_LIMIT_S = 30.0  # a held response is let go after this long even without release()


@dataclass(frozen=True)
class Delivery:
    """One POST as it arrived."""

    seq: int  # arrival order, from 0
    path: str
    key: str | None  # the Idempotency-Key header
    body: Any  # the parsed JSON body (None when it was not JSON)
    raw: bytes
    headers: dict[str, str]  # names in lower case
    arrived_at: float  # time.monotonic()
    outcome: str  # "applied" | "replayed" | "conflict" | "no-key"


class IdempotentReceiver(LoopbackServer):
    def __init__(self, port: int = 0) -> None:
        self._lock = threading.Lock()
        self._deliveries: list[Delivery] = []
        self._ledger: dict[str, tuple[bytes, bytes]] = {}  # key -> (body, stored response)
        self._applied: list[str] = []  # keys in the order their effects happened
        self._hold_armed = False
        self._held: Delivery | None = None
        self._held_event = threading.Event()
        self._release = threading.Event()
        super().__init__(port, self._handler())

    def _unblock(self) -> None:
        self._release.set()

    # -- the crash window ---------------------------------------------------------------------

    def hold_next(self) -> None:
        """Apply the next first-time delivery, then keep its response until ``release()``."""
        with self._lock:
            self._hold_armed = True

    def wait_held(self, timeout_s: float) -> Delivery | None:
        """The delivery being held, once one is (None if none came within the timeout)."""
        self._held_event.wait(timeout_s)
        with self._lock:
            return self._held

    def release(self) -> None:
        self._release.set()

    # -- what arrived ---------------------------------------------------------------------------

    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries)

    def applied(self) -> list[str]:
        """The keys whose effects happened, in the order they happened (each at most once)."""
        with self._lock:
            return list(self._applied)

    def wait_applied(self, count: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if len(self.applied()) >= count:
                return True
            time.sleep(0.02)
        return len(self.applied()) >= count

    # -- handling -------------------------------------------------------------------------------

    def _receive(
        self, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[Delivery, int, bytes, bool]:
        """Record one arrival and decide its answer: (delivery, status, body, hold it)."""
        key = headers.get(KEY_HEADER)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        with self._lock:
            seq = len(self._deliveries)
            hold = False
            if key is None:
                outcome, status, answer = "no-key", 400, b'{"error": "no Idempotency-Key"}'
            elif key not in self._ledger:
                outcome, status = "applied", 200
                answer = json.dumps({"applied": len(self._applied), "key": key}).encode()
                self._ledger[key] = (raw, answer)
                self._applied.append(key)
                hold, self._hold_armed = self._hold_armed, False
            elif self._ledger[key][0] == raw:
                outcome, status, answer = "replayed", 200, self._ledger[key][1]
            else:
                outcome, status = "conflict", 422
                answer = b'{"error": "Idempotency-Key reused with a different body"}'
            delivery = Delivery(seq, path, key, body, raw, headers, time.monotonic(), outcome)
            self._deliveries.append(delivery)
            if hold:
                self._held = delivery
        if hold:
            self._held_event.set()
        return delivery, status, answer, hold

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                headers = {name.lower(): value for name, value in self.headers.items()}
                delivery, status, answer, hold = receiver._receive(self.path, headers, raw)
                if hold:
                    receiver._release.wait(HOLD_LIMIT_S)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    if delivery.outcome == "replayed":
                        self.send_header("Idempotent-Replayed", "true")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:  # the sender is gone (killed while we held its answer)
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


__all__ = ["HOLD_LIMIT_S", "KEY_HEADER", "Delivery", "IdempotentReceiver"]
