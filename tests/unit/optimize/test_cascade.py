"""Cascade thresholds: every point's accuracy and share sent on, computed once from both
members' answers, must equal what the cascade itself gives when served that threshold."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from inferd.errors import SpecError
from inferd.optimize.cascade import (
    CascadePoint,
    MemberAnswers,
    cascade_thresholds,
    cheapest,
    points,
    write_when,
)
from inferd.optimize.evaluate import evaluate
from inferd.repository import ModelRepository
from inferd.spec import load_spec
from tests.support import cascades


def test_every_point_is_what_the_cascade_gives_at_its_threshold(tmp_path: Path) -> None:
    root = cascades.with_eval(tmp_path)
    found = cascade_thresholds(ModelRepository(root).load_one("cascade"))
    assert found[0].share_sent == 0 and found[-1].share_sent == 1
    assert found[0].threshold == 0 and found[-1].threshold == 1.01
    shares = [p.share_sent for p in found]
    assert shares == sorted(shares) and len(set(shares)) == len(shares)
    for point in [*found[:: max(1, len(found) // 6)], found[-1]]:
        write_when(root / "cascade", point.when)
        entry = ModelRepository(root).load_one("cascade")
        report = evaluate(entry)
        assert report.value == pytest.approx(point.metric)
        outcomes = entry.latest.predictive.predict_instances(  # type: ignore[union-attr]
            [json.loads(line)["instance"] for line in (root / "cascade" / "eval.jsonl").open()]
        )
        sent = sum(o.parameters["cascade"] == "then" for o in outcomes)  # type: ignore[union-attr]
        assert sent / len(outcomes) == pytest.approx(point.share_sent)


def test_points_send_tied_confidences_together_and_choose_the_shortest_threshold() -> None:
    first = MemberAnswers(["a", "b", "a", "b"], np.array([0.9, 0.35, 0.35, 0.62]))
    then = MemberAnswers(["a", "a", "a", "a"], np.zeros(4))
    found = points(first, then, ["a", "a", "a", "a"])
    assert found == [
        CascadePoint(0.0, 0.5, 0.0),
        CascadePoint(0.4, 0.75, 0.5),  # both 0.35s go on together
        CascadePoint(0.7, 1.0, 0.75),
        CascadePoint(1.01, 1.0, 1.0),
    ]
    assert found[1].when == "confidence < 0.4"
    assert cheapest(found, 0.9) == found[2]
    assert cheapest(found, 1.5) is None


def test_write_when_keeps_the_file_and_refuses_a_model_without_a_cascade(tmp_path: Path) -> None:
    root = cascades.with_eval(tmp_path)
    path = root / "cascade" / "model.yaml"
    path.write_text("# chosen by hand\n" + path.read_text(encoding="utf-8"), encoding="utf-8")
    write_when(root / "cascade", "confidence < 0.55")
    assert path.read_text(encoding="utf-8").startswith("# chosen by hand\n")
    spec = load_spec(root / "cascade")
    assert spec is not None and spec.cascade is not None
    assert spec.cascade.when == "confidence < 0.55"
    with pytest.raises(SpecError, match="has no cascade: section"):
        write_when(root / "small", "confidence < 0.5")
    with pytest.raises(SpecError, match="is not a cascade"):
        cascade_thresholds(ModelRepository(root).load_one("small"))
