"""Every script in examples/ runs to completion the way a reader would run it: ``python examples/NAME.py``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.py"))


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 4, f"expected at least 4 examples in {EXAMPLES_DIR}, found {[p.name for p in EXAMPLES]}"


@pytest.mark.parametrize("script", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_example_runs(script: Path, tmp_path: Path) -> None:
    # A foreign working directory proves the script depends on nothing but itself; -W default shows
    # warnings (an unclosed store's ResourceWarning) so that the stderr check below catches them.
    result = subprocess.run(
        [sys.executable, "-W", "default", str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    report = f"{script.name} exited with {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    assert result.returncode == 0, report
    assert result.stdout.strip(), report
    for marker in ("Traceback", "Warning", "Exception ignored"):
        assert marker not in result.stderr, report
    assert list(tmp_path.iterdir()) == [], f"{script.name} left files in its working directory"
