"""Turn a trained torch model into an inferd model folder, the same way every time.

The bundled examples' training scripts use it, and so will quantization, pruning and
distillation, which re-export a changed model with the recipe of the one it replaces:

- `export_onnx`: torch.onnx (dynamo) with dynamic axes, the exporter's provenance (stack traces
  with the checkout's absolute paths) stripped so the same weights give the same bytes wherever
  the script runs, `onnx.checker`, ONNX Runtime against torch, and only then an atomic write;
- `write_model_yaml`, `write_labels`, `write_jsonl`, `write_file`: the files around the model,
  each written atomically (a server that reloads the folder never reads half a file);
- `reproducible`, `rounded`, `yaml_list`: what makes a rerun write the same files.

torch and onnx are imported inside the functions: `inferd serve` must start without them.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, SupportsFloat

import numpy as np
import numpy.typing as npt
import yaml

from inferd.errors import SpecError
from inferd.spec import ModelSpec, load_spec

if TYPE_CHECKING:  # the `train` extra; never imported by the server
    import onnx
    import onnxruntime as ort
    import torch

BATCH_AXIS: Mapping[int, str] = {0: "N"}
"""The default dynamic axes of every input: axis 0 is the batch."""


@dataclass(frozen=True)
class OnnxRecipe:
    """How a model is exported: its graph's interface, an example batch and the opset.

    The recipe is the model folder's contract with model.yaml (input and output names, which
    axes may vary), so a model that replaces another is exported with the other's recipe.
    """

    example: Mapping[str, np.ndarray]
    """Input name → an example batch, in the order forward() takes them. A batch of 2, not 1:
    torch.export specializes a dimension whose example size is 1."""
    outputs: tuple[str, ...]
    """Output names, in the order forward() returns them."""
    dynamic: Mapping[str, Mapping[int, str]] | None = None
    """Input name → {axis: dimension name} of the axes that may vary; inputs that use the same
    name share the dimension; an input left out is fixed. None: `BATCH_AXIS` for every input."""
    opset: int = 18
    """The opset the exporter writes; 18 is its lowest native one, below that it converts."""
    convert_to: int | None = None
    """Then convert the exported graph to this opset with onnx's version converter, which
    works where the exporter's own conversion does not (Reduce* axes not yet initializers)."""

    def axes(self, name: str) -> Mapping[int, str]:
        return BATCH_AXIS if self.dynamic is None else self.dynamic.get(name, {})


@dataclass(frozen=True)
class Exported:
    """What `export_onnx` wrote, and how closely it matched torch."""

    path: Path
    max_diff: float
    """The largest |ONNX Runtime - torch| over every output and checked batch."""


def export_onnx(
    model: torch.nn.Module,
    path: Path,
    recipe: OnnxRecipe,
    check: Mapping[str, np.ndarray] | None = None,
    *,
    batch_sizes: Sequence[int] = (1, 7, 64),
    rtol: float = 1e-4,
    atol: float | Mapping[str, float] = 1e-5,
) -> Exported:
    """Export `model` (put in eval mode) to `path`, checked before anything is written.

    `check` (default: the recipe's example) is run through ONNX Runtime and torch at each of
    `batch_sizes` rows and at all of them (see `check_onnx`); any mismatch raises and leaves
    `path` as it was.
    """
    proto = onnx_proto(model, recipe)
    data = proto.SerializeToString()
    max_diff = check_onnx(
        onnx_session(data),
        model,
        recipe.example if check is None else check,
        batch_sizes=batch_sizes,
        rtol=rtol,
        atol=atol,
    )
    return Exported(write_file(path, data), max_diff)


def onnx_proto(model: torch.nn.Module, recipe: OnnxRecipe) -> onnx.ModelProto:
    """The exported, converted, provenance-free and checked graph of `model`, in memory."""
    import onnx
    import onnx.version_converter
    import torch

    model.eval()
    names = list(recipe.example)
    dims: dict[str, Any] = {}  # one torch.export.Dim per name: inputs share it

    def dim(name: str) -> Any:
        if name not in dims:
            dims[name] = torch.export.Dim(name)
        return dims[name]

    # Positional (not keyed by name): forward()'s parameter names need not be the inputs'.
    dynamic_shapes = tuple(
        {axis: dim(dim_name) for axis, dim_name in recipe.axes(name).items()} or None
        for name in names
    )
    program = torch.onnx.export(
        model,
        tuple(torch.from_numpy(recipe.example[name]) for name in names),
        input_names=names,
        output_names=list(recipe.outputs),
        dynamic_shapes=dynamic_shapes,
        opset_version=recipe.opset,
        dynamo=True,
        verbose=False,
        external_data=False,
    )
    if program is None:
        raise RuntimeError("torch.onnx.export returned no program")
    proto = program.model_proto
    if recipe.convert_to is not None:
        proto = onnx.version_converter.convert_version(proto, recipe.convert_to)
    strip_provenance(proto)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def strip_provenance(proto: onnx.ModelProto) -> None:
    """Drop the exporter's per-node and per-value metadata and doc strings (Python stack
    traces, module names, file paths): the file then depends only on the graph and weights."""
    del proto.metadata_props[:]
    proto.ClearField("doc_string")
    _strip_graph(proto.graph)
    for function in proto.functions:
        del function.metadata_props[:]
        function.ClearField("doc_string")
        for node in function.node:
            _strip_node(node)


def _strip_graph(graph: onnx.GraphProto) -> None:
    del graph.metadata_props[:]
    graph.ClearField("doc_string")
    for node in graph.node:
        _strip_node(node)
    for value in [*graph.input, *graph.output, *graph.value_info]:
        del value.metadata_props[:]
        value.ClearField("doc_string")
    for tensor in graph.initializer:
        del tensor.metadata_props[:]
        tensor.ClearField("doc_string")


def _strip_node(node: onnx.NodeProto) -> None:
    del node.metadata_props[:]
    node.ClearField("doc_string")
    for attribute in node.attribute:  # the bodies of If, Loop, Scan
        if attribute.HasField("g"):
            _strip_graph(attribute.g)
        for graph in attribute.graphs:
            _strip_graph(graph)


def onnx_session(model: Path | bytes, threads: int = 1) -> ort.InferenceSession:
    """An ONNX Runtime CPU session on a file or serialized model (one thread: the same sums
    on any machine, and the fastest on the small machines the examples train on)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    source = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def check_onnx(
    session: ort.InferenceSession,
    model: torch.nn.Module,
    inputs: Mapping[str, np.ndarray],
    *,
    batch_sizes: Sequence[int] = (1, 7, 64),
    rtol: float = 1e-4,
    atol: float | Mapping[str, float] = 1e-5,
) -> float:
    """Assert that `session` computes what `model` does, on the first n rows of `inputs` for
    each n in `batch_sizes` and on all rows; return the largest |difference|.

    Batches of several sizes catch a graph that fixed the batch size or mixes rows. `inputs`
    are in forward()'s order; `atol` may be per output name. Raises AssertionError.
    """
    import torch

    names = [output.name for output in session.get_outputs()]
    rows = len(next(iter(inputs.values())))
    worst = 0.0
    for n in sorted({min(size, rows) for size in batch_sizes} | {rows}):
        feeds = {name: np.ascontiguousarray(array[:n]) for name, array in inputs.items()}
        with torch.no_grad():
            out = model(*(torch.from_numpy(array) for array in feeds.values()))
        expected = [out] if isinstance(out, torch.Tensor) else list(out)
        got = session.run(names, feeds)
        if len(expected) != len(names):
            raise AssertionError(f"torch returns {len(expected)} outputs, the graph {names}")
        for name, want, have in zip(names, expected, got, strict=True):
            want = want.numpy()
            if have.dtype != want.dtype:
                raise AssertionError(f"output {name}: onnx {have.dtype}, torch {want.dtype}")
            tolerance = atol[name] if isinstance(atol, Mapping) else atol
            np.testing.assert_allclose(
                have, want, rtol=rtol, atol=tolerance, err_msg=f"output {name}, {n} rows"
            )
            if have.size:
                worst = max(worst, float(np.abs(have.astype(np.float64) - want).max()))
    return worst


# --- the files around the model -----------------------------------------------------------


def write_file(path: Path, data: str | bytes) -> Path:
    """Write `data` (text as UTF-8) to `path`, creating its folder, atomically: a reader sees
    the old file or the new one, never a part (a temporary file beside it, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def write_model_yaml(folder: Path, text: str) -> ModelSpec:
    """Write folder/model.yaml and read it back as inferd does: a template mistake fails the
    build here, not when the model is served."""
    write_file(folder / "model.yaml", text)
    spec = load_spec(folder)
    if spec is None:  # cannot happen: the file was just written
        raise SpecError(f"{folder / 'model.yaml'} was not written")
    return spec


def write_labels(folder: Path, labels: Iterable[object]) -> Path:
    """folder/labels.txt: one label a line, in class-index order."""
    return write_file(folder / "labels.txt", "".join(f"{label}\n" for label in labels))


def write_jsonl(path: Path, records: Iterable[Any]) -> Path:
    """JSON lines, one record each (eval data: {"instance": ..., "target": ...})."""
    return write_file(path, "".join(json.dumps(record) + "\n" for record in records))


# --- reproducible numbers and runs --------------------------------------------------------


def reproducible(seed: int, threads: int) -> None:
    """Seed torch, make it use deterministic kernels and a fixed number of threads (the
    thread count changes the order of sums): a rerun on the same machine trains the same
    weights."""
    import torch

    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads)


def rounded(values: npt.ArrayLike, digits: int = 7) -> np.ndarray:
    """`values` rounded to `digits` significant digits, as float64: statistics that model.yaml
    stores are rounded first and training uses the rounded numbers, so the two agree exactly."""
    array = np.asarray(values, dtype=np.float64)
    flat = [float(f"{value:.{digits}g}") for value in array.reshape(-1)]
    return np.array(flat, dtype=np.float64).reshape(array.shape)


def yaml_list(values: Iterable[str | SupportsFloat]) -> str:
    """A one-line YAML list: numbers as the shortest text that reads back as the same float,
    strings bare where YAML reads them back as the same string, else quoted."""
    return "[" + ", ".join(_yaml_item(value) for value in values) + "]"


def _yaml_item(value: str | SupportsFloat) -> str:
    if not isinstance(value, str):
        number = float(value)
        if not math.isfinite(number):
            return ".nan" if math.isnan(number) else ("-.inf" if number < 0 else ".inf")
        text = repr(number)
        # YAML 1.1 (PyYAML) reads 1e-07 as a string: its floats need a dot.
        return text.replace("e", ".0e") if "e" in text and "." not in text else text
    try:
        bare = value != "" and yaml.safe_load(f"[{value}]") == [value]
    except yaml.YAMLError:
        bare = False
    return value if bare else json.dumps(value)
