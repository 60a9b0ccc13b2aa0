"""The device's SIP settings: validated, made durable, then handed to the agent."""

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from intercom_sip import errors
from intercom_sip.agent import status
from intercom_sip.agent.outbox import Outbox, SettingsSaved
from intercom_sip.agent.phone import NoPhone, Phone
from intercom_sip.calls import CallRecord
from intercom_sip.contract import jsonbody
from intercom_sip.contract.fields import FACTORY
from intercom_sip.contract.settings import Settings, to_view
from intercom_sip.contract.validation import Invalid, validate
from intercom_sip.store import Change, HistoryEntry, Store, StoreError
from intercom_sip.worker import Writer

log = logging.getLogger(__name__)

SERIAL_KEY: Final = "serial_number"  # in the store's identity table, beside "instance"
# Changes waiting behind the commit in flight; beyond, refused (the HTTP server's
# connection cap keeps below it: one change per connection).
MAX_WAITING: Final = 1024
TOO_MANY_WAITING: Final = "too many changes waiting for the store"

# A body and the last accepted settings -> the new settings, or why not.
Rules = Callable[[Mapping[str, Any], Settings], Settings | Invalid]


class SipSide(Protocol):
    """What the device needs of the SIP agent."""

    def apply(self, settings: Settings) -> None:
        """Make these settings true on the wire (returns at once)."""

    def status(self) -> status.Status: ...

    def reregister(self) -> None:
        """Send a REGISTER refresh now, if a binding is up (returns at once)."""


class NoAgent:
    def apply(self, settings: Settings) -> None:
        del settings

    def reregister(self) -> None:
        pass

    def status(self) -> status.Status:
        return status.NO_AGENT


@dataclass(frozen=True)
class _Group:
    """Changes committed in one transaction, and their waiters' future."""

    changes: list[Change]
    done: "asyncio.Future[None]"

    @classmethod
    def start(cls) -> "_Group":
        done = asyncio.get_running_loop().create_future()
        done.add_done_callback(_retrieve)  # a failure read even if every client left
        return cls([], done)


def _retrieve(done: "asyncio.Future[None]") -> None:
    if not done.cancelled():
        done.exception()


class Device:
    """Holds the stored settings in memory; every change goes through the store first."""

    def __init__(
        self,
        store: Store,
        agent: SipSide,
        wallclock: Callable[[], float] = time.time,
        phone: Phone | None = None,
        writer: Writer | None = None,
        *,
        outbox: Outbox | None = None,
    ) -> None:
        """`store` is read here, at start, and for the call log (on a thread); every
        write goes through `writer`, by default one over the same connection (a server
        gives it a connection of its own). Each durable change of the settings goes to
        `outbox` (the device's, shared with its agent and phone) as `SettingsSaved`."""
        self._store, self._agent, self._wallclock = store, agent, wallclock
        self._writer = writer or Writer(store)
        self.phone: Phone = phone or NoPhone()
        self._auto_answer = store.load_auto_answer()
        self._auto_answer_lock = asyncio.Lock()
        # Made once, stored, never changed: clients key their driver on it (contract §7.1).
        self.serial_number = store.made_once(SERIAL_KEY, secrets.token_hex(8).upper())
        self._set_current(store.load_settings() or FACTORY)
        self._tail = self._current  # the last accepted settings, durable or about to be
        self._open: _Group | None = None  # accepting changes
        self._flight: _Group | None = None  # the group being committed
        self.outbox = outbox or Outbox()

    @property
    def settings(self) -> Settings:
        return self._current

    @property
    def settings_json(self) -> bytes:
        """The GET answer's body, encoded once per change."""
        return self._current_json

    def start(self) -> None:
        self._agent.apply(self._current)
        self.phone.set_auto_answer(self._auto_answer)

    async def change(self, raw: bytes, actor: str, rules: Rules = validate) -> Settings | Invalid:
        """Validate a POST body (a settings body, or another shape by its `rules`)
        against the last accepted settings; once the change is durable, return the new
        settings. Raises StoreError when the change was not stored; then nothing changed.

        Group commit, off the loop: the changes accepted during one turn of the event
        loop form a group, committed in one transaction on the writer's thread. The
        changes accepted while a group is in flight form the next group, sent when the
        one in flight is durable. Check and acceptance happen with nothing awaited
        between them, so each change is checked against the one before it, durable or
        not, without a lock. The rule that keeps a 200 durable and a 503 harmless: a
        change is answered after its own group's commit, and fails when that commit
        fails or when the group before it fails (it was checked against a state that
        failure makes void); after a failure, changes are checked against what is
        stored.
        """
        body = jsonbody.parse_object(raw)
        if body is None:
            return Invalid(errors.WRONG_JSON_BODY)
        new = rules(body, self._tail)
        if isinstance(new, Invalid):
            return new
        if new == self._tail and self._open is None and self._flight is None:
            return new  # nothing to change, and nothing pending: already durable
        done = self._accept(Change(new, self._tail, self._wallclock(), actor))
        await asyncio.shield(done)  # a client that leaves does not cancel the group
        return new

    def _accept(self, change: Change) -> "asyncio.Future[None]":
        if self._open is not None and len(self._open.changes) >= MAX_WAITING:
            raise StoreError(TOO_MANY_WAITING)  # refused before acceptance: nothing changed
        if self._open is None:
            self._open = _Group.start()
            if self._flight is None:  # the rest of this turn's changes join it
                asyncio.get_running_loop().call_soon(self._send)
        if change.new != change.old:
            self._open.changes.append(change)
        self._tail = change.new
        return self._open.done

    def _send(self) -> None:
        """Hand the open group to the writer; it is in flight until its commit returns."""
        group, self._open = self._open, None
        assert group is not None and self._flight is None
        self._flight = group
        if not group.changes:
            self._settled(group, None)
            return
        self._writer.call(
            lambda store: store.save_changes(group.changes),
            lambda error: self._settled(group, error),
        )

    def _settled(self, group: _Group, error: Exception | None) -> None:
        """The writer's word on a group, on the loop as soon as it comes."""
        if error is not None:  # StoreError, or a bug: the waiting requests answer it
            self._failed(group, error)
        else:
            self._committed(group)

    def _committed(self, group: _Group) -> None:
        self._flight = None
        if group.changes:
            new = group.changes[-1].new
            self._agent.apply(new)  # first: the REGISTER leaves before the rest
            self._set_current(new)
            for change in group.changes:
                log.info("settings changed by %s: %r", change.actor, change.new)
            self.outbox.emit(SettingsSaved(self._current))
        group.done.set_result(None)
        if self._open is not None:  # accepted while this one was in flight
            self._send()

    def _failed(self, group: _Group, exc: Exception) -> None:
        self._flight = None
        self._tail = self._current  # every change accepted since is void
        group.done.set_exception(exc)
        if self._open is not None:  # checked against the void state: fails too, untried
            self._open.done.set_exception(StoreError(f"the change before failed: {exc}"))
            self._open = None

    def reregister(self) -> bool:
        """A REGISTER refresh now; False when SIP is disabled in the stored settings."""
        if not self._current.enable:
            return False
        self._agent.reregister()
        return True

    @property
    def auto_answer(self) -> bool:
        return self._auto_answer

    async def set_auto_answer(self, enabled: bool) -> None:
        """Store the switch durably, then tell the phone. Raises StoreError when the
        commit fails; then nothing changed. The commit runs on the writer's thread: a
        call in progress never waits on the store's fsync."""
        async with self._auto_answer_lock:  # in order: the last POST is what is stored
            if enabled != self._auto_answer:
                await self._writer.run(lambda store: store.save_auto_answer(enabled))
                self._auto_answer = enabled
                log.info("auto-answer %s", "on" if enabled else "off")
            self.phone.set_auto_answer(enabled)

    async def call_history(self, limit: int) -> list[CallRecord]:
        """The call log, newest first (read on a thread, like the log is written)."""
        return await asyncio.to_thread(self._store.calls, limit)

    async def settings_history(self, limit: int) -> list[HistoryEntry]:
        """The changes of the settings, newest first (read on a thread)."""
        return await asyncio.to_thread(self._store.history, limit)

    def status_view(self) -> dict[str, Any]:
        return status.to_view(self._current, self._agent.status())

    def _set_current(self, settings: Settings) -> None:
        self._current = settings
        self._current_json = json.dumps(to_view(settings)).encode()
