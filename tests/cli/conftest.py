"""Fixtures for the command tests: run a command in-process, a fresh file:// store."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from aiodepot import Store
from aiodepot.cli import main

from .helpers import Run


@pytest.fixture
def run() -> Run:
    """``run("ls", url, input=b"...", env={...})``: invoke the command line in this process."""

    def invoke(*args: str, input: bytes | str | None = None, env: Mapping[str, str] | None = None) -> Result:
        environment: dict[str, str | None] = {"AIODEPOT_LEVELS": None, "AIODEPOT_CONFIG": None}  # not the caller's
        environment.update(env or {})
        return CliRunner().invoke(main, list(args), input=input, env=environment, catch_exceptions=False)

    return invoke


@pytest.fixture
def depot(tmp_path: Path) -> str:
    """The URL of a new, empty file:// store."""
    url = (tmp_path / "depot").as_uri()
    asyncio.run(Store(url).create())
    return url
