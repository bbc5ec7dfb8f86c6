"""A cascade in tune: its thresholds scored on the eval set, a few kept for measuring, staged
beside its members, and the chosen one written into its model.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from inferd.errors import SpecError
from inferd.optimize.cascade import CascadePoint
from inferd.optimize.tuning.apply import apply
from inferd.optimize.tuning.cascade import candidates, curve, front
from inferd.optimize.tuning.space import Config, cascade_space
from inferd.optimize.tuning.staging import stage, stage_members
from inferd.repository import ModelRepository, load_model
from inferd.spec import load_spec
from tests.support import cascades


def point(threshold: float, metric: float, share: float) -> CascadePoint:
    return CascadePoint(threshold, metric, share)


def test_the_front_keeps_only_points_more_accurate_than_every_cheaper_one() -> None:
    found = [
        point(0.0, 0.80, 0.0),
        point(0.3, 0.85, 0.1),
        point(0.4, 0.84, 0.2),  # sends more on, less accurate
        point(0.5, 0.85, 0.3),  # sends more on, no more accurate
        point(0.7, 0.90, 0.5),
        point(1.01, 0.88, 1.0),  # the big model alone is worse than the best mix
    ]
    assert [p.threshold for p in front(found)] == [0.0, 0.3, 0.7]


def test_candidates_are_thinned_keeping_the_ends_and_the_cheapest_meeting_the_bound() -> None:
    found = [point(i / 20, 0.80 + i / 200, i / 20) for i in range(21)]  # each one better
    kept = candidates(found, limit=0.853, count=4)
    thresholds = [p.threshold for p in kept]
    assert len(kept) == 4
    assert thresholds[0] == 0.0 and thresholds[-1] == 1.0  # cheapest and most accurate
    assert 0.55 in thresholds  # the fewest sent on with accuracy >= 0.853
    assert thresholds == sorted(thresholds)
    assert [p.threshold for p in candidates(found[:3], None)] == [0.0, 0.05, 0.1]  # all fit
    with pytest.raises(SpecError, match="at least 2"):
        candidates(found, None, count=1)


def test_the_curve_of_a_served_cascade_and_its_candidates(tmp_path: Path) -> None:
    root = cascades.with_eval(tmp_path)
    found = curve(ModelRepository(root).load_one("cascade"))
    shares = [p.share_sent for p in found.points]
    assert shares[0] == 0.0 and shares[-1] == 1.0 and shares == sorted(shares)
    kept = candidates(found.points, None, count=3)
    assert 2 <= len(kept) <= 3
    best = max(p.metric for p in found.points)
    assert kept[-1].metric == best and kept[0].share_sent == 0.0
    assert found.source == found.points[-1].metric  # every item sent on: `big` alone


def test_a_cascade_stages_its_thresholds_beside_its_members(tmp_path: Path) -> None:
    root = cascades.with_eval(tmp_path / "repo")
    configs = cascade_space([0.5, 0.9, 0.5])
    assert configs == [Config.cascade(0.5), Config.cascade(0.9)]
    folders = stage(tmp_path / "configs", root / "cascade", configs)
    members = stage_members(tmp_path / "members", root, ["small", "big"])
    assert [m.name for m in members] == ["small", "big"]
    served = tmp_path / "served"
    served.mkdir()
    for folder in [*members, *folders.values()]:
        (served / folder.name).symlink_to(folder)
    repository = ModelRepository(served)
    repository.load()
    for config, folder in folders.items():
        entry = repository.entry(folder.name)
        assert not entry.errors, entry.errors
        assert entry.spec is not None and entry.spec.cascade is not None
        assert entry.spec.cascade.when == f"confidence < {config.threshold:g}"
        assert not any(p.name.isdigit() for p in folder.iterdir())  # no versions of its own
    assert (root / "cascade" / "model.yaml").read_text().count("confidence < 0.7") == 1


def test_a_missing_member_is_a_clear_error(tmp_path: Path) -> None:
    root = cascades.with_eval(tmp_path / "repo")
    evaluation = {"data": "eval.jsonl", "metric": "accuracy"}
    cascades.cascade(root, "lost", "small", "gone", "confidence < 0.5", eval=evaluation)
    with pytest.raises(SpecError, match="member 'gone' is not a model of"):
        stage_members(tmp_path / "members", root, ["small", "gone"])
    assert not (tmp_path / "members").exists()  # nothing staged before the check
    with pytest.raises(SpecError, match="'gone' is not a model of this repository"):
        curve(ModelRepository(root).load_one("lost"))


def test_apply_writes_the_chosen_when_and_keeps_the_layout(tmp_path: Path) -> None:
    root = cascades.with_eval(tmp_path)
    path = root / "cascade" / "model.yaml"
    text = "# mine\n" + path.read_text().replace(
        "eval:", "decide:\n  - decision: unsure\n    when: confidence < 0.2\neval:"
    )
    path.write_text(text)
    apply(root / "cascade", Config.cascade(0.83))
    after = path.read_text()
    assert after.startswith("# mine\n")
    assert "  - decision: unsure\n    when: confidence < 0.2\n" in after  # "  - item" kept
    spec = load_spec(root / "cascade")
    assert spec is not None and spec.cascade is not None
    assert spec.cascade.when == "confidence < 0.83" and spec.cascade.first == "small"
    assert "versions" not in after and "batching" not in after  # a cascade has none
    assert not load_model(root / "cascade").errors
