"""What an ONNX graph is made of, as far as quantizing it goes: its operators, whether it is
already quantized (int8 operators, or float16 weights), and what a method changed in it.

Read before anything is written, so that a method that cannot apply is refused up front."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from inferd.errors import SpecError

INT8_OPS = frozenset(
    {
        "QuantizeLinear",
        "DequantizeLinear",
        "DynamicQuantizeLinear",
        "MatMulInteger",
        "ConvInteger",
        "DynamicQuantizeMatMul",
        "MatMulIntegerToFloat",
        "QAttention",
        "QEmbedLayerNormalization",
        "DynamicQuantizeLSTM",
        "QGemm",
    }
)
"""Operators only a quantized graph has (QLinear* are matched by prefix)."""

WEIGHT_OPS = ("MatMul", "Gemm", "Conv")
"""The operators static int8 quantizes: where the weights and nearly all the arithmetic are.
Quantizing everything ONNX Runtime's QDQ quantizer can (embedding Gathers, Add, Mul, ...) cost
support-intent-minilm 43 points of accuracy; these alone cost none (docs/optimize.md)."""

DYNAMIC_OPS = ("MatMul", "Conv", "Gather", "Attention", "EmbedLayerNormalization", "LSTM")
"""The operators ONNX Runtime's dynamic quantizer quantizes (its IntegerOps registry)."""

METHOD_OPS = {"dynamic-int8": DYNAMIC_OPS, "static-int8": WEIGHT_OPS}


@dataclass(frozen=True)
class Graph:
    ops: Counter[str]
    """Operator type → how many nodes."""
    float32_weights: int
    float16_weights: int

    @property
    def int8_ops(self) -> dict[str, int]:
        return {
            op: n
            for op, n in sorted(self.ops.items())
            if op in INT8_OPS or op.startswith("QLinear")
        }

    @property
    def kind(self) -> str:
        """float32, int8 or float16: what the graph computes in."""
        if self.int8_ops:
            return "int8"
        if self.float16_weights and not self.float32_weights:
            return "float16"
        return "float32"


def need_onnx() -> None:
    """onnx is not in the base install; quantizing needs it (ONNX Runtime's quantizer too)."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise SpecError(
            "quantizing needs the onnx package: pip install 'inferd[optimize]'"
        ) from None


def describe(path: Path) -> Graph:
    need_onnx()
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # onnx raises protobuf's untyped errors for bad files
        raise SpecError(f"{path} is not a readable ONNX file: {error}") from None
    ops: Counter[str] = Counter()
    graphs = [model.graph]
    while graphs:  # subgraphs (If, Loop, Scan) count too
        graph = graphs.pop()
        for node in graph.node:
            ops[node.op_type] += 1
            graphs.extend(a.g for a in node.attribute if a.type == onnx.AttributeProto.GRAPH)
    types = [t.data_type for t in model.graph.initializer]
    return Graph(
        ops=ops,
        float32_weights=types.count(onnx.TensorProto.FLOAT),
        float16_weights=types.count(onnx.TensorProto.FLOAT16),
    )


def check_applies(graph: Graph, method: str, what: str) -> None:
    """Refuse a method that cannot apply to this graph, saying which do."""
    if graph.kind != "float32":
        found = (
            ", ".join(f"{n} {op}" for op, n in graph.int8_ops.items())
            if graph.kind == "int8"
            else "float16 weights"
        )
        raise SpecError(
            f"{what} is already quantized ({graph.kind}: {found}); quantizing applies to "
            "float32 ONNX graphs (dynamic-int8, static-int8, fp16): quantize the float32 "
            "version it was made from instead (serve it, or list it under versions: in "
            "model.yaml)"
        )
    applies = applicable(graph)
    if method not in applies:
        needs = (
            "float32 weights"
            if method == "fp16"
            else f"one of the operators {', '.join(METHOD_OPS[method])}"
        )
        ops = ", ".join(sorted(graph.ops)) or "none"
        which = ", ".join(applies) or "none"
        raise SpecError(
            f"{method} does not apply to {what}: it needs {needs}, and the graph has "
            f"{ops}; methods that apply: {which}"
        )


def applicable(graph: Graph) -> list[str]:
    """The quantization methods that would change this float32 graph."""
    found = [m for m, ops in METHOD_OPS.items() if any(op in graph.ops for op in ops)]
    if graph.float32_weights:
        found.append("fp16")
    return found


def changed(before: Graph, after: Graph, method: str) -> dict[str, int]:
    """What the method made: the int8 operators added, or the weights turned float16."""
    if method == "fp16":
        turned = after.float16_weights - before.float16_weights
        return {"float16_weights": turned} if turned > 0 else {}
    return {op: n - before.ops[op] for op, n in after.int8_ops.items() if n > before.ops[op]}
