"""The Offloader: the thread pool under every awaited file and SQLite call."""

from __future__ import annotations

import asyncio
import contextvars
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import aiofiles
import pytest

from aiodepot._threads import Offloader, cancelled

CURRENT: contextvars.ContextVar[str] = contextvars.ContextVar("CURRENT", default="unset")


def _names(pool: Offloader) -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith(pool._name)}


async def test_run_returns_raises_and_keeps_the_context() -> None:
    pool = Offloader("t-basic", 2)
    try:
        assert await pool.run(sum, [1, 2, 3]) == 6
        assert await pool.run(int, "7", base=8) == 7
        with pytest.raises(ZeroDivisionError):
            await pool.run(divmod, 1, 0)
        CURRENT.set("caller")
        assert await pool.run(CURRENT.get) == "caller"
        assert threading.current_thread().name != await pool.run(lambda: threading.current_thread().name)
    finally:
        pool.shutdown(wait=True)


async def test_threads_start_on_demand_up_to_the_limit() -> None:
    pool = Offloader("t-limit", 3)
    try:
        assert _names(pool) == set()  # nothing until the first job
        for _ in range(50):  # sequential jobs reuse one idle worker
            await pool.run(int)
        assert len(_names(pool)) == 1
        barrier = threading.Barrier(3, timeout=10)
        await asyncio.gather(*(pool.run(barrier.wait) for _ in range(3)))  # 3 at once: 3 threads needed
        gate = threading.Event()
        running = [pool.run(gate.wait, 10) for _ in range(8)]
        tasks = [asyncio.ensure_future(job) for job in running]
        await asyncio.sleep(0.05)
        assert len(_names(pool)) == 3  # never more than the limit; the other jobs queue
        gate.set()
        assert await asyncio.gather(*tasks) == [True] * 8
    finally:
        pool.shutdown(wait=True)
    assert _names(pool) == set()


async def test_a_job_cancelled_before_it_starts_does_not_run() -> None:
    pool = Offloader("t-cancel", 1)
    ran: list[str] = []
    gate = threading.Event()
    try:
        first = asyncio.ensure_future(pool.run(gate.wait, 10))
        second = asyncio.ensure_future(pool.run(ran.append, "second"))
        await asyncio.sleep(0.02)
        second.cancel()
        with pytest.raises(asyncio.CancelledError):
            await second
        gate.set()
        assert await first is True
        await pool.run(ran.append, "third")
        assert ran == ["third"]
    finally:
        pool.shutdown(wait=True)


async def test_a_job_finishing_after_its_caller_was_cancelled_is_harmless() -> None:
    pool = Offloader("t-late", 1)
    gate = threading.Event()
    try:
        task = asyncio.ensure_future(pool.run(gate.wait, 10))
        await asyncio.sleep(0.02)
        task.cancel()
        gate.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await pool.run(int, "5") == 5
    finally:
        pool.shutdown(wait=True)


async def test_a_cancel_waits_for_the_job_a_worker_runs() -> None:
    """Once a cancelled caller's CancelledError is through, the job it started is over (no write runs on)."""
    pool = Offloader("t-wait", 1)
    gate, started = threading.Event(), threading.Event()
    events: list[str] = []

    def job() -> None:
        started.set()
        gate.wait(10)
        events.append("job over")

    try:
        task = asyncio.ensure_future(pool.run(job))
        assert await asyncio.to_thread(started.wait, 10)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=0.05)
        assert not done  # still waiting for the job
        gate.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        events.append("cancel through")
        assert events == ["job over", "cancel through"]
    finally:
        pool.shutdown(wait=True)


async def test_a_cancel_after_the_outcome_was_delivered_does_not_wait() -> None:
    """The job is over and its outcome queued on the loop when the cancel comes: the cancel must not wait
    for an end that has already happened (it did, forever, in a first version)."""
    pool = Offloader("t-race", 1)
    finished = threading.Event()

    def job() -> int:
        finished.set()
        return 1

    try:
        task = asyncio.ensure_future(pool.run(job))
        await asyncio.sleep(0)  # the task awaits the job's future
        assert finished.wait(10)
        time.sleep(0.2)  # noqa: ASYNC251 - holding the loop on purpose: the outcome is queued ahead of the cancel
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=10)
        assert done and task.cancelled()
    finally:
        pool.shutdown(wait=True)


async def test_a_job_can_see_that_its_caller_was_cancelled() -> None:
    pool = Offloader("t-seen", 1)
    started = threading.Event()
    seen: list[bool] = []

    def batch() -> None:
        seen.append(cancelled())
        started.set()
        for _ in range(10_000):  # a batch of items, stopping between two when the caller is gone
            if cancelled():
                seen.append(True)
                return
            time.sleep(0.001)

    try:
        task = asyncio.ensure_future(pool.run(batch))
        assert await asyncio.to_thread(started.wait, 10)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=10)
        assert done and task.cancelled()
        assert seen == [False, True]
        assert not cancelled()  # outside a job
        assert await pool.run(cancelled) is False  # the next job starts afresh
    finally:
        pool.shutdown(wait=True)


def test_a_loop_closed_before_the_job_ends_is_harmless() -> None:
    pool = Offloader("t-closed", 1)
    gate = threading.Event()
    done = threading.Event()

    def job() -> None:
        gate.wait(10)
        done.set()

    loop = asyncio.new_event_loop()
    loop.run_until_complete(asyncio.wait([loop.create_task(pool.run(job))], timeout=0.02))
    for task in asyncio.all_tasks(loop):
        task.cancel()
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()
    gate.set()
    assert done.wait(10)
    assert asyncio.run(pool.run(int, "3")) == 3  # the worker survived the closed loop
    pool.shutdown(wait=True)


async def test_it_is_an_executor_for_aiofiles(tmp_path: Path) -> None:
    pool = Offloader("t-aiofiles", 2)
    path = tmp_path / "f"
    try:
        async with aiofiles.open(path, "wb", executor=pool.executor) as f:
            await f.write(b"hello")
        async with aiofiles.open(path, "rb", executor=pool.executor) as f:
            assert await f.read() == b"hello"
        future = pool.submit(pow, 2, 10)
        assert future.result(10) == 1024
        failing = pool.submit(divmod, 1, 0)
        with pytest.raises(ZeroDivisionError):
            failing.result(10)
    finally:
        pool.shutdown(wait=True)


async def test_shutdown_then_use_again() -> None:
    pool = Offloader("t-again", 2)
    await pool.run(int)
    pool.shutdown(wait=True)
    assert _names(pool) == set()
    assert await pool.run(int, "9") == 9
    pool.shutdown(wait=True)


def test_workers_must_be_positive() -> None:
    with pytest.raises(ValueError, match="workers must be >= 1"):
        Offloader("t-zero", 0)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX only")
def test_a_forked_child_gets_its_own_pool() -> None:
    pool = Offloader("t-fork", 2)
    assert asyncio.run(pool.run(int, "1")) == 1  # the parent's worker exists
    pid = os.fork()
    if pid == 0:  # the child: the parent's thread is not here; a fresh one must start
        code = 0
        try:
            code = 0 if asyncio.run(asyncio.wait_for(pool.run(int, "2"), 10)) == 2 else 1
        except BaseException:
            code = 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert asyncio.run(pool.run(int, "3")) == 3  # the parent's pool is untouched
    pool.shutdown(wait=True)


def test_a_job_running_at_exit_finishes(tmp_path: Path) -> None:
    """A write in progress when the interpreter exits is completed, not cut off (as ThreadPoolExecutor)."""
    target = tmp_path / "written"
    script = textwrap.dedent(
        f"""
        import time
        from aiodepot._threads import Offloader, cancelled

        def write():
            time.sleep(0.3)
            open({str(target)!r}, "w").write("done")

        Offloader("exit", 1).submit(write)
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert target.read_text() == "done"
