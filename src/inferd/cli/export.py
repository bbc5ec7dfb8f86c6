"""`inferd export`: deployment manifests for a model, written from its folder and checked
against the target's own schemas before anything is written."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from inferd.cli import common
from inferd.cli.common import TrustOption, _fail
from inferd.deploy.kserve import (
    DEFAULT_CPU,
    DEFAULT_IMAGE,
    DEFAULT_MEMORY,
    RUNTIME_NAME,
    KServeOptions,
    ManifestError,
    kserve_manifests,
)
from inferd.errors import SpecError

app = typer.Typer(
    name="export",
    help="Write deployment manifests for a model (KServe).",
    no_args_is_help=True,
)


@app.command()
def kserve(
    model: Annotated[
        Path, typer.Argument(help="The model's folder: model.yaml and its version folders.")
    ],
    storage_uri: Annotated[
        str | None,
        typer.Option(
            help="Required. Where KServe downloads the model folder's contents from (its "
            "model.yaml at STORAGE_URI/model.yaml), e.g. s3://bucket/models/digits or "
            "pvc://models/digits."
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="The InferenceService's name (default: the model's).")
    ] = None,
    namespace: Annotated[
        str | None, typer.Option(help="Namespace of both objects (default: kubectl's).")
    ] = None,
    image: Annotated[
        str, typer.Option(help="The inferd image (build it from the Dockerfile).")
    ] = DEFAULT_IMAGE,
    cpu: Annotated[str, typer.Option(help="CPU requested and its limit (1, 500m).")] = DEFAULT_CPU,
    memory: Annotated[
        str, typer.Option(help="Memory requested and its limit (2Gi, 512Mi).")
    ] = DEFAULT_MEMORY,
    workers: Annotated[
        int | None, typer.Option(help="`inferd serve --workers` in the pod (default: its own).")
    ] = None,
    trust_code: TrustOption = False,
    allow_env: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-env",
            help="An environment variable model.yaml may read in the pod (repeat for more); "
            "read here too when checking model.yaml.",
        ),
    ] = None,
    runtime: Annotated[
        str, typer.Option(help="The ServingRuntime's name (one serves every inferd model).")
    ] = RUNTIME_NAME,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Write one file per object into this folder (default: stdout)."
        ),
    ] = None,
) -> None:
    """A KServe ServingRuntime and InferenceService that serve MODEL over the V2 protocol."""
    if storage_uri is None:
        raise _fail(
            "--storage-uri is required: where KServe downloads the model folder from, "
            "e.g. --storage-uri s3://bucket/models/digits (upload the folder's contents there)"
        )
    options = KServeOptions(
        storage_uri=storage_uri,
        name=name,
        namespace=namespace,
        image=image,
        cpu=cpu,
        memory=memory,
        workers=workers,
        trust_code=trust_code,
        allow_env=tuple(allow_env or ()),
        runtime=runtime,
    )
    try:
        manifests = kserve_manifests(model, options)
    except (ManifestError, SpecError) as error:
        raise _fail(str(error)) from None
    if output is None:
        common.console.file.write(manifests.to_yaml())
    else:
        for path in manifests.write(output):
            common.err_console.print(f"wrote {path}", highlight=False)
    for note in manifests.notes:
        common.err_console.print(f"note: {note}", highlight=False, markup=False)
