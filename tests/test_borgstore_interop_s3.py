"""Data compatibility with borgstore 0.7 on S3 (moto's server on loopback), both ways: a store written by
one library opens in the other with every item, nesting level and soft-deleted item intact."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import aiodepot
from tests.servers import require_module
from tests.servers.moto import MotoServer, start_moto_server

CONFIG = {"config/": {"levels": [0]}, "data/": {"levels": [2]}}
MIGRATING = {"config/": {"levels": [0]}, "data/": {"levels": [1, 2]}}
KEYS = [hashlib.sha256(f"s3-{i}".encode()).hexdigest() for i in range(60)]


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    require_module("moto", pip="moto[server]")
    server = start_moto_server()
    try:
        yield server
    finally:
        server.stop()


def url_for(moto: MotoServer) -> str:
    return moto.url(f"interop-{uuid.uuid4().hex[:12]}", "repo")


def values() -> dict[str, bytes]:
    return {f"data/{k}": os.urandom(i * 41) for i, k in enumerate(KEYS)}


def borg_store(url: str, config: dict[str, Any]) -> Any:
    require_module("boto3", pip="boto3")
    from borgstore.store import Store as BorgStore

    return BorgStore(url=url, config=config)


async def test_aiodepot_writes_borgstore_reads(moto: MotoServer) -> None:
    url = url_for(moto)
    data = values()
    old_level = dict(list(data.items())[:10])
    store = aiodepot.Store(url, config={**CONFIG, "data/": {"levels": [1]}}, backend_options={"create_bucket": True})
    await store.create()
    async with store:
        await store.store_many(old_level)  # written at level 1, before a migration to level 2 began
        store.set_levels(MIGRATING)
        await store.store_many({k: v for k, v in data.items() if k not in old_level})
        await store.store("config/main", b"settings")
        for name in list(data)[20:25]:
            await store.move(name, delete=True)

    def borg_side() -> None:
        borg = borg_store(url, MIGRATING)
        with borg:
            live = {n: v for i, (n, v) in enumerate(data.items()) if not 20 <= i < 25}
            deleted = {n: v for i, (n, v) in enumerate(data.items()) if 20 <= i < 25}
            assert sorted(i.name for i in borg.list("data")) == sorted(n[5:] for n in live)
            assert sorted(i.name for i in borg.list("data", deleted=True)) == sorted(n[5:] for n in deleted)
            for name, value in live.items():
                assert borg.load(name) == value
                assert borg.info(name).size == len(value)
            for name, value in deleted.items():
                assert borg.load(name, deleted=True) == value
            assert borg.load("config/main") == b"settings"
            assert borg.load(list(live)[3], offset=2, size=5) == list(live.values())[3][2:7]

    await asyncio.to_thread(borg_side)
    await store.destroy()


async def test_borgstore_writes_aiodepot_reads(moto: MotoServer) -> None:
    url = url_for(moto)
    data = values()
    names = list(data)

    def borg_side() -> None:
        import boto3

        bucket = url.split("/")[-2]
        boto3.client(
            "s3",
            endpoint_url=moto.endpoint_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        ).create_bucket(Bucket=bucket)
        borg = borg_store(url, {**CONFIG, "data/": {"levels": [1]}})
        borg.create()
        with borg:
            for name in names[:10]:
                borg.store(name, data[name])
            borg.set_levels({"config/": [0], "data/": [1, 2]})  # borgstore's form: namespace -> levels
            for name in names[10:]:
                borg.store(name, data[name])
            borg.store("config/main", b"settings")
            for name in names[30:33]:
                borg.move(name, delete=True)

    await asyncio.to_thread(borg_side)
    store = aiodepot.Store(url, config=MIGRATING)
    async with store:
        live = [n for i, n in enumerate(names) if not 30 <= i < 33]
        deleted = names[30:33]
        assert [i.name async for i in store.list("data")] == sorted(n[5:] for n in live)
        assert [i.name async for i in store.list("data", deleted=True)] == sorted(n[5:] for n in deleted)
        assert await store.load_many(live) == [data[n] for n in live]
        assert await store.load_many(deleted, deleted=True) == [data[n] for n in deleted]
        assert await store.load("config/main") == b"settings"
        await store.move(deleted[0], undelete=True)  # aiodepot undeletes what borgstore soft-deleted
        for name in names[:3]:
            await store.move(name, change_level=True)  # and migrates borgstore's level-1 items

    def borg_checks() -> None:
        borg = borg_store(url, {**CONFIG, "data/": {"levels": [2]}})
        with borg:
            assert borg.load(deleted[0]) == data[deleted[0]]
            for name in names[:3]:
                assert borg.load(name) == data[name]  # found at level 2 with the final config

    await asyncio.to_thread(borg_checks)
