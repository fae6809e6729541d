"""Run borgstore's own test suite against ``aiodepot.compat.borgstore`` (with ``install()`` active).

borgstore's tests are not part of this repository (nor of borgstore's PyPI sdist): they are copied at run
time into a temporary directory from the first source found:

1. ``--tests DIR`` or ``$BORGSTORE_TESTS_DIR``: a checkout's ``tests/`` directory;
2. ``/tmp/dl/borgstore-0.7.0/tests`` (an unpacked sdist, if it has tests);
3. a git snapshot of github.com/borgbackup/borgstore: ``--git DIR`` / ``$BORGSTORE_GIT_DIR``, default
   ``/work/.mirror/borgbackup+borgstore/repo`` (read with ``git show HEAD:tests/...``).

Usage: ``python tests/compat/run_borgstore_suite.py [--tests DIR | --git DIR] [-- pytest args]``.
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

SDIST_TESTS = Path("/tmp/dl/borgstore-0.7.0/tests")
DEFAULT_GIT = Path("/work/.mirror/borgbackup+borgstore/repo")
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


def find_tests(tests_dir: str | None, git_dir: str | None) -> dict[str, str] | None:
    """Return {relative file name: source} of borgstore's tests, or None if no source is available."""
    candidates = [tests_dir or os.environ.get("BORGSTORE_TESTS_DIR"), SDIST_TESTS]
    for candidate in candidates:
        if candidate and Path(candidate, "test_store.py").is_file():
            return {p.name: p.read_text() for p in Path(candidate).glob("*.py")}
    repo = Path(git_dir or os.environ.get("BORGSTORE_GIT_DIR") or DEFAULT_GIT)
    if not repo.exists():
        return None
    try:
        names = subprocess.run(
            ["git", "-C", str(repo), "ls-tree", "--name-only", "HEAD", "tests/"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return None
    files = {}
    for name in names:
        if name.endswith(".py"):
            source = subprocess.run(
                ["git", "-C", str(repo), "show", f"HEAD:{name}"], check=True, capture_output=True, text=True
            ).stdout
            files[Path(name).name] = source
    return files or None


def main(argv: list[str] | None = None) -> int:
    """Copy the suite, run it with pytest in a subprocess, print the counts; return pytest's exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", help="borgstore's tests/ directory")
    parser.add_argument("--git", help="a git repository of borgstore")
    parser.add_argument("--results", help="write {test id: outcome} as JSON to this file")
    parser.add_argument("--real", action="store_true", help="run against the real borgstore (a baseline)")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)
    files = find_tests(args.tests, args.git)
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
