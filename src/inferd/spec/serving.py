"""How model.yaml says a model is run: `batching:`, `runtime:` (threads, device, instances)
and `python:` (the module and class of a python-backend model)."""

from __future__ import annotations

from pydantic import Field

from inferd.spec.base import ModelFile, _Strict


class BatchingSpec(_Strict):
    max_batch_size: int = Field(default=32, ge=0)
    """0 or 1 turns batching off (0 also means the model has no batch dimension)."""
    max_delay_ms: float = Field(default=0.0, ge=0)
    """How long a batch may wait to fill after its first item; 0: start when a worker is free."""
    max_queue: int = Field(default=1024, ge=1)
    """Items that may wait; beyond it requests are refused with 429."""
    max_items_per_request: int = Field(default=1024, ge=1)
    """Items one request may carry (never more than `max_queue`); more is a 413."""

    @property
    def request_item_limit(self) -> int:
        """The most items one request can have: a request the queue could never hold is
        refused at once (413), not with a 429 no retry can get past."""
        return min(self.max_items_per_request, self.max_queue)


class RuntimeSpec(_Strict):
    threads: int = Field(default=0, ge=0)
    """Intra-op threads for the backend; 0 lets the runtime choose."""
    device: str = "cpu"
    """cpu, cuda, cuda:N, or auto: at load time, the fastest device whose outputs match the
    CPU's on a sample batch."""
    instances: int = Field(default=1, ge=1)
    """Batches that may run at once (worker threads for this model version)."""
    batch_timeout_s: float | None = Field(default=30.0, gt=0)
    """A batch running longer is a hung model: its requests get 504, the model is marked
    not ready and restarted in the background (null: never)."""


class PythonSpec(_Strict):
    module: ModelFile = "model.py"
    """File in the version folder; loaded only when serving with --trust-code."""
    class_name: str = Field(default="Model", alias="class")
