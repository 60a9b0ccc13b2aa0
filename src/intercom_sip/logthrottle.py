"""A log that says a repeated event a few times a second at most, then how often it held back.

A flood of one event (failed accepts at the file limit, refused connections, timeouts of
thousands of idle clients) would otherwise write a line per event: 350,000 lines in 25 s
were measured with a traceback each. The kinds are names fixed in the code, so the table
of kinds stays small; it is bounded all the same.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

MAX_KINDS = 64


@dataclass
class _Window:
    started: float
    lines: int = 0
    held: int = 0


class ThrottledLog:
    """At most `per_second` lines a second for each kind of event; the next line that gets
    through tells how many were held back since the last one."""

    def __init__(
        self,
        logger: logging.Logger,
        per_second: int = 3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger, self._per_second, self._clock = logger, per_second, clock
        self._windows: dict[str, _Window] = {}

    def log(
        self, level: int, kind: str, message: str, *args: object, exc_info: bool = False
    ) -> None:
        if not self._logger.isEnabledFor(level):
            return
        window = self._window(kind)
        if window.lines >= self._per_second:
            window.held += 1
            return
        window.lines += 1
        if window.held:
            message += " (%d more like this held back)"
            args = (*args, window.held)
            window.held = 0
        self._logger.log(level, message, *args, exc_info=exc_info)

    def _window(self, kind: str) -> _Window:
        now = self._clock()
        window = self._windows.get(kind)
        if window is None:
            if len(self._windows) >= MAX_KINDS:
                self._windows.clear()
            window = self._windows[kind] = _Window(now)
        elif now - window.started >= 1.0:
            window.started, window.lines = now, 0
        return window
