"""Generated keys: content hashes and UUIDs, the helpers and Store/SyncStore.store_new."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import blake3
import pytest

from aiodepot import InvalidName, Store, StoreNotOpen, SyncStore
from aiodepot.keygen import content_key, full_name, key_for, uuid_key
from aiodepot.names import validate_name

HEX32 = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = Store(tmp_path.as_uri(), config={"data/": {"levels": [1]}, "": {"levels": [0]}})
    await store.create()
    async with store:
        yield store


def test_content_keys_are_hex_digests() -> None:
    assert content_key(b"hello") == hashlib.sha256(b"hello").hexdigest()
    assert content_key(bytearray(b"hello"), "blake3") == blake3.blake3(b"hello").hexdigest()
    assert content_key(memoryview(b"hello"), "md5") == hashlib.md5(b"hello").hexdigest()
    assert content_key(b"", "sha1") == hashlib.sha1(b"").hexdigest()
    assert key_for(b"x", "sha256") == content_key(b"x")


def test_uuid_keys_are_random_lowercase_hex() -> None:
    keys = {uuid_key() for _ in range(1000)}
    assert len(keys) == 1000
    for key in keys:
        assert HEX32.fullmatch(key) and uuid.UUID(hex=key).version == 4
        validate_name(key)
    assert HEX32.fullmatch(key_for(b"ignored", "uuid"))


def test_bad_methods_and_too_long_names() -> None:
    with pytest.raises(ValueError, match="'uuid' or a hash algorithm"):
        key_for(b"x", "md99")
    with pytest.raises(ValueError, match="variable-length"):
        content_key(b"x", "shake_128")
    with pytest.raises(TypeError, match="not str"):
        content_key("text", "sha256")  # type: ignore[arg-type]
    assert full_name("data", "ab") == full_name("data/", "ab") == "data/ab"
    assert full_name("", "ab") == "ab"
    with pytest.raises(InvalidName, match="longer than 100 characters; pick a shorter digest"):
        full_name("data", content_key(b"x", "sha512"))


async def test_store_new_with_content_keys_stores_once(store: Store) -> None:
    name = await store.store_new("data", b"some content")
    assert name == "data/" + hashlib.sha256(b"some content").hexdigest()
    assert await store.load(name) == b"some content"
    stores_before = store.stats["store_calls"]
    assert await store.store_new("data", b"some content") == name  # the same content: no second write
    assert store.stats["store_calls"] == stores_before
    blake = await store.store_new("data", b"some content", key="blake3")
    assert blake == "data/" + blake3.blake3(b"some content").hexdigest() and blake != name
    assert await store.store_new("", b"at the root", key="sha1") == hashlib.sha1(b"at the root").hexdigest()


async def test_store_new_after_a_soft_delete_stores_again(store: Store) -> None:
    name = await store.store_new("data", b"v")
    await store.move(name, delete=True)
    assert await store.store_new("data", b"v") == name
    assert (await store.info(name)).exists and (await store.info(name, deleted=True)).exists


async def test_store_new_with_uuid_keys(store: Store) -> None:
    names = [await store.store_new("data", b"same", key="uuid") for _ in range(20)]
    assert len(set(names)) == 20
    assert all(name.startswith("data/") and HEX32.fullmatch(name[5:]) for name in names)
    assert await store.load_many(names) == [b"same"] * 20


async def test_store_many_new(store: Store) -> None:
    existing = await store.store_new("data", b"old")
    values = [b"a", b"b", b"a", b"old", bytes(2 * 1024 * 1024)]  # the big one is hashed in a thread
    stores_before = store.stats["store_calls"]
    names = await store.store_many_new("data", values)
    assert names == ["data/" + hashlib.sha256(value).hexdigest() for value in values]
    assert names[0] == names[2] and names[3] == existing
    assert store.stats["store_calls"] - stores_before == 3  # a, b and the big one; once each
    assert await store.load_many(names) == values
    random = await store.store_many_new("data", [b"x", b"x"], key="uuid")
    assert len(set(random)) == 2
    assert await store.store_many_new("data", []) == []


async def test_store_new_errors(store: Store) -> None:
    with pytest.raises(ValueError, match="'uuid' or a hash algorithm"):
        await store.store_new("data", b"x", key="nope")
    with pytest.raises(InvalidName):
        await store.store_new("Data", b"x")
    with pytest.raises(InvalidName, match="pick a shorter digest"):
        await store.store_new("data", b"x", key="sha512")
    with pytest.raises(TypeError):
        await store.store_new("data", "text")  # type: ignore[arg-type]
    closed = Store("memory://keygen-closed")
    with pytest.raises(StoreNotOpen):
        await closed.store_new("data", b"x")


def test_sync_store_new(tmp_path: Path) -> None:
    store = SyncStore(f"sqlite://{tmp_path / 'k.db'}")
    store.create()
    with store:
        name = store.store_new("blobs", b"content", key="blake3")
        assert name == "blobs/" + blake3.blake3(b"content").hexdigest()
        assert store.store_many_new("blobs", [b"content", b"more"], key="blake3")[0] == name
        assert store.load(name) == b"content"
