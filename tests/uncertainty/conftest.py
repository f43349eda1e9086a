"""Run the uncertainty tests single-threaded: batched EM is many small kernels, and on a shared,
oversubscribed CPU every multi-threaded kernel launch can wait a scheduler tick (~8 ms)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
