"""`inferd optimize MODEL --quantize METHOD`: an int8 or float16 variant of an ONNX model,
made with ONNX Runtime's own quantization tooling and measured against its source.

The source is the version model.yaml serves (the highest, when several are). The variant is
written by `write_variant` (whole or not at all) only after it has been measured side by side
with its source on the model's eval data; a variant slower than its source is refused unless
the caller allows it, and then written with a warning.

Settings were chosen by measurement on support-intent-minilm (docs/optimize.md has the table):
int8 weights are quantized per channel with reduce_range (7-bit weights). reduce_range keeps
the u8 x s8 products of CPUs without VNNI from saturating their int16 accumulators, so the same
file is accurate on every x86 CPU; per channel wins back the accuracy that 7-bit per-tensor
weights lose (per-tensor + reduce_range cost 2.9 points there, per channel cost none).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inferd.errors import NotFoundError, SpecError
from inferd.hardware import cpu
from inferd.optimize import onnx_graph
from inferd.optimize.measure import (
    Comparison,
    batch_feed,
    compare,
    eval_instances,
    spec_of,
    staged_version,
)
from inferd.optimize.progress import SILENT, Steps
from inferd.optimize.variants import (
    Made,
    next_version,
    now,
    served_versions,
    tool_versions,
    write_variant,
)
from inferd.repository import ModelEntry, ModelVersion, discover, load_model
from inferd.spec import VariantSpec, load_spec

METHODS = {
    "dynamic-int8": "int8 weights; activations quantized per batch as the model runs",
    "static-int8": "int8 weights and activations; activation ranges calibrated on the "
    "model's own data",
    "fp16": "float16 weights and arithmetic; float32 inputs and outputs kept",
}
TOOLS = ("onnxruntime", "onnx", "numpy")
CALIBRATION_ITEMS = 256
"""At most this many instances calibrate static int8 (in batches of CALIBRATION_BATCH)."""
CALIBRATION_BATCH = 8

INT8_SETTINGS: dict[str, Any] = {
    "weight_type": "int8",
    "per_channel": True,
    "reduce_range": True,
    "why": (
        "reduce_range (7-bit weights) keeps int8 products exact on CPUs without VNNI; "
        "per_channel recovers the accuracy 7-bit per-tensor weights lose"
    ),
}


def quantize(
    repo: Path | str,
    model: str,
    method: str,
    *,
    allow_slower: bool = False,
    steps: Steps = SILENT,
    batch: int = 8,
    seconds: float = 3.0,
) -> Made:
    """Quantize the served version of `model` in `repo` with `method`, measure it against
    that version (metric on the eval data, speed at `batch`), and write it as the model's
    next version. Raises SpecError/NotFoundError, writing nothing, when it does not apply."""
    if method not in METHODS:
        known = "; ".join(f"{name} ({what})" for name, what in METHODS.items())
        raise SpecError(f"unknown quantization method {method!r}; the methods are: {known}")
    entry, source = _source(Path(repo), model)
    artifact = source_artifact(entry, source)
    instances = eval_instances(entry)  # no eval data: refused before anything is made
    graph = onnx_graph.describe(artifact)
    onnx_graph.check_applies(graph, method, f"model {model!r} v{source.version}")
    warnings: list[str] = []
    settings: dict[str, Any] = {}

    def build(folder: Path) -> VariantSpec:
        _copy_version(artifact.parent, folder, skip=artifact.name)
        target = folder / artifact.name
        with steps.step(f"quantizing {model} v{source.version} ({method})"), _quiet_nag():
            if method == "dynamic-int8":
                settings.update(_dynamic(artifact, target))
            elif method == "static-int8":
                feeds = calibration(entry, source, instances)
                settings.update(_static(artifact, target, feeds, steps))
            else:
                settings.update(_fp16(artifact, target))
        settings["changed"] = onnx_graph.changed(graph, onnx_graph.describe(target), method)
        if not settings["changed"]:
            raise SpecError(
                f"{method} changed nothing in model {model!r} v{source.version}: it has no "
                f"operators ONNX Runtime quantizes this way (its ops: {', '.join(graph.ops)})"
            )
        variant = staged_version(entry, folder, next_version(entry.path))
        try:
            with steps.step(f"measuring v{source.version} against the {method} variant"):
                measured = compare(entry, source, variant, batch=batch, seconds=seconds)
        finally:
            variant.close()
        steps.note(_summary(measured))
        warnings.extend(speed_verdict(measured, method, allow_slower))
        return VariantSpec(
            method=method,
            source=source.version,
            settings=settings,
            tools=tool_versions(TOOLS),
            measured=measured.record(),
            created=now(),
        )

    try:
        version = write_variant(
            entry.path, VariantSpec(method=method, source=source.version), build
        )
    finally:
        source.close()
    written = load_spec(entry.path)
    assert written is not None  # write_variant checked it loads
    return Made(
        model=model,
        version=version,
        variant=written.variants[version],
        warnings=tuple(warnings),
        served=served_versions(entry.path),
    )


def speed_verdict(measured: Comparison, method: str, allow_slower: bool) -> list[str]:
    """Nothing when the variant is faster; a warning when slower but allowed; else refused."""
    if measured.speedup >= 1.0:
        return []
    figures = (
        f"{measured.speed.ms_per_batch:.2f} ms per batch of {measured.speed.batch} against "
        f"the source's {measured.source_speed.ms_per_batch:.2f} ms ({measured.speedup:.2f}x) "
        f"on {cpu().describe()}"
    )
    if not allow_slower:
        raise SpecError(
            f"the {method} variant is slower than its source: {figures}; nothing was written "
            "(pass --allow-slower to keep it anyway)"
        )
    return [f"the {method} variant is slower than its source: {figures}"]


def _summary(measured: Comparison) -> str:
    return (
        f"{measured.metric} {measured.value:.4f} (source {measured.source_value:.4f}); "
        f"{measured.speed.ms_per_batch:.2f} ms per batch of {measured.speed.batch} "
        f"(source {measured.source_speed.ms_per_batch:.2f} ms, {measured.speedup:.2f}x)"
    )


def _source(repo: Path, model: str) -> tuple[ModelEntry, ModelVersion]:
    """The model and the version it serves (the highest, when several are)."""
    model_dir = repo / model
    if not (model_dir / "model.yaml").is_file() and not model_dir.is_dir():
        known = ", ".join(p.name for p in discover(repo)) if repo.is_dir() else ""
        raise NotFoundError(
            f"unknown model {model!r} in {repo}; "
            + (f"its models are: {known}" if known else "it holds no models")
        )
    spec = load_spec(model_dir)
    if spec is None:
        raise SpecError(f"{model_dir} has no model.yaml; a variant is recorded in it")
    if spec.backend != "onnx" or spec.task == "generation":
        kind = "a generation model" if spec.task == "generation" else f"backend {spec.backend!r}"
        raise SpecError(
            f"model {model!r} is {kind}; quantizing applies to ONNX models (backend: onnx), "
            f"with {', '.join(METHODS)}"
        )
    entry = load_model(model_dir)
    if not entry.versions:
        reason = "; ".join(entry.errors) or "no version loaded"
        raise SpecError(f"model {model!r} cannot be loaded: {reason}")
    for number, version in entry.versions.items():
        if number != max(entry.versions):
            version.close()
    return entry, entry.versions[max(entry.versions)]


def source_artifact(entry: ModelEntry, source: ModelVersion) -> Path:
    path = entry.path / str(source.version) / spec_of(entry).artifact_name()
    if path.suffix != ".onnx":
        raise SpecError(
            f"model {entry.name!r} v{source.version}: {path.name} is not an .onnx file; "
            f"quantizing applies to ONNX graphs ({', '.join(METHODS)})"
        )
    return path


class _PreProcessNag(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


@contextmanager
def _quiet_nag() -> Iterator[None]:
    """ONNX Runtime's quantizer logs advice to run its pre-processing first on every call;
    it was measured on MiniLM (no gain: same accuracy, no faster), so it is not shown."""
    nag = _PreProcessNag()
    root = logging.getLogger()
    root.addFilter(nag)
    try:
        yield
    finally:
        root.removeFilter(nag)


def _copy_version(source: Path, folder: Path, skip: str) -> None:
    """Everything else in the source's version folder comes along unchanged."""
    for item in source.iterdir():
        if item.name == skip:
            continue
        if item.is_dir():
            shutil.copytree(item, folder / item.name)
        else:
            shutil.copy2(item, folder / item.name)


def _dynamic(source: Path, target: Path) -> dict[str, Any]:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        source,
        target,
        weight_type=QuantType.QInt8,
        per_channel=INT8_SETTINGS["per_channel"],
        reduce_range=INT8_SETTINGS["reduce_range"],
    )
    return {**INT8_SETTINGS, "activations": "uint8, ranges computed per batch at run time"}


@dataclass
class _Calibration:
    """Model feeds for the calibrator, made by the model's own pipeline from its data."""

    feeds: list[dict[str, Any]]
    data: str


def calibration(entry: ModelEntry, source: ModelVersion, instances: list[Any]) -> _Calibration:
    """The model's training data when model.yaml names its recipe, else its eval inputs
    (labels unused); at most CALIBRATION_ITEMS, in batches as the batcher stacks them."""
    spec = spec_of(entry)
    data = f"{spec.eval.data if spec.eval else 'eval'} inputs (labels unused)"
    if spec.recipe is not None:
        from inferd.optimize.recipe import load_recipe

        instances = load_recipe(spec).load_data().instances
        data = f"training data of recipe {spec.recipe}"
    step = max(1, len(instances) // CALIBRATION_ITEMS)
    chosen = instances[::step][:CALIBRATION_ITEMS]
    pipeline = source.predictive
    feeds = [
        batch_feed(
            pipeline, chosen[i : i + CALIBRATION_BATCH], min(CALIBRATION_BATCH, len(chosen) - i)
        )
        for i in range(0, len(chosen), CALIBRATION_BATCH)
    ]
    return _Calibration(feeds, f"{data}: {len(chosen)} items")


def _static(source: Path, target: Path, data: _Calibration, steps: Steps) -> dict[str, Any]:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self, feeds: list[dict[str, Any]], advance: Any) -> None:
            self._feeds: Iterator[dict[str, Any]] = iter(feeds)
            self._advance = advance

        def get_next(self) -> dict[str, Any] | None:
            feed = next(self._feeds, None)
            if feed is not None:
                self._advance(1)
            return feed

    with steps.step("calibrating", total=len(data.feeds)) as advance:
        quantize_static(
            source,
            target,
            Reader(data.feeds, advance),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=INT8_SETTINGS["per_channel"],
            reduce_range=INT8_SETTINGS["reduce_range"],
            calibrate_method=CalibrationMethod.MinMax,
            op_types_to_quantize=list(onnx_graph.WEIGHT_OPS),
        )
    return {
        **INT8_SETTINGS,
        "format": "QDQ",
        "activations": "uint8, ranges calibrated (MinMax)",
        "calibration": data.data,
        "op_types": list(onnx_graph.WEIGHT_OPS),
        "op_types_why": "only the weight ops: calibrated int8 around softmax, layer norm and "
        "residual adds lost most of a transformer's accuracy when measured (docs/optimize.md)",
    }


def _fp16(source: Path, target: Path) -> dict[str, Any]:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    converted = convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
    onnx.save(converted, str(target))
    return {"keep_io_types": True, "tool": "onnxruntime.transformers.float16"}
