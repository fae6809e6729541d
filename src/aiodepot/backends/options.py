"""One vocabulary for the options every network backend has: how to retry, how much at once, how long to wait.

- [`RetryPolicy`][aiodepot.backends.options.RetryPolicy] — how often and how patiently an operation that
  lost its connection is tried again, and [`RetryPolicy.run`][aiodepot.backends.options.RetryPolicy.run],
  the one retry loop the backends share;
- [`Limits`][aiodepot.backends.options.Limits] — connections in flight per store, threads for local work;
- [`Timeouts`][aiodepot.backends.options.Timeouts] — seconds to connect, and to wait for a reply.

All three are small immutable values: make a changed copy with ``replace()`` or a ``with_*`` method, share
one between stores. Every backend constructor takes them as ``retry=``, ``limits=`` and ``timeouts=``
where they mean something for it; a field left ``None`` in ``Limits`` or ``Timeouts`` takes the backend's
default, and each backend's ``default_retry`` is the policy it uses when given none::

    SftpBackend(host, path, retry=SftpBackend.default_retry.with_attempts(8), limits=Limits(connections=4))
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import inspect
import random
import socket
import time
import warnings
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, Self, TypeVar

__all__ = ["Limits", "OptionDefaults", "Rename", "RetryPolicy", "Timeouts", "legacy_options", "never_reached"]

T = TypeVar("T")

Retryable = Callable[[BaseException], bool]
"""Whether an error is worth another attempt (each backend knows its own)."""
OnRetry = Callable[[BaseException, int, float], object]
"""Called before each wait with the error, the number of the attempt to come (2, 3, …) and the wait; it
may return an awaitable (a coroutine function), which is awaited."""


_UNREACHABLE = frozenset({errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH})


def never_reached(exc: BaseException) -> bool:
    """True if ``exc`` (or an error it came from) says nothing answers at the address: a refused
    connection, an unknown host name, no route.

    Backends do not retry such an error while opening a store: retries are for connections that
    worked before, and a mistyped address or a server that is not running fails at once.
    """
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        error = todo.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, ConnectionRefusedError | socket.gaierror):
            return True
        if isinstance(error, OSError) and error.errno in _UNREACHABLE:
            return True
        inner = getattr(error, "os_error", None)  # aiohttp keeps the socket's error there
        todo += [error.__cause__, error.__context__, inner if isinstance(inner, BaseException) else None]
    return False


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How an operation is tried again after a transient failure (a lost connection, a damaged reply).

    The wait before retry ``n`` (1, 2, …) is ``min(backoff * multiplier ** (n - 1), cap)``, shortened by a
    random fraction of up to ``jitter`` so that many clients do not retry in step: with ``jitter=0.5``,
    each wait lies between half the computed wait and all of it.

    Which errors count as transient is the backend's to say (a 404 is final, a reset connection is not);
    the policy says how often and how long.

    Args:
        attempts: tries in all, the first included (1: never retry).
        backoff: seconds before the first retry.
        multiplier: each further wait is this many times the one before (1: a constant wait).
        cap: the longest single wait, in seconds.
        jitter: the fraction of each wait that is random, from 0 (none) to 1 (anything from 0 to the wait).
        budget: seconds from the first try after which no retry starts (None: only ``attempts`` bounds it).
    """

    attempts: int = 4
    backoff: float = 0.1
    multiplier: float = 2.0
    cap: float = 30.0
    jitter: float = 0.5
    budget: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.attempts, int) or self.attempts < 1:
            raise ValueError(f"attempts must be an int >= 1, got {self.attempts!r}")
        if self.backoff < 0 or self.cap < 0:
            raise ValueError(f"backoff and cap must be >= 0 seconds, got {self.backoff!r} and {self.cap!r}")
        if self.multiplier < 1:
            raise ValueError(f"multiplier must be >= 1, got {self.multiplier!r}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be between 0 and 1, got {self.jitter!r}")
        if self.budget is not None and self.budget <= 0:
            raise ValueError(f"budget must be > 0 seconds or None, got {self.budget!r}")

    @property
    def retries(self) -> int:
        """Tries after the first (``attempts - 1``)."""
        return self.attempts - 1

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` (field names as keywords), checked like a new policy."""
        return dataclasses.replace(self, **changes)

    def with_attempts(self, attempts: int) -> Self:
        """A copy that tries ``attempts`` times in all."""
        return self.replace(attempts=attempts)

    def with_backoff(self, backoff: float, *, multiplier: float | None = None, cap: float | None = None) -> Self:
        """A copy that waits ``backoff`` seconds before the first retry (and grows and caps as given)."""
        return self.replace(
            backoff=backoff,
            multiplier=self.multiplier if multiplier is None else multiplier,
            cap=self.cap if cap is None else cap,
        )

    def with_budget(self, budget: float | None) -> Self:
        """A copy that starts no retry ``budget`` seconds after the first try."""
        return self.replace(budget=budget)

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first), jitter included."""
        wait = min(self.backoff * self.multiplier ** (retry - 1), self.cap)
        return wait * (1.0 - self.jitter * random.random()) if self.jitter else wait

    async def run(
        self,
        op: Callable[[], Awaitable[T]],
        *,
        retryable: Retryable,
        on_retry: OnRetry | None = None,
    ) -> T:
        """``await op()``; while it raises an error that ``retryable`` accepts, wait and try again.

        The last error is raised as it is once the attempts or the budget are spent; an error that is not
        ``retryable`` is raised at once. A cancellation (also while waiting) ends the loop.

        Args:
            op: one attempt of the operation.
            retryable: whether an error is worth another attempt.
            on_retry: called before each wait as ``on_retry(error, next_attempt, wait)`` (to log it, or to
                drop a broken connection); an error it raises ends the loop.
        """
        started = time.monotonic()
        attempt = 1
        while True:
            try:
                return await op()
            except Exception as exc:
                if attempt >= self.attempts or not retryable(exc):
                    raise
                wait = self.delay(attempt)
                if self.budget is not None and time.monotonic() - started + wait > self.budget:
                    raise
                attempt += 1
                reaction = None if on_retry is None else on_retry(exc, attempt, wait)
            if inspect.isawaitable(reaction):
                await reaction
            await asyncio.sleep(wait)


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    """How much a backend does at once. ``None`` takes the backend's default.

    Args:
        connections: connections to the service, which is also the requests in flight per store (an SFTP
            connection carries many requests at once, so there it is the connections alone).
        threads: threads for blocking local work (file I/O, hashing, a database's readers).
        parts: parts of one big value in flight at once (multipart uploads).
    """

    connections: int | None = None
    threads: int | None = None
    parts: int | None = None

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{field.name} must be an int >= 1 or None, got {value!r}")

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` (field names as keywords)."""
        return dataclasses.replace(self, **changes)

    def with_connections(self, connections: int | None) -> Self:
        """A copy with ``connections`` connections."""
        return self.replace(connections=connections)

    def with_threads(self, threads: int | None) -> Self:
        """A copy with ``threads`` threads."""
        return self.replace(threads=threads)

    def or_defaults(self, defaults: Limits) -> Limits:
        """This, with each ``None`` field taken from ``defaults``."""
        return _fill(self, defaults)


@dataclasses.dataclass(frozen=True, slots=True)
class Timeouts:
    """How long a backend waits, in seconds. ``None`` takes the backend's default.

    Args:
        connect: to connect (and log in, where there is a login).
        read: for a reply to start or go on arriving (on SFTP: for a round of requests; past it, the
            connection counts as dead and the operation is retried on a new one).
        pool: for a free connection when all are busy.
    """

    connect: float | None = None
    read: float | None = None
    pool: float | None = None

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is not None and not value > 0:
                raise ValueError(f"the {field.name} timeout must be > 0 seconds or None, got {value!r}")

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` (field names as keywords)."""
        return dataclasses.replace(self, **changes)

    def with_connect(self, connect: float | None) -> Self:
        """A copy with the connect timeout ``connect``."""
        return self.replace(connect=connect)

    def with_read(self, read: float | None) -> Self:
        """A copy with the read timeout ``read``."""
        return self.replace(read=read)

    def or_defaults(self, defaults: Timeouts) -> Timeouts:
        """This, with each ``None`` field taken from ``defaults``."""
        return _fill(self, defaults)


_Options = TypeVar("_Options", Limits, Timeouts)


def _fill(value: _Options, defaults: Limits | Timeouts) -> _Options:
    changes = {
        field.name: getattr(defaults, field.name)
        for field in dataclasses.fields(value)
        if getattr(value, field.name) is None
    }
    return dataclasses.replace(value, **changes) if changes else value


Rename = tuple[str, str, Callable[[Any], Any] | None]
"""Where an old keyword goes: ``"retry"``, ``"limits"`` or ``"timeouts"``; the field; old value → new (None: as is)."""


class OptionDefaults(Protocol):
    """What a backend takes when ``retry=``, ``limits=`` or ``timeouts=`` leave something open."""

    @property
    def default_retry(self) -> RetryPolicy:
        """The policy without ``retry=``."""
        ...

    @property
    def default_limits(self) -> Limits:
        """The limits that ``limits=`` leaves ``None``."""
        ...

    @property
    def default_timeouts(self) -> Timeouts:
        """The timeouts that ``timeouts=`` leaves ``None``."""
        ...


def legacy_options(
    owner: str,
    given: Mapping[str, Any],
    renames: Mapping[str, Rename],
    *,
    retry: RetryPolicy | None = None,
    limits: Limits | None = None,
    timeouts: Timeouts | None = None,
    defaults: OptionDefaults | None = None,
) -> tuple[RetryPolicy, Limits, Timeouts]:
    """Fold the keywords a backend took before ``retry=``/``limits=``/``timeouts=`` into those values.

    Each old keyword in ``given`` warns (a ``DeprecationWarning`` naming the new spelling) and changes its
    field; one that ``renames`` does not know is a ``TypeError``, as for any unknown keyword.

    Args:
        owner: the class, for the messages (``"SftpBackend"``).
        given: the constructor's leftover keywords.
        renames: old keyword → where it goes now.
        retry: the policy to change (None: ``defaults.default_retry``, or ``RetryPolicy()``).
        limits: the limits to change, their ``None`` fields filled from ``defaults.default_limits``.
        timeouts: the timeouts to change, their ``None`` fields filled from ``defaults.default_timeouts``.
        defaults: the backend (or its class) whose ``default_*`` values fill what is not given.
    """
    if defaults is not None:
        retry = retry or defaults.default_retry
        limits = (limits or Limits()).or_defaults(defaults.default_limits)
        timeouts = (timeouts or Timeouts()).or_defaults(defaults.default_timeouts)
    values: dict[str, Any] = {
        "retry": retry or RetryPolicy(),
        "limits": limits or Limits(),
        "timeouts": timeouts or Timeouts(),
    }
    classes = {"retry": "RetryPolicy", "limits": "Limits", "timeouts": "Timeouts"}
    for old, value in given.items():
        if old not in renames:
            raise TypeError(f"{owner}() got an unexpected keyword argument {old!r}")
        group, field, convert = renames[old]
        new = value if convert is None else convert(value)
        warnings.warn(
            f"{owner}({old}=…) is deprecated and goes in the next release: use "
            f"{group}={classes[group]}({field}={new!r})",
            DeprecationWarning,
            stacklevel=3,
        )
        values[group] = dataclasses.replace(values[group], **{field: new})
    return values["retry"], values["limits"], values["timeouts"]
