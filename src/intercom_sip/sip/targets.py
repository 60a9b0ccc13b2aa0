"""Which of the proxy's targets a binding uses now (RFC 3263 §4.3), pure.

The resolver's list is tried in order: a timeout or a transport error moves to the next
target; once the list is exhausted, or its TTL has run out, the name is looked up again.
The target that worked is kept until it fails or the TTL runs out.
"""

from intercom_sip.sip.resolve import Located, Target


class Targets:
    def __init__(self) -> None:
        self._list: tuple[Target, ...] = ()
        self._index = 0
        self._until = 0.0  # a clock instant: the answer may be kept until then

    def current(self, now: float) -> Target | None:
        """The target to use; None when the name must be looked up (again)."""
        if now >= self._until or self._index >= len(self._list):
            return None
        return self._list[self._index]

    def located(self, answer: Located, now: float) -> Target | None:
        """A fresh answer: start again from its first target."""
        self._list, self._index, self._until = answer.targets, 0, now + answer.ttl
        return self.current(now)

    def failed(self, now: float) -> Target | None:
        """The current target failed: the next one, or None when none is left (the next
        attempt then looks the name up again)."""
        self._index += 1
        target = self.current(now)
        if target is None:
            self.forget()
        return target

    def forget(self) -> None:
        self._list, self._index, self._until = (), 0, 0.0

    @property
    def all(self) -> tuple[Target, ...]:
        """Every target of the current answer, tried or not."""
        return self._list

    @property
    def remaining(self) -> int:
        """How many targets after the current one may still be tried."""
        return max(0, len(self._list) - self._index - 1)
