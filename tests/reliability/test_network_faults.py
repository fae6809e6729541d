"""Network faults between the network backends and real servers (issue 11, item 3).

A [`FaultProxy`][tests.servers.faultproxy.FaultProxy] sits between each client and its server on
loopback — ``rest`` → aiodepot's server, ``s3`` → moto's server, ``azure`` → Azurite, ``sftp`` → OpenSSH's
sshd — and resets,
stalls, trickles or flips bits of the traffic while a Store stores, loads (whole, ranged and big values in
parallel parts), describes, lists and deletes. What must hold:

- a reset at any byte offset, either direction: the operation succeeds within the retry budget and the
  data on the server is intact;
- a stall: the operation is retried after the configured timeout and succeeds; a connection that stays
  stalled ends in a clear ``ConnectionLost`` within the retry budget, never a hang;
- a trickle: everything completes;
- a flipped bit server → client: never wrong bytes (a retry brings the right ones, or ``IntegrityError``);
  client → server on a store: the stored value is never corrupt;
- after many aborted connections, file descriptors and proxied connections are back at their baseline.

Timeouts are a second or two here, so every operation is bounded by ``asyncio.timeout`` well below the
test timeout. The default run is bounded; ``-m slow`` runs the full counts (1000 aborted connections).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import os
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from aiodepot import RetryPolicy, Store, Timeouts
from aiodepot.backends.base import Backend
from aiodepot.backends.memory import MemoryBackend
from aiodepot.backends.rest import RestBackend
from aiodepot.errors import IntegrityError, StoreError
from tests.servers import require_module
from tests.servers.azurite import Azurite, start_azurite
from tests.servers.faultproxy import Direction, Fault, FaultProxy
from tests.servers.gcs import FakeGcsServer, start_fake_gcs_server
from tests.servers.moto import MotoServer, start_moto_server
from tests.servers.rest import ThreadedServer
from tests.servers.sshd import Sshd, sshd

MiB = 1024 * 1024
TIMEOUT = 1.0
"""Seconds a read (rest, s3) or a round of requests (sftp) may stall before the connection counts as dead."""
RETRIES = 3
"""Retries after a lost connection (4 attempts in all)."""
OP_BOUND = 30.0
"""No operation may take longer, whatever the fault (the worst case is a few attempts that all time out)."""
CONFIG = {"data/": {"levels": [0]}}
SMALL = 40_000
BIG = 9 * MiB  # more than one 8 MiB part: parallel ranged loads, multipart uploads on s3, a streamed body on rest
BACKENDS = ["rest", "s3", "azure", "gcs", "sftp"]
DIRECTIONS: tuple[Direction, ...] = ("up", "down")
ABORTED_DEFAULT = 100
ABORTED_SLOW = 1000


def give_up_budget(kind: str) -> float:
    """The longest an operation may take when every attempt fails by timing out: each attempt connects
    (and logs in) and then waits out a read, with the backoff between attempts (botocore's standard mode
    waits up to 1, 2 and 4 s; rest and sftp wait 0.01 s here), plus 3 s of slack for a loaded machine."""
    backoff = {"s3": 7.0, "azure": 0.7, "gcs": 0.7}.get(kind, RETRIES * 0.02)  # azure, gcs: 0.1 s doubling
    return (RETRIES + 1) * 3 * TIMEOUT + backoff + 3


def fds() -> int:
    """Open file descriptors of this process."""
    return len(os.listdir("/proc/self/fd"))


# servers and rigs -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto_server() -> Iterator[MotoServer]:
    require_module("moto.server", pip="moto[server]")
    server = start_moto_server()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def azurite() -> Iterator[Azurite]:
    require_module("azure.storage.blob", pip="aiodepot[azure]")
    server = start_azurite()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fake_gcs() -> Iterator[FakeGcsServer]:
    server = start_fake_gcs_server()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def openssh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    with sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@dataclasses.dataclass
class Rig:
    """A backend kind behind a fault proxy: stores through the proxy, and straight to the server."""

    kind: str
    proxy: FaultProxy
    upstream: int
    make: Callable[[int], Backend]
    """A fresh backend for this test's store, talking to the given port."""

    def store(self) -> Store:
        """A store through the proxy."""
        return Store(backend=self.make(self.proxy.port), config=CONFIG)

    def direct(self) -> Store:
        """The same store, straight to the server (to check what the server holds)."""
        return Store(backend=self.make(self.upstream), config=CONFIG)


@contextlib.contextmanager
def _server_for(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[int, Callable[[int], Backend]]]:
    if kind == "rest":
        with ThreadedServer(MemoryBackend(f"faults-{uuid.uuid4().hex}")) as rest_server:

            def rest(port: int) -> Backend:
                return RestBackend(
                    f"http://127.0.0.1:{port}",
                    timeouts=Timeouts(connect=TIMEOUT, read=TIMEOUT),
                    retry=RetryPolicy(attempts=RETRIES + 1, backoff=0.01, multiplier=1.0),
                )

            yield rest_server.port, rest
    elif kind == "s3":
        from aiodepot.backends.s3 import S3Backend

        moto: MotoServer = request.getfixturevalue("moto_server")
        bucket = f"faults-{uuid.uuid4().hex[:16]}"

        def s3(port: int) -> Backend:
            return S3Backend.from_url(
                f"s3:{moto.access_key}:{moto.secret_key}@http://127.0.0.1:{port}/{bucket}/depot",
                create_bucket=True,
                timeouts=Timeouts(connect=TIMEOUT, read=TIMEOUT),
                retry=S3Backend.default_retry.with_attempts(RETRIES + 1),
                verify_etag=True,  # moto verifies no checksum: the ETag check is what catches a flip on the way
            )

        yield moto.port, s3
    elif kind == "azure":
        from aiodepot.backends.azure import AzureBackend

        emulator: Azurite = request.getfixturevalue("azurite")
        container = f"faults-{uuid.uuid4().hex[:16]}"

        def azure(port: int) -> Backend:
            return AzureBackend.from_url(
                emulator.url(container, "depot", port=port),
                create_container=True,
                part_size=8 * MiB,  # as on s3: a flip 7 MiB into a big store lands in its first block
                timeouts=Timeouts(connect=TIMEOUT, read=TIMEOUT),
                retry=AzureBackend.default_retry.with_attempts(RETRIES + 1),
            )

        yield emulator.port, azure
    elif kind == "gcs":
        from aiodepot.backends.gcs import GcsBackend

        emulator: FakeGcsServer = request.getfixturevalue("fake_gcs")
        bucket = f"faults-{uuid.uuid4().hex[:16]}"

        def gcs(port: int) -> Backend:
            return GcsBackend.from_url(
                f"gs://{bucket}/depot?endpoint=http://127.0.0.1:{port}",
                create_bucket=True,
                timeouts=Timeouts(connect=TIMEOUT, read=TIMEOUT),
                retry=GcsBackend.default_retry.with_attempts(RETRIES + 1),
            )

        yield emulator.port, gcs
    else:
        from aiodepot.backends.sftp import SftpBackend

        sshd_server: Sshd = request.getfixturevalue("openssh")
        known_hosts = tmp_path / "known_hosts"
        path = tmp_path / "store"

        def sftp(port: int) -> Backend:
            line = f"[127.0.0.1]:{port} {sshd_server.host_key_line}\n"  # the proxy's port and the server's
            lines = known_hosts.read_text() if known_hosts.exists() else ""
            if line not in lines:
                known_hosts.write_text(lines + line)
            return SftpBackend.from_url(
                sshd_server.url(path, port=port),
                **sshd_server.options(
                    known_hosts=str(known_hosts),
                    timeouts=Timeouts(connect=TIMEOUT, read=TIMEOUT),
                    retry=SftpBackend.default_retry.replace(attempts=RETRIES + 1, backoff=0.01),
                    keepalive_interval=0.5,
                    keepalive_count_max=2,
                ),
            )

        yield sshd_server.port, sftp


@pytest.fixture(params=BACKENDS)
async def rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rig]:
    with _server_for(request.param, request, tmp_path) as (upstream, make), FaultProxy(upstream) as proxy:
        rig = Rig(request.param, proxy, upstream, make)
        direct = rig.direct()
        await direct.create()
        yield rig


# the workload -----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Outcomes:
    """What the operations under a fault came to, by kind (for the assertions and the report)."""

    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    errors: list[str] = dataclasses.field(default_factory=list)

    def add(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1


def value(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


Op = Callable[[Store], Awaitable[None]]


class Workload:
    """The operations, each with its own items, and what the server must hold after each of them."""

    def __init__(self, *, big: bool = True) -> None:
        self.small = value(1, SMALL)
        self.other = value(2, SMALL)
        self.big = value(3, BIG) if big else b""
        self.ops: dict[str, Op] = {
            "store": self.store,
            "load": self.load,
            "ranged load": self.ranged_load,
            "info": self.info,
            "list": self.list,
            "delete": self.delete,
        }
        if big:
            self.ops |= {"big store": self.big_store, "big load": self.big_load}
        self.expected: dict[str, tuple[bytes, ...]] = {}

    async def prepare(self, store: Store) -> None:
        """The items the loads read (stored without faults)."""
        await store.store("data/fixed", self.small)
        # a listing of some size, so that a flipped bit can land in its body
        await store.store_many({f"data/item-{i:03d}": b"x" for i in range(60)})
        if self.big:
            await store.store("data/bigfixed", self.big)

    async def store(self, store: Store) -> None:
        before = self.expected.get("data/written", (b"",))  # what may be there already (b"": nothing)
        self.expected["data/written"] = (*before, self.other)  # the old value, or the new one
        await store.store("data/written", self.other)
        self.expected["data/written"] = (self.other, self.small)
        await store.store("data/written", self.small)
        self.expected["data/written"] = (self.small,)

    async def store_once(self, store: Store) -> None:
        """One store of a new item (a flipped bit cannot hide behind a second, clean store)."""
        self.serial = getattr(self, "serial", 0) + 1
        name = f"data/once-{self.serial}"
        self.expected[name] = (b"", self.other)  # nothing (the store failed), or the whole value
        await store.store(name, self.other)
        self.expected[name] = (self.other,)

    async def big_store_once(self, store: Store) -> None:
        self.serial = getattr(self, "serial", 0) + 1
        name = f"data/bigonce-{self.serial}"
        self.expected[name] = (b"", self.big)
        await store.store(name, self.big)
        self.expected[name] = (self.big,)

    async def load(self, store: Store) -> None:
        assert await store.load("data/fixed") == self.small

    async def ranged_load(self, store: Store) -> None:
        assert await store.load("data/fixed", offset=1000, size=20_000) == self.small[1000:21_000]
        assert await store.load("data/fixed", offset=-3000) == self.small[-3000:]

    async def info(self, store: Store) -> None:
        info = await store.info("data/fixed")
        assert (info.exists, info.size) == (True, SMALL)

    async def list(self, store: Store) -> None:
        names = [item.name async for item in store.list("data")]
        assert "fixed" in names

    async def delete(self, store: Store) -> None:
        await store.store("data/scratch", b"scratch")
        await store.delete("data/scratch")
        assert not (await store.info("data/scratch")).exists

    async def big_store(self, store: Store) -> None:
        self.expected["data/bigwritten"] = (b"", self.big)  # nothing yet, or the whole value
        await store.store("data/bigwritten", self.big)
        self.expected["data/bigwritten"] = (self.big,)

    async def big_load(self, store: Store) -> None:
        data = await store.load("data/bigfixed")
        assert len(data) == BIG
        assert data == self.big

    async def check_server(self, direct: Store) -> None:
        """What the server holds: the loads' items unchanged, each written item old or new, never torn."""
        assert await direct.load("data/fixed") == self.small
        if self.big:
            assert await direct.load("data/bigfixed") == self.big
        for name, allowed in self.expected.items():
            try:
                held = await direct.load(name)
            except KeyError:
                held = b""
            assert held in allowed, f"{name} holds {len(held)} bytes that are none of the expected values"


async def run(op: Op, store: Store, outcomes: Outcomes, *, bound: float = OP_BOUND) -> float:
    """Run ``op`` under a deadline; record how it ended; return the seconds it took."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(bound):
            await op(store)
        outcomes.add("ok")
    except StoreError as exc:
        outcomes.add(type(exc).__name__)
        outcomes.errors.append(f"{type(exc).__name__}: {exc}")
    return time.monotonic() - started


@contextlib.asynccontextmanager
async def opened(rig: Rig, workload: Workload) -> AsyncIterator[Store]:
    async with rig.direct() as direct:
        await workload.prepare(direct)
    async with rig.store() as store:
        yield store
    rig.proxy.disarm()
    async with rig.direct() as direct:
        await workload.check_server(direct)


# resets -------------------------------------------------------------------------------------------------------

RESET_OFFSETS = [0, 1, 200, 5000, 100_000, 3 * MiB]


# About how many bytes each operation sends (up) and receives (down): random resets land inside them
TRAFFIC: dict[str, dict[str, int]] = {
    "store": {"up": 2 * SMALL, "down": 300},
    "load": {"up": 150, "down": SMALL},
    "ranged load": {"up": 300, "down": 23_000},
    "info": {"up": 150, "down": 250},
    "list": {"up": 150, "down": 5000},
    "delete": {"up": 400, "down": 500},
    "big store": {"up": BIG, "down": 300},
    "big load": {"up": 300, "down": BIG},
}


def reset_plan(name: str, rng: random.Random | None) -> list[tuple[int, Direction]]:
    """The resets an operation meets: the fixed grid, plus 40 random ones inside its traffic in the full run."""
    limit = 12 * MiB if name.startswith("big") else 2 * SMALL  # past the end of the operation's traffic
    plan = [(after, direction) for direction in DIRECTIONS for after in RESET_OFFSETS if after <= limit]
    if rng is not None:
        for _ in range(40):
            direction = rng.choice(DIRECTIONS)
            plan.append((rng.randrange(0, TRAFFIC[name][direction]), direction))
    return plan


async def resets(rig: Rig, rng: random.Random | None) -> None:
    workload = Workload()
    outcomes = Outcomes()
    fired: dict[tuple[str, str], int] = {}
    async with opened(rig, workload) as store:
        for name, op in workload.ops.items():
            for after, direction in reset_plan(name, rng):
                before = rig.proxy.counters().resets
                rig.proxy.arm(Fault.reset(after, direction))
                await run(op, store, outcomes)
                rig.proxy.disarm()
                fired[name, direction] = fired.get((name, direction), 0) + rig.proxy.counters().resets - before
    print(f"\n{rig.kind} resets: {sum(fired.values())} fired in {sum(outcomes.counts.values())} operations")
    assert outcomes.errors == []
    # every operation met resets in both directions (the big offsets lie past the end of the small ones)
    assert min(fired.values()) >= 2, fired


async def test_resets_at_any_offset_are_retried(rig: Rig) -> None:
    """One RST per operation, at a range of byte offsets in each direction: every operation succeeds."""
    await resets(rig, None)


@pytest.mark.slow
@pytest.mark.timeout(1800)
async def test_resets_at_any_offset_are_retried_full(rig: Rig) -> None:
    await resets(rig, random.Random(21))


# stalls -------------------------------------------------------------------------------------------------------


async def test_a_stall_times_out_and_the_retry_succeeds(rig: Rig) -> None:
    """A connection that stalls (forever) once: the operation gives up on it after the timeout and retries."""
    workload = Workload(big=False)
    outcomes = Outcomes()
    slowest = 0.0
    async with opened(rig, workload) as store:
        for name in ("store", "load", "list", "info"):
            for direction in DIRECTIONS:
                rig.proxy.arm(Fault.stall(after=100, direction=direction))
                slowest = max(slowest, await run(workload.ops[name], store, outcomes))
                rig.proxy.disarm()
    print(f"\n{rig.kind} stall once: slowest operation {slowest:.2f} s, {outcomes.counts}")
    assert outcomes.errors == []
    # a stall costs a timeout (or a keepalive's verdict) and a reconnect, not more
    assert slowest < 2 * TIMEOUT + 4, f"an operation took {slowest:.1f} s after one stall"


async def test_a_connection_that_stays_stalled_raises_in_time(rig: Rig) -> None:
    """Every connection stalls: ConnectionLost once the retries are spent — within the budget, not a hang."""
    workload = Workload(big=False)
    outcomes = Outcomes()
    budget = give_up_budget(rig.kind)
    async with opened(rig, workload) as store:
        for name in ("load", "store"):
            rig.proxy.arm(Fault.stall(after=0, direction="down"), times=None)
            took = await run(workload.ops[name], store, outcomes)
            rig.proxy.disarm()
            rig.proxy.release()
            print(f"\n{rig.kind} stalled for good: {name} gave up after {took:.2f} s")
            assert took < budget, f"{name} took {took:.1f} s under a stall (budget {budget:.1f} s)"
    assert outcomes.counts == {"ConnectionLost": 2}, outcomes.errors
    for error in outcomes.errors:
        assert "data/" in error or "connection" in error.lower(), f"the error does not say what failed: {error}"


async def test_a_stalled_upload_raises_in_time(rig: Rig) -> None:
    """The server stops reading a big upload: the client must not wait for ever on a full send buffer."""
    workload = Workload()
    outcomes = Outcomes()
    budget = give_up_budget(rig.kind) + 2
    async with opened(rig, workload) as store:
        rig.proxy.arm(Fault.stall(after=1 * MiB, direction="up"), times=None)
        took = await run(workload.big_store, store, outcomes)
        rig.proxy.disarm()
        rig.proxy.release()
        workload.expected["data/bigwritten"] = (b"", workload.big)
    print(f"\n{rig.kind} stalled upload: gave up after {took:.2f} s")
    assert took < budget, f"the upload took {took:.1f} s under a stall (budget {budget:.1f} s)"
    assert outcomes.counts == {"ConnectionLost": 1}, outcomes.errors


# trickle ------------------------------------------------------------------------------------------------------


async def test_trickle_completes(rig: Rig) -> None:
    """A slow link (a few KiB per few milliseconds, both ways): every operation completes."""
    workload = Workload(big=False)
    outcomes = Outcomes()
    async with opened(rig, workload) as store:
        for direction in DIRECTIONS:
            rig.proxy.arm(Fault.trickle(chunk=4096, interval=0.002, direction=direction), times=None)
            for op in workload.ops.values():
                await run(op, store, outcomes)
            rig.proxy.disarm()
    assert outcomes.errors == []


@pytest.mark.parametrize("rig", ["rest", "s3"], indirect=True)
async def test_a_slow_link_is_not_a_stalled_one(rig: Rig) -> None:
    """Bytes that keep coming, if slowly, never time out on rest and s3, whose timeouts bound each read:
    a load takes more than twice the timeout here and completes. (sftp's timeout bounds a round of requests — up
    to ``part_size`` bytes —, so a link slower than ``part_size / timeout`` needs a longer timeout.)"""
    workload = Workload(big=False)
    outcomes = Outcomes()
    async with opened(rig, workload) as store:
        rig.proxy.arm(Fault.trickle(chunk=2048, interval=0.125, direction="down"), times=None)
        took = await run(workload.load, store, outcomes)
        rig.proxy.disarm()
    assert outcomes.errors == []
    assert took > 2 * TIMEOUT


# bit flips ----------------------------------------------------------------------------------------------------

# Offsets inside the bytes of each operation's replies (past the HTTP and SSH headers)
FLIP_OFFSETS = {
    "load": [3000, 25_000],
    "ranged load": [3000, 15_000],
    "list": [1500, 3000],
    "big load": [2 * MiB + 5, 7 * MiB],
    "store": [3000, 25_000],
    "big store": [2 * MiB + 5, 7 * MiB],
}
# What each backend can check on a load: S3 sends a checksum only with whole objects (a range, or a part
# of a big value loaded in parallel ranges, comes without one); aiodepot's server sends the SHA-256 of
# every body it sends whole; SSH checks every packet.
FLIP_LOADS = {
    "rest": ("load", "ranged load", "list", "big load"),
    "s3": ("load",),
    "azure": ("load", "ranged load", "big load"),  # every range of at most 4 MiB comes with its MD5
    "gcs": ("load",),  # a whole GET is checked against the stored CRC32C; GCS has none for a range
    "sftp": ("load", "ranged load", "list", "big load"),
}


# Where a random flip may land, by operation: inside the value bytes of its replies or requests. Headers
# and paths are left out: without TLS nothing protects them (on S3, a damaged signed header is refused as
# a bad signature; over REST, a damaged path would name another item). A big store's span ends inside its
# first part, before the request that completes an S3 multipart upload.
FLIP_SPANS = {
    "load": (1500, 39_000),
    "ranged load": (1500, 22_000),
    "list": (1000, 5000),
    "big load": (1000, BIG - 1000),
    "store": (2500, 39_000),
    "big store": (4000, 8 * MiB - 4000),
}


def flip_plan(name: str, rng: random.Random | None) -> list[tuple[int, int]]:
    """(offset, bit) of the flips an operation meets: fixed ones, plus 30 random ones in the full run."""
    plan = [(after, bit) for after in FLIP_OFFSETS[name] for bit in (0, 5)]
    if rng is not None:
        plan += [(rng.randrange(*FLIP_SPANS[name]), rng.randrange(8)) for _ in range(30)]
    return plan


async def flips_on_loads(rig: Rig, rng: random.Random | None) -> None:
    workload = Workload()
    outcomes = Outcomes()
    fired = 0
    async with opened(rig, workload) as store:
        for name in FLIP_LOADS[rig.kind]:
            for after, bit in flip_plan(name, rng):
                before = rig.proxy.counters().flips
                rig.proxy.arm(Fault.flip(after, "down", bit=bit))
                await run(workload.ops[name], store, outcomes)  # a wrong byte fails its assertion
                rig.proxy.disarm()
                fired += rig.proxy.counters().flips - before
    print(f"\n{rig.kind} flips on loads: {fired} fired, {outcomes.counts}")
    assert set(outcomes.counts) <= {"ok", "IntegrityError"}, outcomes.errors
    assert fired == sum(outcomes.counts.values()), "every operation should have met its flipped bit"


async def test_flipped_bits_on_loads_never_give_wrong_bytes(rig: Rig) -> None:
    """A flipped bit server → client: the load retries (right bytes) or raises IntegrityError."""
    await flips_on_loads(rig, None)


@pytest.mark.slow
@pytest.mark.timeout(1800)
async def test_flipped_bits_on_loads_never_give_wrong_bytes_full(rig: Rig) -> None:
    await flips_on_loads(rig, random.Random(22))


FLIP_STORES = {
    "rest": ("store", "big store"),
    "s3": ("store", "big store"),
    "azure": ("store", "big store"),
    "gcs": ("store", "big store"),
    "sftp": ("store", "big store"),
}


async def flips_on_stores(rig: Rig, rng: random.Random | None) -> None:
    workload = Workload()
    outcomes = Outcomes()
    fired = 0
    async with opened(rig, workload) as store:
        for name in FLIP_STORES[rig.kind]:
            for after, bit in flip_plan(name, rng):
                before = rig.proxy.counters().flips
                rig.proxy.arm(Fault.flip(after, "up", bit=bit))
                await run(workload.big_store_once if name == "big store" else workload.store_once, store, outcomes)
                rig.proxy.disarm()
                fired += rig.proxy.counters().flips - before
    print(f"\n{rig.kind} flips on stores: {fired} fired, {outcomes.counts}")
    assert set(outcomes.counts) <= {"ok", "IntegrityError"}, outcomes.errors
    assert fired == sum(outcomes.counts.values())


async def test_flipped_bits_on_stores_never_corrupt_the_value(rig: Rig) -> None:
    """A flipped bit client → server: the server refuses the body (and the client sends it again), or the
    store fails with IntegrityError; what the server holds is never corrupt (checked at the end)."""
    await flips_on_stores(rig, None)


@pytest.mark.slow
@pytest.mark.timeout(1800)
async def test_flipped_bits_on_stores_never_corrupt_the_value_full(rig: Rig) -> None:
    await flips_on_stores(rig, random.Random(23))


@pytest.mark.parametrize("rig", ["s3"], indirect=True)
async def test_s3_etag_check_catches_what_moto_lets_through(rig: Rig) -> None:
    """moto does not check the checksum of an upload: without the ETag check a flipped bit is stored (and
    only a checksummed whole load notices); with it, the PUT is sent again and the value is right."""
    from aiodepot.backends.s3 import S3Backend

    data = value(7, SMALL)
    for verify in (False, True):
        backend = rig.make(rig.proxy.port)
        assert isinstance(backend, S3Backend)
        backend.verify_etag = verify
        async with Store(backend=backend, config=CONFIG) as store:
            rig.proxy.arm(Fault.flip(20_000, "up", bit=1))
            await store.store(f"data/etag-{str(verify).lower()}", data)
            rig.proxy.disarm()
    async with rig.direct() as direct:
        with pytest.raises(IntegrityError):
            await direct.load("data/etag-false")
        assert await direct.load("data/etag-true") == data
    assert rig.proxy.counters().flips == 2


# resources ----------------------------------------------------------------------------------------------------


async def abort_many(rig: Rig, count: int, seed: int) -> Outcomes:
    """Reset ``count`` connections at random offsets in the middle of random operations, closing and
    reopening the store every 25 of them; check that descriptors and connections return to the baseline."""
    workload = Workload(big=False)
    outcomes = Outcomes()
    rng = random.Random(seed)
    names = list(workload.ops)
    async with rig.direct() as direct:
        await workload.prepare(direct)
    async with rig.store() as store:  # a first round opens what stays open (thread pools, loaded modules)
        for op in workload.ops.values():
            await run(op, store, outcomes)
    await rig.proxy.wait_idle(5)
    gc.collect()
    baseline = fds()
    while rig.proxy.counters().resets < count:
        async with rig.store() as store:
            for _ in range(25):
                rig.proxy.arm(Fault.reset(rng.randrange(0, 2 * SMALL), rng.choice(DIRECTIONS)))
                await run(workload.ops[rng.choice(names)], store, outcomes)
        rig.proxy.disarm()
    figures = await rig.proxy.wait_idle(10)
    gc.collect()
    await asyncio.sleep(0.1)  # the last closes go through the loop
    assert figures.open == 0, f"{figures.open} connections to the proxy stayed open"
    assert fds() == baseline, f"{fds() - baseline} file descriptors more than before {figures.resets} resets"
    assert outcomes.errors == []
    async with rig.direct() as direct:
        await workload.check_server(direct)
    print(f"{rig.kind}: {figures.resets} resets in {figures.accepted} connections, {outcomes.counts}, {baseline} fds")
    return outcomes


async def test_aborted_connections_leave_nothing_open(rig: Rig) -> None:
    await abort_many(rig, ABORTED_DEFAULT, seed=11)


@pytest.mark.slow
@pytest.mark.timeout(1800)
async def test_aborted_connections_leave_nothing_open_full(rig: Rig) -> None:
    await abort_many(rig, ABORTED_SLOW, seed=12)


async def test_unreachable_server_is_a_clear_error(rig: Rig) -> None:
    """Nothing behind the proxy answers any more: ConnectionLost (not a hang, not a raw library error)."""
    workload = Workload(big=False)
    outcomes = Outcomes()
    async with opened(rig, workload) as store:
        rig.proxy.arm(Fault.reset(0, "down"), times=None)
        rig.proxy.cut()
        took = await run(workload.load, store, outcomes)
        rig.proxy.disarm()
    assert outcomes.counts == {"ConnectionLost": 1}, outcomes.errors
    assert took < give_up_budget(rig.kind)
