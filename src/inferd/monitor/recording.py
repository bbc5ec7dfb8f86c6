"""What a served prediction leaves behind: its decisions' actions and its log record.

Both are saved in one store transaction BEFORE the response is sent, so a client that got
an answer can count on its actions being delivered (the dispatcher reads them from the
outbox, at least once, even after a crash) and on its feedback finding the prediction.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from inferd.monitor.costs import Accounting
from inferd.pipeline import Outcome
from inferd.spec import LogAction, ModelSpec, PythonAction, WebhookAction
from inferd.stages import Values
from inferd.stages.decide import Rule, plain
from inferd.store import ActionRecord, PredictionRecord

if TYPE_CHECKING:
    from pathlib import Path

    from inferd.spec import ActionSpec
    from inferd.store import StoreWriter

_KEYS = uuid.UUID("5f1e0a3c-8d2b-4c7e-9a61-0b3d7e2f4c85")
"""Namespace of idempotency keys: uuid5 of (model, request, item, decision, action)."""


def kept_inputs(spec: ModelSpec, given: Values) -> dict[str, Any] | None:
    """An item's wire inputs as the model's prediction log keeps them."""
    log = spec.prediction_log
    if log is None or log.inputs == "none":
        return None
    names = list(given) if log.inputs == "all" else log.inputs
    return {name: plain(given[name]) for name in names if name in given}


def idempotency_key(model: str, request_id: str, item: int, decision: str, action: int) -> str:
    """The same for every delivery of one action, different for every other action."""
    return str(
        uuid.uuid5(_KEYS, "\x00".join((model, request_id, str(item), decision, str(action))))
    )


def action_target(action: ActionSpec, model_dir: Path | None) -> dict[str, Any]:
    """The action's settings as they are now, kept with it: a pending action is delivered
    as it was decided even if model.yaml changes before the server restarts."""
    if isinstance(action, WebhookAction):
        return action.model_dump(exclude={"type"})
    if isinstance(action, LogAction):
        return {"level": action.level}
    assert isinstance(action, PythonAction)
    return {"entry": action.entry, "folder": str(model_dir.resolve()) if model_dir else ""}


class Recorder:
    """Turns a request's outcomes into store records and saves them (one transaction)."""

    def __init__(
        self,
        writer: StoreWriter,
        *,
        sample: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.time,
        accounting: Accounting | None = None,
        traceparent: Callable[[], str | None] | None = None,
    ) -> None:
        self.writer = writer
        self.traceparent = traceparent
        """The current trace's W3C traceparent (tracing on): webhooks carry it on."""
        self.accounting = accounting
        """Prices each logged prediction (None: `--no-monitor`, the cost columns stay NULL)."""
        self._sample = sample
        self._clock = clock

    async def save(
        self,
        spec: ModelSpec,
        version: str,
        model_dir: Path | None,
        request_id: str,
        outcomes: Sequence[Outcome],
        latency_s: float,
    ) -> None:
        now = self._clock()
        log = spec.prediction_log
        predictions = [
            self._logged(spec, version, request_id, outcome, now, latency_s)
            for outcome in outcomes
            if log is not None and (log.sample_rate >= 1.0 or self._sample() < log.sample_rate)
        ]
        actions = [
            self._action(spec, version, model_dir, request_id, outcome, rule, index, action, now)
            for outcome in outcomes
            for rule in outcome.decided
            for index, action in enumerate(rule.actions)
        ]
        if actions and self.traceparent is not None:
            parent = self.traceparent()
            if parent is not None:
                for record in actions:
                    if record.kind == "webhook":
                        record.target["traceparent"] = parent
        if actions:  # durable before the answer: one transaction with their log rows
            await self.writer.save(predictions, actions)
        elif predictions:  # a log line need not hold up the answer
            self.writer.log(predictions)

    async def flush(self) -> None:
        """Wait until the log rows queued so far are committed (feedback then finds them)."""
        await self.writer.flush()

    def _logged(
        self,
        spec: ModelSpec,
        version: str,
        request_id: str,
        outcome: Outcome,
        now: float,
        latency_s: float,
    ) -> PredictionRecord:
        result = outcome.result
        accounting = self.accounting
        charge = accounting.charge(result.cpu_s, result.gpu_s) if accounting else None
        return PredictionRecord(
            request_id=request_id,
            item=outcome.item,
            model=spec.name,
            version=version,
            created_at=now,
            latency_ms=latency_s * 1000.0,
            inputs=kept_inputs(spec, outcome.inputs),
            prediction=_json_fields(outcome.prediction.fields),
            decisions=[rule.decision for rule in outcome.decided],
            stage_ms={
                "queue": outcome.queue_s * 1000.0,
                "preprocess": result.preprocess_s * 1000.0,
                "model": result.model_s * 1000.0,
                "postprocess": result.postprocess_s * 1000.0,
            },
            cpu_ms=result.cpu_s * 1000.0 if charge else None,
            gpu_ms=result.gpu_s * 1000.0 if charge and result.gpu_s else None,
            energy_j=charge.joules if charge else None,
            energy_method=charge.method if charge else None,
            cost=charge.cost if charge else None,
        )

    def _action(
        self,
        spec: ModelSpec,
        version: str,
        model_dir: Path | None,
        request_id: str,
        outcome: Outcome,
        rule: Rule,
        index: int,
        action: ActionSpec,
        now: float,
    ) -> ActionRecord:
        key = idempotency_key(spec.name, request_id, outcome.item, rule.decision, index)
        name = f"{rule.decision}.{index}.{action.type}"
        event: dict[str, Any] = {
            "request_id": request_id,
            "model": spec.name,
            "version": version,
            "decision": rule.decision,
            "prediction": _json_fields(outcome.prediction.fields),
            "item": outcome.item,
            "action": name,
            "time": datetime.fromtimestamp(now, UTC).isoformat(),
            "idempotency_key": key,
        }
        if outcome.read_inputs:
            event["inputs"] = outcome.read_inputs
        return ActionRecord(
            model=spec.name,
            version=version,
            request_id=request_id,
            item=outcome.item,
            decision=rule.decision,
            action=name,
            kind=action.type,
            target=action_target(action, model_dir),
            event=event,
            idempotency_key=key,
            created_at=now,
        )


def _json_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Prediction fields as plain JSON values (numpy scalars become Python numbers)."""
    return {key: _jsonable(value) for key, value in fields.items()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value
