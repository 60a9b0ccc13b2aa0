"""The non-INVITE client transaction's timers (RFC 3261 §17.1.2), pure.

Over UDP a request is sent again at T1, 2·T1, … capped at T2 (Timer E) until
64·T1 pass (Timer F); over TCP/TLS only Timer F runs.
"""

from dataclasses import dataclass
from enum import Enum

T1 = 0.5
T2 = 4.0


class Tick(Enum):
    NOTHING = "nothing"
    RETRANSMIT = "retransmit"
    TIMEOUT = "timeout"


@dataclass
class ClientTransaction:
    branch: str
    data: bytes
    reliable: bool
    started: float
    t1: float = T1

    def __post_init__(self) -> None:
        self._interval = self.t1
        self._next_send = None if self.reliable else self.started + self.t1
        self._gives_up = self.started + 64 * self.t1

    def deadline(self) -> float:
        return self._gives_up if self._next_send is None else min(self._next_send, self._gives_up)

    def tick(self, now: float) -> Tick:
        if now >= self._gives_up:
            return Tick.TIMEOUT
        if self._next_send is not None and now >= self._next_send:
            self._interval = min(2 * self._interval, T2 * self.t1 / T1)
            self._next_send = now + self._interval
            return Tick.RETRANSMIT
        return Tick.NOTHING
