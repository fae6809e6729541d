"""Run borgstore's own test suite against ``aiodepot.compat.borgstore`` (with ``install()`` active).

borgstore's tests are vendored as test data in ``tests/compat/borgstore_tests/`` (``*.py.txt``, with
borgstore's license; see the README there); another copy of its ``tests/`` directory can be given with
``--tests DIR`` / ``$BORGSTORE_TESTS_DIR``. They are copied into a temporary directory and run by pytest in
a subprocess; ``--real`` runs them against the installed real borgstore instead, as a baseline.

Usage: ``python tests/compat/run_borgstore_suite.py [--tests DIR] [--real] [-- pytest args]``.
Prints pytest's report and a last line ``borgstore-suite: passed=N failed=N skipped=N errors=N``;
exits with pytest's status (5 if no test source was found).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

VENDORED = Path(__file__).parent / "borgstore_tests"
NO_SOURCE = 5

# Installed before anything imports borgstore: the suite's own "import borgstore..." then gets the compat
# layer. Also records the outcome of every test for the summary line.
CONFTEST = """
import json
import os

if not os.environ.get("BORGSTORE_SUITE_REAL"):
    import aiodepot.compat.borgstore

    aiodepot.compat.borgstore.install()

    import borgstore

    assert borgstore.__name__ == "aiodepot.compat.borgstore", borgstore

_outcomes = {}


def pytest_runtest_logreport(report):
    # as pytest counts: a failing call is "failed", a failing setup/teardown an "error" of its own
    if report.when == "call" or report.skipped:
        _outcomes[report.nodeid] = report.outcome
    elif report.failed:
        _outcomes[f"{report.nodeid}::<{report.when}>"] = "error"


def pytest_collectreport(report):
    if report.failed:
        _outcomes[report.nodeid + "::<collection>"] = "error"


def pytest_sessionfinish(session, exitstatus):
    with open(os.environ["BORGSTORE_SUITE_RESULTS"], "w") as f:
        json.dump(_outcomes, f)
"""


def find_tests(tests_dir: str | None = None) -> dict[str, str] | None:
    """Return {file name: source} of borgstore's tests (the vendored copy unless a directory is given)."""
    candidate = Path(tests_dir or os.environ.get("BORGSTORE_TESTS_DIR") or VENDORED)
    files = {p.name: p.read_text() for p in candidate.glob("*.py")}
    files.update({p.name.removesuffix(".txt"): p.read_text() for p in candidate.glob("*.py.txt")})
    return files if "test_store.py" in files else None


def main(argv: list[str] | None = None) -> int:
    """Copy the suite, run it with pytest in a subprocess, print the counts; return pytest's exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", help="borgstore's tests/ directory")
    parser.add_argument("--results", help="write {test id: outcome} as JSON to this file")
    parser.add_argument("--real", action="store_true", help="run against the real borgstore (a baseline)")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)
    files = find_tests(args.tests)
    if files is None:
        print("borgstore-suite: no source of borgstore's tests found", file=sys.stderr)
        return NO_SOURCE
    with tempfile.TemporaryDirectory(prefix="borgstore-suite-") as top:
        package = Path(top, "tests")
        package.mkdir()
        for name, source in files.items():
            (package / name).write_text(source)
        Path(top, "conftest.py").write_text(CONFTEST)
        results = Path(top, "results.json")
        env = dict(os.environ, BORGSTORE_SUITE_RESULTS=str(results))
        if args.real:
            env["BORGSTORE_SUITE_REAL"] = "1"
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rfEs",
            "-p",
            "no:cacheprovider",
            "--continue-on-collection-errors",
            "-o",
            "addopts=",
            "-o",
            "filterwarnings=",
            "--rootdir",
            top,
            "tests",
            *args.pytest_args,
        ]
        status = subprocess.run(command, cwd=top, env=env, check=False).returncode
        outcomes = json.loads(results.read_text()) if results.exists() else {}
    if args.results:
        Path(args.results).write_text(json.dumps(outcomes, indent=1, sort_keys=True))
    counts = {
        kind: sum(1 for value in outcomes.values() if value == kind)
        for kind in ("passed", "failed", "skipped", "error")
    }
    print(
        f"borgstore-suite: passed={counts['passed']} failed={counts['failed']} "
        f"skipped={counts['skipped']} errors={counts['error']}"
    )
    return status


if __name__ == "__main__":
    sys.exit(main())
