"""The shared export helper: real torch models exported, run by ONNX Runtime, compared with
torch; the files around the model; what makes a rerun write the same bytes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import yaml
from torch import nn

from inferd.errors import SpecError
from inferd.optimize.export import (
    OnnxRecipe,
    check_onnx,
    export_onnx,
    onnx_session,
    reproducible,
    rounded,
    write_file,
    write_jsonl,
    write_labels,
    write_model_yaml,
    yaml_list,
)

FEATURES = OnnxRecipe({"features": np.zeros((2, 6), np.float32)}, outputs=("logits",))


class Classifier(nn.Module):
    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.layers = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Dropout(0.5), nn.Linear(8, 3))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.layers(features)
        return out


class MaskedSum(nn.Module):
    """(ids, mask) int64 [N, L] → (pooled [N, 4], count [N]): two inputs that share N and L."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embedding = nn.Embedding(20, 4)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weights = mask.to(torch.float32)
        pooled = (self.embedding(ids) * weights.unsqueeze(-1)).sum(1)
        return pooled, weights.sum(1)


class Counting(nn.Module):
    """Adds how often it has been called: eager torch and the exported graph disagree."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(6, 3)
        self.calls = 0

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        out: torch.Tensor = self.linear(features) + float(self.calls)
        return out


def rows(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 6)).astype(np.float32)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Classifier, Path, float]:
    model = Classifier()
    path = tmp_path_factory.mktemp("export") / "model" / "1" / "model.onnx"
    result = export_onnx(model, path, FEATURES, {"features": rows(70)})
    assert result.path == path
    return model, path, result.max_diff


@pytest.fixture
def torch_state() -> Iterator[None]:
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


# --- export_onnx ----------------------------------------------------------------------------


def test_the_exported_graph_computes_what_torch_does_at_any_batch_size(
    exported: tuple[Classifier, Path, float],
) -> None:
    model, path, max_diff = exported
    assert not model.training  # dropout off, as served
    assert 0.0 <= max_diff < 1e-5
    session = onnx_session(path)
    for n in (1, 3, 100):
        x = rows(n, seed=n)
        with torch.no_grad():
            expected = model(torch.from_numpy(x)).numpy()
        (got,) = session.run(["logits"], {"features": x})
        assert got.shape == (n, 3)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_the_file_has_the_recipes_names_a_batch_axis_and_opset(
    exported: tuple[Classifier, Path, float],
) -> None:
    proto = onnx.load(str(exported[1]))
    onnx.checker.check_model(proto, full_check=True)
    assert [i.name for i in proto.graph.input] == ["features"]
    assert [o.name for o in proto.graph.output] == ["logits"]
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert (dims[0].dim_param, dims[1].dim_value) == ("N", 6)
    assert [(o.domain, o.version) for o in proto.opset_import if o.domain == ""] == [("", 18)]


def test_the_file_carries_no_provenance_and_a_rerun_writes_the_same_bytes(
    exported: tuple[Classifier, Path, float], tmp_path: Path
) -> None:
    data = exported[1].read_bytes()
    assert __file__.encode() not in data and b"stack_trace" not in data
    proto = onnx.load(str(exported[1]))
    assert not any(node.metadata_props or node.doc_string for node in proto.graph.node)
    assert not any(v.metadata_props for v in [*proto.graph.input, *proto.graph.value_info])
    assert not proto.graph.metadata_props
    again = export_onnx(Classifier(), tmp_path / "model.onnx", FEATURES, {"features": rows(7)})
    assert again.path.read_bytes() == data
    # Other weights, other bytes: the comparison above is not vacuous.
    other = export_onnx(Classifier(seed=1), tmp_path / "other.onnx", FEATURES)
    assert other.path.read_bytes() != data


def test_two_inputs_share_named_dynamic_axes_and_two_outputs_get_their_own_tolerance(
    tmp_path: Path,
) -> None:
    model = MaskedSum()
    ids = np.ones((2, 5), np.int64)
    recipe = OnnxRecipe(
        {"ids": ids, "mask": ids},
        outputs=("pooled", "count"),
        dynamic={name: {0: "N", 1: "L"} for name in ("ids", "mask")},
    )
    rng = np.random.default_rng(0)
    check = {"ids": rng.integers(0, 20, (9, 11)), "mask": (rng.random((9, 11)) < 0.7) * 1}
    result = export_onnx(
        model, tmp_path / "m.onnx", recipe, check, atol={"pooled": 1e-5, "count": 0.0}
    )
    proto = onnx.load(str(result.path))
    for value in proto.graph.input:
        assert [d.dim_param for d in value.type.tensor_type.shape.dim] == ["N", "L"]
    pooled, count = onnx_session(result.path).run(
        ["pooled", "count"], {"ids": np.full((1, 30), 3), "mask": np.ones((1, 30), np.int64)}
    )
    np.testing.assert_allclose(pooled[0], 30 * model.embedding.weight[3].detach().numpy(), 1e-5)
    assert count.tolist() == [30.0]


def test_opsets_below_18_by_the_exporter_or_by_onnxs_converter(tmp_path: Path) -> None:
    for name, recipe in {
        "exporter": OnnxRecipe(FEATURES.example, FEATURES.outputs, opset=17),
        "converter": OnnxRecipe(FEATURES.example, FEATURES.outputs, convert_to=17),
    }.items():
        path = export_onnx(Classifier(), tmp_path / f"{name}.onnx", recipe, {"features": rows(9)})
        versions = [o.version for o in onnx.load(str(path.path)).opset_import if o.domain == ""]
        assert versions == [17], name


def test_a_graph_that_disagrees_with_torch_is_not_written(tmp_path: Path) -> None:
    path = tmp_path / "1" / "model.onnx"
    path.parent.mkdir()
    path.write_bytes(b"the previous model")
    with pytest.raises(AssertionError, match="output logits"):
        export_onnx(Counting(), path, FEATURES, {"features": rows(4)})
    assert path.read_bytes() == b"the previous model"
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.onnx"]


def test_check_onnx_catches_other_weights_and_reports_the_largest_difference(
    exported: tuple[Classifier, Path, float],
) -> None:
    session = onnx_session(exported[1])
    with pytest.raises(AssertionError, match="1 rows"):
        check_onnx(session, Classifier(seed=1).eval(), {"features": rows(5)})
    worst = check_onnx(session, exported[0], {"features": rows(5)}, batch_sizes=(1, 2))
    assert 0.0 <= worst < 1e-5


def test_check_onnx_catches_a_wrong_output_dtype(exported: tuple[Classifier, Path, float]) -> None:
    class Doubled(nn.Module):
        def forward(self, features: torch.Tensor) -> torch.Tensor:
            return exported[0](features).double()

    with pytest.raises(AssertionError, match="float32, torch float64"):
        check_onnx(onnx_session(exported[1]), Doubled(), {"features": rows(3)})


def test_importing_the_helper_imports_neither_torch_nor_onnx() -> None:
    code = (
        "import sys, inferd.optimize.export; "
        "print(sorted({'torch', 'onnx', 'onnxscript'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# --- the files around the model -------------------------------------------------------------


def test_write_file_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "model.yaml"
    write_file(path, "first")
    assert write_file(path, "é second\n") == path
    assert path.read_bytes() == "é second\n".encode()
    write_file(path, b"\x00bytes")
    assert path.read_bytes() == b"\x00bytes"
    assert [p.name for p in path.parent.iterdir()] == ["model.yaml"]


def test_write_model_yaml_reads_the_spec_back(tmp_path: Path) -> None:
    text = "task: tensor\nbackend: onnx\n"
    spec = write_model_yaml(tmp_path / "tiny", text)
    assert (spec.name, spec.task) == ("tiny", "tensor")
    assert (tmp_path / "tiny" / "model.yaml").read_text() == text


def test_write_model_yaml_fails_on_a_spec_inferd_would_refuse(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="batching"):
        write_model_yaml(tmp_path / "bad", "task: tensor\nbatching: {max_batch_size: zero}\n")


def test_write_labels_and_write_jsonl(tmp_path: Path) -> None:
    assert write_labels(tmp_path, range(3)).read_text() == "0\n1\n2\n"
    records = [{"instance": {"b64": "AA=="}, "target": "7"}, {"instance": [1.5], "target": 2.0}]
    path = write_jsonl(tmp_path / "eval" / "test.jsonl", records)
    lines = path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == records
    assert path.read_text() == "".join(json.dumps(r) + "\n" for r in records)


# --- reproducible numbers and runs ----------------------------------------------------------


def test_reproducible_seeds_and_fixes_torch(torch_state: None) -> None:
    reproducible(3, threads=1)
    first = torch.randn(4)
    assert torch.are_deterministic_algorithms_enabled() and torch.get_num_threads() == 1
    reproducible(3, threads=1)
    assert torch.equal(torch.randn(4), first)


def test_rounded_keeps_seven_significant_digits_and_the_shape() -> None:
    values = rounded(np.array([[3.14159265358979, 123456789.0], [-0.000123456789, 0.0]]))
    assert values.tolist() == [[3.141593, 123456800.0], [-0.0001234568, 0.0]]
    assert float(rounded(2 / 3)) == 0.6666667
    assert rounded([1.23456789], digits=3).tolist() == [1.23]


def test_yaml_list_reads_back_as_the_same_values() -> None:
    floats = [0.1, 1e-07, -3.0, 2.5e16, np.float32(0.5), np.float64(2 / 3), -np.inf]
    text = yaml_list(floats)
    assert text.startswith("[0.1, 1.0e-07, -3.0, 2.5e+16, 0.5, 0.6666666666666666, -.inf]")
    assert yaml.safe_load(text) == [float(v) for v in floats]
    assert yaml_list([float("nan")]) == "[.nan]"
    names = ["mean_radius", "malignant", "yes", "1", "a: b", "x, y", "", "null", "[x]"]
    text = yaml_list(names)
    assert text.startswith("[mean_radius, malignant, ")
    assert yaml.safe_load(text) == names
