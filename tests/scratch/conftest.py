"""Set-up for the scratch tests: one intra-op thread while each test runs.

The tests use tiny tensors, which gain nothing from a second thread; on a busy machine, waking
the thread pool costs far more than the work (a 3x18 @ 18x30 matmul measured 30 ms with two
threads under load against 5 microseconds with one). The setting is restored after each test.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
