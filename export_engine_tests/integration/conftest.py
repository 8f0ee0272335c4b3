"""Resources of the integration tier, built from the test session's settings like the op builds them."""

from __future__ import annotations

import pytest

from export_engine.catalog import Catalog, load_catalog
from export_engine.resources import S3StorageResource, SourceDatabaseResource


@pytest.fixture(scope="session")
def catalog(settings) -> Catalog:
    return load_catalog(settings.catalog_path)


@pytest.fixture(scope="session")
def source(settings) -> SourceDatabaseResource:
    return SourceDatabaseResource.from_settings(settings)


@pytest.fixture(scope="session")
def storage(settings) -> S3StorageResource:
    return S3StorageResource.from_settings(settings)
