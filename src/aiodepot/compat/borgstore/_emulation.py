"""borgstore's way to emulate a slow backend: the calling thread sleeps, after the operation.

aiodepot's [`Emulate`][aiodepot.layers.emulate.Emulate] layer does the bookkeeping (latency, a shared link
of limited bandwidth) for the drop-in as for any Store. Only where the delay is spent differs: borgstore
sleeps with ``time.sleep`` in the thread that called the Store (users and borgstore's tests count those
sleeps), so `CallerThreadEmulator` notes the delays it owes in the operation's `Sleeps`, and
``Store`` sleeps them once the Portal call has returned.
"""

from __future__ import annotations

import asyncio
import contextvars

from ...emulation import Emulator

__all__ = ["CallerThreadEmulator", "Sleeps"]


class Sleeps(list[float]):
    """The delays (seconds) one operation owes its caller."""


_OWED: contextvars.ContextVar[Sleeps | None] = contextvars.ContextVar("aiodepot_borgstore_sleeps", default=None)


class CallerThreadEmulator(Emulator):
    """An [`Emulator`][aiodepot.emulation.Emulator] whose delays the caller of the operation sleeps."""

    __slots__ = ()

    @classmethod
    def collecting(cls, sleeps: Sleeps) -> None:
        """Note the delays of the running operation (the current task and the tasks it starts) in ``sleeps``."""
        _OWED.set(sleeps)

    async def _wait(self, seconds: float) -> None:
        """The caller sleeps ``seconds`` after the operation (outside an operation: sleep here)."""
        sleeps = _OWED.get()
        if sleeps is None:
            await asyncio.sleep(seconds)
        else:
            sleeps.append(seconds)
