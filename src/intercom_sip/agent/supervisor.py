"""The SIP agent: makes the stored settings true on the wire, supervised.

Desired state comes from the device (which has it from the store); the agent
keeps none of its own. One task reconciles the binding with the latest desired
settings; if it fails, it is logged and started again from those settings.
"""

import asyncio
import logging
import math
import random
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from intercom_sip.address import Address
from intercom_sip.agent.outbox import Outbox, RegistrationChanged
from intercom_sip.agent.phoneshell import Line
from intercom_sip.agent.status import Status
from intercom_sip.contract.settings import Settings
from intercom_sip.sip import core, digest, transactions
from intercom_sip.sip.dialog import Hop
from intercom_sip.sip.message import redacted
from intercom_sip.sip.port import SipPort, core_flow
from intercom_sip.sip.redial import open_for_dialog
from intercom_sip.sip.register_message import BindingKey
from intercom_sip.sip.registrant import Registrant, SipEnv
from intercom_sip.sip.registration import Account, Timers
from intercom_sip.sip.resolve import Nameserver, Resolver
from intercom_sip.sip.transport import (
    Flow,
    FlowError,
    Inbound,
    InboundLimits,
    TlsOptions,
    UdpEndpoint,
)
from intercom_sip.sip.trust import TOKEN_BYTES

log = logging.getLogger(__name__)
trace = logging.getLogger("intercom_sip.sip.trace")

UNREGISTER_WAIT: Final = 3.0  # seconds a replaced or disabled binding may take to go
RESTART_PAUSE: Final = 1.0  # after a crash; doubled for each crash that follows soon
RESTART_PAUSE_MAX: Final = 60.0


# An INVITE for no user of the port: our user is not set (SIP disabled, or never set up),
# or the caller means someone else; either way nobody here is available (§6.2: 480).
STRAYS: Final = core.Strays(
    answers={**core.Strays().answers, "INVITE": (480, "Temporarily Unavailable")}
)


class Step(Enum):
    NOTHING = "nothing"
    START = "start"
    UPDATE = "update"  # the same binding, re-registered (password, user_id, interval)
    REPLACE = "replace"  # unregister the old binding first, then register the new
    STOP = "stop"


def identity_of(settings: Settings) -> BindingKey:
    """What names the binding at the registrar, from the settings."""
    return BindingKey(
        settings.proxy,
        settings.realm,
        settings.user,
        settings.transport,
        settings.stun_ip,
        settings.stun_port,
    )


def account_of(settings: Settings) -> Account:
    """What the registrar sees of the account; a change of any is a re-REGISTER."""
    return Account(settings.auth_user, settings.password, settings.registration_interval)


def plan(applied: Settings | None, desired: Settings, bound: bool) -> Step:
    """What must change to go from the applied settings to the desired ones (pure)."""
    if not desired.enable:
        return Step.STOP if bound else Step.NOTHING
    if applied is None or not applied.enable or not bound:
        return Step.START
    if identity_of(applied) != identity_of(desired):
        return Step.REPLACE
    if account_of(applied) != account_of(desired):
        return Step.UPDATE
    return Step.NOTHING


@dataclass
class Restarts:
    """Pauses before starting again after crashes: 1, 2, 4 … 60 s, so that a bug that
    recurs at once cannot fill the log; forgotten once the binding, started again, has
    run calmly for longer than its pause and the first."""

    first: float = RESTART_PAUSE
    longest: float = RESTART_PAUSE_MAX
    _pause: float = 0.0
    _resumed: float = -math.inf  # when the binding started again (or is due to)

    def pause(self, now: float) -> float:
        """The pause after a crash at `now`."""
        calm = now - self._resumed > self._pause + self.first
        again = not calm and self._pause > 0  # a crash soon after the last one's restart
        self._pause = min(2 * self._pause, self.longest) if again else self.first
        self._resumed = now + self._pause  # until `resumed` says when it really did
        return self._pause

    def resumed(self, now: float) -> None:
        """A binding started at `now`. A busy loop starts it again late, and the time it
        was late is no calm: counted from the due time, a binding that crashed the moment
        it started again once got the first pause again instead of a longer one."""
        self._resumed = now


@dataclass
class _Slot:
    settings: Settings | None = None
    binding: Registrant | None = None


@dataclass(frozen=True)
class AgentOptions:
    """The service options of the SIP side (never API fields)."""

    tls: TlsOptions = field(default_factory=TlsOptions)
    t1: float = transactions.T1
    timers: Timers = field(default_factory=Timers)
    instance: str = ""
    user_agent: str = ""
    keepalive: float | None = None  # None: per transport (RFC 5626)
    restart_pause: float = RESTART_PAUSE
    dns_servers: tuple[Nameserver, ...] = ()  # none: the system's
    inbound: InboundLimits = field(default_factory=InboundLimits)


class Agent:
    def __init__(self, options: AgentOptions, outbox: Outbox | None = None) -> None:
        """Each change of the registration's status goes to `outbox` (the device's) as
        `RegistrationChanged`, when it happens."""
        self._options = options
        self._outbox = outbox or Outbox()
        self._shown: Status | None = None  # the status last emitted
        self._env: SipEnv | None = None
        self._listener: asyncio.Server | None = None
        self._inbound = Inbound(
            self.receive, options.inbound, closed=self._flow_closed, favoured=self._is_proxy
        )
        self._desired: Settings | None = None
        self._applied = _Slot()
        self._leaving: list[Registrant] = []
        self._wake = asyncio.Event()
        self._busy = False
        self._task: asyncio.Task[None] | None = None
        self._restarts = Restarts(first=options.restart_pause)
        rng = random.SystemRandom()
        # §6.9: in our registered Contact, new at each start; only the registrar learns it.
        self._token = secrets.token_hex(TOKEN_BYTES)
        timers = transactions.SipTimers(t1=options.t1)
        self.port = SipPort(core.Core(rng, timers, strays=STRAYS), token=self._token)
        # Told of every applied settings, in the same turn: a call ends before the
        # un-REGISTER (the task's, in a later turn).
        self.on_settings: Callable[[Settings], None] = _ignore

    # --- the device's side ---------------------------------------------------------------

    def apply(self, settings: Settings) -> None:
        """Make these the settings on the wire; what needs no waiting happens at once: a
        new account's REGISTER leaves before this returns, before the phone is told (a
        call ends before an un-REGISTER all the same: that one waits for the task)."""
        self._desired = settings
        try:
            done = not (self._busy or self._env is None) and self._step_now(settings)
        except Exception:  # the caller is an HTTP request: never let a bug reach it
            log.exception("SIP agent failed; starting again from the stored settings")
            self._abandon()
            done = False
        try:
            self.on_settings(settings)
        except Exception:  # never let the phone's bug stop the registration
            log.exception("the phone failed to take the settings")
        if not done:
            self._wake.set()
        self._changed()

    def reregister(self) -> None:
        """A REGISTER refresh now on the current binding (none while one is replaced)."""
        binding = self._applied.binding
        if binding is not None and not self._busy:
            binding.refresh()

    def status(self) -> Status:
        binding = self._applied.binding
        if binding is not None:
            shown = binding.status()
            # A binding that has let go shows as none: one `disabled` for the page, not
            # the binding's last one and then the empty one when it is dropped.
            return Status() if shown.state == "disabled" else shown
        if self._desired is not None and self._desired.enable:
            return Status(state="registering", transport=self._desired.transport)
        return Status()

    def line(self) -> Line | None:
        """The account as the phone needs it; None while SIP is disabled."""
        settings, binding = self._applied.settings, self._applied.binding
        if settings is None or not settings.enable:
            return None
        status = binding.status() if binding is not None else None
        flow = binding.flow if binding is not None else None
        return Line(
            user=settings.user,
            realm=settings.realm,
            aor=identity_of(settings).aor,
            credentials=digest.Credentials(settings.auth_user, settings.password),
            contact=status.contact if status is not None else None,
            flow=core_flow(flow) if flow is not None else None,
            bound=bool(status is not None and status.bound),
            proxies=binding.proxies() if binding is not None else frozenset(),
            token=self._token,
        )

    async def start(self, udp: socket.socket, tcp: socket.socket | None = None) -> None:
        """Serve the SIP port (bound by the caller) and start reconciling."""
        o = self._options
        endpoint = await UdpEndpoint.open(udp, self.receive, self._unreachable)
        self.port.attach(endpoint.send)
        if tcp is not None:
            self._listener = await asyncio.get_running_loop().create_server(
                self._inbound.protocol, sock=tcp
            )
        self._env = SipEnv(
            endpoint,
            Resolver(o.dns_servers or None),
            o.tls,
            o.instance,
            o.user_agent,
            self.port,
            o.timers,
            random.SystemRandom(),
            self.receive,
            o.keepalive,
            self._token,
        )
        log.info("SIP on %s:%d (udp, tcp)", *endpoint.bound)
        self._task = asyncio.create_task(self._supervise(), name="sip agent")

    async def stop(self) -> None:
        """Unregister within a bounded time, then close the port."""
        if self._task is not None:
            self._task.cancel()
        binding = self._applied.binding
        if binding is not None:
            await binding.stop(UNREGISTER_WAIT)
        if self._env is not None:
            self._env.endpoint.close()
        if self._listener is not None:
            self._listener.close()
        self._inbound.close()
        self.port.close()

    # --- the supervisor ----------------------------------------------------------------

    async def _supervise(self) -> None:
        while True:
            try:
                await self._reconcile_forever()
            except asyncio.CancelledError:
                raise
            except Exception:
                pause = self._restarts.pause(asyncio.get_running_loop().time())
                log.exception(
                    "SIP agent failed; starting again from the stored settings in %.0f s", pause
                )
                self._abandon()
                await asyncio.sleep(pause)
                self._wake.set()

    def _abandon(self) -> None:
        """Drop the binding without a word to the registrar: its state may be the bug."""
        binding = self._applied.binding
        self._applied = _Slot()
        if binding is not None:
            binding.abandon()
        self._changed()

    async def _reconcile_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            desired = self._desired
            if desired is not None:
                await self._reconcile(desired)

    async def _reconcile(self, desired: Settings) -> None:
        if self._step_now(desired):
            return
        self._busy = True  # meanwhile, apply() leaves the work to this task
        try:
            binding = self._applied.binding
            log.info("SIP settings: %s", "stop" if not desired.enable else "replace")
            if binding is not None:
                await self._let_go(binding)
            self._applied = _Slot(desired if not desired.enable else None)
            if desired.enable:
                self._step_now(desired)
        finally:
            self._busy = False
            self._changed()

    def _step_now(self, desired: Settings) -> bool:
        """Do the steps that need no waiting; False for those that must wait."""
        slot = self._applied
        step = plan(slot.settings, desired, slot.binding is not None)
        if step in (Step.STOP, Step.REPLACE):
            return False
        if step is Step.START:
            assert self._env is not None
            identity, account = identity_of(desired), account_of(desired)
            slot.binding = Registrant(identity, account, self._env, changed=self._changed)
            slot.binding.start(self._crashed)
            self._restarts.resumed(asyncio.get_running_loop().time())
        elif step is Step.UPDATE and slot.binding is not None:
            slot.binding.update(account_of(desired))
        slot.settings = desired
        if step is not Step.NOTHING:  # after the REGISTER: the log line's write waits
            log.info("SIP settings: %s", step.value)
        return True

    def _crashed(self, binding: Registrant) -> None:
        """A binding's task died of a bug: start again from the desired settings."""
        if self._applied.binding is binding:
            self._applied = _Slot()
            loop = asyncio.get_running_loop()
            pause = self._restarts.pause(loop.time())
            log.error("SIP binding starts again in %.0f s", pause)
            loop.call_later(pause, self._wake.set)
            self._changed()

    def _changed(self) -> None:
        """The status may have changed (a binding's answer, a new binding...): emitted
        when it did, once."""
        shown = self.status()
        if shown != self._shown:
            self._shown = shown
            self._outbox.emit(RegistrationChanged(shown))

    async def _let_go(self, binding: Registrant) -> None:
        self._leaving.append(binding)  # ICMP about its flow must still reach it
        try:
            await binding.stop(UNREGISTER_WAIT)
        finally:
            self._leaving.remove(binding)

    # --- what arrives ------------------------------------------------------------------

    def receive(self, data: bytes, flow: Flow) -> None:
        """Every SIP message of the port goes to its core, which hands each to its user."""
        if trace.isEnabledFor(logging.DEBUG):
            trace.debug("from %s:%d\n%s", *flow.remote, redacted(data, self._token))
        self.port.receive(data, flow)

    def _is_proxy(self, host: str) -> bool:
        """A connection from the proxy is never refused (§6.9)."""
        binding = self._applied.binding
        return binding is not None and host in binding.proxies()

    async def open_flow(self, hop: Hop, transport: str) -> core.Channel:
        """A flow for a dialog whose connection is gone (§6.10); raises FlowError."""
        if self._env is None:
            raise FlowError("SIP is not started")
        binding = self._applied.binding
        return await open_for_dialog(
            hop, transport, env=self._env, binding=binding, closed=self._flow_closed
        )

    def _flow_closed(self, flow: Flow) -> None:
        """A connection made to us closed: the core ends the transactions on it."""
        self.port.flow_closed(flow)

    def _unreachable(self, remote: Address) -> None:
        for binding in (self._applied.binding, *self._leaving):
            if binding is not None:
                binding.unreachable(remote)


def _ignore(settings: Settings) -> None:
    """No phone listens."""
