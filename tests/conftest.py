"""Shared fixtures: the real CIFAR-10 (from $IBPRUNE_DATA) and the shared pretrained weights ($IBPRUNE_WEIGHTS).

A test that uses either is marked ``needs_data``, so that ``make unit-fast`` (``-m "not needs_data and not slow"``)
runs without them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ibprune_lib.data import load_cifar
from ibprune_lib.paths import weights_dir


DATA_FIXTURES = {"cifar10", "shared_weights"}


def pytest_collection_modifyitems(items):
    for item in items:
        if DATA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.needs_data)


@pytest.fixture(scope="session")
def cifar10():
    """The real CIFAR-10; a missing dataset fails the test with the loader's own message."""
    return load_cifar("cifar10")


@pytest.fixture(scope="session")
def shared_weights() -> Path:
    folder = weights_dir()
    if not (folder / "resnet56-4bfd9763.th").is_file():
        raise FileNotFoundError(f"shared weights not found in {folder}: set IBPRUNE_WEIGHTS (CI: ../shared/weights)")
    return folder


@pytest.fixture
def one_thread():
    """Run a test with one torch thread (small matrix ops lose more to threading than they gain)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
