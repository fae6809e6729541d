"""The benchmark command line: size options reach the scenarios that take them (no scenario is run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from benchmarks.common import Row

from benchmarks import __main__ as bench


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """The arguments each scenario is called with; the scenarios themselves do not run."""
    calls: list[tuple[str, dict[str, Any]]] = []
    for name, (_, full, quick) in list(bench.SCENARIOS.items()):

        def record(name: str = name, **arguments: Any) -> list[Row]:
            calls.append((name, arguments))
            return []

        monkeypatch.setitem(bench.SCENARIOS, name, (record, full, quick))
    return calls


def test_size_options_set_the_arguments_of_the_scenarios_that_take_them(
    asked: list[tuple[str, dict[str, Any]]], tmp_path: Path
) -> None:
    output = ["--json", str(tmp_path / "results.json")]
    bench.main(["--only", "s3", "--big-mib", "48", *output])
    bench.main(["--only", "s3", "--count", "20", "--big-mib", "8", "--quick", *output])
    bench.main(["--only", "s3,big_file", "--count", "7", *output])  # big_file takes no count
    assert asked == [
        ("s3", {"count": 2000, "big_mib": 48}),
        ("s3", {"count": 20, "big_mib": 8}),
        ("s3", {"count": 7, "big_mib": 256}),
        ("big_file", {"size_mib": 512}),
    ]


def test_a_size_option_that_no_chosen_scenario_takes_is_refused(
    asked: list[tuple[str, dict[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        bench.main(["--only", "single_calls", "--big-mib", "8"])
    assert "--big-mib sets no scenario run here: it is for sftp, ftp, rest, azure, s3, gcs" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--only", "s3", "--count", "0"])
    assert "must be at least 1" in capsys.readouterr().err
    assert asked == []


def test_help_documents_the_size_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        bench.main(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--big-mib N size of the big value in MiB (full runs: sftp 256, ftp 64, rest 256, azure 256, s3 256" in (
        help_text
    )
    assert "--count N number of small values" in help_text
