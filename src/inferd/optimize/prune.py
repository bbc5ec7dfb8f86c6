"""`inferd optimize MODEL --prune RATIO`: structured pruning, then a short fine-tune.

Whole convolution channels and hidden neurons are removed (torch-pruning, which follows the
dependencies between layers so the next layer loses the matching inputs), so the variant
really has smaller weight tensors and runs fewer multiply-adds, rather than zeros in tensors of
the same size. Which channels go is decided per layer by the L2 norm of the weights of each
channel's whole group (the channel's filter, its bias, and the next layer's weights that read
it): the smallest `ratio` of each layer's channels are removed; the output layer is kept whole.

The model is rebuilt in torch from the served version's model.onnx by the model's training
recipe (model.yaml `recipe:`), fine-tuned on the recipe's training data (augmented as in
training, cross-entropy on the labels) with the recipe's optimizer at a reduced learning rate
falling to zero, exported by the recipe into a staging folder, measured side by side with its
source (accuracy on the eval data, speed at one batch size), and only then written as the
next version; one that measures slower is refused unless `allow_slower`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from inferd.errors import BadRequestError, ModelNotReadyError, SpecError
from inferd.optimize.measure import Comparison, compare, eval_instances, staged_version
from inferd.optimize.progress import SILENT, Steps
from inferd.optimize.recipe import Recipe, TrainingSet, load_recipe
from inferd.optimize.variants import (
    Made,
    next_version,
    now,
    served_versions,
    tool_versions,
    write_variant,
)
from inferd.repository import ModelEntry, ModelRepository, ModelVersion
from inferd.spec import ModelSpec, VariantSpec, load_labels, load_spec

if TYPE_CHECKING:  # the `optimize` extra
    import torch

DEFAULT_EPOCHS = 15
"""Fine-tuning passes over the training data when none is asked for."""
LR_SCALE = 0.5
"""The fine-tune's starting learning rate, as a share of the recipe's training rate."""
TRAIN_BATCH = 128
MEASURE_BATCH = 64
"""Speed is compared at this batch size (the digits example's max_batch_size)."""
CRITERION = "group-l2-magnitude"
TEMPERATURE = 2.0
SOFT_WEIGHT = 0.5
"""The fine-tune's loss: this share of it is the unpruned source's softened outputs."""
MULTIPLE = 8
"""Each pruned layer keeps a multiple of this many channels: ONNX Runtime's CPU convolutions
work on blocks of 8/16 channels, and the digits CNN pruned to 10/19 channels measured barely
faster (1.1x) than at 16/32, while 8/16 ran 1.9x faster."""
TOOLS = ("torch", "torch-pruning", "onnx", "onnxruntime", "onnxscript")
MAX_LOSS_OF_METRIC = 0.01
"""A drop beyond this (1 point of accuracy) is written, but warned about."""


def prune(
    repo: Path | str,
    model: str,
    ratio: float,
    *,
    epochs: int | None = None,
    allow_slower: bool = False,
    steps: Steps = SILENT,
    batch: int = MEASURE_BATCH,
    seconds: float = 3.0,
    lr_scale: float = LR_SCALE,
    train_batch: int = TRAIN_BATCH,
    seed: int = 0,
    multiple: int = MULTIPLE,
) -> Made:
    """Prune `ratio` of the channels/neurons of every hidden layer of the served version of
    `model`, fine-tune `epochs` passes, and write the result as the model's next version."""
    if not 0.0 < ratio < 1.0:
        raise BadRequestError(
            f"the prune ratio is the share of channels to remove, between 0 and 1 (exclusive); "
            f"got {ratio}"
        )
    epochs = DEFAULT_EPOCHS if epochs is None else epochs
    if epochs < 0:
        raise BadRequestError(f"--epochs must be 0 or more; got {epochs}")
    repo = Path(repo)
    entry = ModelRepository(repo).load_one(model)
    spec = checked_spec(entry)
    source = served_version(entry)
    eval_instances(entry)  # no eval data: refused before anything is trained
    recipe = load_recipe(spec, repo)
    tp = import_torch_pruning()
    data = recipe.load_data()
    targets = target_indices(spec, entry.path, data)

    source_onnx = entry.path / str(source.version) / "model.onnx"
    with steps.step("rebuilding the model in torch"):
        net = trainable(recipe.build(source_onnx), spec)
        teacher = recipe.build(source_onnx).eval()
    before = parameters(net)
    widths_before = widths(net)
    with steps.step(f"pruning {ratio:.0%} of each layer's channels"):
        output_layer = remove_channels(tp, net, recipe, data, ratio, multiple)
    after = parameters(net)
    if after >= before:
        raise BadRequestError(
            f"pruning {ratio} of the channels removes none from {model!r} (its layers are too "
            "narrow for that share); choose a larger ratio"
        )
    steps.note(f"parameters {before:,} → {after:,}")
    lr = fine_tune(recipe, net, data, targets, epochs, lr_scale, train_batch, seed, steps, teacher)

    settings: dict[str, Any] = {
        "ratio": ratio,
        "criterion": CRITERION,
        "scope": "per layer; output layer kept",
        "kept_whole": list(getattr(recipe, "keep_whole", ())),
        "channels_multiple_of": multiple,
        "output_layer": output_layer,
        "parameters_before": before,
        "parameters_after": after,
        "widths_before": widths_before,
        "widths_after": widths(net),
        "fine_tune": {
            "epochs": epochs,
            "lr": lr,
            "lr_scale": lr_scale,
            "schedule": "cosine to 0",
            "batch_size": train_batch,
            "examples": len(targets),
            "loss": f"{1 - SOFT_WEIGHT:g} cross-entropy + {SOFT_WEIGHT:g} KL to the source "
            f"at temperature {TEMPERATURE:g}",
            "augmented": True,
            "seed": seed,
        },
    }
    record = VariantSpec(
        method="prune",
        source=source.version,
        settings=settings,
        tools=tool_versions(TOOLS),
        created=now(),
    )
    warnings: list[str] = []

    def build(folder: Path) -> VariantSpec:
        with steps.step("exporting"):
            recipe.export(net, folder)
        with steps.step(f"measuring against v{source.version} at batch {batch}"):
            variant = staged_version(entry, folder, next_version(entry.path))
            measured = compare(entry, source, variant, batch=batch, seconds=seconds)
        warnings.extend(judge(measured, allow_slower))
        return record.model_copy(update={"measured": measured.record()})

    version = write_variant(entry.path, record, build)
    variant = load_spec(entry.path)
    assert variant is not None  # write_variant has just written it
    return Made(
        model=model,
        version=version,
        variant=variant.variants[version],
        warnings=tuple(warnings),
        served=served_versions(entry.path),
    )


# --- checks before anything is trained ---------------------------------------------------------


def checked_spec(entry: ModelEntry) -> ModelSpec:
    if entry.spec is None:
        raise SpecError(f"model {entry.name!r} has no model.yaml; pruning needs its recipe")
    if entry.spec.backend != "onnx":
        raise SpecError(
            f"model {entry.name!r} runs on the {entry.spec.backend} backend; pruning rebuilds "
            "an ONNX model (model.onnx) in torch through its recipe, so only onnx models can "
            "be pruned (try --quantize for others)"
        )
    if entry.spec.task != "classification":
        raise SpecError(
            f"model {entry.name!r} is a {entry.spec.task} model; pruning fine-tunes on class "
            "labels, so it applies to classification models"
        )
    return entry.spec


def served_version(entry: ModelEntry) -> ModelVersion:
    source = entry.latest
    if source is None:
        reason = "; ".join(entry.errors) or "it has no version"
        raise ModelNotReadyError(f"model {entry.name!r} cannot be loaded: {reason}")
    return source


def import_torch_pruning() -> Any:
    try:
        import torch_pruning
    except ImportError:
        raise SpecError(
            "pruning needs torch and torch-pruning: pip install 'inferd[optimize]'"
        ) from None
    return torch_pruning


def target_indices(spec: ModelSpec, model_dir: Path, data: TrainingSet) -> list[int]:
    """The training labels as class indices (the order of model.yaml `labels`)."""
    labels = load_labels(spec, model_dir)
    if labels is None:
        raise SpecError(f"model {spec.name!r} has no labels; fine-tuning needs its class names")
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({t for t in data.targets if t not in index})
    if unknown:
        raise SpecError(
            f"the recipe's training data has labels the model does not: {unknown[:5]}; "
            f"the model's labels are {labels[:10]}"
        )
    if not data.targets or len(data.targets) != len(data.instances):
        raise SpecError(
            f"the recipe of {spec.name!r} gave {len(data.instances)} training instances and "
            f"{len(data.targets)} labels; fine-tuning needs one label per instance"
        )
    return [index[t] for t in data.targets]


def trainable(net: Any, spec: ModelSpec) -> torch.nn.Module:
    import torch

    if not isinstance(net, torch.nn.Module) or not any(True for _ in net.parameters()):
        raise SpecError(
            f"the recipe of {spec.name!r} built {type(net).__name__}, not a torch module with "
            "weights; pruning trains the model in torch"
        )
    return net


# --- pruning -----------------------------------------------------------------------------------


def parameters(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def layers(net: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """The convolutions and linear layers, in definition order."""
    import torch

    kinds = (torch.nn.modules.conv._ConvNd, torch.nn.Linear)
    return [(name, m) for name, m in net.named_modules() if isinstance(m, kinds)]


def widths(net: torch.nn.Module) -> dict[str, int]:
    """Output channels (or neurons) of each convolution and linear layer."""
    found = {}
    for name, layer in layers(net):
        weight = getattr(layer, "weight", None)
        if weight is not None:
            found[name] = int(weight.shape[0])
    return found


def last_layer(net: torch.nn.Module, inputs: Sequence[torch.Tensor]) -> str:
    """The name of the last convolution or linear layer a forward pass runs: the output
    layer, whose outputs are the classes and must all stay."""
    import torch

    ran: list[str] = []
    hooks = [
        module.register_forward_hook(lambda *_, name=name: ran.append(name))
        for name, module in layers(net)
    ]
    try:
        with torch.no_grad():
            net(*inputs)
    finally:
        for hook in hooks:
            hook.remove()
    if not ran:
        raise SpecError("the model has no convolution or linear layer to prune")
    return ran[-1]


def kept(width: int, ratio: float, multiple: int) -> int:
    """How many of a layer's `width` channels stay: `1 - ratio` of them, rounded to the
    nearest multiple of `multiple` (never fewer than `multiple`, never more than `width`);
    a layer narrower than `multiple` keeps its plain share (at least one)."""
    share = width * (1.0 - ratio)
    if width < multiple or multiple <= 1:
        return max(1, round(share))
    return min(width, max(multiple, multiple * round(share / multiple)))


def remove_channels(
    tp: Any, net: torch.nn.Module, recipe: Recipe, data: TrainingSet, ratio: float, multiple: int
) -> str:
    """Remove about `ratio` of each prunable layer's channels, the least important by group
    L2 norm, keeping a multiple of `multiple` in each; return the name of the output layer,
    which was kept whole, as are the layers the recipe names in `keep_whole`."""
    example = recipe.encode(data.instances[:2], None)
    net.eval()
    output = last_layer(net, example)
    sizes = widths(net)
    whole = kept_whole(recipe, net, output)
    ratios = {
        layer: 1.0 - kept(sizes[name], ratio, multiple) / sizes[name]
        for name, layer in layers(net)
        if name not in whole and name in sizes
    }
    pruner = tp.pruner.MetaPruner(
        net,
        example_inputs=example,
        importance=tp.importance.GroupMagnitudeImportance(p=2),
        pruning_ratio=ratio,
        pruning_ratio_dict=ratios,
        ignored_layers=[net.get_submodule(name) for name in whole],
        global_pruning=False,
    )
    pruner.step()
    return output


def kept_whole(recipe: Recipe, net: torch.nn.Module, output: str) -> list[str]:
    """The output layer and the layers the recipe says to leave whole (checked to exist)."""
    names = [output, *getattr(recipe, "keep_whole", ())]
    known = dict(net.named_modules())
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SpecError(
            f"the recipe's keep_whole names {', '.join(unknown)}, which the model does not "
            f"have; its layers are {', '.join(name for name, _ in layers(net))}"
        )
    return list(dict.fromkeys(names))


# --- fine-tuning -------------------------------------------------------------------------------


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """torch's random state (dropout) seeded for the fine-tune, and restored after it."""
    import torch

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        yield


def fine_tune(
    recipe: Recipe,
    net: torch.nn.Module,
    data: TrainingSet,
    targets: list[int],
    epochs: int,
    lr_scale: float,
    batch_size: int,
    seed: int,
    steps: Steps,
    source: torch.nn.Module | None = None,
) -> float:
    """`epochs` passes over the training data through the recipe's encode (augmented) and
    train_step, at the recipe's learning rate times `lr_scale`, falling to 0 on a cosine;
    returns the starting learning rate.

    The loss is cross-entropy on the labels, plus, when the unpruned `source` is given, its
    softened outputs as targets (`soft_loss`): the pruned model relearns what the source
    answered on every augmented image, which recovers more than the labels alone."""
    import torch
    from torch.nn import functional

    optimizer = recipe.optimizer(net, lr_scale)
    lr = float(optimizer.param_groups[0]["lr"])
    batches = math.ceil(len(targets) / batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, epochs * batches))
    labels = torch.tensor(targets, dtype=torch.long)
    rng = np.random.default_rng(seed)
    with seeded(seed), steps.step("fine-tuning", total=epochs * batches) as advance:
        for _ in range(epochs):
            order = rng.permutation(len(targets))
            for start in range(0, len(order), batch_size):
                chosen = order[start : start + batch_size]
                inputs = recipe.encode([data.instances[i] for i in chosen], rng)
                wanted = labels[torch.from_numpy(chosen)]
                taught = None
                if source is not None:
                    with torch.no_grad():
                        taught = source(*inputs)

                def loss(
                    logits: torch.Tensor,
                    wanted: torch.Tensor = wanted,
                    taught: torch.Tensor | None = taught,
                ) -> torch.Tensor:
                    hard = functional.cross_entropy(logits, wanted)
                    if taught is None:
                        return hard
                    return (1 - SOFT_WEIGHT) * hard + SOFT_WEIGHT * soft_loss(logits, taught)

                recipe.train_step(net, optimizer, inputs, loss)
                schedule.step()
                advance(1)
    net.eval()
    return lr


def soft_loss(logits: torch.Tensor, taught: torch.Tensor) -> torch.Tensor:
    """KL divergence from the source's outputs, both softened by TEMPERATURE (scaled by its
    square, so its gradients weigh as the hard loss's do)."""
    from torch.nn import functional

    return functional.kl_div(
        functional.log_softmax(logits / TEMPERATURE, dim=1),
        functional.log_softmax(taught / TEMPERATURE, dim=1),
        log_target=True,
        reduction="batchmean",
    ) * (TEMPERATURE**2)


# --- judging and recording ---------------------------------------------------------------------


def judge(measured: Comparison, allow_slower: bool) -> list[str]:
    """Refuse a variant that measured slower (unless allowed); warnings worth reading."""
    warnings = []
    if measured.speedup < 1.0:
        message = (
            f"the pruned model measured slower than its source at batch {measured.speed.batch} "
            f"({measured.source_speed.ms_per_batch:.3f} ms → {measured.speed.ms_per_batch:.3f} "
            f"ms per batch, {measured.speedup:.2f}x)"
        )
        if not allow_slower:
            raise BadRequestError(
                f"{message}; nothing was written. Prune more, or pass --allow-slower"
            )
        warnings.append(message)
    if measured.drop > MAX_LOSS_OF_METRIC:
        warnings.append(
            f"{measured.metric} fell from {measured.source_value:.4f} to {measured.value:.4f}; "
            "fine-tune longer (--epochs) or prune less"
        )
    return warnings
