"""The mirror layer: one backend made of several copies.

[`Mirror`][aiodepot.layers.mirror.Mirror] writes every change to all of its children concurrently and
succeeds when a quorum of them did; it reads from the first child that has the item (in order, or the
fastest to answer) and copies an item that a child lacks back to that child ("read repair").
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any, Literal, NoReturn, Self, TypeVar

from ..backends.base import Backend, Capabilities
from ..errors import (
    BackendURLInvalid,
    IntegrityError,
    InvalidName,
    ObjectNotFound,
    StoreError,
    StoreNotFound,
    StoreStateError,
)
from ..items import ItemInfo, Source, StoreValue, validate_value
from ..names import validate_backend_name
from .base import Wrapper

__all__ = ["Mirror", "MirrorError"]

logger = logging.getLogger("aiodepot.layers.mirror")

T = TypeVar("T")
ReadMode = Literal["ordered", "fastest"]

_MAX_PENDING_REPAIRS = 256  # repairs waiting beyond this are dropped (a later read schedules them again)
_REPAIR_CONCURRENCY = 4
_MAX_REPAIR_BYTES = 64 * 1024 * 1024  # values held for pending repairs; beyond, repairs re-read from the source
_TEE_DEPTH = 2  # chunks queued per child while a stream is copied to all children


class MirrorError(StoreError):
    """A write reached fewer children than the write quorum (or a lifecycle call failed on some).

    ``succeeded`` holds the children that did the operation, ``failed`` maps each failed child to its
    error. The message names both.
    """

    def __init__(self, message: str, *, succeeded: Sequence[Backend], failed: Sequence[tuple[Backend, BaseException]]):
        super().__init__(message)
        self.succeeded = builtins.list(succeeded)
        self.failed = builtins.list(failed)


class _RepairTicket:
    """A promise that no write touched a name since a read started; a write to the name voids it."""

    __slots__ = ("valid",)

    def __init__(self) -> None:
        self.valid = True


class _NameLocks:
    """One lock per name while someone holds or waits for it (so the map stays small)."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, names: Iterable[str]) -> AsyncIterator[None]:
        ordered = sorted(set(names))  # one global order: no deadlock between writers of several names
        for name in ordered:
            lock, users = self._locks.get(name, (None, 0))
            if lock is None:
                lock = asyncio.Lock()
            self._locks[name] = (lock, users + 1)
        acquired: builtins.list[asyncio.Lock] = []
        try:
            for name in ordered:
                lock = self._locks[name][0]
                await lock.acquire()
                acquired.append(lock)
            yield
        finally:
            for lock in acquired:
                lock.release()
            for name in ordered:
                lock, users = self._locks[name]
                if users == 1:
                    del self._locks[name]
                else:
                    self._locks[name] = (lock, users - 1)


def _combine(children: Sequence[Capabilities]) -> Capabilities:
    """What the mirror can promise: what every child can do (and the smallest batch and part sizes)."""
    return Capabilities(
        ranged_reads=all(c.ranged_reads for c in children),
        server_side_hash=all(c.server_side_hash for c in children),
        server_side_copy=all(c.server_side_copy for c in children),
        server_side_gather=all(c.server_side_gather for c in children),
        multipart=all(c.multipart for c in children),
        atomic_store=all(c.atomic_store for c in children),
        batch_ops=all(c.batch_ops for c in children),
        batch_size=min(c.batch_size for c in children),
        parallel_ranges=any(c.parallel_ranges for c in children),
        preferred_concurrency=min(c.preferred_concurrency for c in children),
        part_size=min(c.part_size for c in children),
    )


def _leaf(name: str) -> str:
    return name.rpartition("/")[2]


_FATAL = (InvalidName, StoreStateError)  # the call itself is wrong: asking another child cannot help


class Mirror(Wrapper):
    """Keep the same items on several backends ("children").

    Args:
        children: the backends holding the copies (at least one; each may itself be a layer). The
            mirror creates, opens, closes and destroys them.
        write_quorum: how many children must do a write for it to succeed (default: all of them).
        read: ``"ordered"`` asks the children one after the other, in the order given, and takes the
            first that has the item; ``"fastest"`` asks all at once, takes the first good answer and
            cancels the other requests (more traffic, lower latency when children differ in speed).
        repair: copy an item that a child lacks (or holds damaged: ``IntegrityError``) to that child
            when a read finds it elsewhere.

    Writes (``store``, ``delete``, ``move``, ``mkdir``, ``rmdir``, their batch forms, ``store_chunks``
    and ``store_file``) run on all children concurrently. One that fewer than ``write_quorum`` children
    did raises [`MirrorError`][aiodepot.layers.mirror.MirrorError], naming the children that failed
    (with their errors) and those that did the write; when no child did it and all failed alike (an
    ``ObjectNotFound`` for a missing item, a ``ValueError`` for a stream of the wrong size) that error
    is raised as itself. A child that failed a ``store`` has its old copy deleted (best effort), so a
    later read cannot return a stale value from it. ``delete`` and ``move`` accept children that lack
    the item, as long as one had it; a ``move`` removes a stale target from such a child.

    Writes to one name are serialized in this mirror, so concurrent writers leave all children with the
    same value (other processes writing to the children directly are not coordinated).

    ``open`` opens all children concurrently. A child that fails to open is left out ("down", listed in
    ``down``) if the others still reach the write quorum; otherwise the open ones are closed again and
    the error is raised. ``create`` and ``destroy`` need every child (``destroy`` skips children whose
    storage is missing, as long as one existed).

    Repairs run in the background, at most four at a time; ``flush_repairs()`` waits for them and
    ``close()`` does too. A repair is skipped when the name was written meanwhile, so it never puts
    back an outdated value. Counters are in ``stats``.
    """

    def __init__(
        self,
        children: Sequence[Backend],
        *,
        write_quorum: int | None = None,
        read: ReadMode = "ordered",
        repair: bool = True,
    ) -> None:
        super().__init__()
        children = builtins.list(children)
        if not children:
            raise ValueError("a mirror needs at least one child backend")
        for child in children:
            if not isinstance(child, Backend):
                raise TypeError(f"a mirror's children are Backends, not {type(child).__name__}")
        if len({id(child) for child in children}) != len(children):
            raise ValueError("a backend instance may appear only once among a mirror's children")
        quorum = len(children) if write_quorum is None else write_quorum
        if not 1 <= quorum <= len(children):
            raise ValueError(f"write_quorum must be between 1 and {len(children)}, got {write_quorum}")
        if read not in ("ordered", "fastest"):
            raise ValueError(f"read must be 'ordered' or 'fastest', got {read!r}")
        self.children: tuple[Backend, ...] = tuple(children)
        self.write_quorum = quorum
        self.read_mode: ReadMode = read
        self.repair = repair
        self.down: dict[Backend, BaseException] = {}
        """Children left out at ``open`` because they failed to open, with their errors."""
        self.stats: dict[str, int] = {"repairs": 0, "repair_failures": 0, "repairs_skipped": 0, "write_failures": 0}
        """``repairs`` done, ``repair_failures``, ``repairs_skipped`` (queue full or superseded by a write),
        ``write_failures`` (child writes that failed while the quorum was met)."""
        self._locks = _NameLocks()
        self._tickets: dict[str, builtins.list[_RepairTicket]] = {}
        self._repairs: set[asyncio.Task[None]] = set()
        self._repair_limit: asyncio.Semaphore | None = None  # made on the loop that opens the mirror
        self._repair_bytes = 0
        object.__setattr__(self, "capabilities", _combine([child.capabilities for child in children]))

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """A mirror is not opened from a URL: give it its children."""
        raise BackendURLInvalid(f"{cls.__name__} is a layer: give it child backends instead of opening {url!r}")

    def __repr__(self) -> str:
        state = "open" if self.opened else "closed"
        return f"<Mirror {state} quorum={self.write_quorum}/{len(self.children)} over {builtins.list(self.children)!r}>"

    @property
    def _live(self) -> builtins.list[Backend]:
        return [child for child in self.children if child not in self.down]

    # lifecycle -------------------------------------------------------------------------------------------

    async def _everywhere(
        self, what: str, call: Callable[[Backend], Awaitable[Any]], children: Sequence[Backend]
    ) -> tuple[builtins.list[Backend], builtins.list[tuple[Backend, BaseException]]]:
        outcomes = await asyncio.gather(*(call(child) for child in children), return_exceptions=True)
        done: builtins.list[Backend] = []
        failed: builtins.list[tuple[Backend, BaseException]] = []
        for child, outcome in zip(children, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                if not isinstance(outcome, Exception):
                    raise outcome  # cancellation, KeyboardInterrupt
                failed.append((child, outcome))
            else:
                done.append(child)
        return done, failed

    async def _create(self) -> None:
        """Create the storage of every child; all must succeed."""
        done, failed = await self._everywhere("create", lambda child: child.create(), self.children)
        if failed:
            self._raise("create", done, failed, same_kind_ok=not done)

    async def _destroy(self) -> None:
        """Destroy the storage of every child (children whose storage is missing are skipped)."""
        done, failed = await self._everywhere("destroy", lambda child: child.destroy(), self.children)
        others = [(child, exc) for child, exc in failed if not isinstance(exc, StoreNotFound)]
        if others:
            self._raise("destroy", done, others, same_kind_ok=not done)
        if not done:
            raise failed[0][1]  # no child had a storage to destroy

    async def _open(self) -> None:
        """Open every child; a child that fails is left out if the others reach the write quorum."""
        done, failed = await self._everywhere("open", lambda child: child.open(), self.children)
        if len(done) < self.write_quorum:
            await self._everywhere("close", lambda child: child.close(), done)
            self._raise("open", done, failed, same_kind_ok=not done)
        self.down = dict(failed)
        self._repair_limit = asyncio.Semaphore(_REPAIR_CONCURRENCY)
        for child, exc in failed:
            logger.warning("mirror: child %r is down, left out: %s", child, exc)

    async def close(self) -> None:
        """Wait for pending repairs, then close the open children."""
        self._require_open()
        await self.flush_repairs()  # while still open
        await super().close()

    async def _close(self) -> None:
        live = self._live
        self.down = {}
        done, failed = await self._everywhere("close", lambda child: child.close(), live)
        if failed:
            self._raise("close", done, failed, same_kind_ok=True)

    async def flush_repairs(self) -> None:
        """Wait until the repairs scheduled so far have finished (their failures are counted, not raised)."""
        while self._repairs:
            await asyncio.gather(*builtins.list(self._repairs), return_exceptions=True)

    # errors and quorum -----------------------------------------------------------------------------------

    def _raise(
        self,
        what: str,
        done: Sequence[Backend],
        failed: Sequence[tuple[Backend, BaseException]],
        *,
        same_kind_ok: bool,
    ) -> NoReturn:
        first = failed[0][1]
        if same_kind_ok and all(type(exc) is type(first) for _, exc in failed):
            raise first
        if same_kind_ok:
            for _, exc in failed:
                if not isinstance(exc, StoreError):
                    raise exc  # a wrong argument (a stream of the wrong size): not a child's failure
        failures = "; ".join(f"{child!r}: {type(exc).__name__}: {exc}" for child, exc in failed)
        succeeded = ", ".join(repr(child) for child in done) or "none"
        raise MirrorError(
            f"{what}: failed on {len(failed)} of {len(self.children)} children ({failures}); "
            f"done on: {succeeded} (write quorum {self.write_quorum})",
            succeeded=done,
            failed=failed,
        ) from first

    async def _write(
        self,
        what: str,
        call: Callable[[Backend], Awaitable[Any]],
        *,
        missing_ok: bool = False,
        on_missing: Callable[[Backend], Awaitable[Any]] | None = None,
        on_failure: Callable[[Backend], Awaitable[Any]] | None = None,
    ) -> None:
        """Run a write on every live child and check the quorum (down children count as failed)."""
        self._require_open()
        done, failed = await self._everywhere(what, call, self._live)
        failed.extend((child, exc) for child, exc in self.down.items())
        self._judge(what, done, failed, missing_ok=missing_ok)
        lacking = [child for child, exc in failed if isinstance(exc, ObjectNotFound) and child not in self.down]
        if missing_ok and on_missing is not None and lacking:
            await self._everywhere(what, on_missing, lacking)
        really_failed = [child for child, exc in failed if not (missing_ok and isinstance(exc, ObjectNotFound))]
        self.stats["write_failures"] += len(really_failed)
        if on_failure is not None and really_failed:
            await self._everywhere("clean up", on_failure, [c for c in really_failed if c not in self.down])

    def _judge(
        self,
        what: str,
        done: Sequence[Backend],
        failed: Sequence[tuple[Backend, BaseException]],
        *,
        missing_ok: bool = False,
    ) -> None:
        """Raise unless the outcome meets the quorum; with ``missing_ok`` a child lacking the item counts
        as done, provided another child had it."""
        if not failed:
            return
        absent = [child for child, exc in failed if missing_ok and isinstance(exc, ObjectNotFound)]
        really_failed = [(child, exc) for child, exc in failed if child not in absent]
        if missing_ok and not done and absent and not really_failed:
            raise failed[0][1]  # no child had it
        if done and len(done) + len(absent) >= self.write_quorum:
            if really_failed:
                for child, exc in really_failed:
                    logger.warning("mirror: %s failed on %r (quorum met): %s", what, child, exc)
            return
        self._raise(what, done, really_failed or failed, same_kind_ok=not done)

    # reads -------------------------------------------------------------------------------------------

    def _ticket(self, names: Iterable[str]) -> dict[str, _RepairTicket]:
        """Tickets for a read that may lead to repairs (none when repair is off or there is one child)."""
        if not self.repair or len(self.children) < 2:
            return {}
        tickets = {}
        for name in set(names):
            ticket = _RepairTicket()
            self._tickets.setdefault(name, []).append(ticket)
            tickets[name] = ticket
        return tickets

    def _drop_ticket(self, name: str, ticket: _RepairTicket) -> None:
        waiting = self._tickets.get(name)
        if waiting is not None:
            with contextlib.suppress(ValueError):
                waiting.remove(ticket)
            if not waiting:
                del self._tickets[name]

    def _void(self, names: Iterable[str]) -> None:
        """A write to these names starts or ends: reads that began earlier must not repair them."""
        for name in names:
            for ticket in self._tickets.pop(name, ()):
                ticket.valid = False

    @contextlib.asynccontextmanager
    async def _writing(self, *names: str) -> AsyncIterator[None]:
        async with self._locks.hold(names):
            self._void(names)
            try:
                yield
            finally:
                self._void(names)

    def _schedule_repair(
        self, name: str, ticket: _RepairTicket | None, source: Backend, targets: Sequence[Backend], value: bytes | None
    ) -> None:
        """Copy ``name`` from ``source`` to ``targets`` in the background (``value``: the whole value, if read)."""
        if ticket is None:
            return
        if not ticket.valid or not targets or len(self._repairs) >= _MAX_PENDING_REPAIRS:
            self._drop_ticket(name, ticket)
            self.stats["repairs_skipped"] += 1
            return
        if value is not None:
            if self._repair_bytes + len(value) > _MAX_REPAIR_BYTES:
                value = None  # do not pin more memory: the repair streams the item from the source
            else:
                self._repair_bytes += len(value)
        task = asyncio.get_running_loop().create_task(
            self._repair(name, ticket, source, builtins.list(targets), value), name=f"mirror-repair {name}"
        )
        self._repairs.add(task)
        task.add_done_callback(self._repairs.discard)

    async def _repair(
        self, name: str, ticket: _RepairTicket, source: Backend, targets: builtins.list[Backend], value: bytes | None
    ) -> None:
        assert self._repair_limit is not None
        try:
            async with self._repair_limit, self._locks.hold([name]):
                if not ticket.valid:
                    self.stats["repairs_skipped"] += 1
                    return
                for target in targets:
                    try:
                        if value is not None:
                            await target.store(name, value)
                        else:
                            size = (await source.info(name)).size
                            await target.store_chunks(name, source.read_chunks(name), size=size)
                    except Exception as exc:  # a repair is best effort: count it, never raise it
                        self.stats["repair_failures"] += 1
                        logger.warning("mirror: repairing %r on %r failed: %s", name, target, exc)
                    else:
                        self.stats["repairs"] += 1
        finally:
            self._drop_ticket(name, ticket)
            if value is not None:
                self._repair_bytes -= len(value)

    async def _first(
        self,
        name: str,
        call: Callable[[Backend], Awaitable[T]],
        *,
        found: Callable[[T], bool] = lambda _: True,
        mode: ReadMode | None = None,
    ) -> tuple[T, Backend, builtins.list[Backend]]:
        """The first good answer for ``name``: (result, the child that gave it, children that lack it).

        Raises ``ObjectNotFound`` if no child has the item, or the first child's error if some failed
        and none had it.
        """
        self._require_open()
        lacking: builtins.list[Backend] = []
        errors: builtins.list[BaseException] = []
        missing: BaseException | None = None

        def judge(child: Backend, outcome: T | BaseException) -> bool:
            nonlocal missing
            if isinstance(outcome, _FATAL):
                raise outcome
            if isinstance(outcome, ObjectNotFound | IntegrityError) or (
                not isinstance(outcome, BaseException) and not found(outcome)
            ):
                lacking.append(child)
                if isinstance(outcome, IntegrityError):
                    errors.append(outcome)
                elif missing is None:
                    missing = outcome if isinstance(outcome, BaseException) else None
                return False
            if isinstance(outcome, BaseException):
                if not isinstance(outcome, StoreError):
                    raise outcome
                errors.append(outcome)
                return False
            return True

        live = self._live
        if (mode or self.read_mode) == "ordered" or len(live) == 1:
            for child in live:
                outcome: Any
                try:
                    outcome = await call(child)
                except Exception as exc:
                    outcome = exc
                if judge(child, outcome):
                    return outcome, child, lacking
        else:
            tasks = {asyncio.ensure_future(call(child)): child for child in live}
            try:
                pending = set(tasks)
                while pending:
                    finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    for task in sorted(finished, key=lambda t: live.index(tasks[t])):
                        error = task.exception()
                        outcome = error if error is not None else task.result()
                        if judge(tasks[task], outcome):
                            return outcome, tasks[task], lacking
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        if errors:
            raise errors[0]
        if missing is not None:
            raise missing
        raise ObjectNotFound(name)

    async def _read_value(self, name: str, call: Callable[[Backend], Awaitable[bytes]], *, whole: bool) -> bytes:
        tickets = self._ticket([name])
        ticket = tickets.get(name)
        try:
            value, source, lacking = await self._first(name, call)
        except BaseException:
            if ticket is not None:
                self._drop_ticket(name, ticket)
            raise
        if lacking:
            self._schedule_repair(name, ticket, source, lacking, value if whole else None)
        elif ticket is not None:
            self._drop_ticket(name, ticket)
        return value

    async def info(self, name: str) -> ItemInfo:
        """The info from the first child that has the item (``exists=False`` if none has)."""
        validate_backend_name(name, allow_root=True)
        try:
            info, _, _ = await self._first(name, lambda child: child.info(name), found=lambda i: i.exists)
        except ObjectNotFound:
            return ItemInfo.missing(_leaf(name))
        return info

    async def load(self, name: str, *, offset: int = 0, size: int | None = None) -> bytes:
        """Load from the first child that has the item; children that lack it get it repaired."""
        validate_backend_name(name)
        if size is not None and size < 0:
            raise ValueError(f"size must be >= 0 or None, got {size}")
        return await self._read_value(
            name, lambda child: child.load(name, offset=offset, size=size), whole=offset == 0 and size is None
        )

    async def hash(self, name: str, algorithm: str = "sha256") -> str:
        """The digest from the first child that has the item (children hash where they can)."""
        validate_backend_name(name)
        digest, _, _ = await self._first(name, lambda child: child.hash(name, algorithm))
        return digest

    async def read_into(self, name: str, fd: int, *, offset: int, size: int) -> None:
        """From the first child (in order) that has the item, with its own ``read_into``."""
        validate_backend_name(name)
        if self.read_mode == "fastest":
            await Backend.read_into(self, name, fd, offset=offset, size=size)
            return
        await self._first(name, lambda child: child.read_into(name, fd, offset=offset, size=size))

    async def read_chunks(
        self, name: str, *, offset: int = 0, size: int | None = None, chunk_size: int = 1024 * 1024
    ) -> AsyncIterator[bytes]:
        """The value in pieces from the first child (in order) that yields its first piece; streams are
        not raced. Children that lack the item get it repaired."""
        validate_backend_name(name)
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self._require_open()
        stream: AsyncIterator[bytes] | None = None

        async def start(child: Backend) -> builtins.list[bytes]:
            nonlocal stream
            candidate = child.read_chunks(name, offset=offset, size=size, chunk_size=chunk_size)
            try:
                first = await anext(candidate)
            except StopAsyncIteration:
                return []
            except BaseException:
                await _aclose(candidate)
                raise
            stream = candidate
            return [first]

        tickets = self._ticket([name])
        ticket = tickets.get(name)
        try:
            head, source, lacking = await self._first(name, start, mode="ordered")
        except BaseException:
            if ticket is not None:
                self._drop_ticket(name, ticket)
            raise
        if lacking:
            self._schedule_repair(name, ticket, source, lacking, None)
        elif ticket is not None:
            self._drop_ticket(name, ticket)
        for chunk in head:
            yield chunk
        if stream is not None:
            try:
                async for chunk in stream:
                    yield chunk
            finally:
                await _aclose(stream)

    async def gather(self, sources: Iterable[Source]) -> bytes:
        """The first child's ``gather``; if a child lacks one of the items, range by range over ``load``."""
        sources = builtins.list(sources)
        for name, _, _ in sources:
            validate_backend_name(name)
        self._require_open()
        try:
            data, _, _ = await self._first("gather", lambda child: child.gather(sources))
            return data
        except ObjectNotFound:
            return await Backend.gather(self, sources)

    async def defrag(
        self,
        sources: Iterable[Source],
        *,
        target: str | None = None,
        algorithm: str | None = None,
        namespace: str | None = None,
        levels: int = 0,
    ) -> str:
        """Gather from the mirror and store the result on all children."""
        return await Backend.defrag(
            self, sources, target=target, algorithm=algorithm, namespace=namespace, levels=levels
        )

    async def list(self, name: str) -> AsyncIterator[ItemInfo]:
        """The union of the children's listings, sorted, each name once (the first child's info wins).

        A child that lacks the directory adds nothing; if none has it, ``ObjectNotFound``. A child
        that fails is skipped while another one answers.
        """
        validate_backend_name(name, allow_root=True)
        self._require_open()
        live = self._live
        streams = [child.list(name) for child in live]
        heads: builtins.list[ItemInfo | None] = [None] * len(streams)
        active: builtins.list[int] = []
        try:
            firsts = await asyncio.gather(*(_next_or(stream) for stream in streams), return_exceptions=True)
            errors: builtins.list[BaseException] = []
            missing: BaseException | None = None
            for index, first in enumerate(firsts):
                if isinstance(first, ObjectNotFound):
                    missing = missing or first
                elif isinstance(first, _FATAL) or (
                    isinstance(first, BaseException) and not isinstance(first, StoreError)
                ):
                    raise first
                elif isinstance(first, BaseException):
                    errors.append(first)
                    logger.warning("mirror: listing %r on %r failed: %s", name, live[index], first)
                else:
                    active.append(index)
                    heads[index] = first
            if not active:
                raise errors[0] if errors else (missing or ObjectNotFound(name))
            while True:
                candidates = [heads[i] for i in active if heads[i] is not None]
                if not candidates:
                    return
                smallest = min(info.name for info in candidates if info is not None)
                chosen = next(heads[i] for i in active if heads[i] is not None and heads[i].name == smallest)  # type: ignore[union-attr]
                assert chosen is not None
                yield chosen
                advance = [i for i in active if heads[i] is not None and heads[i].name == smallest]  # type: ignore[union-attr]
                for i in advance:  # one after the other: listings are buffered, a task per step costs more
                    heads[i] = await _next_or(streams[i])
        finally:
            for stream in streams:
                with contextlib.suppress(Exception):
                    await _aclose(stream)

    async def load_batch(self, names: Sequence[str]) -> builtins.list[bytes | Exception]:
        """Each value from the first child that has it (children asked batch-wise); missing copies are
        repaired."""
        for name in names:
            validate_backend_name(name)
        tickets = self._ticket(names)
        try:
            results, sources, lacking = await self._resolve_batch(
                names, lambda child, subset: child.load_batch(subset), lambda value: True
            )
        except BaseException:
            for name, ticket in tickets.items():
                self._drop_ticket(name, ticket)
            raise
        seen: set[str] = set()
        for index, name in enumerate(names):
            held = tickets.get(name)
            if held is None or name in seen:
                continue
            seen.add(name)
            result, source = results[index], sources[index]
            if lacking[index] and source is not None and isinstance(result, bytes):
                self._schedule_repair(name, held, source, lacking[index], result)
            else:
                self._drop_ticket(name, held)
        return results

    async def info_batch(self, names: Sequence[str]) -> builtins.list[ItemInfo | Exception]:
        """Each info from the first child that has the item (children asked batch-wise)."""
        for name in names:
            validate_backend_name(name)
        results, _, _ = await self._resolve_batch(
            names, lambda child, subset: child.info_batch(subset), lambda info: info.exists
        )
        return [
            ItemInfo.missing(_leaf(name)) if isinstance(result, ObjectNotFound) else result
            for name, result in zip(names, results, strict=True)
        ]

    async def _resolve_batch(
        self,
        names: Sequence[str],
        call: Callable[[Backend, builtins.list[str]], Awaitable[builtins.list[T | Exception]]],
        found: Callable[[T], bool],
    ) -> tuple[builtins.list[T | Exception], builtins.list[Backend | None], builtins.list[builtins.list[Backend]]]:
        """Per item, the first child's good answer; ordered: children asked in turn for what is still
        open; fastest: all children at once, answers taken as they come."""
        self._require_open()
        count = len(names)
        results: builtins.list[T | Exception | None] = [None] * count
        sources: builtins.list[Backend | None] = [None] * count
        lacking: builtins.list[builtins.list[Backend]] = [[] for _ in range(count)]
        errors: builtins.list[Exception | None] = [None] * count
        open_items = set(range(count))

        def take(
            child: Backend, indexes: builtins.list[int], outcome: builtins.list[T | Exception] | BaseException
        ) -> None:
            for position, index in enumerate(indexes):
                if index not in open_items:
                    continue
                item = outcome if isinstance(outcome, BaseException) else outcome[position]
                if isinstance(item, _FATAL):
                    raise item
                if isinstance(item, BaseException):
                    if not isinstance(item, Exception):
                        raise item
                    if isinstance(item, ObjectNotFound | IntegrityError):
                        lacking[index].append(child)
                    if errors[index] is None or isinstance(errors[index], ObjectNotFound):
                        errors[index] = item
                elif not found(item):
                    lacking[index].append(child)
                    results[index] = item
                else:
                    results[index], sources[index] = item, child
                    open_items.discard(index)

        live = self._live
        if self.read_mode == "ordered" or len(live) == 1:
            for child in live:
                if not open_items:
                    break
                indexes = sorted(open_items)
                try:
                    outcome: builtins.list[T | Exception] | BaseException = await call(
                        child, [names[i] for i in indexes]
                    )
                except Exception as exc:
                    outcome = exc
                take(child, indexes, outcome)
        else:
            everything = builtins.list(range(count))
            tasks = {asyncio.ensure_future(call(child, builtins.list(names))): child for child in live}
            try:
                pending = set(tasks)
                while pending and open_items:
                    finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    for task in sorted(finished, key=lambda t: live.index(tasks[t])):
                        error = task.exception()
                        take(tasks[task], everything, error if error is not None else task.result())
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        final: builtins.list[T | Exception] = []
        for index in range(count):
            result = results[index]
            if index in open_items:
                error = errors[index]
                if result is not None and (error is None or isinstance(error, ObjectNotFound)):
                    final.append(result)  # a "not found" answer (info)
                else:
                    final.append(error if error is not None else ObjectNotFound(names[index]))
            else:
                assert result is not None
                final.append(result)
        return final, sources, lacking

    async def quota(self) -> dict[str, int]:
        """The tightest limit of the children that have one, and the largest usage (each holds a copy)."""
        self._require_open()
        quotas = await asyncio.gather(*(child.quota() for child in self._live))
        limits = [q["limit"] for q in quotas if q["limit"] >= 0]
        usages = [q["usage"] for q in quotas if q["usage"] >= 0]
        return {"limit": min(limits) if limits else -1, "usage": max(usages) if usages else -1}

    # writes ------------------------------------------------------------------------------------------

    async def mkdir(self, name: str) -> None:
        """On all children."""
        validate_backend_name(name)
        await self._write(f"mkdir {name!r}", lambda child: child.mkdir(name))

    async def rmdir(self, name: str) -> None:
        """On all children (those that lack the directory are fine, as long as one had it)."""
        validate_backend_name(name)
        await self._write(f"rmdir {name!r}", lambda child: child.rmdir(name), missing_ok=True)

    async def store(self, name: str, value: StoreValue) -> None:
        """On all children concurrently; a child that failed has its old copy deleted."""
        validate_backend_name(name)
        data = validate_value(value)
        async with self._writing(name):
            await self._write(
                f"store {name!r}",
                lambda child: child.store(name, data),
                on_failure=lambda child: _quietly(child.delete(name)),
            )

    async def delete(self, name: str) -> None:
        """On all children (those that lack the item are fine, as long as one had it)."""
        validate_backend_name(name)
        async with self._writing(name):
            await self._write(f"delete {name!r}", lambda child: child.delete(name), missing_ok=True)

    async def move(self, src: str, dst: str) -> None:
        """On all children; a child that lacks ``src`` has a stale ``dst`` removed."""
        validate_backend_name(src)
        validate_backend_name(dst)
        async with self._writing(src, dst):
            await self._write(
                f"move {src!r} to {dst!r}",
                lambda child: child.move(src, dst),
                missing_ok=True,
                on_missing=lambda child: _quietly(child.delete(dst)),
            )

    async def store_batch(self, items: Sequence[tuple[str, StoreValue]]) -> builtins.list[Exception | None]:
        """The children's batches run concurrently; each item succeeds if the quorum stored it."""
        checked = [(validate_backend_name(name), validate_value(value)) for name, value in items]
        names = [name for name, _ in checked]
        async with self._writing(*names):
            results, stale = await self._batch_write(names, lambda child: child.store_batch(checked), missing_ok=False)
            for index, failed_on in enumerate(stale):
                for child in failed_on:
                    await _quietly(child.delete(names[index]))
        return results

    async def delete_batch(self, names: Sequence[str]) -> builtins.list[Exception | None]:
        """The children's batches run concurrently; each item succeeds if the quorum deleted it (or
        lacked it, provided one had it)."""
        names = [validate_backend_name(name) for name in names]
        async with self._writing(*names):
            results, _ = await self._batch_write(names, lambda child: child.delete_batch(names), missing_ok=True)
            return results

    async def _batch_write(
        self,
        names: Sequence[str],
        call: Callable[[Backend], Awaitable[builtins.list[Exception | None]]],
        *,
        missing_ok: bool,
    ) -> tuple[builtins.list[Exception | None], builtins.list[builtins.list[Backend]]]:
        """Per item: None or its error, and the children that failed it although the quorum was met."""
        self._require_open()
        live = self._live
        outcomes = await asyncio.gather(*(call(child) for child in live), return_exceptions=True)
        results: builtins.list[Exception | None] = []
        stale: builtins.list[builtins.list[Backend]] = []
        for index, name in enumerate(names):
            done: builtins.list[Backend] = []
            failed: builtins.list[tuple[Backend, BaseException]] = builtins.list(self.down.items())
            for child, outcome in zip(live, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    if not isinstance(outcome, Exception):
                        raise outcome
                    failed.append((child, outcome))
                elif outcome[index] is None:
                    done.append(child)
                else:
                    failed.append((child, outcome[index]))  # type: ignore[arg-type]
            try:
                self._judge(f"{name!r}", done, failed, missing_ok=missing_ok)
            except StoreError as exc:
                results.append(exc)
            else:
                results.append(None)
            stale.append(
                [c for c, e in failed if c not in self.down and not isinstance(e, ObjectNotFound)] if done else []
            )
        self.stats["write_failures"] += sum(map(len, stale))
        return results, stale

    async def store_file(self, name: str, path: str, *, size: int) -> None:
        """Each child reads the file itself (with its own streaming or multipart upload)."""
        validate_backend_name(name)
        async with self._writing(name):
            await self._write(
                f"store {name!r}",
                lambda child: child.store_file(name, path, size=size),
                on_failure=lambda child: _quietly(child.delete(name)),
            )

    async def store_chunks(self, name: str, chunks: AsyncIterable[bytes], *, size: int | None = None) -> None:
        """The stream is copied to all children as it comes, with a small queue per child (memory stays
        bounded; the slowest child sets the pace). A failing source stores nothing anywhere."""
        validate_backend_name(name)
        self._require_open()
        live = self._live
        queues = [asyncio.Queue[bytes | BaseException | None](_TEE_DEPTH) for _ in live]
        gone = [False] * len(live)

        async def feed(index: int) -> AsyncIterator[bytes]:
            queue = queues[index]
            while True:
                item = await queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item

        async def child_store(index: int) -> None:
            try:
                await live[index].store_chunks(name, feed(index), size=size)
            finally:
                gone[index] = True
                while not queues[index].empty():  # unblock the feeder
                    queues[index].get_nowait()

        async def put(index: int, item: bytes | BaseException | None) -> None:
            # a child that stopped drains its queue once, which wakes a put blocked on it
            if not gone[index]:
                await queues[index].put(item)

        async with self._writing(name):
            writers = [asyncio.ensure_future(child_store(index)) for index in range(len(live))]
            try:
                try:
                    async for chunk in chunks:
                        data = bytes(chunk)
                        await asyncio.gather(*(put(i, data) for i in range(len(live))))
                except BaseException as exc:
                    failure = StoreError(f"store {name!r}: the source stream failed: {exc!r}")
                    await asyncio.gather(*(put(i, failure) for i in range(len(live))))
                    await asyncio.gather(*writers, return_exceptions=True)
                    raise
                await asyncio.gather(*(put(i, None) for i in range(len(live))))
                outcomes = await asyncio.gather(*writers, return_exceptions=True)
            finally:
                for writer in writers:
                    writer.cancel()
                await asyncio.gather(*writers, return_exceptions=True)
            done = [
                child for child, outcome in zip(live, outcomes, strict=True) if not isinstance(outcome, BaseException)
            ]
            failed = [
                (child, outcome)
                for child, outcome in zip(live, outcomes, strict=True)
                if isinstance(outcome, BaseException)
            ]
            for outcome in outcomes:
                if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
                    raise outcome
            failed.extend(self.down.items())
            self._judge(f"store {name!r}", done, failed)
            if failed:
                self.stats["write_failures"] += len(failed)
                for child, _ in failed:
                    if child not in self.down:
                        await _quietly(child.delete(name))


async def _next_or(stream: AsyncIterator[T]) -> T | None:
    try:
        return await anext(stream)
    except StopAsyncIteration:
        return None


async def _aclose(stream: AsyncIterator[Any]) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()


async def _quietly(call: Awaitable[Any]) -> None:
    """Best-effort cleanup: errors (a missing item, a child that is down) are ignored."""
    with contextlib.suppress(Exception):
        await call
