"""Test fixtures. The suite-wide hygiene (results to a temporary folder, the tracked-files check) is in the
repository's root conftest.py, so that it also covers a chapter run alone under nbval."""
import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module of small-tensor tests: faster, and much faster on a shared 2-core machine.
    Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
