"""Timing an OpenAI streaming completion as its server-sent events arrive.

Each event's time is the time its bytes reached the client; events that arrive in one read
share it, so their gap is zero (the client saw them at once, whatever the server meant).
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import orjson


def _text(choice: Any) -> str:
    if not isinstance(choice, dict):
        return ""
    text = choice.get("text")
    if text is None:  # chat chunks carry {"delta": {"content": ...}}
        delta = choice.get("delta")
        text = delta.get("content") if isinstance(delta, dict) else None
    return text if isinstance(text, str) else ""


class SseTimer:
    """A body hook: records when each text-carrying event arrived and the usage count."""

    __slots__ = ("_buffer", "completion_tokens", "malformed", "times")

    def __init__(self) -> None:
        self._buffer = b""
        self.times: list[float] = []  # perf_counter of each event that carried text
        self.completion_tokens: int | None = None  # from the final usage event, if sent
        self.malformed = 0

    def __call__(self, data: bytes) -> None:
        now = time.perf_counter()
        *events, self._buffer = (self._buffer + data).replace(b"\r\n", b"\n").split(b"\n\n")
        for event in events:
            for line in event.split(b"\n"):
                if line.startswith(b"data:"):
                    self._data(line[5:].strip(), now)

    def _data(self, payload: bytes, now: float) -> None:
        if payload == b"[DONE]" or not payload:
            return
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError:
            self.malformed += 1
            return
        if not isinstance(doc, dict):
            self.malformed += 1
            return
        usage = doc.get("usage")
        if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
            self.completion_tokens = usage["completion_tokens"]
        choices = doc.get("choices")
        if isinstance(choices, list) and choices and _text(choices[0]):
            self.times.append(now)

    def ttft(self, sent: float) -> float | None:
        return self.times[0] - sent if self.times else None

    def gaps(self) -> list[float]:
        times = self.times
        return [b - a for a, b in itertools.pairwise(times)]

    @property
    def tokens(self) -> int:
        """The server's own count when it sent one, else one per text event."""
        return self.completion_tokens if self.completion_tokens is not None else len(self.times)
