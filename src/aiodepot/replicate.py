"""Copy and sync between two stores: [`copy_store`][aiodepot.replicate.copy_store] and
[`sync_stores`][aiodepot.replicate.sync_stores].

```python
async with aiodepot.Store("file:///srv/depot") as src, aiodepot.Store("sftp://backup/depot") as dst:
    report = await aiodepot.sync_stores(src, dst, ["data", "config"], delete=True)
    print(report.copied, report.bytes, report.deleted)
```

Both work in two steps, which are public too: a plan ([`plan_copy`][aiodepot.replicate.plan_copy],
[`plan_sync`][aiodepot.replicate.plan_sync]) walks the source (and the destination where needed) in sorted
order with full item names, then [`apply_plan`][aiodepot.replicate.apply_plan] moves the data. The two
stores may use different backends and different nesting levels: items keep their names, each store puts
them where its own configuration says.

Small values travel in batches: ``load_many`` of one batch runs while ``store_many`` writes the previous
one, and at most two batches are held at once, each at most half of ``max_bytes_in_flight``. A value
bigger than that goes alone through a temporary file (``load_file`` in parallel ranges, then
``store_file``, which streams), so memory stays bounded whatever the sizes. Deletions (``sync_stores``
with ``delete=True``) come after all copies: a sync that fails halfway has removed nothing.

Soft-deleted items are left alone unless ``include_deleted=True``: then they are copied (and synced,
and deleted) as soft-deleted items, written straight to their ``.del`` name at the destination, never
passing through a live state there.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Coroutine, Iterable, Sequence
from typing import Any

from .errors import BackendError, ObjectNotFound, StoreNotOpen
from .names import ROOTNS
from .store import Store
from .transfer import Progress, ProgressCallback, ProgressTracker, run_bounded
from .walk import Entry, top_namespaces, walk

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MAX_BYTES_IN_FLIGHT",
    "ItemError",
    "Plan",
    "Report",
    "apply_plan",
    "copy_store",
    "plan_copy",
    "plan_sync",
    "sync_stores",
]

MiB = 1024 * 1024
DEFAULT_MAX_BYTES_IN_FLIGHT = 64 * MiB
"""Values held in memory at once by a copy; a value bigger than half of it goes through a temporary file."""
DEFAULT_BATCH_SIZE = 1024
"""Items per ``load_many``/``store_many`` batch."""
CHECKSUM_ALGORITHM = "sha256"
"""What ``checksum=True`` compares (computed where the data is, on backends with a server-side hash)."""


@dataclasses.dataclass(frozen=True, slots=True)
class ItemError:
    """An item that could not be copied or deleted, and why."""

    name: str
    """The item's full name."""
    error: Exception
    """What went wrong (usually a [`StoreError`][aiodepot.errors.StoreError])."""
    action: str
    """``"copy"`` or ``"delete"``."""
    deleted: bool = False
    """The item is a soft-deleted one."""


@dataclasses.dataclass(slots=True)
class Plan:
    """What a copy or sync will do: made by [`plan_copy`][aiodepot.replicate.plan_copy] or
    [`plan_sync`][aiodepot.replicate.plan_sync], carried out by [`apply_plan`][aiodepot.replicate.apply_plan].
    """

    copy: list[Entry] = dataclasses.field(default_factory=list)
    """Items to copy, sorted by name (``entry.deleted`` marks soft-deleted ones)."""
    delete: list[Entry] = dataclasses.field(default_factory=list)
    """Items to remove from the destination, sorted by name."""
    skipped: int = 0
    """Items left as they are: unchanged (sync) or already at the destination (copy without overwrite)."""
    strays: list[str] = dataclasses.field(default_factory=list)
    """Backend names of files the walk passed over: they lie at a nesting depth their namespace is not
    configured for, so the store cannot address them by name (give the store the right ``config``)."""

    @property
    def copy_bytes(self) -> int:
        """The bytes to copy, as listed."""
        return sum(entry.size for entry in self.copy)


@dataclasses.dataclass(slots=True)
class Report:
    """What a copy or sync did (or, in a dry run, would do)."""

    plan: Plan
    """The plan that was carried out; its lists name every item concerned."""
    copied: int = 0
    """Items copied."""
    bytes: int = 0
    """Bytes copied."""
    deleted: int = 0
    """Items deleted at the destination."""
    errors: list[ItemError] = dataclasses.field(default_factory=list)
    """Items that failed (only with ``collect_errors=True``; otherwise the first failure is raised)."""
    dry_run: bool = False
    """Nothing was changed: the counts say what would have been done."""
    seconds: float = 0.0
    """Wall-clock time taken."""

    @classmethod
    def dry(cls, plan: Plan, seconds: float = 0.0) -> Report:
        """The report of a dry run: what carrying out ``plan`` would do."""
        return cls(plan, len(plan.copy), plan.copy_bytes, len(plan.delete), dry_run=True, seconds=seconds)

    @property
    def skipped(self) -> int:
        """Items left alone (see [`Plan.skipped`][aiodepot.replicate.Plan.skipped])."""
        return self.plan.skipped

    @property
    def ok(self) -> bool:
        """True if no item failed."""
        return not self.errors


# planning ---------------------------------------------------------------------------------------------------


def _check_stores(src: Store, dst: Store | None) -> None:
    if dst is not None and (src is dst or src.backend is dst.backend):
        raise ValueError("source and destination are the same store")
    for side, store in (("source", src), ("destination", dst)):
        if store is not None and not store.opened:
            raise StoreNotOpen(f"the {side} store is not open: call open() or use 'async with store'")


def _namespaces(namespaces: str | Iterable[str] | None) -> list[str]:
    if namespaces is None:
        return [ROOTNS]
    return top_namespaces([namespaces] if isinstance(namespaces, str) else namespaces)


async def _entries(
    store: Store | None, namespace: str, strays: list[str], *, deleted: bool, required: bool
) -> AsyncIterator[Entry]:
    """The items of ``namespace`` (with its sub-namespaces), or the single item of that name.

    A namespace that neither exists nor names an item is empty, or with ``required`` raises ObjectNotFound.
    """
    if store is None:
        return
    listing = walk(store, namespace, deleted=deleted, strays=strays)
    try:
        first = await anext(listing, None)
    except ObjectNotFound:
        pass  # not a namespace: perhaps an item
    else:
        if first is not None and not first.is_namespace:
            yield first
        async for entry in listing:
            if not entry.is_namespace:
                yield entry
        return
    item = await store.info(namespace, deleted=deleted) if namespace else None
    if item is not None and item.exists and not item.directory:
        yield Entry(namespace, item.size, item.mtime, deleted)
    elif required:
        raise ObjectNotFound(f"{namespace}: no such namespace at the source")


async def _sorted(entries: AsyncIterator[Entry], side: str) -> AsyncIterator[Entry]:
    """Pass entries on, making sure they come sorted: the merge relies on it."""
    previous = ""
    async for entry in entries:
        if entry.name <= previous:
            raise BackendError(f"the {side} listing is out of order at {entry.name!r}; refusing to go on")
        previous = entry.name
        yield entry


async def _pairs(
    src: Store, dst: Store | None, namespace: str, strays: list[str], *, deleted: bool
) -> AsyncIterator[tuple[Entry | None, Entry | None]]:
    """Merge the sorted walks of both sides: ``(source entry, destination entry)``, either may be None."""
    source = _sorted(_entries(src, namespace, strays, deleted=deleted, required=not deleted), "source")
    target = _sorted(_entries(dst, namespace, [], deleted=deleted, required=False), "destination")
    here = await anext(source, None)
    there = await anext(target, None)
    while here is not None or there is not None:
        if there is None or (here is not None and here.name < there.name):
            yield here, None
            here = await anext(source, None)
        elif here is None or there.name < here.name:
            yield None, there
            there = await anext(target, None)
        else:
            yield here, there
            here, there = await anext(source, None), await anext(target, None)


def _kinds(include_deleted: bool) -> tuple[bool, ...]:
    return (False, True) if include_deleted else (False,)


def _order(plan: Plan) -> Plan:
    plan.copy.sort(key=lambda entry: (entry.name, entry.deleted))
    plan.delete.sort(key=lambda entry: (entry.name, entry.deleted))
    return plan


async def plan_copy(
    src: Store,
    dst: Store | None,
    namespaces: str | Iterable[str] | None = None,
    *,
    overwrite: bool = True,
    include_deleted: bool = False,
) -> Plan:
    """Plan copying the ``namespaces`` (default: the whole store) from ``src`` to ``dst``.

    Args:
        src: the open source store.
        dst: the open destination store; None stands for an empty one (one that does not exist yet).
        namespaces: namespaces to copy, with their sub-namespaces; a name may also name a single item.
        overwrite: copy items the destination already has (False: leave them, and count them skipped).
        include_deleted: copy soft-deleted items too, as soft-deleted items.

    Raises:
        ObjectNotFound: a namespace is neither a namespace nor an item at the source.
    """
    _check_stores(src, dst)
    plan = Plan()
    for namespace in _namespaces(namespaces):
        for deleted in _kinds(include_deleted):
            if overwrite or dst is None:
                required = not deleted
                plan.copy.extend(
                    [entry async for entry in _entries(src, namespace, plan.strays, deleted=deleted, required=required)]
                )
                continue
            async for here, there in _pairs(src, dst, namespace, plan.strays, deleted=deleted):
                if here is None:
                    continue
                if there is None:
                    plan.copy.append(here)
                else:
                    plan.skipped += 1
    return _order(plan)


async def plan_sync(
    src: Store,
    dst: Store | None,
    namespaces: str | Iterable[str] | None = None,
    *,
    delete: bool = False,
    checksum: bool = False,
    include_deleted: bool = False,
    max_concurrency: int | None = None,
) -> Plan:
    """Plan making the ``namespaces`` (default: the whole store) of ``dst`` like those of ``src``.

    An item is copied if the destination lacks it or holds it with another size, or, with ``checksum``,
    with another sha256 digest (each side computes it where the data is, on backends with a server-side
    hash; otherwise the value is streamed through the hash, never held whole).

    Args:
        src: the open source store.
        dst: the open destination store; None stands for an empty one (one that does not exist yet).
        namespaces: namespaces to sync, with their sub-namespaces; a name may also name a single item.
        delete: also plan to remove the destination's items the source does not have.
        checksum: compare items of equal size by content, not by size alone.
        include_deleted: treat soft-deleted items the same way, as a set of their own.
        max_concurrency: hashes in flight with ``checksum`` (default: the smaller of the stores' own).

    Raises:
        ObjectNotFound: a namespace is neither a namespace nor an item at the source.
    """
    _check_stores(src, dst)
    plan = Plan()
    same_size: list[Entry] = []
    for namespace in _namespaces(namespaces):
        for deleted in _kinds(include_deleted):
            async for here, there in _pairs(src, dst, namespace, plan.strays, deleted=deleted):
                if here is None:
                    assert there is not None
                    if delete:
                        plan.delete.append(there)
                elif there is None or here.size != there.size:
                    plan.copy.append(here)
                elif checksum:
                    same_size.append(here)
                else:
                    plan.skipped += 1
    if same_size:
        assert dst is not None

        async def differs(entry: Entry) -> bool:
            ours, theirs = await asyncio.gather(
                src.hash(entry.name, CHECKSUM_ALGORITHM, deleted=entry.deleted),
                dst.hash(entry.name, CHECKSUM_ALGORITHM, deleted=entry.deleted),
            )
            return ours != theirs

        limit = max_concurrency or min(src.max_concurrency, dst.max_concurrency)
        for entry, changed in zip(same_size, await run_bounded(same_size, differs, max_concurrency=limit), strict=True):
            if changed:
                plan.copy.append(entry)
            else:
                plan.skipped += 1
    return _order(plan)


# carrying out -----------------------------------------------------------------------------------------------


def _batches(entries: Sequence[Entry], max_items: int, max_bytes: int) -> list[list[Entry]]:
    """Consecutive groups of at most ``max_items`` items and ``max_bytes`` bytes, one kind (live/deleted) each."""
    batches: list[list[Entry]] = []
    current: list[Entry] = []
    held = 0
    for entry in entries:
        if current and (
            len(current) >= max_items or held + entry.size > max_bytes or entry.deleted != current[0].deleted
        ):
            batches.append(current)
            current, held = [], 0
        current.append(entry)
        held += entry.size
    if current:
        batches.append(current)
    return batches


async def _together(*coroutines: Coroutine[Any, Any, None]) -> None:
    """Run coroutines as sibling tasks; the first failure cancels the others and is raised as itself."""
    try:
        async with asyncio.TaskGroup() as group:
            for coroutine in coroutines:
                group.create_task(coroutine)
    except BaseExceptionGroup as failures:
        raise failures.exceptions[0] from None


def _forward(tracker: ProgressTracker) -> ProgressCallback:
    """A progress callback for one bulk call that adds its items and bytes to ``tracker``."""
    items_seen = 0
    bytes_seen = 0

    async def update(state: Progress) -> None:
        nonlocal items_seen, bytes_seen
        items, nbytes = state.items_done - items_seen, state.bytes_done - bytes_seen
        items_seen, bytes_seen = state.items_done, state.bytes_done
        if items > 0:
            tracker.items_done += items - 1  # step() counts the last one and reports
            await tracker.step(nbytes)

    return update


class _Copier:
    """Carries out one plan; counts into a report."""

    def __init__(
        self,
        src: Store,
        dst: Store,
        report: Report,
        tracker: ProgressTracker,
        *,
        max_concurrency: int | None,
        collect_errors: bool,
    ) -> None:
        self.src = src
        self.dst = dst
        self.report = report
        self.tracker = tracker
        self.max_concurrency = max_concurrency
        self.collect_errors = collect_errors

    def failed(self, entry: Entry, error: Exception, action: str) -> None:
        if not self.collect_errors:
            raise error
        self.report.errors.append(ItemError(entry.name, error, action, entry.deleted))

    async def store_deleted(self, name: str, value: bytes) -> None:
        """Write a soft-deleted item straight to its ``.del`` name (it never shows up live)."""
        nested = await self.dst.find(name, deleted=True)
        await self.dst.backend.store(nested, value)

    async def small(self, entries: Sequence[Entry], batch_size: int, batch_bytes: int) -> None:
        """Copy values in batches: one batch loads while the previous one is stored, two at most held.

        A slot stands for one batch's values in memory, so no reference to a batch outlives its slot. The
        storer drops its batch before it frees the slot: else, done with batch k-1 and waiting for batch k,
        it still holds k-1 while the loader puts k, takes the freed slot and reads k+1 before the storer
        wakes (three batches held). The loader hands its values to the queue without keeping a name for
        them, so it does not hold the last batch while it waits for a slot or reads the next one.
        """
        slots = asyncio.Semaphore(2)
        queue: asyncio.Queue[tuple[list[Entry], list[bytes | Exception]] | None] = asyncio.Queue()

        async def load() -> None:
            for batch in _batches(entries, batch_size, batch_bytes):
                await slots.acquire()
                names = [entry.name for entry in batch]
                await queue.put(
                    (
                        batch,
                        await self.src.load_many(
                            names,
                            max_concurrency=self.max_concurrency,
                            return_exceptions=True,  # a failed item is raised or collected in store_batch
                            deleted=batch[0].deleted,
                        ),
                    )
                )
            await queue.put(None)

        async def store() -> None:
            while True:
                job = await queue.get()
                if job is None:
                    return
                try:
                    await self.store_batch(*job)
                finally:
                    del job  # before the slot frees: the loader fills it with the next batch
                    slots.release()

        await _together(load(), store())

    async def store_batch(self, batch: list[Entry], values: list[bytes | Exception]) -> None:
        pairs: list[tuple[Entry, bytes]] = []
        for entry, value in zip(batch, values, strict=True):
            if isinstance(value, Exception):
                self.failed(entry, value, "copy")
                await self.tracker.step(0)
            else:
                pairs.append((entry, value))
        if not pairs:
            return
        if pairs[0][0].deleted:

            async def one(pair: tuple[Entry, bytes]) -> None:
                await self.store_deleted(pair[0].name, pair[1])

            outcomes = await run_bounded(
                pairs,
                one,
                max_concurrency=self.max_concurrency or self.dst.max_concurrency,
                return_exceptions=self.collect_errors,
                progress=_forward(self.tracker),
                bytes_of=lambda pair, _: len(pair[1]),
            )
        else:
            outcomes = await self.dst.store_many(
                [(entry.name, value) for entry, value in pairs],
                max_concurrency=self.max_concurrency,
                return_exceptions=self.collect_errors,
                progress=_forward(self.tracker),
            )
        for (entry, value), outcome in zip(pairs, outcomes, strict=True):
            if isinstance(outcome, Exception):
                self.failed(entry, outcome, "copy")
            else:
                self.report.copied += 1
                self.report.bytes += len(value)

    async def big(self, entries: Sequence[Entry]) -> None:
        """Copy values one at a time through a temporary file: ranged loads, streamed stores."""
        directory = await asyncio.to_thread(tempfile.mkdtemp, prefix="aiodepot-copy-")
        try:
            path = os.path.join(directory, "value")
            for entry in entries:
                try:
                    nbytes = await self.src.load_file(
                        entry.name, path, deleted=entry.deleted, max_concurrency=self.max_concurrency
                    )
                    if entry.deleted:
                        nested = await self.dst.find(entry.name, deleted=True)
                        await self.dst.backend.store_file(nested, path, size=nbytes)
                    else:
                        await self.dst.store_file(entry.name, path)
                except Exception as exc:
                    self.failed(entry, exc, "copy")
                    await self.tracker.step(0)
                    continue
                finally:
                    with contextlib.suppress(FileNotFoundError):
                        await asyncio.to_thread(os.unlink, path)
                self.report.copied += 1
                self.report.bytes += nbytes
                await self.tracker.step(nbytes)
        finally:
            await asyncio.to_thread(shutil.rmtree, directory, True)

    async def delete(self, entries: Sequence[Entry]) -> None:
        for deleted in (False, True):
            batch = [entry for entry in entries if entry.deleted == deleted]
            if not batch:
                continue
            outcomes = await self.dst.delete_many(
                [entry.name for entry in batch],
                max_concurrency=self.max_concurrency,
                return_exceptions=self.collect_errors,
                progress=_forward(self.tracker),
                deleted=deleted,
            )
            for entry, outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, ObjectNotFound):
                    self.report.deleted += 1  # gone already: what we wanted
                elif isinstance(outcome, Exception):
                    self.failed(entry, outcome, "delete")
                else:
                    self.report.deleted += 1


async def apply_plan(
    src: Store,
    dst: Store,
    plan: Plan,
    *,
    max_concurrency: int | None = None,
    max_bytes_in_flight: int = DEFAULT_MAX_BYTES_IN_FLIGHT,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressCallback | None = None,
    collect_errors: bool = False,
) -> Report:
    """Carry out a plan: copy its items from ``src`` to ``dst``, then delete its deletions at ``dst``.

    Args:
        src: the open source store.
        dst: the open destination store.
        plan: from [`plan_copy`][aiodepot.replicate.plan_copy] or [`plan_sync`][aiodepot.replicate.plan_sync].
        max_concurrency: operations in flight per bulk call (default: each store's own).
        max_bytes_in_flight: values held in memory at once, about; a value above half of it goes alone
            through a temporary file (in ``tempfile``'s directory: ``TMPDIR``).
        batch_size: items per ``load_many``/``store_many`` batch.
        progress: called after each item with a [`Progress`][aiodepot.transfer.Progress] over the whole plan: items
            copied or deleted (failed ones count as done with 0 bytes), bytes copied.
        collect_errors: go on past a failing item and list it in ``report.errors``; then nothing is
            deleted if any copy failed (a destination that missed an update keeps what it had). Without
            it, the first failure stops the work and is raised as itself.
    """
    _check_stores(src, dst)
    if max_concurrency is not None and max_concurrency < 1:
        raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
    if max_bytes_in_flight < 2:
        raise ValueError(f"max_bytes_in_flight must be >= 2, got {max_bytes_in_flight}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    started = time.perf_counter()
    report = Report(plan)
    tracker = ProgressTracker(progress, len(plan.copy) + len(plan.delete), plan.copy_bytes)
    copier = _Copier(src, dst, report, tracker, max_concurrency=max_concurrency, collect_errors=collect_errors)
    batch_bytes = max_bytes_in_flight // 2
    small = [entry for entry in plan.copy if entry.size <= batch_bytes]
    big = [entry for entry in plan.copy if entry.size > batch_bytes]
    if small:
        await copier.small(small, batch_size, batch_bytes)
    if big:
        await copier.big(big)
    if plan.delete and not report.errors:
        await copier.delete(plan.delete)
    report.seconds = time.perf_counter() - started
    return report


async def copy_store(
    src: Store,
    dst: Store,
    namespaces: str | Iterable[str] | None = None,
    *,
    overwrite: bool = True,
    include_deleted: bool = False,
    dry_run: bool = False,
    max_concurrency: int | None = None,
    max_bytes_in_flight: int = DEFAULT_MAX_BYTES_IN_FLIGHT,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressCallback | None = None,
    collect_errors: bool = False,
) -> Report:
    """Copy the items of ``namespaces`` (default: the whole store) from ``src`` to ``dst``, keeping their names.

    ``dst`` may use another backend and other nesting levels. See [`plan_copy`][aiodepot.replicate.plan_copy]
    for ``namespaces``, ``overwrite`` and ``include_deleted``, and [`apply_plan`][aiodepot.replicate.apply_plan]
    for the rest; ``dry_run=True`` only plans and reports what would be copied.

    Returns:
        What was done: ``copied``, ``bytes``, ``skipped`` (existing items, without ``overwrite``), ``errors``.
    """
    started = time.perf_counter()
    plan = await plan_copy(src, dst, namespaces, overwrite=overwrite, include_deleted=include_deleted)
    if dry_run:
        return Report.dry(plan, time.perf_counter() - started)
    report = await apply_plan(
        src,
        dst,
        plan,
        max_concurrency=max_concurrency,
        max_bytes_in_flight=max_bytes_in_flight,
        batch_size=batch_size,
        progress=progress,
        collect_errors=collect_errors,
    )
    report.seconds = time.perf_counter() - started
    return report


async def sync_stores(
    src: Store,
    dst: Store,
    namespaces: str | Iterable[str] | None = None,
    *,
    delete: bool = False,
    checksum: bool = False,
    include_deleted: bool = False,
    dry_run: bool = False,
    max_concurrency: int | None = None,
    max_bytes_in_flight: int = DEFAULT_MAX_BYTES_IN_FLIGHT,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressCallback | None = None,
    collect_errors: bool = False,
) -> Report:
    """Make the ``namespaces`` (default: the whole store) of ``dst`` like those of ``src``.

    Copies what ``dst`` lacks or holds with another size (with ``checksum``: other content); with
    ``delete``, then removes what ``src`` does not have. Namespaces not named are left alone. See
    [`plan_sync`][aiodepot.replicate.plan_sync] and [`apply_plan`][aiodepot.replicate.apply_plan] for
    the arguments; ``dry_run=True`` only plans and reports what would be done.

    Returns:
        What was done: ``copied``, ``bytes``, ``deleted``, ``skipped`` (unchanged items), ``errors``.
    """
    started = time.perf_counter()
    plan = await plan_sync(
        src,
        dst,
        namespaces,
        delete=delete,
        checksum=checksum,
        include_deleted=include_deleted,
        max_concurrency=max_concurrency,
    )
    if dry_run:
        return Report.dry(plan, time.perf_counter() - started)
    report = await apply_plan(
        src,
        dst,
        plan,
        max_concurrency=max_concurrency,
        max_bytes_in_flight=max_bytes_in_flight,
        batch_size=batch_size,
        progress=progress,
        collect_errors=collect_errors,
    )
    report.seconds = time.perf_counter() - started
    return report
