"""Helpers for the tests of big loads in ranges with versions (``load_first`` and ``load_into(...,
version=...)``), on any backend: count its ``info`` calls, replace a value between its ranges."""

from __future__ import annotations

from typing import Any

from aiodepot.backends.base import Backend
from aiodepot.items import ItemInfo


def count_infos(backend: Backend) -> list[str]:
    """From now on, the name of each ``_info`` call of ``backend`` goes into the list returned (``del
    backend._info`` stops it)."""
    asked: list[str] = []
    info = backend._info

    async def counted(name: str) -> ItemInfo:
        asked.append(name)
        return await info(name)

    backend._info = counted  # type: ignore[method-assign]
    return asked


def replace_before_next_range(backend: Backend, replacement: bytes) -> None:
    """Store ``replacement`` under the name of the next ``load_into(..., version=...)`` of ``backend`` just
    before that range is read, once: the version it asks for is then gone."""
    load_into_if = backend._load_into_if

    async def replacing_once(name: str, offset: int, into: memoryview, version: str) -> Any:
        del backend._load_into_if  # type: ignore[method-assign]
        await backend.store(name, replacement)
        return await load_into_if(name, offset, into, version)

    backend._load_into_if = replacing_once  # type: ignore[method-assign]
