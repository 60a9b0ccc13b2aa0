"""Noticing a file replaced in a directory, with Linux's inotify (through ctypes).

Why: the command line changes the administrator's password in the store, and the
running service must end every token at once. Looking at the store on every request
costs a system call each time, and system calls are dear here (a `stat()` per request
took a third of the API's throughput, measured); inotify tells the event loop instead.
Where inotify is missing, `start()` says so and the caller looks for itself.
"""

import asyncio
import ctypes
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

IN_MOVED_TO: Final = 0x00000080  # <sys/inotify.h>: a file renamed into the directory
IN_CLOSE_WRITE: Final = 0x00000008
IN_NONBLOCK: Final = os.O_NONBLOCK
IN_CLOEXEC: Final = os.O_CLOEXEC


class DirectoryWatch:
    def __init__(self, directory: Path, changed: Callable[[], None]) -> None:
        self._directory, self._changed = directory, changed
        self._fd: int | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Watch from now on; False when inotify is not to be had."""
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
            if fd < 0:
                return False
            path = os.fsencode(self._directory)
            if libc.inotify_add_watch(fd, path, IN_MOVED_TO | IN_CLOSE_WRITE) < 0:
                os.close(fd)
                return False
        except (OSError, AttributeError):
            return False
        self._fd = fd
        loop.add_reader(fd, self._read)
        return True

    def _read(self) -> None:
        assert self._fd is not None
        try:
            while os.read(self._fd, 4096):  # the events themselves do not matter
                pass
        except BlockingIOError:
            pass
        self._changed()

    def close(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._fd is not None:
            loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None
