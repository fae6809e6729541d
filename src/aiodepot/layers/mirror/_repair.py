"""Read repair of the mirror layer: copy an item that a child lacks back to it, in the background.

A read takes a ticket per name before it asks the children; a write to the name voids the tickets of
reads that began earlier, so a repair never puts back an outdated value.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
from collections.abc import Iterable, Sequence

from ...backends.base import Backend
from ._writes import NameLocks

__all__ = ["MAX_PENDING_REPAIRS", "MAX_REPAIR_BYTES", "REPAIR_CONCURRENCY", "RepairTicket", "Repairs"]

logger = logging.getLogger("aiodepot.layers.mirror")

MAX_PENDING_REPAIRS = 256  # repairs waiting beyond this are dropped (a later read schedules them again)
REPAIR_CONCURRENCY = 4
MAX_REPAIR_BYTES = 64 * 1024 * 1024  # values held for pending repairs; beyond, repairs re-read from the source


class RepairTicket:
    """A promise that no write touched a name since a read started; a write to the name voids it."""

    __slots__ = ("valid",)

    def __init__(self) -> None:
        self.valid = True


class Repairs:
    """The repairs of one mirror: tickets of running reads, the background repair tasks and their memory.

    Args:
        locks: the mirror's per-name write locks (a repair is a write).
        stats: the mirror's counters (``repairs``, ``repair_failures``, ``repairs_skipped``).
        enabled: False takes no tickets, so no repair is ever scheduled.
    """

    def __init__(self, locks: NameLocks, stats: dict[str, int], *, enabled: bool) -> None:
        self.locks = locks
        self.stats = stats
        self.enabled = enabled
        self.tasks: set[asyncio.Task[None]] = set()
        """The repairs scheduled and not finished yet."""
        self.held_bytes = 0
        """Bytes of values held for pending repairs."""
        self._tickets: dict[str, builtins.list[RepairTicket]] = {}
        self._limit: asyncio.Semaphore | None = None  # made on the loop that opens the mirror

    def start(self) -> None:
        """Get ready to run repairs on the running loop (at ``open``)."""
        self._limit = asyncio.Semaphore(REPAIR_CONCURRENCY)

    async def flush(self) -> None:
        """Wait until the repairs scheduled so far have finished."""
        while self.tasks:
            await asyncio.gather(*builtins.list(self.tasks), return_exceptions=True)

    def ticket(self, names: Iterable[str]) -> dict[str, RepairTicket]:
        """Tickets for a read that may lead to repairs (none when repair is off)."""
        if not self.enabled:
            return {}
        tickets = {}
        for name in set(names):
            ticket = RepairTicket()
            self._tickets.setdefault(name, []).append(ticket)
            tickets[name] = ticket
        return tickets

    def drop(self, name: str, ticket: RepairTicket) -> None:
        """The read is done with its ticket (no repair, or the repair finished)."""
        waiting = self._tickets.get(name)
        if waiting is not None:
            with contextlib.suppress(ValueError):
                waiting.remove(ticket)
            if not waiting:
                del self._tickets[name]

    def void(self, names: Iterable[str]) -> None:
        """A write to these names starts or ends: reads that began earlier must not repair them."""
        for name in names:
            for ticket in self._tickets.pop(name, ()):
                ticket.valid = False

    def settle(
        self, name: str, ticket: RepairTicket | None, source: Backend, lacking: Sequence[Backend], value: bytes | None
    ) -> None:
        """After a read: repair ``name`` on the children ``lacking`` it, or drop the ticket if none does."""
        if ticket is None:
            return
        if lacking:
            self.schedule(name, ticket, source, lacking, value)
        else:
            self.drop(name, ticket)

    def schedule(
        self, name: str, ticket: RepairTicket | None, source: Backend, targets: Sequence[Backend], value: bytes | None
    ) -> None:
        """Copy ``name`` from ``source`` to ``targets`` in the background (``value``: the whole value, if read)."""
        if ticket is None:
            return
        if not ticket.valid or not targets or len(self.tasks) >= MAX_PENDING_REPAIRS:
            self.drop(name, ticket)
            self.stats["repairs_skipped"] += 1
            return
        if value is not None:
            if self.held_bytes + len(value) > MAX_REPAIR_BYTES:
                value = None  # do not pin more memory: the repair streams the item from the source
            else:
                self.held_bytes += len(value)
        task = asyncio.get_running_loop().create_task(
            self._repair(name, ticket, source, builtins.list(targets), value), name=f"mirror-repair {name}"
        )
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _repair(
        self, name: str, ticket: RepairTicket, source: Backend, targets: builtins.list[Backend], value: bytes | None
    ) -> None:
        assert self._limit is not None
        try:
            async with self._limit, self.locks.hold([name]):
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
            self.drop(name, ticket)
            if value is not None:
                self.held_bytes -= len(value)
