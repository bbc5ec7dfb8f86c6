"""`fit`: the one training loop a recipe's model is trained with, by its own training script
and by distillation, so that a distilled student and the same student trained on labels alone
differ only in their targets (same batches, schedule, optimizer and epochs).

Beyond the `Recipe` protocol, a recipe may declare how it trains from scratch (read here when
present): `epochs` (int), `batch_size` (int, default 32) and `schedule(optimizer, total_steps)`
returning a learning-rate scheduler stepped after every batch (default: none).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from inferd.errors import SpecError
from inferd.optimize.recipe import Recipe

if TYPE_CHECKING:  # the `train` extra
    import torch

Loss = Callable[["torch.Tensor"], "torch.Tensor"]
"""A batch's logits → the scalar loss to minimise."""

DEFAULT_BATCH = 32


def recipe_epochs(recipe: Recipe, epochs: int | None) -> int:
    """`epochs` when given, else the recipe's own; a clear error when neither says."""
    chosen = epochs if epochs is not None else getattr(recipe, "epochs", None)
    if not isinstance(chosen, int) or chosen < 1:
        raise SpecError(
            f"training needs a positive number of epochs (got {chosen!r}); pass --epochs N "
            "or give the recipe an `epochs` attribute"
        )
    return chosen


def fit(
    recipe: Recipe,
    model: torch.nn.Module,
    instances: Sequence[Any],
    loss_for: Callable[[np.ndarray], Loss],
    *,
    epochs: int,
    seed: int = 0,
    lr_scale: float = 1.0,
    advance: Callable[[float], None] | None = None,
) -> list[float]:
    """Train `model` in place: `epochs` passes over `instances` in batches shuffled by `seed`,
    each one `recipe.train_step` on `loss_for(rows)` (the rows' positions in `instances`);
    the model is left in eval mode. Returns each epoch's mean loss."""
    if not instances:
        raise SpecError("there is nothing to train on: the recipe's training data is empty")
    rng = np.random.default_rng(seed)
    size = int(getattr(recipe, "batch_size", DEFAULT_BATCH))
    per_epoch = -(-len(instances) // size)
    optimizer = recipe.optimizer(model, lr_scale)
    make_schedule = getattr(recipe, "schedule", None)
    schedule = make_schedule(optimizer, epochs * per_epoch) if make_schedule else None
    model.train()
    losses = []
    for _ in range(epochs):
        order = rng.permutation(len(instances))
        total = 0.0
        for start in range(0, len(order), size):
            rows = order[start : start + size]
            inputs = recipe.encode([instances[i] for i in rows], rng)
            total += recipe.train_step(model, optimizer, inputs, loss_for(rows))
            if schedule is not None:
                schedule.step()
        losses.append(total / per_epoch)
        if advance is not None:
            advance(1)
    model.eval()
    return losses
