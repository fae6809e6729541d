"""The URL scheme registry."""

from __future__ import annotations

import pytest

from aiodepot import BackendURLInvalid, MissingDependency, NotSupported, Store, register_backend, registered_schemes
from aiodepot.backends import _registry, backend_from_url
from aiodepot.backends.memory import MemoryBackend


def test_builtin_schemes() -> None:
    assert {"file", "memory"} <= set(registered_schemes())


def test_register_a_class_and_a_lazy_path() -> None:
    register_backend("mymem", MemoryBackend)
    register_backend("lazymem", "aiodepot.backends.memory:MemoryBackend")
    try:
        with pytest.raises(BackendURLInvalid):  # the class parses its own URLs
            backend_from_url("mymem://x")
        assert "lazymem" in registered_schemes()
    finally:
        _registry.pop("mymem")
        _registry.pop("lazymem")


def test_missing_dependency_names_the_extra() -> None:
    register_backend("fancy", "aiodepot_nonexistent_module.backend:Fancy", extra="fancy")
    try:
        with pytest.raises(MissingDependency, match=r"pip install 'aiodepot\[fancy\]'"):
            backend_from_url("fancy://host/path")
    finally:
        _registry.pop("fancy")


def test_not_a_backend() -> None:
    register_backend("notabackend", "aiodepot.names:ROOTNS")
    try:
        with pytest.raises(BackendURLInvalid, match="not an aiodepot Backend"):
            backend_from_url("notabackend://x")
    finally:
        _registry.pop("notabackend")


def test_invalid_scheme_names() -> None:
    for bad in ("", "UPPER", "has space", "a/b"):
        with pytest.raises(ValueError):
            register_backend(bad, MemoryBackend)


async def test_messages_name_the_url_not_the_class() -> None:
    """A refusal names the store URL the user opened (secrets hidden), never the backend class."""
    store = Store("memory://registry-messages")
    await store.create()
    async with store:
        with pytest.raises(NotSupported) as caught:
            await store.url_for("data/x", expires=60)
    await store.destroy()
    message = str(caught.value)
    assert message.startswith("memory://registry-messages does not support url_for: ")
    assert "MemoryBackend" not in message
    assert MemoryBackend("direct").location == "memory://direct"  # constructed directly: built from its settings
    backend = backend_from_url("http://alice:s3cret@127.0.0.1:9/depot")
    assert backend.location == "http://alice:***@127.0.0.1:9/depot"
