"""Preprocess stages: each validator's error, and where the error points."""

from __future__ import annotations

from inferd.spec import parse_spec
from tests.unit.spec.documents import (
    IMAGE_INPUT,
    audio_spec,
    error,
    image_spec,
    tabular_spec,
)


def test_image_std_length_names_the_field_path() -> None:
    message = error(image_spec(std=[1.0, 2.0]))
    assert "preprocess.0.std" in message
    assert "std has 2 values; give 1 or 3" in message


def test_image_mean_length_depends_on_color() -> None:
    message = error(image_spec(color="L", mean=[0.1, 0.2, 0.3]))
    assert "mean has 3 values" in message
    # three values are fine for a colour image
    spec = parse_spec(image_spec(color="RGB", mean=[0.1, 0.2, 0.3], std=[1, 2, 3]))
    assert spec.preprocess[0].mean == [0.1, 0.2, 0.3]


def test_image_std_zero_refused() -> None:
    assert "std must not contain 0" in error(image_spec(std=[0.0]))


def test_image_size_must_be_positive() -> None:
    assert "size is [width, height], both positive" in error(image_spec(size=[0, 8]))


def test_image_hw_layout_needs_grey() -> None:
    message = error(image_spec(layout="HW", color="RGB"))
    assert 'layout "HW" has no channel axis' in message


def test_unknown_stage_type_is_refused() -> None:
    message = error({"name": "m", "inputs": [IMAGE_INPUT], "preprocess": [{"type": "video"}]})
    assert "preprocess.0" in message
    assert "'image', 'tabular'" in message


def test_tabular_std_length_names_the_field_path() -> None:
    message = error(tabular_spec(std=[1.0]))
    assert "preprocess.0.std" in message
    assert "std has 1 values but there are 2 features" in message


def test_tabular_mean_length() -> None:
    message = error(tabular_spec(mean=[1.0, 2.0, 3.0]))
    assert "mean has 3 values but there are 2 features" in message


def test_tabular_features_must_be_unique_and_present() -> None:
    assert "features must be unique" in error(tabular_spec(features=["a", "a"]))
    assert "at least one feature" in error(tabular_spec(features=[]))


def test_tabular_std_zero() -> None:
    assert "std must not contain 0" in error(tabular_spec(std=[1.0, 0.0]))


def test_audio_stage_errors_name_the_stage_path() -> None:
    message = error(audio_spec(n_fft=256, win_length=400))
    assert "preprocess.0: Value error" not in message
    assert "preprocess.0: win_length must not exceed n_fft" in message


def test_audio_layout_must_suit_the_features() -> None:
    assert 'layout "T" or "1T" goes with features "waveform"' in error(
        audio_spec(features="waveform", layout="MT")
    )


def test_audio_limits_are_checked_at_load() -> None:
    assert "f_max 9000.0 is above half the sample rate (8000.0)" in error(audio_spec(f_max=9000))
    assert "duration_s must not exceed max_duration_s" in error(
        audio_spec(duration_s=10, max_duration_s=5)
    )
    assert "preprocess.0.silence_db" in error(audio_spec(silence_db=3))
    assert "shorter than one n_fft window" in error(audio_spec(duration_s=0.01, n_fft=400))
