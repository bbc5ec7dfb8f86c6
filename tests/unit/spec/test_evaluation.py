"""`eval:` and `prediction_log:`: metrics, their options, and the inputs kept."""

from __future__ import annotations

from inferd.spec import parse_spec
from tests.unit.spec.documents import classifier, error


def test_bad_eval_metric() -> None:
    message = error({"name": "m", "eval": {"data": "x.jsonl", "metric": "f1"}})
    assert "eval.metric" in message


def test_map_metric_takes_an_iou() -> None:
    spec = parse_spec({"name": "m", "eval": {"data": "e.jsonl", "metric": "map", "iou": 0.75}})
    assert spec.eval is not None and spec.eval.iou == 0.75


def test_prediction_log_inputs_must_be_inputs() -> None:
    message = error(classifier(prediction_log={"inputs": ["x", "nope"]}))
    assert "['nope']" in message
