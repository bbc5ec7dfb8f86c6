"""`inferd optimize MODEL --distill --teacher TEACHER`: train the model (the student) again
through its recipe, on what a bigger model of the repository (the teacher) says.

The loss per training example is `alpha * T² * KL(teacher_T ‖ student_T) + (1 - alpha) *
cross-entropy(label)` (Hinton et al.: softened by the temperature T, scaled by T² so the soft
term's gradients keep their size); the recipe's unlabeled instances (e.g. variants of the
training messages) are labelled by the teacher alone and get only the soft term. The teacher's
logits come from its own inferd pipeline, cached (`inferd.optimize.teacher`).

To be fair, the same student is trained on the labels alone in the same run (same recipe, fresh
weights, same epochs, seed and schedule): the variant is recorded with its metric and speed
side by side with its source version, and with the teacher's and the labels-only student's.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from inferd.errors import NotFoundError, SpecError
from inferd.optimize.measure import (
    Comparison,
    batch_feed,
    compare,
    eval_instances,
    score,
    spec_of,
    staged_version,
    time_side_by_side,
    with_version,
)
from inferd.optimize.progress import SILENT, Steps
from inferd.optimize.recipe import Recipe, load_recipe
from inferd.optimize.teacher import teacher_logits
from inferd.optimize.training import Loss, fit, recipe_epochs
from inferd.optimize.variants import (
    Made,
    next_version,
    now,
    served_versions,
    tool_versions,
    write_variant,
)
from inferd.repository import ModelEntry, ModelVersion, discover, load_model
from inferd.spec import VariantSpec, load_labels, load_spec

if TYPE_CHECKING:
    import torch

TEMPERATURE = 2.0
ALPHA = 0.5
SEED = 0


@dataclass(frozen=True)
class Loaded:
    entry: ModelEntry
    model: ModelVersion
    labels: list[str]


def _load(repo: Path, name: str, role: str) -> Loaded:
    folders = {path.name: path for path in discover(repo)}
    if name not in folders:
        known = ", ".join(sorted(folders)) or "none"
        raise NotFoundError(f"unknown {role} {name!r}; the repository {repo} has: {known}")
    entry = load_model(folders[name])
    if entry.errors or entry.latest is None:
        reason = "; ".join(entry.errors) or "no version loaded"
        raise SpecError(f"{role} {name!r} does not load: {reason}")
    spec = spec_of(entry)
    labels = load_labels(spec, entry.path)
    if spec.task != "classification" or not labels:
        raise SpecError(
            f"{role} {name!r} is not a classifier with labels (task {spec.task}); "
            "distillation transfers class scores"
        )
    return Loaded(entry, entry.latest, labels)


def _same_labels(student: Loaded, teacher: Loaded) -> None:
    if student.labels == teacher.labels:
        return
    only_student = [x for x in student.labels if x not in teacher.labels]
    only_teacher = [x for x in teacher.labels if x not in student.labels]
    if not only_student and not only_teacher:
        detail = "the same labels in another order (the logits would not line up)"
    else:
        parts = []
        if only_student:
            parts.append(f"only {student.entry.name} has {', '.join(only_student)}")
        if only_teacher:
            parts.append(f"only {teacher.entry.name} has {', '.join(only_teacher)}")
        detail = "; ".join(parts)
    raise SpecError(
        f"teacher {teacher.entry.name!r} has other labels than {student.entry.name!r}: "
        f"{detail}; a teacher must score the student's classes, in its order"
    )


def _check_encode(recipe: Recipe, model: ModelVersion, instances: list[Any]) -> None:
    """The recipe must feed the model as serving does, or the student learns other inputs."""
    sample = instances[:8]
    served = model.predictive.feeds(sample)
    encoded = [t.numpy() for t in recipe.encode(sample, None)]
    if len(served) != 1 or len(served[0]) != len(encoded):
        raise SpecError(f"recipe {model.spec.recipe!r} does not encode the model's inputs")
    for (name, want), have in zip(served[0].items(), encoded, strict=True):
        if want.shape != have.shape or not np.allclose(want, have, atol=1e-5):
            raise SpecError(
                f"recipe {model.spec.recipe!r} encodes input {name!r} unlike the model's "
                "preprocess (another tokenizer or transform?); it must match the serving one"
            )


def _losses(
    labels: list[str], targets: list[str], logits: np.ndarray, temperature: float, alpha: float
) -> Any:
    """loss_for(rows) for distilling (teacher logits given) or for labels alone (None)."""
    import torch
    from torch.nn import functional

    hard = torch.full((len(logits),), -1, dtype=torch.long)
    hard[: len(targets)] = torch.tensor([labels.index(t) for t in targets])
    soft = functional.log_softmax(torch.from_numpy(logits) / temperature, dim=1)

    def loss_for(rows: np.ndarray) -> Loss:
        index = torch.from_numpy(rows)

        def loss(student: torch.Tensor) -> torch.Tensor:
            log_q = functional.log_softmax(student / temperature, dim=1)
            log_p = soft[index]
            kl = (log_p.exp() * (log_p - log_q)).sum(1) * temperature**2
            target = hard[index]
            labelled = (target >= 0).to(student.dtype)
            ce = functional.cross_entropy(student, target.clamp(min=0), reduction="none")
            return (alpha * kl + (1 - alpha) * ce * labelled).mean()

        return loss

    return loss_for


def _hard_loss(labels: list[str], targets: list[str]) -> Any:
    import torch
    from torch.nn import functional

    hard = torch.tensor([labels.index(t) for t in targets])

    def loss_for(rows: np.ndarray) -> Loss:
        target = hard[torch.from_numpy(rows)]
        return lambda student: functional.cross_entropy(student, target)

    return loss_for


def _check_targets(labels: list[str], targets: list[str], recipe: str | None) -> None:
    unknown = sorted({t for t in targets if t not in labels})
    if unknown:
        raise SpecError(f"recipe {recipe!r} has targets the model lacks: {', '.join(unknown)}")


def distill(
    repo: Path,
    model: str,
    teacher: str,
    *,
    epochs: int | None = None,
    steps: Steps = SILENT,
    temperature: float = TEMPERATURE,
    alpha: float = ALPHA,
    unlabeled: int | None = None,
    cache: Path | None = None,
    seconds: float = 3.0,
) -> Made:
    """Distil `teacher` into a new version of `model` (trained by its recipe from scratch);
    `unlabeled` caps how many of the recipe's unlabeled instances are used (None: all)."""
    if teacher == model:
        raise SpecError(f"the teacher must be another model than the student {model!r}")
    if temperature <= 0 or not 0 <= alpha <= 1:
        raise SpecError(f"temperature must be > 0 and alpha in [0, 1]; got {temperature}, {alpha}")
    student = _load(repo, model, "model")
    spec = spec_of(student.entry)
    recipe = load_recipe(spec)
    eval_set = eval_instances(student.entry)  # no eval data: a clear error, before any work
    mentor = _load(repo, teacher, "teacher")
    _same_labels(student, mentor)
    eval_instances(mentor.entry)  # the teacher's own metric is recorded too
    rounds = recipe_epochs(recipe, epochs)
    _check_encode(recipe, student.model, eval_set)

    data = recipe.load_data()
    _check_targets(student.labels, data.targets, spec.recipe)
    extra = data.unlabeled if unlabeled is None else data.unlabeled[:unlabeled]
    instances = [*data.instances, *extra]
    with steps.step(
        f"teacher {teacher} labelling {len(instances)} instances", len(instances)
    ) as go:
        logits, cached = teacher_logits(
            mentor.entry, mentor.model, instances, cache=cache, advance=go
        )
    if cached:
        steps.note(f"teacher logits from the cache ({len(instances)} instances)")
    agree = float(
        np.mean(
            [
                mentor.labels[k] == t
                for k, t in zip(logits[: len(data.targets)].argmax(1), data.targets, strict=True)
            ]
        )
    )

    import torch

    torch.set_num_threads(1)  # small students; the same sums every run
    with steps.step(f"training the student on labels alone ({rounds} epochs)", rounds) as go:
        baseline = recipe.build(None)
        fit(recipe, baseline, data.instances, _hard_loss(student.labels, data.targets),
            epochs=rounds, seed=SEED, advance=go)  # fmt: skip
    with steps.step(f"distilling ({rounds} epochs, T={temperature}, alpha={alpha})", rounds) as go:
        distilled = recipe.build(None)
        loss_for = _losses(student.labels, data.targets, logits, temperature, alpha)
        fit(recipe, distilled, instances, loss_for, epochs=rounds, seed=SEED, advance=go)

    number = next_version(student.entry.path)
    settings = {
        "teacher": mentor.entry.name,
        "teacher_version": mentor.model.version,
        "temperature": temperature,
        "alpha": alpha,
        "epochs": rounds,
        "labelled": len(data.instances),
        "unlabeled": len(extra),
        "seed": SEED,
    }
    record = VariantSpec(
        method="distill",
        source=student.model.version,
        settings=settings,
        tools=tool_versions(["torch", "onnx", "onnxruntime"]),
        created=now(),
    )
    warnings: list[str] = []

    def build(folder: Path) -> VariantSpec:
        recipe.export(distilled, folder)
        variant = staged_version(student.entry, folder, number)
        with tempfile.TemporaryDirectory(prefix="inferd-labels-only-") as aside:
            recipe.export(baseline, Path(aside))
            labels_only = staged_version(student.entry, Path(aside), number + 1)
            try:
                measured = _measure(student, mentor, variant, labels_only, eval_set, seconds, steps)
            finally:
                labels_only.close()
                variant.close()
        measured["teacher"]["train_agreement"] = agree
        comparison: Comparison = measured.pop("comparison")
        if measured["labels_only"]["value"] >= comparison.value:
            warnings.append(
                f"the distilled student ({comparison.value:.4f}) is no better than the same "
                f"student trained on labels alone ({measured['labels_only']['value']:.4f})"
            )
        if measured["teacher"]["speedup"] < 1:
            warnings.append("the distilled student is slower than its teacher")
        return record.model_copy(update={"measured": {**comparison.record(), **measured}})

    try:
        version = write_variant(student.entry.path, record, build)
    finally:
        for loaded in (student.model, mentor.model):
            loaded.close()
    written = load_spec(student.entry.path)  # the record as written (numbers rounded)
    assert written is not None  # write_variant checked it loads
    final = written.variants[version]
    return Made(model, version, final, tuple(warnings), served_versions(student.entry.path))


def _measure(
    student: Loaded,
    mentor: Loaded,
    variant: ModelVersion,
    labels_only: ModelVersion,
    eval_set: list[Any],
    seconds: float,
    steps: Steps,
) -> dict[str, Any]:
    """The variant against its source (compare), and against the teacher and the labels-only
    student: metric on the eval data; speed at batch 8, side by side."""
    with steps.step("measuring the student against its source"):
        comparison = compare(student.entry, student.model, variant, batch=8, seconds=seconds)
    with steps.step("measuring the student against the teacher and labels alone"):
        baseline = score(with_version(student.entry, labels_only), labels_only.version)
        taught = score(mentor.entry, mentor.model.version)
        backends = {
            "student": variant.predictive.backend,
            "teacher": mentor.model.predictive.backend,
        }
        feeds = {
            "student": batch_feed(variant.predictive, eval_set, 8),
            "teacher": batch_feed(mentor.model.predictive, eval_set, 8),
        }
        speeds = time_side_by_side(backends, feeds, seconds)
    steps.note(
        f"student {comparison.value:.4f}, labels alone {baseline.value:.4f}, teacher "
        f"{taught.value:.4f}; {speeds['teacher'].ms_per_batch / speeds['student'].ms_per_batch:.1f}"
        "x the teacher's speed at batch 8"
    )
    return {
        "comparison": comparison,
        "labels_only": {"value": baseline.value},
        "teacher": {
            "value": taught.value,
            "ms_per_batch": speeds["teacher"].ms_per_batch,
            "student_ms_per_batch": speeds["student"].ms_per_batch,
            "speedup": speeds["student"].items_per_s / speeds["teacher"].items_per_s,
        },
    }
