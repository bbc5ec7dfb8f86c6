"""Delivering one action, by kind: a webhook POST, a structured log line, a trusted function.

Each delivery answers an :class:`Outcome`: delivered, retry (a later attempt may succeed) or
failed (no attempt can: a 4xx, a bad setting). The dispatcher turns a retry into a backoff, or
into failed once the action's ``max_attempts`` are spent.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import httpx

from inferd.actions.trusted import EntryError, TrustedFunctions
from inferd.errors import SpecError
from inferd.spec.decide import PYTHON_ACTION_TIMEOUT_S
from inferd.spec.environment import Environment
from inferd.store.records import DELIVERED, FAILED, StoredAction
from inferd.store.schema import dumps

RETRY = "retry"
TRUST_CODE_NEEDED = "python actions run only when the server is started with --trust-code"
_RETRYABLE_STATUSES = frozenset({408, 425, 429})
_RETRY_AFTER_STATUSES = frozenset({429, 503})
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
_BODY_PREVIEW = 200

action_logger = logging.getLogger("inferd.actions")


@dataclass(frozen=True)
class Outcome:
    result: str  # "delivered" | "retry" | "failed"
    error: str | None = None
    retry_after_s: float | None = None  # the receiver's Retry-After, when it sent one


def setting(target: dict[str, Any], name: str, default: float) -> float:
    """A numeric setting of the target, or the default when it is missing or not a number."""
    value = target.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return default
    return float(value)


def max_attempts(target: dict[str, Any]) -> int:
    return max(1, int(setting(target, "max_attempts", 10)))


def retry_delay(target: dict[str, Any], attempts: int, retry_after_s: float | None = None) -> float:
    """Seconds before the next attempt, after ``attempts`` attempts: exponential with ±20%
    jitter, capped at ``max_backoff_s``; a receiver's Retry-After wins, up to the same cap."""
    cap = max(0.0, setting(target, "max_backoff_s", 300.0))
    if retry_after_s is not None:
        return min(retry_after_s, cap)
    base = max(0.0, setting(target, "backoff_s", 1.0))
    delay = min(base * 2.0 ** min(attempts - 1, 60), cap)
    return delay * random.uniform(0.8, 1.2)


def _retry_after(response: httpx.Response) -> float | None:
    if response.status_code not in _RETRY_AFTER_STATUSES:
        return None
    try:
        seconds = float(response.headers.get("retry-after", ""))
    except ValueError:
        return None  # absent, or an HTTP date: the backoff decides
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


class Deliverer:
    """Delivers actions of every kind; holds the one shared HTTP client."""

    def __init__(
        self, *, trust_code: bool, environment: Environment, user_agent: str, executor: Executor
    ) -> None:
        self._trust_code = trust_code
        self._environment = environment  # a webhook's ${NAME}s are read at delivery
        self._user_agent = user_agent
        self._executor = executor  # runs trusted functions, which may block
        self._functions = TrustedFunctions()
        self._client = httpx.AsyncClient(follow_redirects=False, timeout=5.0)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def deliver(self, action: StoredAction) -> Outcome:
        if action.kind == "webhook":
            return await self._webhook(action)
        if action.kind == "log":
            return self._log(action)
        if action.kind == "python":
            return await self._python(action)
        return Outcome(FAILED, f"unknown action kind {action.kind!r} (webhook, log or python)")

    async def _webhook(self, action: StoredAction) -> Outcome:
        target = action.target
        url = target.get("url")
        if not isinstance(url, str) or not url:
            return Outcome(FAILED, "the webhook action has no url")
        custom = target.get("headers") or {}
        if not isinstance(custom, dict):
            return Outcome(FAILED, "the webhook action's headers must be a mapping")
        headers = {"User-Agent": self._user_agent}
        try:  # the store keeps ${NAME}: secrets are read from the environment only now
            url = self._environment.expand(url, "the webhook action's url")
            for name, value in custom.items():
                headers[str(name)] = self._environment.expand(
                    str(value), f"the webhook action's header {name}"
                )
        except SpecError as unset:  # the server was restarted without the variable
            return Outcome(RETRY, unset.message)
        headers["Content-Type"] = "application/json"
        headers["Idempotency-Key"] = action.idempotency_key
        parent = target.get("traceparent")
        if isinstance(parent, str) and parent:  # the deciding request's trace goes on
            headers["traceparent"] = parent
        timeout_s = max(0.001, setting(target, "timeout_s", 5.0))
        body = dumps(action.event).encode()
        try:
            async with asyncio.timeout(timeout_s):  # a total deadline, not per read
                async with self._client.stream(
                    "POST", url, content=body, headers=headers, timeout=timeout_s
                ) as response:
                    if response.is_success:
                        return Outcome(DELIVERED)
                    preview = await _preview(response)
        except (TimeoutError, httpx.TimeoutException):
            return Outcome(RETRY, f"no answer from {url} within {timeout_s:g} s")
        except (httpx.UnsupportedProtocol, httpx.InvalidURL, httpx.LocalProtocolError) as exc:
            return Outcome(FAILED, f"cannot POST to {url!r}: {exc}")
        except httpx.TransportError as exc:
            return Outcome(RETRY, f"could not reach {url}: {type(exc).__name__}: {exc}")
        status = response.status_code
        error = f"HTTP {status} from {url}: {preview}"
        if status in _RETRYABLE_STATUSES or status >= 500:
            return Outcome(RETRY, error, _retry_after(response))
        if response.is_redirect:
            location = response.headers.get("location", "?")
            return Outcome(
                FAILED,
                f"HTTP {status} from {url}: redirects are not followed; point the action at "
                f"{location} if that is the receiver",
            )
        return Outcome(FAILED, error)  # another 4xx: the same request cannot succeed later

    def _log(self, action: StoredAction) -> Outcome:
        level_name = str(action.target.get("level", "info")).lower()
        level = _LEVELS.get(level_name)
        if level is None:
            return Outcome(
                FAILED, f"unknown log level {level_name!r}: use debug, info, warning or error"
            )
        line = {
            "action": action.action,
            "model": action.model,
            "version": action.version,
            "request_id": action.request_id,
            "item": action.item,
            "decision": action.decision,
            "idempotency_key": action.idempotency_key,
            "event": action.event,
        }
        action_logger.log(level, "%s", dumps(line))
        return Outcome(DELIVERED)

    async def _python(self, action: StoredAction) -> Outcome:
        if not self._trust_code:
            return Outcome(FAILED, TRUST_CODE_NEEDED)
        entry = str(action.target.get("entry", ""))
        folder = str(action.target.get("folder", ""))
        loop = asyncio.get_running_loop()
        try:
            function = await loop.run_in_executor(
                self._executor, self._functions.load, folder, entry
            )
        except EntryError as exc:
            return Outcome(FAILED, str(exc))
        except Exception as exc:
            return Outcome(RETRY, f"importing {entry!r} raised {type(exc).__name__}: {exc}")
        timeout_s = setting(action.target, "timeout_s", PYTHON_ACTION_TIMEOUT_S)
        call = loop.run_in_executor(self._executor, function, action.event)
        try:
            await asyncio.wait_for(call, timeout_s)
        except TimeoutError:
            return Outcome(RETRY, f"{entry} did not return within {timeout_s:g} s")
        except Exception as exc:
            return Outcome(RETRY, f"{entry} raised {type(exc).__name__}: {exc}")
        return Outcome(DELIVERED)


async def _preview(response: httpx.Response) -> str:
    """The start of an error response's body, without reading all of a huge one."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= 4 * _BODY_PREVIEW:
            break
    return b"".join(chunks).decode("utf-8", "replace")[:_BODY_PREVIEW]


__all__ = [
    "RETRY",
    "TRUST_CODE_NEEDED",
    "Deliverer",
    "Outcome",
    "max_attempts",
    "retry_delay",
    "setting",
]
