"""Session fixtures: a store to fit the probe on and bundles exported from a tiny encoder."""

from __future__ import annotations

from pathlib import Path

import pytest
from builders import bundle_for, endpoint_bundle_for, finetuned_bundle_for, probe_store_for


@pytest.fixture(scope="session")
def probe_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return probe_store_for(tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bundle_for(tmp_path_factory)


@pytest.fixture(scope="session")
def aligned_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bundle_for(tmp_path_factory, aligned=True)


@pytest.fixture(scope="session")
def finetuned_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return finetuned_bundle_for(tmp_path_factory)


@pytest.fixture(scope="session")
def endpoint_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return endpoint_bundle_for(tmp_path_factory)
