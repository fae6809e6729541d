"""borgstore's ``backends._utils``: HTTP range headers, SIGINT for helper processes, reconnecting calls."""

from __future__ import annotations

import functools
import logging
import signal
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

from .errors import BackendConnectionError, BackendError, ObjectNotFound

__all__ = ["ignore_sigint", "is_win32", "make_range_header", "parse_range_header", "with_reconnect"]

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

is_win32 = sys.platform in ("win32", "msys", "cygwin")
"""True on Windows (and its POSIX layers), where helper processes cannot ignore SIGINT this way."""


def make_range_header(offset: int, size: int | None = None, total_size: int | None = None) -> str | None:
    """The ``Range`` header value for ``size`` bytes (all: None) from ``offset``; None when the whole value is
    meant. A negative ``offset`` counts from the end; with a ``size`` it then needs ``total_size``."""
    if offset < 0:
        if size is None:
            return f"bytes={offset}"
        if total_size is None:
            raise ValueError("a negative offset with a size needs total_size")
        offset += total_size
    if size is None:
        return f"bytes={offset}-" if offset else None
    return f"bytes={offset}-{offset + size - 1}"


def parse_range_header(range_header: str | None) -> tuple[int, int | None]:
    """``(offset, size)`` of a single ``bytes=`` range (offset < 0: a suffix; size None: to the end).

    Anything that is not such a range means the whole value: ``(0, None)``.
    """
    unit, _, spec = (range_header or "").partition("=")
    first, dash, last = spec.partition("-")
    if unit != "bytes" or not dash or "," in spec:
        return 0, None
    try:
        if not first:
            return -int(last), None
        start = int(first)
        return start, (int(last) - start + 1 if last else None)
    except ValueError:
        return 0, None


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


ignore_sigint: Callable[[], None] | None = None if is_win32 else _ignore_sigint
"""A ``preexec_fn`` for helper processes (ssh, rclone) so that Ctrl-C, which the terminal sends to the whole
process group, interrupts only the main process; None on Windows."""


def with_reconnect(method: F | None = None, *, swallow_not_found: bool = False) -> Any:
    """Decorate a backend method: when it fails because the connection was lost, close and open the backend
    again and retry, ``reconnect_tries`` times (default 3), ``reconnect_wait`` seconds apart (default 1).

    Other errors pass through. ``swallow_not_found`` is for idempotent removals: an ``ObjectNotFound`` from a
    retry means the lost attempt had already done the work, so it is success. Usable bare or with arguments.

    aiodepot's own backends reconnect inside each operation; this is for borgstore-style backends written
    against this API.
    """
    if method is None:
        return functools.partial(with_reconnect, swallow_not_found=swallow_not_found)
    call = method

    @functools.wraps(call)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return call(self, *args, **kwargs)
        except (BackendConnectionError, ConnectionError) as exc:
            if not getattr(self, "opened", True):
                raise
            lost: BaseException = exc
        tries = int(getattr(self, "reconnect_tries", 3))
        wait = float(getattr(self, "reconnect_wait", 1.0))
        for attempt in range(1, tries + 1):
            logger.warning("connection lost (%r); reconnecting, attempt %d of %d", lost, attempt, tries)
            time.sleep(wait)
            try:
                self.close()
                self.open()
                return call(self, *args, **kwargs)
            except ObjectNotFound:
                if swallow_not_found:
                    return None
                raise
            except (BackendConnectionError, ConnectionError) as exc:
                lost = exc
        raise BackendError(f"the connection was lost and could not be re-established: {lost!r}") from lost

    return wrapper
