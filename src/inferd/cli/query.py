"""`inferd predict`, `inferd models` and `inferd validate`: a repository's models, in-process."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from inferd.cli import common
from inferd.cli.common import DEFAULT_REPO, RepoArg, RepoOption, TrustOption, _fail
from inferd.codecs import json_dumps
from inferd.errors import InferdError
from inferd.repository import ModelRepository, discover, load_model


def _is_file(text: str) -> bool:
    """Whether a CLI argument names a file (a long JSON value is not a path, not an error)."""
    try:
        return Path(text).is_file()
    except OSError:
        return False


_FEATURE = re.compile(r"^[A-Za-z_][\w.\-]*=")


def _instances(inputs: list[str]) -> list[tuple[str, Any]]:
    """CLI inputs → (source, V1 instance): files, key=value features, JSON values or text."""
    pairs = [text for text in inputs if _FEATURE.match(text) and not _is_file(text)]
    if pairs:
        if len(pairs) != len(inputs):
            raise _fail("give either key=value features or files/values, not both")
        instance: dict[str, Any] = {}
        for pair in pairs:
            key, _, raw = pair.partition("=")
            try:
                instance[key] = json.loads(raw)
            except json.JSONDecodeError:
                instance[key] = raw
        return [("features", instance)]
    out: list[tuple[str, Any]] = []
    for text in inputs:
        if _is_file(text):
            data = Path(text).read_bytes()
            out.append((text, {"b64": base64.b64encode(data).decode("ascii")}))
            continue
        try:
            out.append((text, json.loads(text)))
        except json.JSONDecodeError:
            out.append((text, text))  # plain text, for text models; others say what they take
    return out


def _describe(fields: dict[str, Any]) -> str:
    if "label" in fields and "top_k" in fields:
        top = ", ".join(f"{t['label']} {t['score']:.3f}" for t in fields["top_k"])
        return f"{fields['label']}  (score {fields['score']:.3f}; top: {top})"
    if "detections" in fields:
        found = fields["detections"]
        lines = [f"{len(found)} found" if found else "nothing found"]
        lines += [
            f"  {d['label']} {d['score']:.3f} at [{', '.join(f'{v:.1f}' for v in d['box'])}]"
            for d in found
        ]
        return "\n".join(lines)
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items()
    )


def predict(
    model: Annotated[str, typer.Argument(help="Model name (a folder of the repository).")],
    inputs: Annotated[
        list[str], typer.Argument(help="Files, key=value features, JSON values or text.")
    ],
    repo: RepoOption = DEFAULT_REPO,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print prediction objects as JSON.")
    ] = False,
    trust_code: TrustOption = False,
) -> None:
    """Run one prediction in-process (no server) and print it."""
    try:
        entry = ModelRepository(repo, trust_code=trust_code).load_one(model)
    except InferdError as error:
        raise _fail(error.message) from None
    if entry.latest is None:
        raise _fail(f"model {model!r} did not load: {'; '.join(entry.errors)}")
    sources = _instances(inputs)
    outcomes = entry.latest.predictive.predict_instances([instance for _, instance in sources])
    failed = False
    for (source, _), outcome in zip(sources, outcomes, strict=True):
        if isinstance(outcome, InferdError):
            failed = True
            common.err_console.print(f"[red]error:[/red] {source}: {outcome.message}")
        elif as_json:
            typer.echo(json_dumps(outcome.as_json()).decode())
        else:
            prefix = f"{source}: " if len(sources) > 1 else ""
            common.console.print(prefix + _describe(outcome.fields), highlight=False)
    if failed:
        raise typer.Exit(1)


def _shapes(tensors: list[Any], batched: bool) -> str:
    return ", ".join(
        f"{t.name} {t.datatype}{[-1, *t.shape] if batched else t.shape}" for t in tensors
    )


def models(repo: RepoArg = DEFAULT_REPO, trust_code: TrustOption = False) -> None:
    """List the models of a repository: versions, task, backend, inputs and outputs."""
    try:
        repository = ModelRepository(repo, trust_code=trust_code)
        repository.load()
    except InferdError as error:
        raise _fail(error.message) from None
    table = Table(title=f"models in {repo}")
    for column in ("model", "versions", "task", "backend", "inputs", "outputs", "state"):
        table.add_column(column)
    for entry in repository.entries():
        latest = entry.latest
        spec = entry.spec
        table.add_row(
            entry.name,
            ", ".join(str(v) for v in sorted(entry.versions)) or "-",
            spec.task if spec else "-",
            spec.backend if spec else "-",
            _shapes(latest.inputs, latest.batched) if latest else "-",
            _shapes(latest.outputs, latest.batched) if latest else "-",
            "[green]ok[/green]"
            if not entry.errors
            else "[red]" + "; ".join(entry.errors) + "[/red]",
        )
    common.console.print(table)


def validate(repo: RepoArg = DEFAULT_REPO, trust_code: TrustOption = False) -> None:
    """Check every model.yaml and artifact in REPO; say exactly what is wrong."""
    from inferd.optimize.evaluate import load_examples

    try:
        folders = discover(repo)
    except InferdError as error:
        raise _fail(error.message) from None
    problems = 0
    for folder in folders:
        entry = load_model(folder, trust_code)
        errors = list(entry.errors)
        if entry.spec is not None and entry.spec.eval is not None:
            try:
                load_examples(folder / entry.spec.eval.data)
            except InferdError as error:
                errors.append(error.message)
        if errors:
            problems += 1
            common.console.print(f"[red]✗ {entry.name}[/red]")
            for message in errors:
                common.console.print("    " + message.replace("\n", "\n    "), highlight=False)
        else:
            versions = ", ".join(str(v) for v in sorted(entry.versions))
            common.console.print(f"[green]✓ {entry.name}[/green] (versions {versions})")
        for model in entry.versions.values():
            model.close()
    if not folders:
        raise _fail(f"{repo} holds no model folders (each needs model.yaml or 1/model.onnx)")
    if problems:
        raise _fail(f"{problems} of {len(folders)} models have problems")
    common.console.print(f"all {len(folders)} models are valid")
