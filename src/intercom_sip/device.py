"""The device's SIP settings: validated, made durable, then handed to the agent."""

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol

from intercom_sip import errors, jsonbody, status
from intercom_sip.fields import FACTORY
from intercom_sip.phone import CallRecord, NoPhone, Phone
from intercom_sip.settings import Settings, to_view
from intercom_sip.store import Change, HistoryEntry, Store
from intercom_sip.validation import Invalid, validate

log = logging.getLogger(__name__)

SERIAL_KEY: Final = "serial_number"  # in the store's identity table, beside "instance"

# A body and the last accepted settings -> the new settings, or why not.
Rules = Callable[[Mapping[str, Any], Settings], Settings | Invalid]


class Agent(Protocol):
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


class Device:
    """Holds the stored settings in memory; every change goes through the store first."""

    def __init__(
        self,
        store: Store,
        agent: Agent,
        wallclock: Callable[[], float] = time.time,
        phone: Phone | None = None,
    ) -> None:
        self._store, self._agent, self._wallclock = store, agent, wallclock
        self.phone: Phone = phone or NoPhone()
        self._auto_answer = store.load_auto_answer()
        self._auto_answer_lock = asyncio.Lock()
        # Made once, stored, never changed: clients key their driver on it (contract §7.1).
        self.serial_number = store.identity_value(SERIAL_KEY, secrets.token_hex(8).upper())
        self._set_current(store.load_settings() or FACTORY)
        self._tail = self._current  # the last accepted settings, durable or about to be
        self._group: list[Change] = []
        self._group_done: asyncio.Future[None] | None = None
        # Told of each durable change of the settings (the live events, §8).
        self.on_settings: Callable[[Settings], None] | None = None

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
        settings. Raises StoreError when the commit fails; then nothing changed.

        Group commit: the changes accepted during one turn of the event loop are
        committed together at its end, on the loop itself, in one transaction. Check
        and acceptance happen with nothing awaited between them, so each change is
        checked against the one before it without a lock; one change alone waits a
        turn of the loop (microseconds), while a thread hop cost ~0.5 ms after idle.
        """
        body = jsonbody.parse_object(raw)
        if body is None:
            return Invalid(errors.WRONG_JSON_BODY)
        new = rules(body, self._tail)
        if isinstance(new, Invalid):
            return new
        if new == self._tail and self._group_done is None:
            return new  # nothing to change, and nothing pending: already durable
        done = self._accept(Change(new, self._tail, self._wallclock(), actor))
        await done
        return new

    def _accept(self, change: Change) -> "asyncio.Future[None]":
        if change.new != change.old:
            self._group.append(change)
        self._tail = change.new
        if self._group_done is None:
            loop = asyncio.get_running_loop()
            self._group_done = loop.create_future()
            loop.call_soon(self._commit_group)
        return self._group_done

    def _commit_group(self) -> None:
        group, done = self._group, self._group_done
        self._group, self._group_done = [], None
        assert done is not None
        try:
            if group:
                self._store.save_changes(group)
        except Exception as exc:  # StoreError, or a bug: the waiting requests answer it
            self._tail = self._current  # every change of the group is void
            done.set_exception(exc)
            done.add_done_callback(lambda future: future.exception())  # read, if by no one
            return
        if group:
            self._set_current(group[-1].new)
            for change in group:
                log.info("settings changed by %s: %r", change.actor, change.new)
            self._agent.apply(self._current)
            if self.on_settings is not None:
                self.on_settings(self._current)
        done.set_result(None)

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
        commit fails; then nothing changed. The commit runs on a thread: a call in
        progress never waits on the store's fsync."""
        async with self._auto_answer_lock:  # in order: the last POST is what is stored
            if enabled != self._auto_answer:
                await asyncio.to_thread(self._store.save_auto_answer, enabled)
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
