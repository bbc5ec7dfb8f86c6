"""`inferd actions`: the outbox listed, failed actions queued again, bad options refused."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from inferd.cli import app

runner = CliRunner()


def _store_with_a_failed_action(data_dir: Path) -> None:
    from inferd.store import ActionRecord, default_store_url, open_store

    store = open_store(default_store_url(data_dir))
    record = ActionRecord(
        model="m",
        version="1",
        request_id="req-9",
        item=0,
        decision="alert",
        action="alert.0.webhook",
        kind="webhook",
        target={"url": "http://127.0.0.1:9/x"},
        event={"decision": "alert"},
        idempotency_key="key-9",
        created_at=1.0,
    )
    store.save([], [record])
    [stored] = store.list_actions()
    store.mark_failed(stored.id, 10, "gave up after 10 attempts: refused")
    store.close()


def test_actions_lists_the_outbox_and_queues_failed_actions_again(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _store_with_a_failed_action(data)
    listed = runner.invoke(app, ["actions", "--data-dir", str(data), "--state", "failed"])
    assert listed.exit_code == 0, listed.output
    assert "m failed: 1" in listed.output and "req-9" in listed.output
    assert "gave up after 10 attempts" in listed.output
    retried = runner.invoke(app, ["actions", "--data-dir", str(data), "--retry-failed"])
    assert retried.exit_code == 0 and "1 failed actions queued again" in retried.output
    pending = runner.invoke(app, ["actions", "--data-dir", str(data), "--state", "pending"])
    assert "m pending: 1" in pending.output and "alert.0.webhook" in pending.output


def test_actions_refuses_a_bad_state_and_a_missing_store(tmp_path: Path) -> None:
    bad = runner.invoke(app, ["actions", "--data-dir", str(tmp_path), "--state", "done"])
    assert bad.exit_code == 1 and "--state must be pending, delivered or failed" in bad.output
    missing = runner.invoke(app, ["actions", "--data-dir", str(tmp_path / "none")])
    assert missing.exit_code == 1 and "holds no store yet" in missing.output
