"""The minimal backend of examples/dict_backend.py (the one docs/backends/index.md walks through) passes
the conformance suite."""

from __future__ import annotations

import importlib.util
import sys
import uuid
from pathlib import Path

import pytest

from tests.conformance.suite import BackendConformance, MakeBackend, StoreConformance

_PATH = Path(__file__).resolve().parents[2] / "examples" / "dict_backend.py"
_spec = importlib.util.spec_from_file_location("dict_backend_example", _PATH)
assert _spec is not None and _spec.loader is not None
dict_backend = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = dict_backend
_spec.loader.exec_module(dict_backend)


def _fresh() -> MakeBackend:
    name = uuid.uuid4().hex
    return lambda: dict_backend.DictBackend(name)


class TestDictExampleStore(StoreConformance):
    @pytest.fixture
    def make_backend(self) -> MakeBackend:
        return _fresh()


class TestDictExampleBackend(BackendConformance):
    @pytest.fixture
    def make_backend(self) -> MakeBackend:
        return _fresh()


async def test_write_only_permissions_create_but_never_replace() -> None:
    backend = dict_backend.DictBackend(uuid.uuid4().hex, permissions={"": "lrw"})
    await backend.create()
    async with backend:
        await backend.store("a", b"1")
        with pytest.raises(PermissionError):
            await backend.store("a", b"2")
        with pytest.raises(PermissionError):
            await backend.delete("a")
        assert await backend.load("a") == b"1"
