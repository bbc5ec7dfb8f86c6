"""`inferd evaluate`: a model scored on the held-out data its model.yaml names."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from inferd.cli import common
from inferd.cli.common import DEFAULT_REPO, RepoOption, TrustOption, _fail
from inferd.errors import InferdError
from inferd.repository import ModelEntry, ModelRepository


def evaluate(
    model: Annotated[str, typer.Argument(help="Model name.")],
    repo: RepoOption = DEFAULT_REPO,
    trust_code: TrustOption = False,
) -> None:
    """Score a model on the held-out data its model.yaml names; exit 1 below threshold."""
    from inferd.optimize.evaluate import evaluate as run_evaluation

    try:
        entry = ModelRepository(repo, trust_code=trust_code).load_one(model)
        report = run_evaluation(entry)
    except InferdError as error:
        raise _fail(error.message) from None
    verdict = {True: "[green]pass[/green]", False: "[red]FAIL[/red]", None: ""}[report.passed]
    threshold = f" (threshold {report.threshold})" if report.threshold is not None else ""
    if report.baseline is not None:
        threshold += f"; seasonal-naive baseline {report.metric} = {report.baseline:.4f}"
    common.console.print(
        f"{report.model} v{report.version}: {report.metric} = {report.value:.4f} on "
        f"{report.count} examples ({report.failed} failed){threshold} {verdict}",
        highlight=False,
        soft_wrap=True,
    )
    if report.per_class is not None:
        scores = ", ".join(f"{label} {ap:.3f}" for label, ap in report.per_class.items())
        common.console.print(f"  average precision per class: {scores}", highlight=False)
    if report.classes is not None:
        required = report.min_recall or {}
        width = max((len(name) for name in report.classes), default=0)
        for name, counts in report.classes.items():
            precision = "n/a" if counts.precision is None else f"{counts.precision:.4f}"
            recall = "n/a" if counts.recall is None else f"{counts.recall:.4f}"
            need = f" (min recall {required[name]})" if name in required else ""
            common.console.print(
                f"  {name:<{width}}  precision {precision} ({counts.correct}/{counts.predicted})"
                f"  recall {recall} ({counts.correct}/{counts.support}){need}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
    for problem in report.failures:
        common.console.print(
            f"  failed: {problem}", style="red", markup=False, highlight=False, soft_wrap=True
        )
    saved = save_reference_profile(entry, report.version)
    if saved is not None:
        common.console.print(f"  saved the inputs' reference profile (for drift) to {saved}")
    if report.passed is False:
        raise typer.Exit(1)


def save_reference_profile(entry: ModelEntry, version: int) -> Path | None:
    """The eval data's inputs, decoded as the server decodes and logs them, profiled into
    the version folder: what the live inputs' drift is measured against."""
    from inferd.monitor.profile import build_profile, save_profile
    from inferd.optimize.evaluate import load_examples
    from inferd.stages.decide import plain

    model = entry.versions.get(version)
    folder = entry.path / str(version)
    if entry.spec is None or entry.spec.eval is None or model is None or model.pipeline is None:
        return None
    if not folder.is_dir():  # a cascade: its members' folders hold their own profiles
        return None
    decoded = []
    for instance, _ in load_examples(entry.path / entry.spec.eval.data):
        try:
            item = model.pipeline.item_from_instance(instance)
        except InferdError:
            continue
        decoded.append({name: plain(value) for name, value in item.inputs.items()})
    profile = build_profile(decoded)
    if not profile.numeric and not profile.categorical:  # binary inputs only (images, audio)
        return None
    return save_profile(profile, folder)
