"""How model.yaml records the versions `inferd optimize` made (`variants:`) and names the
training recipe that pruning and distillation retrain through (`recipe:`)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from inferd.spec.base import _Strict


class VariantSpec(_Strict):
    """One version made from another: by what, from which, with which tools, measured how.

    Written by `inferd optimize` under `variants: {VERSION: ...}` so that anyone reading
    model.yaml can tell how a version came to be and what it measured when it was made."""

    method: str
    """dynamic-int8, static-int8, fp16, prune or distill."""
    source: int = Field(ge=1)
    """The version it was made from."""
    settings: dict[str, Any] = Field(default_factory=dict)
    """The method's settings (per-channel, reduce-range, ratio, teacher, temperature, ...)."""
    tools: dict[str, str] = Field(default_factory=dict)
    """Package versions that made it (onnxruntime, torch, torch-pruning, ...)."""
    measured: dict[str, Any] = Field(default_factory=dict)
    """The metric and speed of the variant and its source, measured side by side when it was
    made, and the CPU they were measured on."""
    created: str = ""
    """When it was made (ISO 8601, UTC)."""
