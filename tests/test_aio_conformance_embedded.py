"""The async conformance suite against the two embedded async backends."""

from __future__ import annotations

from pathlib import Path

import pytest

import kvstore
import kvstore.aio
from kvstore.aio.testing import AsyncStoreConformance, StoreOpener


class TestAsyncMemory(AsyncStoreConformance):
    @pytest.fixture
    def open_store(self) -> StoreOpener:
        return lambda: kvstore.aio.new_store("memory", [])


class TestAsyncSQLite(AsyncStoreConformance):
    @pytest.fixture
    def open_store(self, tmp_path: Path) -> StoreOpener:
        return lambda: kvstore.aio.from_url(f"sqlite://{tmp_path}/kv.db")


class TestAsyncSQLiteWithPrefix(AsyncStoreConformance):
    """Two prefixes in one file do not see each other; the suite runs in one of them (beside a sync store)."""

    @pytest.fixture
    def open_store(self, tmp_path: Path) -> StoreOpener:
        path = tmp_path / "kv.db"
        with kvstore.new_store("sqlite", [str(path)], kvstore.Config(prefix="other")) as other:
            other.put("noise/k", b"must not show")
        return lambda: kvstore.aio.new_store("sqlite", [str(path)], kvstore.Config(prefix="/app/"))
