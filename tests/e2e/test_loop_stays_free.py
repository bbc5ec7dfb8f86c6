"""While one request carries a huge input, the server keeps answering everyone else: the
work a big input costs (tokenizing a 4 MB text) runs off the event loop, and a prompt that
cannot fit the context is refused from its size before any of it is tokenized."""

from __future__ import annotations

import threading
import time

import httpx

from tests.e2e.conftest import Server

FOUR_MB_TEXT = ("my card was charged twice for the same order, please help. " * 70_000)[
    : 4 * 1024 * 1024
]


class HealthPoller:
    """Polls /v2/health/live from a thread; keeps when each answer came."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self._stop = threading.Event()
        self.answered: list[tuple[float, float]] = []  # (sent, answered), perf_counter
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> HealthPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _poll(self) -> None:
        with httpx.Client(base_url=self._server.url, timeout=30) as client:
            while not self._stop.is_set():
                sent = time.perf_counter()
                if client.get("/v2/health/live").status_code == 200:
                    self.answered.append((sent, time.perf_counter()))
                time.sleep(0.01)

    def during(self, start: float, end: float) -> list[float]:
        """The waits (s) of the polls sent and answered between `start` and `end`."""
        return [done - sent for sent, done in self.answered if start <= sent and done <= end]


def test_health_is_answered_while_a_4_mb_text_is_tokenized(server: Server) -> None:
    with HealthPoller(server) as health, httpx.Client(base_url=server.url, timeout=120) as http:
        time.sleep(0.2)
        start = time.perf_counter()
        reply = http.post("/v1/models/support-intent:predict", json={"instances": [FOUR_MB_TEXT]})
        end = time.perf_counter()
    assert reply.status_code == 200, reply.text
    [prediction] = reply.json()["predictions"]
    assert prediction["parameters"]["truncated_to_tokens"] > 0
    waits = health.during(start, end)
    # Tokenizing 4 MB takes seconds; with the loop held, no poll would get in meanwhile.
    assert len(waits) >= 10, (len(waits), end - start)


def test_a_4_mb_prompt_is_refused_at_once_from_its_size(server: Server) -> None:
    body = {"model": "pycoder", "prompt": FOUR_MB_TEXT, "max_tokens": 4}
    with HealthPoller(server), httpx.Client(base_url=server.url, timeout=120) as http:
        reply = http.post("/v1/completions", json=body)
        generate = http.post("/v2/models/pycoder/generate", json={"text_input": FOUR_MB_TEXT})
    for refused in (reply, generate):
        assert refused.status_code == 400, refused.text
        message = refused.json()["error"]
        assert f"the prompt is {len(FOUR_MB_TEXT)} bytes" in message
        assert "over this model's context of 512 tokens" in message
