"""The supervisor's arithmetic: how many workers, their threads, whether they fit."""

from __future__ import annotations

import signal

import pytest

from inferd.deploy import workers
from inferd.deploy.workers import (
    Supervisor,
    WorkersError,
    _exit_reason,
    _Slot,
    available_bytes,
    parse_workers,
    resident_bytes,
    thread_share,
)


@pytest.mark.parametrize("text", ["0", "-1", "", "two", "1.5"])
def test_a_worker_count_below_one_or_not_a_number_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="whole number of at least 1, or auto"):
        parse_workers(text)


def test_auto_is_one_worker_per_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "cores", lambda: 6)
    assert parse_workers("auto") == 6
    assert parse_workers("3") == 3


def test_workers_share_the_cores_and_each_gets_one_at_least(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(workers, "cores", lambda: 8)
    assert [thread_share(n) for n in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]


class _Running:
    pid = 4242


def _supervisor(count: int) -> Supervisor:
    supervisor = Supervisor.__new__(Supervisor)
    supervisor.count = count
    return supervisor


def test_more_workers_than_the_memory_holds_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "resident_bytes", lambda pid: 500 * 2**20)
    monkeypatch.setattr(workers, "available_bytes", lambda: 2000 * 2**20)
    slot = _Slot(0, process=_Running())  # type: ignore[arg-type]
    _supervisor(4)._check_memory(slot)  # 1 + 3 more: fits
    with pytest.raises(WorkersError) as refused:
        _supervisor(5)._check_memory(slot)
    message = str(refused.value)
    assert "--workers 5 needs about 2,500 MiB" in message
    assert "each worker holds 500 MiB" in message
    assert "use --workers 4 or fewer" in message


def test_memory_is_read_from_proc() -> None:
    import os

    held = resident_bytes(os.getpid())
    free = available_bytes()
    assert held is not None and held > 10 * 2**20
    assert free is not None and free > 0
    assert resident_bytes(2**30) is None  # no such process


def test_a_dead_workers_reason_names_its_signal() -> None:
    assert _exit_reason(-signal.SIGKILL) == "killed by SIGKILL"
    assert _exit_reason(1) == "exit code 1"
