"""redis-server on loopback for the redis backend tests: one standalone server, and a three-node cluster.

Both are started as subprocesses without persistence (``--save '' --appendonly no``) in a temporary
directory and stopped when the ``with`` block ends. A missing redis-server skips the tests on a developer
machine and fails them under CI (see ``tests.servers.require_program``).
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import free_port, require_program, stop_process, wait_for_port

__all__ = ["redis_cluster", "redis_server"]


def _free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def _start(binary: str, port: int, directory: Path, *extra: str) -> subprocess.Popen[bytes]:
    directory.mkdir(parents=True, exist_ok=True)
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    # the log goes to a file: a pipe that nobody reads would block the server once it is full
    args += ["--dir", str(directory), "--logfile", str(directory / "redis.log"), "--protected-mode", "no", *extra]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)


@contextlib.contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    """Run one redis-server; yield its URL (``redis://127.0.0.1:PORT``)."""
    binary = require_program("redis-server", apt="redis-server")
    port = free_port()
    process = _start(binary, port, directory)
    try:
        wait_for_port(port, process=process)
        yield f"redis://127.0.0.1:{port}"
    finally:
        stop_process(process)


@contextlib.contextmanager
def redis_cluster(directory: Path, nodes: int = 3) -> Iterator[str]:
    """Run a cluster of ``nodes`` primaries (no replicas); yield ``redis+cluster://127.0.0.1:PORT`` of one."""
    binary = require_program("redis-server", apt="redis-server")
    cli = require_program("redis-cli", apt="redis-tools")
    ports = _free_ports(2 * nodes)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for port, bus_port in zip(ports[:nodes], ports[nodes:], strict=True):
            node_dir = directory / str(port)
            processes.append(
                _start(
                    binary,
                    port,
                    node_dir,
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    str(bus_port),
                    "--cluster-config-file",
                    str(node_dir / "nodes.conf"),
                    "--cluster-node-timeout",
                    "5000",
                )
            )
        for port, process in zip(ports, processes, strict=False):
            wait_for_port(port, process=process)
        addresses = [f"127.0.0.1:{port}" for port in ports[:nodes]]
        subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        deadline = time.monotonic() + 30
        while True:
            states = [
                subprocess.run([cli, "-p", str(port), "cluster", "info"], capture_output=True, text=True).stdout
                for port in ports[:nodes]
            ]
            if all("cluster_state:ok" in state for state in states):
                break
            if time.monotonic() > deadline:
                pytest.fail(f"the redis cluster did not come up: {states}")
            time.sleep(0.1)
        yield f"redis+cluster://127.0.0.1:{ports[0]}"
    finally:
        for process in processes:
            stop_process(process)
