"""Fixtures shared across the test tree."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stores import write_tiny_store


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small prepared store (see `write_tiny_store`), written once per test session.
    Read it, never write into it."""
    return write_tiny_store(tmp_path_factory.mktemp("tiny") / "store")


@pytest.fixture
def one_thread():
    """Torch on one thread for the test: tiny models run far faster on one thread than on two
    contended ones (OpenMP spin). Use with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def dicom_path() -> Path:
    """pydicom's real 12-lead Mortara recording (read by tests/io, judged by tests/qc)."""
    from pydicom import examples

    return Path(examples.get_path("waveform"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`gpu`-marked tests are collected everywhere (so they cannot rot unnoticed) and skipped
    where torch sees no CUDA device."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (torch.cuda.is_available() is False)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
