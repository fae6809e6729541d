"""Borg 2 on a fixed tree: ``create``, ``check --verify-data`` and ``extract`` through each store stack.

Borg 2 (``borgbackup==2.0.0b23``, from the venv ``scripts/borg-wheel`` builds and caches) runs unmodified on:

- the real borgstore 0.7 and on the aiodepot drop-in (``aiodepot.compat.borgstore.install()``), ``file://``;
- the real borgstore's REST client against borgstore's own REST server and against aiodepot's;
- the drop-in's REST client against aiodepot's server.

The tree is generated from a fixed seed: half incompressible data, half text-like data, in files of 4 KiB to
4 MiB. Each row is one Borg command's wall time; the note has Borg's CPU time (user + system, from
``getrusage`` of the finished child). The servers run as separate processes on loopback.
"""

from __future__ import annotations

import contextlib
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from .common import Row

ROOT = Path(__file__).parents[1]
OPERATIONS = ("create", "check --verify-data", "extract")


def borg_python() -> str:
    """The python of the Borg 2 venv (built and cached on first use)."""
    completed = subprocess.run(
        [str(ROOT / "scripts" / "borg-wheel")],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHON": sys.executable},
    )
    return completed.stdout.strip().splitlines()[-1]


def make_tree(path: Path, size_mib: int, seed: int = 20261204) -> Path:
    """A tree of about ``size_mib`` MiB from a fixed seed: files of 4 KiB to 4 MiB, half random, half text."""
    rng = random.Random(seed)
    words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(500)]
    left, number = size_mib << 20, 0
    while left > 0:
        size = min(left, int(4096 * 1024 ** rng.random()))  # log-uniform 4 KiB .. 4 MiB
        folder = path / f"d{number % 16:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        if number % 2:
            data = rng.randbytes(size)
        else:
            text = b" ".join(rng.choice(words) for _ in range(size // 5 + 1))
            data = text[:size]
        (folder / f"f{number:05d}").write_bytes(data)
        left -= size
        number += 1
    return path


def _launcher(drop_in: bool) -> str:
    install = "import aiodepot.compat.borgstore as c; c.install()\n" if drop_in else ""
    return f"import sys\n{install}from borg.archiver import main\nsys.argv[0] = 'borg'\nsys.exit(main())\n"


@contextlib.contextmanager
def _server(kind: str, root: Path) -> Iterator[str]:
    """A REST server process (``borgstore`` or ``aiodepot``) for a new repository under ``root``."""
    from tests.servers import free_port, start_process, stop_process, wait_for_port

    port = free_port()
    backend = (root / "served").as_uri()
    if kind == "borgstore":
        command = [sys.executable, "-m", "borgstore.server.rest", "--backend", backend, "--port", str(port)]
    else:
        command = [sys.executable, "-m", "aiodepot.server", "--backend", backend, "--port", str(port), "--no-auth"]
        command += ["--log-level", "WARNING"]
    process = start_process(command)
    try:
        wait_for_port(port, process=process)
        yield f"http://127.0.0.1:{port}/"
    finally:
        stop_process(process)


def _run_borg(python: str, drop_in: bool, env: dict[str, str], cwd: Path, *args: str) -> tuple[float, float]:
    """Run one Borg command; (wall seconds, CPU seconds of Borg's process)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    completed = subprocess.run(
        [python, "-c", _launcher(drop_in), *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if completed.returncode != 0:
        raise RuntimeError(f"borg {' '.join(args)} failed:\n{completed.stdout[-2000:]}\n{completed.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


CONTENDERS = (
    # (contender, drop-in client, server: None for file://, "borgstore" or "aiodepot"); in each transport the
    # first "aiodepot" row is the one the others are compared with
    ("aiodepot drop-in", True, None),
    ("borgstore 0.7", False, None),
    ("aiodepot server, borgstore client", False, "aiodepot"),
    ("borgstore server, borgstore client", False, "borgstore"),
    ("aiodepot server, drop-in client", True, "aiodepot"),
)


def run(size_mib: int = 128) -> list[Row]:
    """Run the Borg commands for every contender on one tree; one row per contender and command."""
    python = borg_python()
    top = Path(tempfile.mkdtemp(prefix="aiodepot-bench-borg-"))
    rows: list[Row] = []
    try:
        tree = make_tree(top / "tree", size_mib)
        for number, (contender, drop_in, server) in enumerate(CONTENDERS):
            work = top / f"c{number}"
            work.mkdir()
            with contextlib.ExitStack() as stack:
                repo = stack.enter_context(_server(server, work)) if server else (work / "repo").as_uri()
                env = {
                    **os.environ,
                    "PYTHONPATH": str(ROOT / "src"),
                    "BORG_REPO": repo,
                    "BORG_PASSPHRASE": "benchmark",
                    "BORG_BASE_DIR": str(work / "borg-base"),
                }
                _run_borg(python, drop_in, env, work, "repo-create", "--encryption", "aes256-ocb")
                (work / "extracted").mkdir()
                for operation in OPERATIONS:
                    args = {"create": ["create", "bench", str(tree)], "extract": ["extract", "bench"]}
                    command = args.get(operation, operation.split())
                    cwd = work / "extracted" if operation == "extract" else work
                    os.sync()
                    wall, cpu = _run_borg(python, drop_in, env, cwd, *command)
                    scenario = f"Borg 2, {size_mib} MiB tree, {'REST' if server else 'file://'}"
                    rows.append(Row(scenario, operation, contender, wall, f"Borg CPU {cpu:.2f} s"))
    finally:
        shutil.rmtree(top, ignore_errors=True)
    return rows
