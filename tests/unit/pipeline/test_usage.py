"""A batch's CPU time: the process clock shared among the batches running at once."""

from __future__ import annotations

import pytest

from inferd.pipeline.usage import CpuShare


def test_overlapping_batches_share_the_cpu_they_ran_together() -> None:
    clock = [0.0]
    share = CpuShare(clock=lambda: clock[0])
    a = share.start()
    clock[0] = 1.0  # a alone: 1 s
    b = share.start()
    clock[0] = 3.0  # a and b together: 2 s, 1 s each
    used_a = share.stop(a)
    clock[0] = 3.5  # b alone: 0.5 s
    used_b = share.stop(b)
    assert used_a == pytest.approx(2.0)
    assert used_b == pytest.approx(1.5)
    clock[0] = 10.0  # nothing running: nobody's
    c = share.start()
    clock[0] = 10.25
    assert share.stop(c) == pytest.approx(0.25)
