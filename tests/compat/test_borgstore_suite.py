"""borgstore's own test suite against the compat layer, and a scenario written for borgstore.

borgstore's tests are vendored as test data (``tests/compat/borgstore_tests/``, borgstore 0.6.0's
``tests/`` with its license); ``run_borgstore_suite.py`` runs them with ``install()`` active.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from tests.compat import run_borgstore_suite
from tests.servers.moto import start_moto_server
from tests.servers.rest import aiodepot_server_process
from tests.servers.sshd import ssh_home, sshd

HERE = Path(__file__).parent

# Each is explained in docs/compat.md; nothing else may fail.
KNOWN_FAILURES = (
    # patch or import private internals of paramiko / requests / boto3, which the drop-in does not use
    "tests/test_rest_reconnect.py::",  # imports StdioSession and requests-session internals
    "tests/test_sftp_reconnect.py::",  # imports with_reconnect/_is_connection_lost (paramiko)
    "tests/test_backends.py::test_sftp_store_memoryview_gives_bytes_to_paramiko",  # mocks paramiko
    "tests/test_backends.py::test_s3_store_memoryview_gives_bytes_to_boto3",  # mocks boto3
    # fail on the real borgstore 0.7.0 in the same environment as well
    "tests/test_backends.py::test_posixfs_existing_base_path_parent_readonly",  # runs as root: can write anyway
    "tests/test_cache.py::test_close_cleans_up_lru_cache_items_by_size",  # 0.6 test: 0.7 evicts at store time
    "tests/test_cache.py::test_close_cleans_up_expired_before_lru_size_eviction",  # the same
)
LOCAL_PASSED = 219
"""Passed without backend URLs: 219 of 238 (real borgstore 0.7.0: 262 of 277 with its reconnect tests)."""
URLS_PASSED = 322
"""Passed with the sftp, s3 and REST URLs set: 322 of 330 (real borgstore 0.7.0: 363 of 369, its reconnect
tests included)."""


def run_suite(tmp_path: Path, env: dict[str, str] | None = None, *, real: bool = False) -> tuple[dict[str, str], str]:
    """Run the vendored suite under install() (``real``: on the real borgstore); return {test id: outcome}
    and the report's tail."""
    results = tmp_path / "results.json"
    command = [sys.executable, str(HERE / "run_borgstore_suite.py"), "--results", str(results)]
    completed = subprocess.run(
        [*command, "--real"] if real else command,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )
    return json.loads(results.read_text()), completed.stdout[-6000:] + completed.stderr[-2000:]


def unexpected_failures(outcomes: dict[str, str]) -> list[str]:
    """The failures and errors that are not known differences."""
    return sorted(
        test
        for test, outcome in outcomes.items()
        if outcome in ("failed", "error") and not test.startswith(KNOWN_FAILURES)
    )


@pytest.mark.timeout(600)
def test_borgstore_suite(tmp_path: Path) -> None:
    """Every test of borgstore's suite passes on the drop-in, except the known differences."""
    assert run_borgstore_suite.find_tests() is not None
    outcomes, report = run_suite(tmp_path)
    assert not unexpected_failures(outcomes), report
    assert sum(outcome == "passed" for outcome in outcomes.values()) == LOCAL_PASSED, report


SCENARIO = textwrap.dedent(
    """
    import hashlib, sys, threading
    import aiodepot, aiodepot.compat.borgstore as compat
    compat.install()
    from borgstore.store import Store, ItemInfo
    from borgstore.backends.errors import ObjectNotFound, BackendAlreadyExists
    from borgstore.backends.posixfs import PosixFS
    from borgstore.constants import ROOTNS

    path = sys.argv[1]
    config = {"data/": {"levels": [2], "cache": "writethrough", "size": 4096}, "config/": {"levels": [0]}}
    store = Store(url="file://" + path + "/primary", config=config, cache_url="file://" + path + "/cache")
    store.create()
    try:
        store.create()
    except BackendAlreadyExists:
        pass
    with store:
        store.store("config/main", b"cfg")
        keys = [hashlib.sha256(bytes([i])).hexdigest() for i in range(20)]
        threads = [threading.Thread(target=store.store, args=("data/" + k, k.encode())) for k in keys]
        for t in threads: t.start()
        for t in threads: t.join()
        assert [i.name for i in store.list("data")] == sorted(keys)
        assert store.load("data/" + keys[0], offset=2, size=3) == keys[0].encode()[2:5]
        assert store.info("data/" + keys[0]) == ItemInfo(keys[0], True, 64, False, *store.info("data/" + keys[0])[4:])
        store.move("data/" + keys[1], delete=True)
        assert store.info("data/" + keys[1], deleted=True).name == keys[1] + ".del"
        assert [i.name for i in store.list("data", deleted=True)] == [keys[1]]
        try:
            store.load("data/" + keys[1])
        except ObjectNotFound as exc:
            assert isinstance(exc, aiodepot.ObjectNotFound) and isinstance(exc, KeyError)
        else:
            raise AssertionError("soft-deleted item was loaded")
        gathered = store.gather([(keys[2], 0, 4), (keys[3], 60, 4)], namespace="data")
        assert gathered == keys[2].encode()[:4] + keys[3].encode()[60:]
        target = store.defrag([(keys[2], 0, 64)], algorithm="sha256", namespace="data")
        assert store.load("data/" + target) == keys[2].encode()
        assert store.hash("config/main") == hashlib.sha256(b"cfg").hexdigest()
        stats = store.stats
        assert stats["store_calls"] == 21 and stats["cache_hits"] >= 1, stats
    store.destroy()
    compat.uninstall()
    print("scenario ok")
    """
)


def test_scenario_with_install(tmp_path: Path) -> None:
    """An application written for borgstore, run unchanged on aiodepot (own interpreter: install() is global)."""
    completed = subprocess.run(
        [sys.executable, "-c", SCENARIO, str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert "scenario ok" in completed.stdout


@pytest.fixture
def backend_urls(tmp_path: Path) -> Iterator[dict[str, str]]:
    """borgstore's test-suite variables, pointing at real servers on loopback: sshd, moto, aiodepot's REST
    server (twice, with HTTP Basic credentials); rclone runs on a temporary directory either way."""
    moto = start_moto_server()
    try:
        client = boto3.client(
            "s3",
            endpoint_url=moto.endpoint_url,
            aws_access_key_id=moto.access_key,
            aws_secret_access_key=moto.secret_key,
            region_name="us-east-1",
        )
        client.create_bucket(Bucket="suite")
        client.close()
        with contextlib.ExitStack() as stack:
            server = stack.enter_context(sshd(tmp_path / "sshd"))
            credentials = ("--username", "suite", "--password", "secret")
            rest = [
                stack.enter_context(aiodepot_server_process((tmp_path / name).as_uri(), *credentials))
                for name in ("rest1", "rest2")
            ]
            yield {
                "HOME": str(ssh_home(tmp_path / "home", server)),
                "BORGSTORE_TEST_SFTP_URL": server.url(tmp_path / "sftp-store"),
                "BORGSTORE_TEST_S3_URL": moto.url("suite", "store"),
                "BORGSTORE_TEST_REST1_URL": rest[0].replace("http://", "http://suite:secret@") + "/",
                "BORGSTORE_TEST_REST2_URL": rest[1].replace("http://", "http://suite:secret@") + "/",
            }
    finally:
        moto.stop()


@pytest.mark.timeout(900)
def test_borgstore_suite_with_backend_urls(tmp_path: Path, backend_urls: dict[str, str]) -> None:
    """With sftp, s3 and REST servers given, every test that passes on the real borgstore passes on the
    drop-in too (but the known differences), and the backend tests run rather than skip."""
    real_dir, drop_in_dir = tmp_path / "real", tmp_path / "drop-in"
    real_dir.mkdir()
    drop_in_dir.mkdir()
    real, _ = run_suite(real_dir, {**backend_urls, "BORGSTORE_SUITE_REAL": "1"}, real=True)
    outcomes, report = run_suite(drop_in_dir, backend_urls)
    for backend in ("sftp", "s3", "rest1", "rest2"):
        ran = [test for test, outcome in outcomes.items() if backend in test and outcome == "passed"]
        assert ran, f"no {backend} test passed:\n{report}"
    lost = sorted(
        test
        for test, outcome in real.items()
        if outcome == "passed" and outcomes.get(test) != "passed" and not test.startswith(KNOWN_FAILURES)
    )
    assert lost == [], report
    assert not unexpected_failures(outcomes), report
    assert sum(outcome == "passed" for outcome in outcomes.values()) == URLS_PASSED, report
