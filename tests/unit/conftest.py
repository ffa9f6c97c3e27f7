"""Fixtures shared by the unit tests."""

import pytest


@pytest.fixture
def one_torch_thread():
    """Torch on one thread for the test: small CPU kernels (LAPACK included) on a loaded, shared
    2-core machine run much faster single-threaded. The previous count is restored after."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
