"""The store's tests run on SQLite (a file in tmp_path) and on a throwaway PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from inferd.store import Store, default_store_url, open_store
from tests.support.postgres import fresh_database, postgres_url  # noqa: F401  (a fixture)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL to an empty store, on each backend."""
    if request.param == "sqlite":
        return default_store_url(tmp_path / "data")
    return fresh_database(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    yield opened
    opened.close()
