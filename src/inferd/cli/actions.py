"""`inferd actions`: the store's action outbox, listed, and its failed actions queued again."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from inferd.cli import common
from inferd.cli.common import DEFAULT_DATA_DIR, DataDirOption, StoreOption, _fail, _store_url


def actions(
    data_dir: DataDirOption = DEFAULT_DATA_DIR,
    store: StoreOption = None,
    state: Annotated[
        str | None, typer.Option(help="Only actions in this state: pending, delivered, failed.")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Only this model's actions.")] = None,
    limit: Annotated[int, typer.Option(help="Show at most this many (newest first).")] = 50,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Queue the failed actions shown again.")
    ] = False,
) -> None:
    """List the actions in the store's outbox (what the rules decided, and its delivery)."""
    import time

    from inferd.store import open_store

    if state not in (None, "pending", "delivered", "failed"):
        raise _fail(f"--state must be pending, delivered or failed; got {state!r}")
    url = _store_url(data_dir, store)
    if store is None and not (data_dir / "inferd.db").exists():
        raise _fail(f"{data_dir} holds no store yet; start `inferd serve --data-dir {data_dir}`")
    try:
        opened = open_store(url)
    except Exception as error:
        raise _fail(f"cannot open the store {url}: {error}") from None
    try:
        if retry_failed:
            count = opened.retry_failed(model=model)
            common.console.print(f"{count} failed actions queued again")
            return
        counts = opened.action_counts()
        found = opened.list_actions(state=state, model=model, limit=limit)
    finally:
        opened.close()
    summary = ", ".join(
        f"{m} {s}: {n}" for (m, s), n in sorted(counts.items()) if model in (None, m)
    )
    common.console.print(summary or "the outbox is empty", highlight=False)
    if not found:
        return
    table = Table("id", "model", "decision", "action", "state", "tries", "when", "request", "note")
    now = time.time()
    for action in found:
        if action.state == "pending" and action.next_attempt_at > now:
            note = f"next try in {action.next_attempt_at - now:.0f}s: {action.last_error or ''}"
        else:
            note = action.last_error or ""
        table.add_row(
            str(action.id),
            action.model,
            action.decision,
            action.action,
            action.state,
            str(action.attempts),
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(action.created_at)),
            action.request_id,
            note[:80],
        )
    # Piped or captured output gets whole rows rather than cells cut to 80 columns.
    (common.console if common.console.is_terminal else Console(width=200)).print(table)
