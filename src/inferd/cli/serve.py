"""`inferd serve`: the HTTP server over a model repository."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from inferd.cli.common import (
    DEFAULT_DATA_DIR,
    DEFAULT_REPO,
    DataDirOption,
    RepoArg,
    StoreOption,
    TrustOption,
    _fail,
    _store_url,
    parse_size,
)


def serve(
    repo: RepoArg = DEFAULT_REPO,
    host: Annotated[str, typer.Option(help="Address to bind; 0.0.0.0 exposes it.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    trust_code: TrustOption = False,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="INFERD_API_KEY", help="Require this key on every non-health route."),
    ] = None,
    max_body_size: Annotated[
        str, typer.Option(help="Largest request body accepted, e.g. 32MiB.")
    ] = "32MiB",
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    data_dir: DataDirOption = DEFAULT_DATA_DIR,
    store: StoreOption = None,
    retention_days: Annotated[
        float,
        typer.Option(help="Days logged predictions and delivered actions are kept."),
    ] = 30.0,
) -> None:
    """Serve every model in REPO over HTTP (Open Inference Protocol V2 and KServe V1)."""
    from inferd.app import create_app
    from inferd.errors import ListenError, StartupError
    from inferd.http.server import HttpService

    if not repo.is_dir():
        raise _fail(f"model repository {repo} is not a folder")
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if retention_days <= 0:
        raise _fail("--retention-days must be positive")
    try:
        application = create_app(
            repo,
            trust_code=trust_code,
            api_key=api_key,
            max_body_bytes=parse_size(max_body_size),
            store_url=_store_url(data_dir, store),
            retention_days=retention_days,
        )
    except Exception as error:  # a bad URL, an unreachable database, a read-only folder
        raise _fail(f"cannot open the store: {error}") from None
    service = HttpService(
        application.handle,
        startup=application.startup,
        shutdown=application.shutdown,
        max_body_bytes=application.max_body_bytes,
    )
    try:
        service.run(host, port)
    except (ListenError, StartupError) as error:
        raise _fail(str(error)) from None
