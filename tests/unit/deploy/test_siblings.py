"""Workers answer each other's scrapes over Unix sockets and share one readiness."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

import pytest

from inferd.deploy.siblings import Siblings


@pytest.fixture
def run_dir() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="inferd-test-") as folder:  # short socket paths
        yield folder


async def test_a_worker_reads_the_others_metrics_and_skips_a_missing_one(run_dir: str) -> None:
    flags = [0, 0, 0]
    first, second = Siblings(0, flags, run_dir), Siblings(1, flags, run_dir)
    await first.listen(lambda: b"first\n")
    await second.listen(lambda: b"second\n")
    try:
        assert await first.metrics() == [b"second\n"]  # worker 2 has no socket: left out
        assert await second.metrics() == [b"first\n"]
    finally:
        await first.close()
        await second.close()


async def test_a_worker_that_stopped_answering_is_left_out(run_dir: str) -> None:
    flags = [1, 1]
    gone = Siblings(1, flags, run_dir)
    await gone.listen(lambda: b"gone\n")
    await gone.close()  # its socket file is left behind, with nobody listening
    assert await Siblings(0, flags, run_dir).metrics() == []


def test_the_server_is_ready_only_when_every_worker_is() -> None:
    flags = [0, 0]
    first, second = Siblings(0, flags, "."), Siblings(1, flags, ".")
    first.mark(ready=True)
    assert not first.all_ready() and not second.all_ready()
    second.mark(ready=True)
    assert first.all_ready() and second.all_ready()
    second.mark(ready=False)
    assert not first.all_ready()
