"""Remote single calls: sequential 4 KiB loads and stores over sftp and REST, and how many round trips each costs.

Every API runs the same calls, one after another, against the same kind of server on loopback: ``await
Store``, ``SyncStore``, the borgstore drop-in and borgstore 0.7 itself (paramiko for sftp, requests for
REST). Each contender runs twice: straight to the server and through a proxy (a child process) that
delays every chunk by ``DELAY`` in each direction. The difference per call, divided by one round trip's
added delay, is the number of round trips a call waits for; the note sets it beside the protocol's
minimum:

- REST: one request per load or store;
- sftp: a load needs ``open`` (for the handle) and ``read``, the ``close`` need not be waited for: 2;
  a store needs ``open``, then ``write`` and ``close`` (answered together), then ``rename`` (only after
  the write is known to be whole): 3.

The sftp server is OpenSSH's sshd; the REST server is aiodepot's (``python -m aiodepot.server``), on a
``file://`` store. The stores live on tmpfs where there is one (``/dev/shm``), so that the disk's
fsync times, which swing from run to run, do not hide what the protocol and the client cost.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

from tests.servers.rest import aiodepot_server_process
from tests.servers.sshd import sshd

from .common import Row, names
from .sftp import delay_proxy_process, ssh_home
from .single_calls import Timings, _async_calls, _borgstore_calls, _compat_calls, _syncstore_calls

DELAY = 0.005
"""Added to each direction by the proxy: one round trip gets ``2 * DELAY`` slower."""
MINIMUM = {("sftp", "load"): 2, ("sftp", "store"): 3, ("rest", "load"): 1, ("rest", "store"): 1}
"""Round trips a sequential call cannot do without (see the module's text)."""

Runner = Callable[[str, list[str], bytes, int], Timings | None]
CONTENDERS: dict[str, Runner] = {
    "aiodepot await Store": _async_calls,
    "aiodepot SyncStore": _syncstore_calls,
    "aiodepot compat.borgstore": _compat_calls,
    "borgstore": _borgstore_calls,
}


Places = Callable[[str], contextlib.AbstractContextManager[tuple[str, str]]]
"""A contender's name -> (a new store's URL straight to the server, another's through the delay proxy)."""


def _measure(protocol: str, places: Places, calls: int, slow_calls: int, value: bytes) -> list[Row]:
    """Rows for one protocol."""
    rows: list[Row] = []
    load_avg = f"{os.getloadavg()[0]:.1f}"
    scenario = f"single calls, {protocol} loopback (load {load_avg})"
    for contender, runner in CONTENDERS.items():
        slug = contender.split()[-1].replace(".", "-").lower()
        with places(slug) as (fast_url, slow_url):
            fast = runner(fast_url, names(calls), value, 1)
            slow = runner(slow_url, names(slow_calls), value, 1)
        if fast is None or slow is None:
            continue
        for op in ("load", "store"):
            wall, cpu = fast[op]
            per_call = wall / calls
            added = slow[op][0] / slow_calls - per_call
            trips = added / (2 * DELAY)
            note = (
                f"{per_call * 1e6:.0f} µs/call, CPU {cpu / calls * 1e6:.0f} µs; "
                f"{trips:.1f} round trips (minimum {MINIMUM[(protocol, op)]})"
            )
            rows.append(Row(scenario, op, contender, wall, note))
    return rows


@contextlib.contextmanager
def _rest_server(store: Path) -> Iterator[tuple[str, str]]:
    """One REST server on a new store, and a delay proxy before it: (straight URL, proxied URL)."""
    with aiodepot_server_process(store.as_uri()) as url:
        port = urlsplit(url).port
        assert port is not None
        with delay_proxy_process(port, DELAY) as proxy_port:
            yield url, f"http://127.0.0.1:{proxy_port}"


@contextlib.contextmanager
def _rest_places(root: Path, slug: str) -> Iterator[tuple[str, str]]:
    """A REST server serves one store (created at its root): one server per store."""
    with _rest_server(root / f"rest-{slug}-fast") as (fast, _), _rest_server(root / f"rest-{slug}-slow") as (_, slow):
        yield fast, slow


def run(calls: int = 500, slow_calls: int = 60) -> list[Row]:
    """Time ``calls`` sequential 4 KiB stores, then loads, per API over sftp and REST; count round trips."""
    value = os.urandom(4096)
    rows: list[Row] = []
    with contextlib.ExitStack() as stack:
        shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="aiodepot-bench-", dir=shm)))
        server = stack.enter_context(sshd(root / "sshd"))
        proxy_port = stack.enter_context(delay_proxy_process(server.port, DELAY))
        stack.enter_context(ssh_home(root / "home", server, proxy_port))

        # an absolute path: sftp://host//tmp/...; "bench" is the server, "bench-slow" the proxy before it
        @contextlib.contextmanager
        def sftp_places(slug: str) -> Iterator[tuple[str, str]]:
            yield f"sftp://bench/{root}/sftp-{slug}-fast", f"sftp://bench-slow/{root}/sftp-{slug}-slow"

        rows += _measure("sftp", sftp_places, calls, slow_calls, value)
        rows += _measure("rest", lambda slug: _rest_places(root, slug), calls, slow_calls, value)
    return rows
