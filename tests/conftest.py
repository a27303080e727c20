"""Suite-wide settings."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """The tests run many tiny tensor ops (simulator steps, small layers) on a 2-core CI
    machine: one intra-op thread is faster there than OpenMP's team start-up."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
