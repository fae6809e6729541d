"""rclone for the rclone backend tests.

The backend starts its own ``rclone rcd`` (on a free loopback port, with a random password) for each open
store, so the tests need no server of their own: only the program, from Debian's ``rclone`` package. A
missing one skips the tests on a developer machine and fails them under CI.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from . import require_program

__all__ = ["MIN_VERSION", "require_rclone"]

MIN_VERSION = (1, 57, 0)
"""The oldest rclone whose rc API has everything the backend uses (``operations/stat``, ``uploadfile``)."""


def require_rclone() -> str:
    """The path of a recent enough rclone program; skip (fail under CI) without one."""
    binary = require_program("rclone", apt="rclone")
    output = subprocess.run([binary, "rc", "--loopback", "core/version"], capture_output=True, check=True, timeout=30)
    version = json.loads(output.stdout)
    if tuple(version["decomposed"]) < MIN_VERSION:
        pytest.fail(f"rclone {version['version']} is too old: the backend needs {'.'.join(map(str, MIN_VERSION))}")
    return binary
