"""Routes written like "/v2/models/{model}/infer", matched to their handlers.

The router knows paths and methods only; what a handler does with the request is the
protocol adapters' business (`inferd.api`).
"""

from __future__ import annotations

import re

from inferd.errors import MethodNotAllowedError, NotFoundError
from inferd.http.messages import Handler


class Router:
    """Routes written like "/v2/models/{model}/infer"; a {name} matches one path segment."""

    def __init__(self) -> None:
        self._routes: list[tuple[re.Pattern[str], frozenset[str], Handler]] = []
        self._static: dict[str, tuple[frozenset[str], Handler]] = {}

    def add(self, pattern: str, handler: Handler, methods: tuple[str, ...] = ("GET",)) -> None:
        allowed = frozenset(methods)
        if "{" not in pattern:
            self._static[pattern] = (allowed, handler)
            return
        parts = re.split(r"\{(\w+)\}", pattern)  # literal, name, literal, name, ...
        regex = "".join(
            re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/:]+)" for i, part in enumerate(parts)
        )
        self._routes.append((re.compile(f"^{regex}$"), allowed, handler))

    def match(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        """The handler and parameters for a request; 404 or 405 when there is none."""
        params: dict[str, str] = {}
        static = self._static.get(path)
        if static is not None:
            allowed, handler = static
        else:
            for regex, methods, route_handler in self._routes:
                matched = regex.match(path)
                if matched:
                    allowed, handler, params = methods, route_handler, matched.groupdict()
                    break
            else:
                raise NotFoundError(f"no route {path}; see the README for the API")
        if method not in allowed and not (method == "HEAD" and "GET" in allowed):
            names = sorted(allowed)
            raise MethodNotAllowedError(f"{path} takes {', '.join(names)}, not {method}", names)
        return handler, params
