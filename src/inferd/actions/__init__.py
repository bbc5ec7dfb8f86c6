"""Delivering the actions that decisions enqueue: at least once, in order per model.

    Dispatcher(store, trust_code=..., on_outcome=...)   start() / notify(models) / stop()

Kinds: ``webhook`` (a JSON POST with an Idempotency-Key, retried with backoff), ``log`` (one
structured line on the ``inferd.actions`` logger) and ``python`` (a function in the model's
folder, only with --trust-code).
"""

from inferd.actions.delivery import TRUST_CODE_NEEDED, Outcome, retry_delay
from inferd.actions.dispatcher import Dispatcher, OutcomeCallback

__all__ = ["TRUST_CODE_NEEDED", "Dispatcher", "Outcome", "OutcomeCallback", "retry_delay"]
