"""Stage 6, decide: a model's rules over each prediction, checked once when the model loads.

A rule's `when` is an expression (inferd.expression: parsed, never evaluated as Python) over
what one item's prediction holds (`label`, `score`, `value`, `detections`, ... also under
`prediction.`; a classifier's also `confidence`, its top probability, and `margin`, how far
the top one is ahead of the second), the item's wire inputs (`inputs.<name>`) and the
request's parameters (`parameters.<name>`). Every name, label and input a rule mentions is
checked against the model when it loads, so a typo fails `inferd validate`, never a request.
A cascade's `when` is checked and evaluated here too (`Rules.condition`, `Rules.holds`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inferd.errors import BadRequestError, SpecError
from inferd.expression import NOT_LITERAL, Expression, ExpressionError, parse, truth
from inferd.spec import ActionSpec, ModelSpec, PythonAction, TensorSpec
from inferd.stages import Item, Prediction

_ROOTS = ("prediction", "inputs", "parameters")


@dataclass(frozen=True)
class Rule:
    decision: str
    expression: Expression
    actions: tuple[ActionSpec, ...]
    position: int
    """Index in model.yaml's decide list (for messages)."""


def prediction_fields(spec: ModelSpec) -> set[str]:
    """The fields a prediction of this model carries (what rules may read)."""
    if spec.task == "classification":
        return {"label", "score", "top_k", *_CLASSIFIER_DERIVED}
    if spec.task == "detection":
        return {"detections"}
    if spec.task == "forecasting":
        return {"forecast"}
    if spec.task == "regression":
        stage = spec.postprocess[0]
        names = getattr(stage, "names", None)
        return set(names) if names else {"value", "values"}
    return set()


_CLASSIFIER_DERIVED = ("confidence", "margin")
"""Names a classifier's rules may read that its prediction does not carry as fields."""


def classifier_derived(prediction: Prediction) -> dict[str, float]:
    """`confidence`: the top class's probability; `margin`: its lead over the second's."""
    probabilities = prediction.tensors.get("probabilities")
    if probabilities is not None and probabilities.size > 1:
        top, second = np.partition(probabilities.reshape(-1), -2)[[-1, -2]]
        return {"confidence": float(top), "margin": float(top - second)}
    score = float(prediction.fields["score"])
    return {"confidence": score, "margin": score}


def _functions(spec: ModelSpec) -> dict[str, int]:
    if spec.task == "classification":
        return {"probability": 1}
    if spec.task == "detection":
        return {"count": 1}
    return {}


class Rules:
    """The decide stage of one model version; thread-safe (it holds no state per request)."""

    def __init__(
        self,
        spec: ModelSpec,
        labels: list[str] | None,
        inputs: list[TensorSpec],
        model_dir: Path | None,
        trust_code: bool,
    ) -> None:
        self._labels = labels
        self._fields = prediction_fields(spec)
        self._function_arities = _functions(spec)
        self._input_names = {t.name for t in inputs}
        self.rules = [
            self._rule(position, rule.decision, rule.when, tuple(rule.actions))
            for position, rule in enumerate(spec.decide)
        ]
        for rule in self.rules:
            for action in rule.actions:
                if isinstance(action, PythonAction):
                    self._check_python(action, rule, model_dir, trust_code)
        self.input_names = sorted(
            {path[1] for rule in self.rules for path in rule.expression.names() if _is_input(path)}
        )
        """Wire inputs some rule reads (only these are copied out of each item)."""

    # --- loading ------------------------------------------------------------------------

    def _rule(
        self,
        position: int,
        decision: str,
        when: str,
        actions: tuple[ActionSpec, ...],
    ) -> Rule:
        where = f"decide[{position}] ({decision}).when"
        return Rule(decision, self.condition(when, where), actions, position)

    def condition(self, when: str, where: str) -> Expression:
        """Parse `when` and check every name, input and label it mentions against the model
        (SpecError naming `where`)."""
        try:
            expression = parse(when, self._function_arities)
        except ExpressionError as error:
            raise SpecError(f"{where}: {error.message}") from None
        for path in expression.names():
            self._check_name(path, where)
        for name, args in expression.calls():
            if name in ("probability", "count"):
                self._check_labels([a for a in args if a is not NOT_LITERAL], where, name + "()")
        for path in (("label",), ("prediction", "label")):
            if "label" in self._fields:
                literals = expression.literals_compared_with(path)
                self._check_labels(literals, where, ".".join(path))
        return expression

    def _check_name(self, path: tuple[str, ...], where: str) -> None:
        root = path[0]
        if root == "parameters":
            return
        if root == "inputs":
            if len(path) < 2 or path[1] not in self._input_names:
                raise SpecError(
                    f"{where}: {'.'.join(path)!r} is not an input of this model; "
                    f"its inputs are {', '.join(sorted(self._input_names)) or 'none'}"
                )
            return
        field = path[1] if root == "prediction" and len(path) > 1 else root
        if root == "prediction" and len(path) == 1:
            return
        if field not in self._fields:
            known = [*sorted(self._fields), "inputs.<name>", "parameters.<name>"]
            raise SpecError(
                f"{where}: unknown name {'.'.join(path)!r}; a rule can read {', '.join(known)}"
            )

    def _check_labels(self, values: list[Any], where: str, what: str) -> None:
        if self._labels is None:
            return
        for value in values:
            if isinstance(value, str) and value not in self._labels:
                raise SpecError(
                    f"{where}: {what} is compared with {value!r}, which is not a label of this "
                    f"model; its labels are {', '.join(self._labels)}"
                )

    @staticmethod
    def _check_python(
        action: PythonAction, rule: Rule, model_dir: Path | None, trust_code: bool
    ) -> None:
        where = f"decide[{rule.position}] ({rule.decision})"
        if not trust_code:
            raise SpecError(
                f"{where}: python actions run code from the model folder; start the server "
                "with --trust-code to allow them"
            )
        file = action.entry.partition(":")[0]
        if model_dir is not None and not (model_dir / file).is_file():
            raise SpecError(f"{where}: python action file {model_dir / file} does not exist")

    # --- deciding -----------------------------------------------------------------------

    def inputs_of(self, item: Item) -> dict[str, Any]:
        """The wire inputs rules read, as plain values."""
        given = item.inputs
        return {name: plain(given[name]) for name in self.input_names if name in given}

    def decide(
        self, prediction: Prediction, inputs: Mapping[str, Any], parameters: Mapping[str, Any]
    ) -> list[Rule]:
        """The rules that hold for one item's prediction, in model.yaml order."""
        env = self._environment(prediction, inputs, parameters)
        functions = self._bound_functions(prediction)
        matched = []
        for rule in self.rules:
            try:
                holds = truth(rule.expression, env, functions)
            except BadRequestError as error:
                raise error.about(f"decision rule {rule.decision!r}") from None
            if holds:
                matched.append(rule)
        return matched

    def holds(
        self,
        expression: Expression,
        prediction: Prediction,
        inputs: Mapping[str, Any],
        parameters: Mapping[str, Any],
    ) -> bool:
        """Whether a `condition` is true for one item's prediction."""
        env = self._environment(prediction, inputs, parameters)
        return truth(expression, env, self._bound_functions(prediction))

    def _environment(
        self, prediction: Prediction, inputs: Mapping[str, Any], parameters: Mapping[str, Any]
    ) -> dict[str, Any]:
        fields = prediction.fields
        if "confidence" in self._fields:
            fields = {**fields, **classifier_derived(prediction)}
        return {**fields, "prediction": fields, "inputs": inputs, "parameters": parameters}

    def _bound_functions(self, prediction: Prediction) -> dict[str, Callable[..., Any]]:
        fields = prediction.fields
        if "detections" in self._fields:

            def count(label: Any) -> int:
                return sum(1 for d in fields["detections"] if d["label"] == label)

            return {"count": count}
        if "label" in self._fields:
            labels = self._labels
            probabilities = prediction.tensors.get("probabilities")

            def probability(label: Any) -> float:
                if labels is not None and probabilities is not None:
                    return float(probabilities[labels.index(label)]) if label in labels else 0.0
                return next((p["score"] for p in fields["top_k"] if p["label"] == label), 0.0)

            return {"probability": probability}
        return {}


def _is_input(path: tuple[str, ...]) -> bool:
    return path[0] == "inputs" and len(path) > 1


MAX_PLAIN_VALUES = 4096
"""Larger arrays (a decoded picture, a long signal) are not copied into rules or the log."""


def plain(value: Any) -> Any:
    """A wire value as JSON-like data: a 1-element array as its single value, text as str,
    and binary data (an image's or a clip's bytes) as None: never logged or read by rules."""
    if isinstance(value, np.ndarray):
        if value.size > MAX_PLAIN_VALUES:
            return None
        if value.size == 1 or value.dtype == np.object_:
            values = [plain(v) if isinstance(v, bytes) else v for v in value.reshape(-1).tolist()]
            return values[0] if len(values) == 1 else values
        return value.tolist()
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return None
    return value
