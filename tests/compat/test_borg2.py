"""Borg 2, unmodified, on the borgstore drop-in: a repository's life on file://, sftp, aiodepot's REST server and
S3.

Borg 2 (``borgbackup==2.0.0b23``, built once from its sdist by ``scripts/borg-wheel`` into a venv under
``~/.cache/aiodepot-ci``; ``scripts/test`` runs that step) runs with ``aiodepot.compat.borgstore.install()``
called before Borg is imported, as ``LAUNCHER`` does. Each scenario: ``repo-create``, ``create``,
``check --verify-data``, ``extract`` (compared byte for byte), ``delete``, ``compact``, a second ``create``
and ``prune``, on a tiny tree.
"""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import boto3
import pytest

from tests.servers.moto import start_moto_server
from tests.servers.rest import aiodepot_server_process
from tests.servers.sshd import ssh_home, sshd

ROOT = Path(__file__).parents[2]
LAUNCHER = (
    "import sys\n"
    "import aiodepot.compat.borgstore as compat\n"
    "compat.install()\n"
    "from borg.archiver import main\n"
    "sys.argv[0] = 'borg'\n"
    "sys.exit(main())\n"
)


@pytest.fixture(scope="module")
def borg_python() -> str:
    """The python of the venv that has Borg 2 (built and cached on first use)."""
    completed = subprocess.run(
        [str(ROOT / "scripts" / "borg-wheel")],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHON": sys.executable},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout.strip().splitlines()[-1]


def make_tree(path: Path) -> Path:
    """A tiny source tree: a few files, one incompressible, one empty, one in a subdirectory."""
    (path / "sub").mkdir(parents=True)
    (path / "random.bin").write_bytes(os.urandom(200_000))
    (path / "text.txt").write_text("hello borg\n" * 1000)
    (path / "empty").write_bytes(b"")
    (path / "sub" / "nested.txt").write_text("nested\n")
    return path


def same_tree(left: Path, right: Path) -> bool:
    """True if both trees hold the same names and the same bytes."""
    comparison = filecmp.dircmp(left, right)
    if comparison.left_only or comparison.right_only or comparison.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(left, right, comparison.common_files, shallow=False)
    return not mismatch and not errors and all(same_tree(left / d, right / d) for d in comparison.common_dirs)


def borg_lifecycle(python: str, repo: str, tmp_path: Path, *, home: Path | None = None) -> None:
    """Run the scenario against ``repo`` (a borgstore URL); fail with Borg's output on the first error.

    ``home`` is Borg's $HOME (for its ~/.ssh)."""
    tree = make_tree(tmp_path / "tree")
    env = {
        **os.environ,
        **({"HOME": str(home)} if home else {}),
        "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "BORG_REPO": repo,
        "BORG_PASSPHRASE": "aiodepot-test",
        "BORG_BASE_DIR": str(tmp_path / "borg-base"),
    }

    def borg(*args: str, cwd: Path = tmp_path) -> str:
        completed = subprocess.run(
            [python, "-c", LAUNCHER, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
        )
        assert completed.returncode == 0, f"borg {' '.join(args)}:\n{completed.stdout}\n{completed.stderr}"
        return completed.stdout

    borg("repo-create", "--encryption", "aes256-ocb")
    borg("create", "first", str(tree))
    borg("check", "--verify-data")
    target = tmp_path / "extracted"
    target.mkdir()
    borg("extract", "first", cwd=target)
    assert same_tree(tree, target / tree.relative_to("/"))
    borg("create", "second", str(tree))
    borg("delete", "-a", "first")
    borg("compact")
    borg("prune", "--keep-daily", "1")
    assert "second" in borg("repo-list")
    borg("check", "--verify-data")


@pytest.fixture
def rest_url(tmp_path: Path) -> Iterator[str]:
    """A repository on aiodepot's REST server."""
    (tmp_path / "served").mkdir()
    with aiodepot_server_process((tmp_path / "served").as_uri()) as url:
        yield url + "/"


@pytest.mark.timeout(900)
def test_borg2_on_file(borg_python: str, tmp_path: Path) -> None:
    """file:// repository."""
    borg_lifecycle(borg_python, (tmp_path / "repo").as_uri(), tmp_path)


@pytest.mark.timeout(300)
def test_borg2_on_aiodepot_rest_server(borg_python: str, rest_url: str, tmp_path: Path) -> None:
    """http:// repository served by aiodepot's REST server (the drop-in's REST client)."""
    borg_lifecycle(borg_python, rest_url, tmp_path)


@pytest.mark.timeout(300)
def test_borg2_on_sftp(borg_python: str, tmp_path: Path) -> None:
    """sftp:// repository on OpenSSH's sshd; Borg's ssh settings come from a ~/.ssh of its own."""
    with sshd(tmp_path / "sshd") as server:
        home = ssh_home(tmp_path / "home", server)
        borg_lifecycle(borg_python, server.url(tmp_path / "repo"), tmp_path, home=home)
    assert (tmp_path / "repo" / "config").is_dir()  # written through sshd's sftp server


@pytest.mark.timeout(300)
def test_borg2_on_s3(borg_python: str, tmp_path: Path) -> None:
    """s3: repository on moto's S3 server."""
    server = start_moto_server()
    try:
        # as with borgstore's S3 backend, the bucket exists before the repository is created in it
        client = boto3.client(
            "s3",
            endpoint_url=server.endpoint_url,
            aws_access_key_id=server.access_key,
            aws_secret_access_key=server.secret_key,
            region_name="us-east-1",
        )
        client.create_bucket(Bucket="borg")
        client.close()
        borg_lifecycle(borg_python, server.url("borg", "repo"), tmp_path)
    finally:
        server.stop()


BORG_OWN_TESTS = (
    "borg.testsuite.repository_test",
    "borg.testsuite.storelocking_test",
    "borg.testsuite.cache_test",
    "borg.testsuite.archives_test",
)
BORG_OWN_PASSED = 263
"""Borg's own tests of its repository, store locking, cache and archives: all 263 pass on the drop-in, as on
the real borgstore 0.7."""


@pytest.mark.timeout(900)
def test_borgs_own_repository_tests_pass_on_the_drop_in(borg_python: str, tmp_path: Path) -> None:
    """Borg 2's own test modules that work on the store run with the drop-in installed before Borg loads."""
    (tmp_path / "install_dropin.py").write_text(
        "import aiodepot.compat.borgstore\naiodepot.compat.borgstore.install()\n"
    )
    report = tmp_path / "report.xml"
    command = [borg_python, "-m", "pytest", "-p", "install_dropin", "--pyargs", *BORG_OWN_TESTS]
    command += ["-q", "-p", "no:cacheprovider", "-p", "no:xdist", "--junitxml", str(report)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT / "src")])}
    completed = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stdout[-5000:] + completed.stderr[-2000:]
    suite = ElementTree.parse(report).getroot().find("testsuite")
    assert suite is not None
    counts = {key: int(suite.get(key, "0")) for key in ("tests", "failures", "errors", "skipped")}
    assert counts["failures"] == counts["errors"] == 0, completed.stdout[-5000:]
    assert counts["tests"] - counts["skipped"] == BORG_OWN_PASSED, counts
