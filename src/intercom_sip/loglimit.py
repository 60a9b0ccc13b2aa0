"""A few lines a second for each kind of repeated event, the rest counted and told later.

A peer that floods us (bad messages, connections over the cap, ICMP errors, failed
accepts at the file limit: 350,000 lines with a traceback each in 25 s were measured) must
not flood the log too. The window is pure (`now` comes in); `LogLimit` is the logging
shell. It depends on nothing of the application: the HTTP server and `sip/` share it.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

PER_WINDOW: Final = 5  # lines of one kind ...
WINDOW: Final = 1.0  # ... each second
MAX_KINDS: Final = 64  # the kinds are names in our code; this only guards against a bug


@dataclass
class Window:
    """How many lines of one kind went out in the current window, and how many did not."""

    start: float = float("-inf")
    count: int = 0
    suppressed: int = 0

    def admit(
        self, now: float, per_window: int = PER_WINDOW, length: float = WINDOW
    ) -> int | None:
        """None: stay silent. Else the number of lines left out since the last one."""
        if now - self.start >= length:
            self.start, self.count = now, 0
        if self.count >= per_window:
            self.suppressed += 1
            return None
        self.count += 1
        left_out, self.suppressed = self.suppressed, 0
        return left_out


def escaped(value: str) -> str:
    """A value from the network fit for one log line: control characters (CR, LF, ESC,
    C1...) and the backslash written as escapes, so that nobody can forge a line or send
    a terminal an escape sequence through our log."""
    return "".join(_ESCAPES.get(char) or _escape(char) for char in value)


def _escape(char: str) -> str:
    if char.isprintable():
        return char
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


_ESCAPES: Final = {"\\": "\\\\", "\r": "\\r", "\n": "\\n", "\t": "\\t"}


class LogLimit:
    """`log(kind, level, message, *args)` as `logger.log`, at most a few lines per kind."""

    def __init__(
        self,
        logger: logging.Logger,
        per_window: int = PER_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger, self._per_window, self._clock = logger, per_window, clock
        self._windows: dict[str, Window] = {}

    def log(
        self, kind: str, level: int, message: str, *args: object, exc_info: bool = False
    ) -> None:
        if not self._logger.isEnabledFor(level):
            return
        window = self._windows.get(kind)
        if window is None:
            if len(self._windows) >= MAX_KINDS:
                self._windows.clear()
            window = self._windows[kind] = Window()
        left_out = window.admit(self._clock(), self._per_window)
        if left_out is None:
            return
        if left_out:
            message += " (%d more like it not logged)"
            args = (*args, left_out)
        self._logger.log(level, message, *args, exc_info=exc_info)
