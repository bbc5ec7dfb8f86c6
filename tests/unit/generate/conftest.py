"""One torch thread for these tests: the models are tiny, and on a busy machine more threads
only wait for each other (a decode step goes from about 1 ms to 50)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
