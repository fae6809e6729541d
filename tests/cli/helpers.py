"""Helpers for the command tests: fill and read stores directly through the API."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sysconfig
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from click.testing import Result

from aiodepot import Store

__all__ = ["NESTED", "SCRIPT", "Run", "fill", "one_line_error", "read", "script", "soft_delete"]

Run = Callable[..., Result]
"""The type of the ``run`` fixture."""


def fill(
    url: str, items: Mapping[str, bytes], *, config: Mapping[str, Any] | None = None, create: bool = False
) -> None:
    """Store ``items`` in the store at ``url`` (with nesting ``config``), directly through the API."""

    async def go() -> None:
        store = Store(url, config=config)
        if create:
            await store.create()
        async with store:
            await store.store_many(items)

    asyncio.run(go())


def read(url: str, name: str, *, config: Mapping[str, Any] | None = None) -> bytes | None:
    """The value of ``name`` in the store at ``url``, or None if it is missing."""

    async def go() -> bytes | None:
        async with Store(url, config=config) as store:
            info = await store.info(name)
            return await store.load(name) if info.exists else None

    return asyncio.run(go())


def soft_delete(url: str, name: str, *, config: Mapping[str, Any] | None = None) -> None:
    """Soft-delete ``name`` directly through the API."""

    async def go() -> None:
        async with Store(url, config=config) as store:
            await store.move(name, delete=True)

    asyncio.run(go())


NESTED = {"data/": {"levels": [1]}, "": {"levels": [0]}}
"""The nesting most tests write with: ``data/`` one level deep, the rest flat."""


SCRIPT = Path(sysconfig.get_path("scripts")) / "aiodepot"
"""The installed console script."""


def script(*args: str, input: bytes | None = None, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    """Run the real ``aiodepot`` console script in a subprocess (without the caller's AIODEPOT_ variables)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIODEPOT_")}
    return subprocess.run([str(SCRIPT), *args], input=input, capture_output=True, timeout=timeout, env=env, check=False)


def one_line_error(done: subprocess.CompletedProcess[bytes], *parts: str, code: int = 1) -> str:
    """Check that a command failed with ``code`` and one ``aiodepot:`` line holding every part; return it."""
    text = done.stderr.decode()
    assert done.returncode == code, (done.returncode, text)
    assert text.startswith("aiodepot: ") and text.count("\n") == 1, text
    for part in parts:
        assert part in text, (part, text)
    return text
