"""`inferd report`: one model's four costs over a window, as a self-contained HTML page (or
its JSON), read from the store a server logged its predictions into."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from inferd.cli import common
from inferd.cli.common import (
    DEFAULT_DATA_DIR,
    DEFAULT_REPO,
    DataDirOption,
    RepoOption,
    StoreOption,
    _fail,
    _store_url,
)


def report(
    model: Annotated[str, typer.Argument(help="Model name.")],
    repo: RepoOption = DEFAULT_REPO,
    data_dir: DataDirOption = DEFAULT_DATA_DIR,
    store: StoreOption = None,
    out: Annotated[
        Path | None, typer.Option(help="File to write (default MODEL-report.html or .json).")
    ] = None,
    window: Annotated[
        float | None,
        typer.Option(help="Seconds of predictions to report on (default monitoring.window_s)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Write the report's JSON instead of HTML.")
    ] = False,
    currency: Annotated[str | None, typer.Option(help="The currency costs were logged in.")] = None,
) -> None:
    """Write MODEL's latency, cost, energy, accuracy, fairness and drift as one HTML file."""
    from inferd.errors import InferdError
    from inferd.monitor.report import report_from_store
    from inferd.repository import discover
    from inferd.spec import load_labels, load_spec
    from inferd.store import open_store

    if window is not None and not window > 0:
        raise _fail("--window must be a positive number of seconds")
    found = None
    try:
        for folder in discover(repo):
            spec = load_spec(folder)
            if spec is not None and spec.name == model:
                found = (folder, spec, load_labels(spec, folder))
                break
    except InferdError as error:
        raise _fail(error.message) from None
    if found is None:
        raise _fail(f"no model {model!r} in {repo} (its model.yaml gives the name)")
    folder, spec, labels = found
    if store is None and not (data_dir / "inferd.db").exists():
        raise _fail(
            f"{data_dir} holds no store yet; serve with `inferd serve --data-dir {data_dir}`"
        )
    url = _store_url(data_dir, store)
    try:
        opened = open_store(url)
    except Exception as error:
        raise _fail(f"cannot open the store {url}: {error}") from None
    try:
        built = report_from_store(
            opened, spec, folder, labels=labels, window_s=window, currency=currency
        )
    finally:
        opened.close()
    if as_json:
        text = json.dumps(built, indent=1)
    else:
        try:
            import matplotlib  # noqa: F401  (the charts' only dependency)
        except ImportError:
            raise _fail("the HTML report needs matplotlib: pip install 'inferd[monitor]'") from None
        from inferd.monitor.html import render

        text = render(built)
    target = out or Path(f"{model}-report.{'json' if as_json else 'html'}")
    target.write_text(text, encoding="utf-8")
    counts = ", ".join(
        f"v{v}: {f['predictions']} predictions, {f['labelled']} labelled"
        for v, f in built["versions"].items()
    )
    common.console.print(f"wrote {target} ({counts or 'no predictions in the window'})")
