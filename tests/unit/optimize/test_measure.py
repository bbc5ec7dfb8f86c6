"""Measuring versions side by side, on the real digits model."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from inferd.errors import SpecError
from inferd.hardware import cpu
from inferd.optimize.measure import (
    batch_feed,
    compare,
    eval_instances,
    staged_version,
    time_side_by_side,
)
from inferd.repository import load_model
from inferd.testing import FakeBackend


def test_a_version_compared_with_itself_scores_the_same(digits: Path) -> None:
    entry = load_model(digits)
    source = entry.versions[1]
    again = staged_version(entry, digits / "1", 2)
    result = compare(entry, source, again, batch=4, seconds=0.2)
    assert result.metric == "accuracy"
    assert result.value == result.source_value == 1.0
    assert result.drop == 0.0
    assert result.speed.batch == result.source_speed.batch == 4
    assert result.speed.ms_per_batch > 0 and 0.2 < result.speedup < 5
    record = result.record()
    assert record["batch"] == 4 and record["cpu"] == cpu().describe()


def test_the_feed_is_a_stacked_batch_of_eval_inputs(digits: Path) -> None:
    entry = load_model(digits)
    instances = eval_instances(entry)
    feed = batch_feed(entry.versions[1].predictive, instances[:3], 8)  # cycled to 8
    assert feed["image_tensor"].shape == (8, 1, 16, 16)


def test_a_slower_backend_measures_slower() -> None:
    fast = FakeBackend(latency_s=0.0)
    slow = FakeBackend(latency_s=0.004)
    feed = {"x": np.zeros((2, 3), np.float32)}
    speeds = time_side_by_side({"fast": fast, "slow": slow}, {"fast": feed, "slow": feed}, 0.1)
    assert speeds["slow"].ms_per_batch > 3.5 > speeds["fast"].ms_per_batch


def test_a_model_without_eval_data_is_refused(digits: Path) -> None:
    text = (digits / "model.yaml").read_text()
    (digits / "model.yaml").write_text(
        "\n".join(line for line in text.splitlines() if not line.startswith("eval:"))
    )
    with pytest.raises(SpecError, match="no eval: section"):
        eval_instances(load_model(digits))


def test_chosen_versions_load_even_when_not_served(digits: Path) -> None:
    shutil.copytree(digits / "1", digits / "2")
    with open(digits / "model.yaml", "a") as f:
        f.write("versions: [2]\n")
    assert sorted(load_model(digits).versions) == [2]
    assert sorted(load_model(digits, only=[1]).versions) == [1]
    missing = load_model(digits, only=[7])
    assert not missing.versions and "no version 7" in missing.errors[0]
