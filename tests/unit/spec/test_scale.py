"""The `scale:` section: replicas on Ray Serve, fixed or autoscaled, with errors that say
how to fix them."""

from __future__ import annotations

import pytest

from inferd.errors import SpecError
from inferd.spec import ScaleSpec, parse_spec
from tests.unit.spec.documents import error


def test_one_replica_unless_told() -> None:
    scale = parse_spec({"name": "m"}).scale
    assert scale == ScaleSpec()
    assert (scale.min_replicas, scale.most, scale.autoscaled) == (1, 1, False)
    assert scale.target_ongoing_requests is None


def test_max_replicas_defaults_to_min_replicas() -> None:
    scale = parse_spec({"name": "m", "scale": {"min_replicas": 3}}).scale
    assert (scale.min_replicas, scale.most, scale.autoscaled) == (3, 3, False)


def test_a_range_is_autoscaled() -> None:
    scale = parse_spec(
        {
            "name": "m",
            "scale": {"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 8},
        }
    ).scale
    assert (scale.min_replicas, scale.most, scale.autoscaled) == (1, 4, True)
    assert scale.target_ongoing_requests == 8


def test_max_below_min_says_how_to_fix_it() -> None:
    message = error({"name": "m", "scale": {"min_replicas": 3, "max_replicas": 2}})
    assert "scale" in message
    assert "max_replicas (2) is below min_replicas (3)" in message
    assert "raise max_replicas or lower min_replicas" in message


@pytest.mark.parametrize(
    ("section", "where"),
    [
        ({"min_replicas": 0}, "scale.min_replicas"),
        ({"max_replicas": 0}, "scale.max_replicas"),
        ({"target_ongoing_requests": 0}, "scale.target_ongoing_requests"),
        ({"replicas": 2}, "scale.replicas"),
    ],
)
def test_bad_values_are_named(section: dict[str, object], where: str) -> None:
    assert where in error({"name": "m", "scale": section})


def test_a_cascade_is_scaled_by_its_members() -> None:
    cascade = {"first": "a", "then": "b", "when": "confidence < 0.5"}
    with pytest.raises(SpecError, match="a cascade takes scale from its members"):
        parse_spec({"name": "c", "cascade": cascade, "scale": {"min_replicas": 2}})
