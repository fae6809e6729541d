"""RetryPolicy, Limits, Timeouts and the shared retry loop."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time

import pytest

import aiodepot
import aiodepot.backends
from aiodepot.backends.options import Limits, RetryPolicy, Timeouts, legacy_options
from aiodepot.errors import ConnectionLost, ObjectNotFound


def lost(exc: BaseException) -> bool:
    return isinstance(exc, ConnectionLost)


class Flaky:
    """An operation that fails ``failures`` times with ``error``, then returns ``"ok"``."""

    def __init__(self, failures: int, error: type[Exception] = ConnectionLost) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0
        self.times: list[float] = []

    async def __call__(self) -> str:
        self.calls += 1
        self.times.append(time.monotonic())
        if self.calls <= self.failures:
            raise self.error(f"failure {self.calls}")
        return "ok"


def test_the_values_are_exported_and_immutable() -> None:
    assert aiodepot.RetryPolicy is aiodepot.backends.RetryPolicy is RetryPolicy
    assert aiodepot.Limits is aiodepot.backends.Limits is Limits
    assert aiodepot.Timeouts is aiodepot.backends.Timeouts is Timeouts
    policy = RetryPolicy()
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.attempts = 9  # type: ignore[misc]
    assert not hasattr(policy, "__dict__")  # slots
    assert hash(policy) == hash(RetryPolicy())


def test_copies_change_one_field_and_check_it() -> None:
    policy = RetryPolicy(attempts=3, backoff=0.5)
    assert policy.with_attempts(7) == RetryPolicy(attempts=7, backoff=0.5)
    assert policy.with_backoff(1.0, multiplier=1.0).multiplier == 1.0
    assert policy.with_budget(10.0).budget == 10.0
    assert policy.replace(cap=3.0).cap == 3.0
    assert policy.retries == 2
    assert Limits(connections=4).with_threads(2) == Limits(connections=4, threads=2)
    assert Timeouts(connect=1.0).with_read(2.0) == Timeouts(connect=1.0, read=2.0)
    with pytest.raises(ValueError, match="attempts"):
        policy.with_attempts(0)


@pytest.mark.parametrize(
    "bad",
    [
        {"attempts": 0},
        {"attempts": 1.5},
        {"backoff": -1.0},
        {"cap": -1.0},
        {"multiplier": 0.5},
        {"jitter": 1.5},
        {"jitter": -0.1},
        {"budget": 0.0},
    ],
)
def test_a_bad_policy_is_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**bad)  # type: ignore[arg-type]


def test_bad_limits_and_timeouts_are_refused() -> None:
    with pytest.raises(ValueError, match="connections"):
        Limits(connections=0)
    with pytest.raises(ValueError, match="threads"):
        Limits(threads=-1)
    with pytest.raises(ValueError, match="read"):
        Timeouts(read=0.0)


def test_none_fields_take_the_defaults() -> None:
    assert Limits(threads=2).or_defaults(Limits(connections=8, threads=4)) == Limits(connections=8, threads=2)
    assert Timeouts().or_defaults(Timeouts(connect=3.0)) == Timeouts(connect=3.0)
    given = Timeouts(connect=1.0, read=2.0, pool=3.0)
    assert given.or_defaults(Timeouts(connect=9.0)) is given


def test_the_backoff_grows_is_capped_and_jittered_within_bounds() -> None:
    random.seed(5)
    policy = RetryPolicy(attempts=10, backoff=0.1, multiplier=2.0, cap=2.0, jitter=0.5)
    for retry, full in enumerate([0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0], start=1):
        waits = [policy.delay(retry) for _ in range(200)]
        assert all(full * 0.5 <= wait <= full for wait in waits), (retry, min(waits), max(waits))
        assert max(waits) - min(waits) > full * 0.3  # really random across the range
    steady = policy.replace(jitter=0.0)
    assert [steady.delay(n) for n in range(1, 8)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0])
    constant = RetryPolicy(backoff=5.0, multiplier=1.0, jitter=0.0)
    assert {constant.delay(n) for n in range(1, 5)} == {5.0}


async def test_run_retries_until_success() -> None:
    op = Flaky(2)
    seen: list[tuple[str, int, float]] = []
    policy = RetryPolicy(attempts=3, backoff=0.01, jitter=0.0)
    result = await policy.run(op, retryable=lost, on_retry=lambda exc, n, wait: seen.append((str(exc), n, wait)))
    assert result == "ok"
    assert op.calls == 3
    assert seen == [("failure 1", 2, 0.01), ("failure 2", 3, 0.02)]
    assert op.times[1] - op.times[0] >= 0.01
    assert op.times[2] - op.times[1] >= 0.02


async def test_run_gives_up_after_the_attempts_with_the_last_error() -> None:
    op = Flaky(10)
    with pytest.raises(ConnectionLost, match="failure 4"):
        await RetryPolicy(attempts=4, backoff=0.0).run(op, retryable=lost)
    assert op.calls == 4
    once = Flaky(10)
    with pytest.raises(ConnectionLost, match="failure 1"):
        await RetryPolicy(attempts=1).run(once, retryable=lost)
    assert once.calls == 1


async def test_an_error_that_is_not_retryable_is_raised_at_once() -> None:
    op = Flaky(1, ObjectNotFound)
    with pytest.raises(ObjectNotFound):
        await RetryPolicy(backoff=0.0).run(op, retryable=lost)
    assert op.calls == 1


async def test_the_budget_stops_retries_that_would_end_past_it() -> None:
    op = Flaky(10)
    policy = RetryPolicy(attempts=100, backoff=0.05, multiplier=1.0, jitter=0.0, budget=0.18)
    started = time.monotonic()
    with pytest.raises(ConnectionLost):
        await policy.run(op, retryable=lost)
    took = time.monotonic() - started
    assert op.calls == 4  # 3 waits of 0.05 s fit in 0.18 s, a fourth would end past it
    assert took < 0.18 + 0.1


async def test_an_error_in_on_retry_ends_the_loop() -> None:
    op = Flaky(5)

    def refuse(exc: BaseException, attempt: int, wait: float) -> None:
        raise RuntimeError("closed meanwhile")

    with pytest.raises(RuntimeError, match="closed meanwhile"):
        await RetryPolicy(backoff=0.0).run(op, retryable=lost, on_retry=refuse)
    assert op.calls == 1


async def test_cancellation_during_the_backoff_ends_the_loop() -> None:
    op = Flaky(10)
    task = asyncio.create_task(RetryPolicy(attempts=5, backoff=10.0, jitter=0.0).run(op, retryable=lost))
    await asyncio.sleep(0.05)  # the first try failed at once: now in the 10 s wait
    assert op.calls == 1
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 1.0
    assert op.calls == 1


async def test_a_cancelled_attempt_is_not_retried() -> None:
    calls = 0

    async def op() -> None:
        nonlocal calls
        calls += 1
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await RetryPolicy(backoff=0.0).run(op, retryable=lambda exc: True)
    assert calls == 1


def test_legacy_keywords_warn_name_the_new_spelling_and_still_work() -> None:
    renames = {
        "retries": ("retry", "attempts", lambda n: n + 1),
        "retry_wait": ("retry", "backoff", None),
        "connections": ("limits", "connections", None),
        "timeout": ("timeouts", "read", None),
    }
    with pytest.warns(DeprecationWarning, match=r"retries=…\) is deprecated .*retry=RetryPolicy\(attempts=6\)"):
        retry, limits, timeouts = legacy_options(
            "Thing", {"retries": 5}, renames, retry=RetryPolicy(), limits=Limits(), timeouts=Timeouts()
        )
    assert retry.attempts == 6
    with pytest.warns(DeprecationWarning, match="is deprecated") as caught:
        retry, limits, timeouts = legacy_options(
            "Thing",
            {"retry_wait": 0.5, "connections": 3, "timeout": 2.0},
            renames,
            retry=RetryPolicy(attempts=2),
            limits=Limits(threads=1),
            timeouts=Timeouts(),
        )
    assert len(caught) == 3
    assert "limits=Limits(connections=3)" in str(caught[1].message)
    assert retry == RetryPolicy(attempts=2, backoff=0.5)
    assert limits == Limits(connections=3, threads=1)
    assert timeouts == Timeouts(read=2.0)


def test_an_unknown_keyword_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        legacy_options("Thing", {"colour": 1}, {}, retry=RetryPolicy(), limits=Limits(), timeouts=Timeouts())


async def test_on_retry_may_be_a_coroutine_function() -> None:
    op = Flaky(1)
    awaited: list[int] = []

    async def drop_connection(exc: BaseException, attempt: int, wait: float) -> None:
        await asyncio.sleep(0)
        awaited.append(attempt)

    assert await RetryPolicy(backoff=0.0).run(op, retryable=lost, on_retry=drop_connection) == "ok"
    assert awaited == [2]
