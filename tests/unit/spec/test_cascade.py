"""The `cascade:` section: two different members, a `when`, and nothing of the members' own."""

from __future__ import annotations

import pytest

from inferd.errors import SpecError
from inferd.spec import CascadeSpec, parse_spec

CASCADE = {"first": "small", "then": "big", "when": "confidence < 0.8"}


def test_a_cascade_needs_no_backend_stages_or_versions() -> None:
    spec = parse_spec(
        {"name": "both", "cascade": CASCADE, "eval": {"data": "e.jsonl", "metric": "accuracy"}}
    )
    assert spec.cascade == CascadeSpec(**CASCADE)
    assert spec.postprocess == [] and spec.task == "tensor"  # the members' task, once linked


def test_a_classification_cascade_needs_no_postprocess_stage_of_its_own() -> None:
    spec = parse_spec(
        {
            "name": "both",
            "task": "classification",
            "cascade": CASCADE,
            "decide": [{"decision": "review", "when": "confidence < 0.5"}],
        }
    )
    assert spec.decide[0].decision == "review"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"backend": "python"}, "a cascade takes backend from its members"),
        ({"batching": {"max_batch_size": 8}}, "a cascade takes batching from its members"),
        (
            {"inputs": [{"name": "x", "datatype": "FP32", "shape": [4]}], "runtime": {}},
            "a cascade takes inputs, runtime from its members",
        ),
        ({"versions": "all"}, "a cascade takes versions from its members"),
    ],
)
def test_a_cascade_refuses_its_members_sections(section: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec({"name": "both", "cascade": CASCADE, **section})


@pytest.mark.parametrize(
    ("cascade", "message"),
    [
        ({**CASCADE, "then": "small"}, "first and then are both 'small'"),
        ({"first": "small", "then": "big"}, r"cascade.when: Field required"),
        ({**CASCADE, "when": ""}, "cascade.when: String should have at least 1 character"),
        ({**CASCADE, "first": "../etc"}, "cascade.first: String should match pattern"),
        ({**CASCADE, "otherwise": "x"}, "cascade.otherwise: unknown key"),
    ],
)
def test_bad_cascade_sections_are_refused(cascade: dict[str, str], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec({"name": "both", "cascade": cascade})


def test_a_cascade_cannot_name_itself() -> None:
    with pytest.raises(SpecError, match="cascade 'small' names itself as a member"):
        parse_spec({"name": "small", "cascade": CASCADE})
