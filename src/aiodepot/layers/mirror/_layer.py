"""The [`Mirror`][aiodepot.layers.mirror.Mirror] class: lifecycle, the contract's hooks and the batch forms,
built on the write fan-out (`_writes`), the reads (`_reads`) and read repair (`_repair`)."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Self

from ...backends.base import Backend, Capabilities
from ...errors import BackendURLInvalid, ObjectNotFound, StoreError, StoreNotFound
from ...items import ItemInfo, Source, StoreValue, validate_value
from ...names import validate_backend_name
from ..base import Wrapper
from ._reads import ReadMode, aclose, first_answer, merged_listing, resolve_batch
from ._repair import Repairs
from ._writes import NameLocks, everywhere, judge, quietly, raise_failure, tee_chunks

__all__ = ["Mirror"]

logger = logging.getLogger("aiodepot.layers.mirror")


def _combine(children: Sequence[Capabilities]) -> Capabilities:
    """What the mirror can promise: what every child can do (and the smallest batch and part sizes)."""
    return Capabilities(
        ranged_reads=all(c.ranged_reads for c in children),
        server_side_hash=all(c.server_side_hash for c in children),
        server_side_copy=all(c.server_side_copy for c in children),
        server_side_gather=all(c.server_side_gather for c in children),
        multipart=all(c.multipart for c in children),
        atomic_store=all(c.atomic_store for c in children),
        atomic_create=False,  # no single decision across children: see the Mirror docs
        batch_ops=all(c.batch_ops for c in children),
        batch_size=min(c.batch_size for c in children),
        parallel_ranges=any(c.parallel_ranges for c in children),
        preferred_concurrency=min(c.preferred_concurrency for c in children),
        part_size=min(c.part_size for c in children),
    )


def _leaf(name: str) -> str:
    return name.rpartition("/")[2]


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

    ``store(name, value, if_absent=True)`` raises [`NotSupported`][aiodepot.errors.NotSupported]: each child
    would decide on its own, so two processes racing on one name could each win on a different child and
    leave the copies disagreeing. ``url_for`` raises ``NotSupported`` too (a URL reaches one child only, and
    a ``PUT`` through it would bypass the mirror).

    ``open`` opens all children concurrently. A child that fails to open is left out ("down", listed in
    ``down``) if the others still reach the write quorum; otherwise the open ones are closed again and
    the error is raised. ``create`` and ``destroy`` need every child (``destroy`` skips children whose
    storage is missing, as long as one existed).

    Repairs run in the background, at most four at a time; ``flush_repairs()`` waits for them and
    ``close()`` does too. A repair is skipped when the name was written meanwhile, so it never puts
    back an outdated value. Counters are in ``stats``.

    The single-item methods are the [`Backend`][aiodepot.backends.base.Backend] template's (open state
    and names checked once, then the mirror's hooks). The batch methods are the mirror's own: they
    validate every name first and raise on a bad one, as they always did, where the template would
    return it as that item's result.
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
        self._locks = NameLocks()
        self._repairs = Repairs(self._locks, self.stats, enabled=repair and len(children) > 1)
        object.__setattr__(self, "capabilities", _combine([child.capabilities for child in children]))

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """A mirror is not opened from a URL: give it its children."""
        raise BackendURLInvalid(f"{cls.__name__} is a layer: give it child backends instead of opening {url!r}")

    def __repr__(self) -> str:
        state = "open" if self.opened else "closed"
        return f"<Mirror {state} quorum={self.write_quorum}/{len(self.children)} over {builtins.list(self.children)!r}>"

    @property
    def location(self) -> str:
        """The children's locations: ``mirror of (file:///a, sftp://host/b)``."""
        return f"mirror of ({', '.join(child.location for child in self.children)})"

    @property
    def _live(self) -> builtins.list[Backend]:
        return [child for child in self.children if child not in self.down]

    @property
    def _ordered(self) -> bool:
        return self.read_mode == "ordered"

    # lifecycle -------------------------------------------------------------------------------------------

    def _raise(
        self, what: str, done: Sequence[Backend], failed: Sequence[tuple[Backend, BaseException]], *, same_kind_ok: bool
    ) -> None:
        raise_failure(
            what, done, failed, children=len(self.children), quorum=self.write_quorum, same_kind_ok=same_kind_ok
        )

    async def _create(self) -> None:
        """Create the storage of every child; all must succeed."""
        done, failed = await everywhere(lambda child: child.create(), self.children)
        if failed:
            self._raise("create", done, failed, same_kind_ok=not done)

    async def _destroy(self) -> None:
        """Destroy the storage of every child (children whose storage is missing are skipped)."""
        done, failed = await everywhere(lambda child: child.destroy(), self.children)
        others = [(child, exc) for child, exc in failed if not isinstance(exc, StoreNotFound)]
        if others:
            self._raise("destroy", done, others, same_kind_ok=not done)
        if not done:
            raise failed[0][1]  # no child had a storage to destroy

    async def _open(self) -> None:
        """Open every child; a child that fails is left out if the others reach the write quorum."""
        done, failed = await everywhere(lambda child: child.open(), self.children)
        if len(done) < self.write_quorum:
            await everywhere(lambda child: child.close(), done)
            self._raise("open", done, failed, same_kind_ok=not done)
        self.down = dict(failed)
        self._repairs.start()
        for child, exc in failed:
            logger.warning("mirror: child %r is down, left out: %s", child, exc)

    async def close(self) -> None:
        """Wait for pending repairs, then close the open children."""
        if not self.opened:  # closing twice, or a layer never opened: nothing to do
            return
        await self.flush_repairs()  # while still open
        await super().close()

    async def _close(self) -> None:
        live = self._live
        self.down = {}
        done, failed = await everywhere(lambda child: child.close(), live)
        if failed:
            self._raise("close", done, failed, same_kind_ok=True)

    async def flush_repairs(self) -> None:
        """Wait until the repairs scheduled so far have finished (their failures are counted, not raised)."""
        await self._repairs.flush()

    # writes: the quorum --------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _writing(self, *names: str) -> AsyncIterator[None]:
        async with self._locks.hold(names):
            self._repairs.void(names)
            try:
                yield
            finally:
                self._repairs.void(names)

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
        done, failed = await everywhere(call, self._live)
        failed.extend((child, exc) for child, exc in self.down.items())
        self._judge(what, done, failed, missing_ok=missing_ok)
        lacking = [child for child, exc in failed if isinstance(exc, ObjectNotFound) and child not in self.down]
        if missing_ok and on_missing is not None and lacking:
            await everywhere(on_missing, lacking)
        really_failed = [child for child, exc in failed if not (missing_ok and isinstance(exc, ObjectNotFound))]
        self.stats["write_failures"] += len(really_failed)
        if on_failure is not None and really_failed:
            await everywhere(on_failure, [c for c in really_failed if c not in self.down])

    def _judge(
        self,
        what: str,
        done: Sequence[Backend],
        failed: Sequence[tuple[Backend, BaseException]],
        *,
        missing_ok: bool = False,
    ) -> None:
        judge(what, done, failed, children=len(self.children), quorum=self.write_quorum, missing_ok=missing_ok)

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

    # writes: the hooks and batches ---------------------------------------------------------------------

    async def _mkdir(self, name: str) -> None:
        """On all children."""
        await self._write(f"mkdir {name!r}", lambda child: child.mkdir(name))

    async def _rmdir(self, name: str) -> None:
        """On all children (those that lack the directory are fine, as long as one had it)."""
        await self._write(f"rmdir {name!r}", lambda child: child.rmdir(name), missing_ok=True)

    async def _store(self, name: str, value: bytes | memoryview, *, replace: bool) -> None:
        """On all children concurrently; a child that failed has its old copy deleted."""
        async with self._writing(name):
            await self._write(
                f"store {name!r}",
                lambda child: child.store(name, value),
                on_failure=lambda child: quietly(child.delete(name)),
            )

    async def _delete(self, name: str) -> None:
        """On all children (those that lack the item are fine, as long as one had it)."""
        async with self._writing(name):
            await self._write(f"delete {name!r}", lambda child: child.delete(name), missing_ok=True)

    async def _move(self, src: str, dst: str, *, replace: bool) -> None:
        """On all children; a child that lacks ``src`` has a stale ``dst`` removed."""
        async with self._writing(src, dst):
            await self._write(
                f"move {src!r} to {dst!r}",
                lambda child: child.move(src, dst),
                missing_ok=True,
                on_missing=lambda child: quietly(child.delete(dst)),
            )

    async def _store_file(self, name: str, path: str, size: int, *, replace: bool) -> None:
        """Each child reads the file itself (with its own streaming or multipart upload)."""
        async with self._writing(name):
            await self._write(
                f"store {name!r}",
                lambda child: child.store_file(name, path, size=size),
                on_failure=lambda child: quietly(child.delete(name)),
            )

    async def _store_chunks(self, name: str, chunks: AsyncIterable[bytes], size: int | None, *, replace: bool) -> None:
        """The stream is copied to all children as it comes, with a small queue per child (memory stays
        bounded; the slowest child sets the pace). A failing source stores nothing anywhere."""
        live = self._live
        async with self._writing(name):
            outcomes = await tee_chunks(live, name, chunks, size)
            for outcome in outcomes:
                if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
                    raise outcome
            done = [
                child for child, outcome in zip(live, outcomes, strict=True) if not isinstance(outcome, BaseException)
            ]
            failed: builtins.list[tuple[Backend, BaseException]] = [
                (child, outcome)
                for child, outcome in zip(live, outcomes, strict=True)
                if isinstance(outcome, BaseException)
            ]
            failed.extend(self.down.items())
            self._judge(f"store {name!r}", done, failed)
            if failed:
                self.stats["write_failures"] += len(failed)
                for child, _ in failed:
                    if child not in self.down:
                        await quietly(child.delete(name))

    async def store_batch(self, items: Sequence[tuple[str, StoreValue]]) -> builtins.list[Exception | None]:
        """The children's batches run concurrently; each item succeeds if the quorum stored it."""
        checked = [(validate_backend_name(name), validate_value(value)) for name, value in items]
        names = [name for name, _ in checked]
        async with self._writing(*names):
            results, stale = await self._batch_write(names, lambda child: child.store_batch(checked), missing_ok=False)
            for index, failed_on in enumerate(stale):
                for child in failed_on:
                    await quietly(child.delete(names[index]))
        return results

    async def delete_batch(self, names: Sequence[str]) -> builtins.list[Exception | None]:
        """The children's batches run concurrently; each item succeeds if the quorum deleted it (or
        lacked it, provided one had it)."""
        names = [validate_backend_name(name) for name in names]
        async with self._writing(*names):
            results, _ = await self._batch_write(names, lambda child: child.delete_batch(names), missing_ok=True)
            return results

    # reads -------------------------------------------------------------------------------------------

    async def _read_value(self, name: str, call: Callable[[Backend], Awaitable[bytes]], *, whole: bool) -> bytes:
        ticket = self._repairs.ticket([name]).get(name)
        try:
            value, source, lacking = await first_answer(name, self._live, call, ordered=self._ordered)
        except BaseException:
            if ticket is not None:
                self._repairs.drop(name, ticket)
            raise
        self._repairs.settle(name, ticket, source, lacking, value if whole else None)
        return value

    async def _info(self, name: str) -> ItemInfo:
        """The info from the first child that has the item (``exists=False`` if none has)."""
        try:
            info, _, _ = await first_answer(
                name, self._live, lambda child: child.info(name), found=lambda i: i.exists, ordered=self._ordered
            )
        except ObjectNotFound:
            return ItemInfo.missing(_leaf(name))
        return info

    async def _load(self, name: str, offset: int, size: int | None) -> bytes:
        """Load from the first child that has the item; children that lack it get it repaired."""
        return await self._read_value(
            name, lambda child: child.load(name, offset=offset, size=size), whole=offset == 0 and size is None
        )

    async def _hash(self, name: str, algorithm: str) -> str:
        """The digest from the first child that has the item (children hash where they can)."""
        digest, _, _ = await first_answer(
            name, self._live, lambda child: child.hash(name, algorithm), ordered=self._ordered
        )
        return digest

    async def _read_into(self, name: str, fd: int, offset: int, size: int) -> None:
        """From the first child (in order) that has the item, with its own ``read_into``; raced (fastest)
        as ranged loads."""
        if not self._ordered:
            await Backend._read_into(self, name, fd, offset, size)
            return
        await first_answer(
            name, self._live, lambda child: child.read_into(name, fd, offset=offset, size=size), ordered=True
        )

    async def _read_chunks(self, name: str, offset: int, size: int | None, chunk_size: int) -> AsyncIterator[bytes]:
        """The value in pieces from the first child (in order) that yields its first piece; streams are
        not raced. Children that lack the item get it repaired."""
        stream: AsyncIterator[bytes] | None = None

        async def start(child: Backend) -> builtins.list[bytes]:
            nonlocal stream
            candidate = child.read_chunks(name, offset=offset, size=size, chunk_size=chunk_size)
            try:
                first = await anext(candidate)
            except StopAsyncIteration:
                return []
            except BaseException:
                await aclose(candidate)
                raise
            stream = candidate
            return [first]

        ticket = self._repairs.ticket([name]).get(name)
        try:
            head, source, lacking = await first_answer(name, self._live, start, ordered=True)
        except BaseException:
            if ticket is not None:
                self._repairs.drop(name, ticket)
            raise
        self._repairs.settle(name, ticket, source, lacking, None)
        for chunk in head:
            yield chunk
        if stream is not None:
            try:
                async for chunk in stream:
                    yield chunk
            finally:
                await aclose(stream)

    async def _gather(self, sources: builtins.list[Source]) -> bytes:
        """The first child's ``gather``; if a child lacks one of the items, range by range over ``load``."""
        try:
            data, _, _ = await first_answer(
                "gather", self._live, lambda child: child.gather(sources), ordered=self._ordered
            )
            return data
        except ObjectNotFound:
            return await Backend._gather(self, sources)

    def _list(self, name: str) -> AsyncIterator[ItemInfo]:
        """The union of the children's listings, sorted, each name once (the first child's info wins).

        A child that lacks the directory adds nothing; if none has it, ``ObjectNotFound``. A child
        that fails is skipped while another one answers.
        """
        return merged_listing(name, self._live)

    async def _quota_usage(self) -> dict[str, int]:
        """The tightest limit of the children that have one, and the largest usage (each holds a copy)."""
        self._require_open()  # the children's quotas need them open (the template does not check)
        quotas = await asyncio.gather(*(child.quota() for child in self._live))
        limits = [q["limit"] for q in quotas if q["limit"] >= 0]
        usages = [q["usage"] for q in quotas if q["usage"] >= 0]
        return {"limit": min(limits) if limits else -1, "usage": max(usages) if usages else -1}

    async def load_batch(self, names: Sequence[str]) -> builtins.list[bytes | Exception]:
        """Each value from the first child that has it (children asked batch-wise); missing copies are
        repaired."""
        for name in names:
            validate_backend_name(name)
        self._require_open()
        tickets = self._repairs.ticket(names)
        try:
            results, sources, lacking = await resolve_batch(
                names,
                self._live,
                lambda child, subset: child.load_batch(subset),
                lambda value: True,
                ordered=self._ordered,
            )
        except BaseException:
            for name, ticket in tickets.items():
                self._repairs.drop(name, ticket)
            raise
        seen: set[str] = set()
        for index, name in enumerate(names):
            held = tickets.get(name)
            if held is None or name in seen:
                continue
            seen.add(name)
            result, source = results[index], sources[index]
            if lacking[index] and source is not None and isinstance(result, bytes):
                self._repairs.schedule(name, held, source, lacking[index], result)
            else:
                self._repairs.drop(name, held)
        return results

    async def info_batch(self, names: Sequence[str]) -> builtins.list[ItemInfo | Exception]:
        """Each info from the first child that has the item (children asked batch-wise)."""
        for name in names:
            validate_backend_name(name)
        self._require_open()
        results, _, _ = await resolve_batch(
            names,
            self._live,
            lambda child, subset: child.info_batch(subset),
            lambda info: info.exists,
            ordered=self._ordered,
        )
        return [
            ItemInfo.missing(_leaf(name)) if isinstance(result, ObjectNotFound) else result
            for name, result in zip(names, results, strict=True)
        ]
