"""``aiodepot demo``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from aiodepot.cli import main


def test_demo_in_a_temporary_directory() -> None:
    result = CliRunner().invoke(main, ["demo", "--count", "300", "--size", "1024"])
    assert result.exit_code == 0, result.output
    assert "verified: all 300 values read back intact" in result.output
    for column in ("store", "load", "list", "throughput"):
        assert column in result.output


def test_demo_in_a_given_path_keeps_the_store(tmp_path: Path) -> None:
    target = tmp_path / "depot"
    result = CliRunner().invoke(main, ["demo", str(target), "-n", "50"])
    assert result.exit_code == 0, result.output
    assert len(list((target / "data").rglob("*"))) > 50  # 50 items plus their nesting directories


def test_demo_refuses_a_full_directory(tmp_path: Path) -> None:
    (tmp_path / "something").write_text("x")
    result = CliRunner().invoke(main, ["demo", str(tmp_path)])
    assert result.exit_code != 0
    assert "not empty" in result.output


def test_console_script_runs() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "aiodepot", "demo", "-n", "20"], capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    assert "verified" in completed.stdout
