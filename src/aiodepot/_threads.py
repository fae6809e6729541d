"""Run blocking calls off the event loop, on a thread pool that survives ``fork()``."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class Offloader:
    """A lazily created thread pool for one backend.

    Each blocking operation is one job (open, read and close in one hop, not one hop per syscall). After a
    fork the child gets a fresh pool: the parent's worker threads do not exist there.
    """

    __slots__ = ("_executor", "_lock", "_name", "_pid", "_workers")

    def __init__(self, name: str, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self._name = name
        self._workers = workers
        self._executor: ThreadPoolExecutor | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()

    @property
    def executor(self) -> ThreadPoolExecutor:
        """The pool itself, for libraries that take an executor (e.g. aiofiles)."""
        return self._get()

    def _get(self) -> ThreadPoolExecutor:
        executor = self._executor
        if executor is not None and self._pid == os.getpid():
            return executor
        if self._pid != os.getpid():  # forked: the old pool's threads and lock are the parent's
            self._lock = threading.Lock()
            self._executor = None
            self._pid = os.getpid()
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self._workers, thread_name_prefix=self._name)
            return self._executor

    async def run(self, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``func(*args, **kwargs)`` in the pool and return its result (in the caller's context, as
        ``asyncio.to_thread`` does, so context variables reach the job)."""
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        return await loop.run_in_executor(self._get(), functools.partial(context.run, func, *args, **kwargs))

    def shutdown(self) -> None:
        """Let the worker threads finish their jobs and exit; the pool is recreated on next use."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None and self._pid == os.getpid():
            executor.shutdown(wait=False)
