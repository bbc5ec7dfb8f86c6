"""Stage 6, decide and act: rules over each item's prediction, then the actions they call
for and the prediction log saved together, before the request is answered.

The saving is the recorder's (`inferd.monitor.recording`); the pipeline only says what was
decided about which item, so a client that got its answer can count on the actions.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from inferd.pipeline.batch import ItemResult
from inferd.spec import ModelSpec
from inferd.stages import Item, Prediction, Values
from inferd.stages.decide import Rule, Rules

logger = logging.getLogger("inferd.pipeline")


@dataclass(frozen=True, slots=True)
class Outcome:
    """One item's answer and what was decided about it."""

    item: int
    """The item's position in its request."""
    inputs: Values
    """The item's wire inputs, as decoded."""
    prediction: Prediction
    decided: list[Rule]
    read_inputs: dict[str, Any]
    """The wire inputs the rules read (they go into action events)."""
    result: ItemResult
    """How it ran: each stage's seconds and its share of the CPU (the log keeps them)."""
    queue_s: float


class Recorder(Protocol):
    """Where stage 6 leaves its outcomes: the actions' outbox and the prediction log."""

    async def save(
        self,
        spec: ModelSpec,
        version: str,
        model_dir: Path | None,
        request_id: str,
        outcomes: Sequence[Outcome],
        latency_s: float,
    ) -> None: ...

    async def flush(self) -> None:
        """Wait until what was saved so far is in the store (log rows may be written behind
        their answers)."""


class Act:
    """Stage 6 of one model version: decides, and hands the outcomes to the recorder."""

    def __init__(
        self, spec: ModelSpec, rules: Rules | None, version: int, model_dir: Path | None
    ) -> None:
        self.spec = spec
        self.rules = rules
        self.version = str(version)
        self.model_dir = model_dir

    @property
    def needed(self) -> bool:
        """Most models have no rules and no prediction log: for them stage 6 is a no-op."""
        return self.rules is not None or self.spec.prediction_log is not None

    async def run(
        self,
        items: Sequence[Item],
        results: Sequence[tuple[ItemResult, float]],
        request_id: str,
        parameters: Mapping[str, Any],
        recorder: Recorder | None,
        latency_s: float,
    ) -> list[list[str]]:
        """Run the rules on every item, then save the actions and log records; the names of
        the decisions made about each item."""
        rules = self.rules
        outcomes = []
        for index, (item, (result, queue_s)) in enumerate(zip(items, results, strict=True)):
            prediction = result.prediction
            read = rules.inputs_of(item) if rules is not None else {}
            decided = rules.decide(prediction, read, parameters) if rules is not None else []
            outcomes.append(Outcome(index, item.inputs, prediction, decided, read, result, queue_s))
        if recorder is not None:
            await recorder.save(
                self.spec, self.version, self.model_dir, request_id, outcomes, latency_s
            )
        elif any(rule.actions for outcome in outcomes for rule in outcome.decided):
            logger.warning("request %s: decisions made but no store to act on them", request_id)
        return [[rule.decision for rule in outcome.decided] for outcome in outcomes]
