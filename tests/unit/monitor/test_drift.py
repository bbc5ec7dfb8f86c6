"""Reference profiles and drift: PSI and KS find a shifted feature and not a stable one."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from inferd.monitor import drift
from inferd.monitor.profile import build_profile, load_profile, save_profile
from tests.unit.monitor.rows import row


def _inputs(n: int, shift: float, seed: int) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    colours = ["red", "green", "blue"]
    return [
        {
            "income": [float(rng.normal(50 + shift, 10))],
            "age": [float(rng.normal(40, 5))],
            "colour": [colours[int(rng.integers(0, 3 if shift == 0 else 1))]],
            "note": " ".join(["word"] * int(rng.integers(1, 100))) + str(i),
            "image": rng.random((2, 3)).tolist(),
        }
        for i in range(n)
    ]


def test_a_profile_round_trips_and_splits_text_and_arrays(tmp_path: Path) -> None:
    profile = build_profile(_inputs(500, 0.0, 0))
    assert set(profile.numeric) == {
        "income",
        "age",
        "note.length",
        "note.words",
        "image.mean",
        "image.std",
    }
    assert set(profile.categorical) == {"colour"} and profile.text == ("note",)
    save_profile(profile, tmp_path)
    assert load_profile(tmp_path) == profile
    assert load_profile(tmp_path / "absent") is None


def test_shifted_inputs_drift_and_stable_ones_do_not() -> None:
    profile = build_profile(_inputs(2000, 0.0, 0))
    live = [row({"label": "a"}, inputs=i) for i in _inputs(800, 15.0, 1)]
    report = drift.measure(profile, live, bins=10)
    features = report["features"]
    assert features["income"]["psi"] > 0.25 and features["income"]["p_value"] < 1e-6
    assert features["age"]["psi"] < 0.1 and features["age"]["p_value"] > 1e-3
    assert features["colour"]["kind"] == "categorical" and features["colour"]["psi"] > 0.25


def test_no_profile_is_said() -> None:
    report = drift.measure(None, [row({"label": "a"}, inputs={"x": [1.0]})], bins=10)
    assert report["status"] == "no reference profile" and "inferd evaluate" in report["message"]


def test_psi_of_identical_distributions_is_zero() -> None:
    assert drift.psi([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0
