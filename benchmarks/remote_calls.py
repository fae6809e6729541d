"""Remote single calls: sequential 4 KiB loads and stores over sftp, REST and S3, and the round trips each costs.

Every API runs the same calls, one after another, against the same kind of server on loopback: ``await
Store``, ``SyncStore``, the borgstore drop-in and borgstore 0.7 itself (paramiko for sftp, requests for
REST). Each contender runs twice: straight to the server and through a proxy (a child process) that
delays every chunk by ``DELAY`` in each direction. The difference per call, divided by one round trip's
added delay, is the number of round trips a call waits for; the note sets it beside the protocol's
minimum:

- REST: one request per load or store;
- sftp: a load needs ``open`` (for the handle) and ``read``, the ``close`` need not be waited for: 2;
  a store needs ``open``, then ``write`` and ``close`` (answered together), then ``rename`` (only after
  the write is known to be whole): 3;
- S3: one request per load or store: 1. Besides the four APIs, boto3 (``put_object``/``get_object``) and
  obstore (``await put_async``/``get_async``), one call after the other.

The sftp server is OpenSSH's sshd; the REST server is aiodepot's (``python -m aiodepot.server``), on a
``file://`` store; the S3 server is moto's, keeping connections alive as S3 does (``moto_keepalive.py``).
The stores live on tmpfs where there is one (``/dev/shm``), so that the disk's fsync times, which swing from
run to run, do not hide what the protocol and the client cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.servers.moto import start_moto_server
from tests.servers.rest import aiodepot_server_process
from tests.servers.sshd import sshd

from .common import Row, names
from .sftp import delay_proxy_process, ssh_home
from .single_calls import Rounds, Timings, _async_calls, _best, _borgstore_calls, _compat_calls, _cpu, _syncstore_calls

DELAY = 0.005
"""Added to each direction by the proxy: one round trip gets ``2 * DELAY`` slower."""
MINIMUM = {
    ("sftp", "load"): 2,
    ("sftp", "store"): 3,
    ("rest", "load"): 1,
    ("rest", "store"): 1,
    ("s3", "load"): 1,
    ("s3", "store"): 1,
}
"""Round trips a sequential call cannot do without (see the module's text)."""

Runner = Callable[[str, Rounds, bytes], Timings | None]
CONTENDERS: dict[str, Runner] = {
    "aiodepot await Store": _async_calls,
    "aiodepot SyncStore": _syncstore_calls,
    "aiodepot compat.borgstore": _compat_calls,
    "borgstore": _borgstore_calls,
}


Places = Callable[[str], contextlib.AbstractContextManager[tuple[str, str]]]
"""A contender's name -> (a new store's URL straight to the server, another's through the delay proxy)."""


def _measure(
    protocol: str,
    places: Places,
    calls: int,
    slow_calls: int,
    value: bytes,
    more: dict[str, Runner] | None = None,
) -> list[Row]:
    """Rows for one protocol: the four APIs, and ``more`` contenders of that protocol only."""
    rows: list[Row] = []
    load_avg = f"{os.getloadavg()[0]:.1f}"
    scenario = f"single calls, {protocol} loopback (load {load_avg})"
    for contender, runner in {**CONTENDERS, **(more or {})}.items():
        slug = contender.split()[-1].replace(".", "-").lower()
        with places(slug) as (fast_url, slow_url):
            fast = runner(fast_url, [names(calls)], value)
            slow = runner(slow_url, [names(slow_calls)], value)
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

        moto = start_moto_server(keep_alive=True)
        stack.callback(moto.stop)
        moto_proxy = stack.enter_context(delay_proxy_process(moto.port, DELAY))
        _s3_client(moto.endpoint_url).create_bucket(Bucket=_BUCKET)

        @contextlib.contextmanager
        def s3_places(slug: str) -> Iterator[tuple[str, str]]:
            slow = moto.url(_BUCKET, f"{slug}-slow").replace(f":{moto.port}/", f":{moto_proxy}/")
            yield moto.url(_BUCKET, f"{slug}-fast"), slow

        rows += _measure("s3", s3_places, calls, slow_calls, value, {"boto3": _boto3_calls, "obstore": _obstore_calls})
    return rows


_BUCKET = "single-calls"
_S3_URL = re.compile(r"s3:(?P<key>[^:]+):(?P<secret>[^@]+)@(?P<endpoint>https?://[^/]+)/(?P<bucket>[^/]+)/(?P<path>.+)")


def _s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


def _boto3_calls(url: str, rounds: Rounds, value: bytes) -> Timings:
    """boto3's ``put_object``/``get_object`` on the objects a store at ``url`` would hold."""
    place = _S3_URL.fullmatch(url)
    assert place is not None, url
    client = _s3_client(place["endpoint"])
    bucket, path = place["bucket"], place["path"]

    def stores(repeat: int) -> None:
        for name in rounds[repeat]:
            client.put_object(Bucket=bucket, Key=f"{path}/{name}", Body=value)

    def loads(repeat: int) -> None:
        for name in rounds[repeat]:
            client.get_object(Bucket=bucket, Key=f"{path}/{name}")["Body"].read()

    return {"store": _best(stores, len(rounds)), "load": _best(loads, len(rounds))}


def _obstore_calls(url: str, rounds: Rounds, value: bytes) -> Timings | None:
    """obstore's ``put_async``/``get_async``, awaited one after the other."""
    try:
        import obstore
        from obstore.store import S3Store
    except ImportError:
        return None
    place = _S3_URL.fullmatch(url)
    assert place is not None, url
    store = S3Store(
        place["bucket"],
        prefix=place["path"],
        endpoint=place["endpoint"],
        access_key_id=place["key"],
        secret_access_key=place["secret"],
        region="us-east-1",
        virtual_hosted_style_request=False,
        client_options={"allow_http": True},
    )

    async def main() -> Timings:
        timings: Timings = {}
        for op in ("store", "load"):
            best = (float("inf"), 0.0)
            for names_ in rounds:
                cpu = _cpu()
                started = time.perf_counter()
                for name in names_:
                    if op == "store":
                        await obstore.put_async(store, name, value)
                    else:
                        await (await obstore.get_async(store, name)).bytes_async()
                best = min(best, (time.perf_counter() - started, _cpu() - cpu))
            timings[op] = best
        return timings

    return asyncio.run(main())
