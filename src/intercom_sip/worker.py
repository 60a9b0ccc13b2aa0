"""Threads for the blocking calls, so that the event loop (and a call's media) never
waits on them: scrypt on a `Worker`'s pool, and every SQLite write on the store's one
`Writer` thread, which has a connection of its own.

Reads stay where they were: the settings are in memory (`Device`), the call log is read
on a thread (`asyncio.to_thread`) and the credential on the loop when the command line
has replaced it, all on the store's other connection, which WAL lets read while the
writer commits.
"""

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar

from intercom_sip.calls import CallRecord
from intercom_sip.store import Store

T = TypeVar("T")


class Offload(Protocol):
    """Where blocking calls go: a Worker, or a test's counting fake."""

    @property
    def threads(self) -> int: ...

    async def run(self, call: Callable[[], T]) -> T: ...


class Worker:
    """A pool of `threads` threads for blocking calls that share nothing (hashes)."""

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


class Writer:
    """The store's one writer: one thread, and the store it owns, run every write in the
    order given. The commit's fsync, and a wait of up to the busy timeout for another
    process's write lock, happen there; the loop only awaits the result."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")

    async def run(self, write: Callable[[Store], T]) -> T:
        """Run `write` on the writer's thread; its StoreError is raised here."""
        return await asyncio.wrap_future(self._pool.submit(write, self._store))

    def call(
        self, write: Callable[[Store], object], then: Callable[[Exception | None], None]
    ) -> None:
        """Run `write` on the writer's thread, then `then(error)` on the loop in the very
        turn the thread's word arrives: no future or task in between, so that what
        follows a commit (the REGISTER of new settings) leaves as soon as it is durable."""
        loop = asyncio.get_running_loop()

        def work() -> None:
            error: Exception | None = None
            try:
                write(self._store)
            except Exception as exc:  # StoreError, or a bug: `then` answers it
                error = exc
            with contextlib.suppress(RuntimeError):  # the loop closed at a stop
                loop.call_soon_threadsafe(then, error)

        self._pool.submit(work)

    def save_call(self, record: CallRecord) -> None:
        """Blocking, for the phone shell's call log (which calls it from a thread)."""
        self._pool.submit(self._store.save_call, record).result()

    def close(self) -> None:
        """Wait for the writes given, then close the writer's connection."""
        self._pool.shutdown(wait=True)
        self._store.close()
