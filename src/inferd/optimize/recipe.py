"""`Recipe`: how a model is built, fed and trained, so that pruning and distillation can
retrain it. A model names its recipe in model.yaml (`recipe: examples.digits.recipe`, a Python
module with a `recipe()` function returning one); the example training scripts are written
around their recipes, so optimize retrains a model exactly as it was trained.

Recipes are code the project (or the user's package) ships, imported by module name; nothing
is ever imported from a model folder. torch is imported by the recipes, not here.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from inferd.errors import SpecError
from inferd.spec import ModelSpec

if TYPE_CHECKING:  # torch is the `train` extra
    import numpy as np
    import torch


@dataclass
class TrainingSet:
    """A model's training data in wire form: what a V1 client would send for each example."""

    instances: list[Any]
    targets: list[str]
    """Label names (model.yaml `labels`), one per instance."""
    unlabeled: list[Any] = field(default_factory=list)
    """More instances without labels, for a teacher to label (distillation)."""


class Recipe(Protocol):
    """The four things optimize needs to retrain a model.

    A recipe may also have `keep_whole`: names of layers (torch module paths) that pruning
    must leave whole, where the recipe's author knows thinning them costs accuracy."""

    def build(self, onnx_path: Path | None) -> torch.nn.Module:
        """The model in torch: with the weights of a version's model.onnx, or freshly
        initialised (None); in eval mode."""
        ...

    def load_data(self) -> TrainingSet:
        """The training split the model was trained on (never its eval data)."""
        ...

    def encode(
        self, instances: Sequence[Any], rng: np.random.Generator | None
    ) -> tuple[torch.Tensor, ...]:
        """Instances → the model's input tensors through the serving transform, randomly
        augmented as in training when `rng` is given."""
        ...

    def train_step(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        inputs: tuple[torch.Tensor, ...],
        loss: Any,
    ) -> float:
        """One optimisation step of `loss(logits) -> scalar tensor` on a batch; the loss."""
        ...

    def optimizer(self, model: torch.nn.Module, lr_scale: float) -> torch.optim.Optimizer:
        """The optimizer training uses, its learning rate scaled (fine-tuning uses less)."""
        ...

    def export(self, model: torch.nn.Module, folder: Path) -> None:
        """Write the model as `folder`/model.onnx, checked against torch."""
        ...


def load_recipe(spec: ModelSpec, repo: Path | None = None) -> Recipe:
    """The recipe model.yaml names, imported by module name.

    The bundled recipes live in the checkout, not in an installed package (`examples.digits.
    recipe`), and `inferd` started as a console script has its own bin folder on sys.path, not
    the folder it runs in. So while importing, the folder holding the model repository `repo`
    (the checkout's root for `--repo model_repository`) and the current folder (a checkout
    working on a repository elsewhere) are put on sys.path too, last, so that an installed
    package of the same name wins; they are taken off again afterwards. A recipe therefore
    imports what it needs when it is imported.
    """
    if spec.recipe is None:
        raise SpecError(
            f"model {spec.name!r} names no training recipe (model.yaml `recipe:`); pruning "
            "and distilling retrain the model, so they need one"
        )
    folders = [str(repo.resolve().parent)] if repo is not None else []
    folders = list(dict.fromkeys([*folders, str(Path.cwd())]))
    added = [folder for folder in folders if folder not in sys.path]
    sys.path.extend(added)
    try:
        module = importlib.import_module(spec.recipe)
    except ImportError as error:
        raise SpecError(
            f"model {spec.name!r}: recipe module {spec.recipe!r} cannot be imported ({error}); "
            f"it is looked for on the Python path and in {' and '.join(folders)}; install its "
            "package or run from the folder that holds it"
        ) from None
    finally:
        for folder in added:
            sys.path.remove(folder)
    make = getattr(module, "recipe", None)
    if not callable(make):
        raise SpecError(f"recipe module {spec.recipe!r} has no recipe() function")
    recipe: Recipe = make()
    return recipe
