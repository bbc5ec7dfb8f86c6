"""The HTTP server's budget: what one connection and the whole server may take.

Every limit a slow or hostile client could otherwise exhaust is bounded here, and each
refusal says which limit it hit: connections at once (503), the bytes of a request's line
and headers (431), the body (413), the framing around a chunked body (400), and deadlines
that no trickle of bytes can extend: the headers must have arrived `header_timeout_s` after
the request began, the body `body_timeout_s` after the headers (408).
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
DRAIN_S = 20.0
"""On a stop signal, what is in flight gets this long to finish (`--drain-seconds`): the
requests, then the models' queues; then the server exits whatever still runs."""


@dataclass(frozen=True)
class HttpLimits:
    max_connections: int = 1000
    """Open client connections at once; one more is answered 429 and closed."""
    max_header_bytes: int = 64 * 1024
    """A request's URL and headers together."""
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    header_timeout_s: float = 10.0
    """From a request's first byte to the end of its headers."""
    body_timeout_s: float = 60.0
    """From the end of a request's headers to the end of its body."""
    keep_alive_s: float = 5.0
    """An idle keep-alive connection is closed after this (as uvicorn's default)."""
    max_pipelined: int = 16
    """Complete requests queued behind the running one before reading pauses."""
    framing_factor: int = 8
    """A chunked body's raw bytes may be this many times its content, plus
    `max_header_bytes` (1-byte chunks take 6): chunk extensions cannot stream forever."""

    def __post_init__(self) -> None:
        for name in ("max_connections", "max_header_bytes", "max_body_bytes", "max_pipelined"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1; got {getattr(self, name)}")
        for name in ("header_timeout_s", "body_timeout_s", "keep_alive_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive; got {getattr(self, name)}")
