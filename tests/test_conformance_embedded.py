"""The conformance suite against the two embedded backends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import kvstore
from kvstore.testing import StoreConformance


class TestMemory(StoreConformance):
    @pytest.fixture
    def store(self) -> Iterator[kvstore.Store]:
        with kvstore.new_store("memory", []) as store:
            yield store


class TestSQLite(StoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[kvstore.Store]:
        with kvstore.from_url(f"sqlite://{tmp_path}/kv.db") as store:
            yield store


class TestSQLiteWithPrefix(StoreConformance):
    """Two prefixes in one file do not see each other; the suite runs in one of them."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[kvstore.Store]:
        path = tmp_path / "kv.db"
        with kvstore.new_store("sqlite", [str(path)], kvstore.Config(prefix="other")) as other:
            other.put("noise/k", b"must not show")
            with kvstore.new_store("sqlite", [str(path)], kvstore.Config(prefix="/app/")) as store:
                yield store
            assert other.list("noise")[0].value == b"must not show"
