"""Blocking calls (SQLite commits, scrypt) run on threads, never on the event loop."""

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar

T = TypeVar("T")


class Offload(Protocol):
    """Where blocking calls go: a Worker, or a test's counting fake."""

    @property
    def threads(self) -> int: ...

    async def run(self, call: Callable[[], T]) -> T: ...


class Worker:
    """A pool of `threads` threads; one thread serialises the store's writes."""

    def __init__(self, name: str, threads: int = 1) -> None:
        self._threads = threads
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)

    @property
    def threads(self) -> int:
        return self._threads

    async def run(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
