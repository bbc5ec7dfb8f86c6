"""The `scale:` section of model.yaml: how many replicas serve a version when it runs on
Ray Serve (`inferd serve --engine ray`); ignored when it is served in this process.

    scale: {min_replicas: 1, max_replicas: 4, target_ongoing_requests: 16}

With max_replicas above min_replicas, Ray Serve's autoscaler adds and removes replicas to keep
about `target_ongoing_requests` requests on each; otherwise it runs exactly min_replicas.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from inferd.spec.base import _Strict


class ScaleSpec(_Strict):
    """Replicas of one model version on Ray Serve, fixed or autoscaled."""

    min_replicas: int = Field(default=1, ge=1)
    """Replicas always running (and started with)."""
    max_replicas: int | None = Field(default=None, ge=1)
    """The autoscaler's ceiling; None: min_replicas (a fixed number, no autoscaling)."""
    target_ongoing_requests: float | None = Field(default=None, gt=0)
    """Requests in flight per replica the autoscaler aims at; None: the model's
    max_batch_size (at least 2), so a replica's batches can fill."""

    @model_validator(mode="after")
    def _ordered(self) -> ScaleSpec:
        if self.max_replicas is not None and self.max_replicas < self.min_replicas:
            raise ValueError(
                f"max_replicas ({self.max_replicas}) is below min_replicas "
                f"({self.min_replicas}); raise max_replicas or lower min_replicas"
            )
        return self

    @property
    def most(self) -> int:
        """The most replicas it may run."""
        return self.max_replicas if self.max_replicas is not None else self.min_replicas

    @property
    def autoscaled(self) -> bool:
        return self.most > self.min_replicas
