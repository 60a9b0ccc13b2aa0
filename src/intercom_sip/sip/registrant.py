"""One registration on the wire: the asyncio shell around the pure machine.

A single task per binding takes events (answers, a transaction's timeout or transport
error, a closed flow, an unreachable peer, a new account, stop: typed values) from a queue
and wakes for the earliest timer: the refresh or retry, a keep-alive. Its REGISTERs are
client transactions of the port's core (`sip/port.py`), which retransmits them and times
them out; the binding is one of the core's users, and takes the events of its own
transactions. A new account while the task waits with a ready flow is sent in the
caller's turn instead, with no hop through the queue: a settings change's REGISTER leaves
in the very turn its commit completes.

The proxy's targets are tried in order (RFC 3263 §4.3): a timeout or a transport error
moves the request to the next one at once; once all have failed, the machine's backoff
applies and the name is looked up again, as it is when the answer's TTL runs out.
"""

import asyncio
import contextlib
import logging
import math
import random
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

from intercom_sip.address import Address
from intercom_sip.loglimit import LogLimit, escaped
from intercom_sip.sip import core, stun
from intercom_sip.sip.message import Request, Response, parse_via
from intercom_sip.sip.port import SipPort, UserEvent, core_flow
from intercom_sip.sip.register_message import BindingKey, Template, answer_of, public_address
from intercom_sip.sip.registration import (
    Account,
    RegisterReply,
    Registration,
    Send,
    State,
    Status,
    Timers,
)
from intercom_sip.sip.resolve import ResolveFailed, Resolver, Target
from intercom_sip.sip.targets import Targets
from intercom_sip.sip.transactions import TransactionId
from intercom_sip.sip.transport import (
    KEEPALIVE,
    Flow,
    FlowError,
    StreamFlow,
    TlsOptions,
    UdpEndpoint,
    source_toward,
)

log = logging.getLogger(__name__)
limited = LogLimit(log)

KEEPALIVE_EVERY: Final = {"udp": 25.0, "tcp": 90.0, "tls": 90.0}  # RFC 5626 §4.4.1
STUN_TIMEOUT: Final = 2.0
# The task's queue: each kind of event is coalesced where it is put (one refresh, one new
# account, one ICMP word about the flow in use), so a few are ever waiting; the bound is
# the backstop that no forged ICMP or burst of POSTs can push past.
MAX_QUEUED: Final = 32


@dataclass(frozen=True)
class FinalResponse:
    """The final response to a REGISTER of ours."""

    tid: TransactionId
    response: Response


@dataclass(frozen=True)
class TransactionFailed:
    """A REGISTER's transaction timed out or could not be sent."""

    tid: TransactionId
    cause: str


@dataclass(frozen=True)
class Closed:
    flow: Flow


@dataclass(frozen=True)
class Unreachable:
    """ICMP says nothing listens at `remote` (UDP)."""

    remote: Address


@dataclass(frozen=True)
class NewAccount:
    """A new account waits (the newest in `Registrant._account`)."""


@dataclass(frozen=True)
class StopAsked:
    pass


@dataclass(frozen=True)
class PublicAddress:
    """What STUN says our address is."""

    address: Address


@dataclass(frozen=True)
class Refresh:
    pass


@dataclass(frozen=True)
class Tick:
    """The earliest timer is due (no event came before it)."""


Event: TypeAlias = (
    FinalResponse
    | TransactionFailed
    | Closed
    | Unreachable
    | NewAccount
    | StopAsked
    | PublicAddress
    | Refresh
    | Tick
)


@dataclass
class SipEnv:
    """What every binding shares: the UDP port, the resolver, TLS, identity, timers."""

    endpoint: UdpEndpoint
    resolver: Resolver
    tls: TlsOptions
    instance: str  # urn:uuid:..., made once and stored
    user_agent: str
    port: SipPort  # its core carries the REGISTER transactions
    timers: Timers = field(default_factory=Timers)
    rng: random.Random = field(default_factory=random.SystemRandom)
    receive: Any = None  # the agent's dispatcher, for stream flows
    keepalive: float | None = None  # seconds; None: KEEPALIVE_EVERY for the transport
    token: str = field(default="", repr=False)  # in our Contact's user part (§6.9)


class Registrant:
    def __init__(
        self,
        identity: BindingKey,
        account: Account,
        env: SipEnv,
        changed: Callable[[], None] | None = None,
    ) -> None:
        """`changed` is called where the status may have changed (it reads `status()`)."""
        self.identity = identity
        self._env = env
        self._changed = changed or _nothing
        self._machine = Registration(account, env.rng, env.timers)
        self._template = Template(
            identity, self._machine.call_id, secrets.token_hex(6), env.instance, env.user_agent
        )
        self._events: asyncio.Queue[Event] = asyncio.Queue(MAX_QUEUED)
        self._account: Account | None = None  # the newest, while a NewAccount waits
        self._unreachable_queued = False
        self._waiting: asyncio.Timeout | None = None  # while the task waits for an event
        self._flow: Flow | None = None
        self._targets = Targets()
        self._tid: TransactionId | None = None  # the REGISTER in flight
        self._public: Address | None = None  # as STUN or received/rport say
        self._stale_contact: str | None = None  # removed with the next REGISTER
        self._contact: str | None = None
        self._keepalive_at = math.inf  # a loop-clock instant; none until a flow is open
        self._stopping = False
        self._refresh_asked = False
        self.done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stun_task: asyncio.Task[None] | None = None

    @property
    def call_id(self) -> str:
        return self._machine.call_id

    @property
    def flow(self) -> Flow | None:
        """The flow to the proxy (calls go on it, and come from its remote host)."""
        return self._flow

    def proxies(self) -> frozenset[str]:
        """The proxy's resolved addresses (§6.9: whose requests are the proxy's)."""
        hosts = {target.host for target in self._targets.all}
        return frozenset(hosts | ({self._flow.remote[0]} if self._flow is not None else set()))

    # --- the agent's side --------------------------------------------------------------

    @property
    def _user(self) -> str:
        """Our name among the core's users (never a SIP user: no request is routed here)."""
        return f"registration {self.call_id}"

    def start(self, crashed: Callable[["Registrant"], None]) -> None:
        self._env.port.add_user(self._user, self)
        first = self._machine.register(self._now())  # `registering` from now, not later
        self._task = asyncio.create_task(self._run(first), name=f"binding {self.identity.aor}")

        def finished(task: asyncio.Task[None]) -> None:
            if not task.cancelled() and task.exception() is not None:
                log.error("%s: binding failed", self.identity.aor, exc_info=task.exception())
                crashed(self)

        self._task.add_done_callback(finished)

    def update(self, account: Account) -> None:
        """The same binding with a new account: REGISTER again. Sent now, in the caller's
        turn, when the task waits with nothing queued and the flow needs no opening (the
        usual case: a settings change); else through the task, which may open a flow."""
        flow = self._ready_flow()
        if flow is None:
            if self._account is None:
                self._put(NewAccount())
            self._account = account  # a later change replaces a waiting one
            return
        self._send(self._machine.update(account, self._now()), flow)
        self._rearm()
        self._changed()

    def refresh(self) -> None:
        """REGISTER now, unless one is in flight (then that one is the refresh). Asked
        again before the first is taken: one event, so a client cannot fill the queue."""
        if not self._refresh_asked:
            self._refresh_asked = True
            self._put(Refresh())

    def core_event(self, event: UserEvent) -> None:
        """The core's word on a transaction of ours; one we gave up is no longer heard."""
        tid = getattr(event, "transaction_id", None)
        if tid is None or tid != self._tid:
            return
        if isinstance(event, core.ResponseReceived):
            if event.response.code >= 200:
                self._put(FinalResponse(tid, event.response))
        elif isinstance(event, core.TransactionTimedOut):
            self._put(TransactionFailed(tid, "timeout"))
        elif isinstance(event, core.TransportError):
            self._put(TransactionFailed(tid, "transport error"))

    def flow_closed(self, flow: Flow) -> None:
        """Once per flow this binding opened (one may close before it is in use)."""
        self._put(Closed(flow))

    def unreachable(self, remote: Address) -> None:
        """ICMP says nothing listens at `remote` (UDP). Anyone can forge one: only a word
        about the flow in use, while a REGISTER waits on it, is queued, and once."""
        flow = self._flow
        if flow is None or flow.reliable or flow.remote != remote or self._tid is None:
            return
        if not self._unreachable_queued:
            self._unreachable_queued = True
            self._put(Unreachable(remote))

    @property
    def backlog(self) -> int:
        """Events waiting for the task (bounded by MAX_QUEUED)."""
        return self._events.qsize()

    def _put(self, event: Event) -> None:
        try:
            self._events.put_nowait(event)
        except asyncio.QueueFull:  # a bug, since each kind is coalesced: never a crash
            log.warning(
                "%s: %s dropped, %d queued", self.identity.aor, type(event).__name__, MAX_QUEUED
            )

    async def stop(self, within: float) -> None:
        """Unregister, waiting at most `within` seconds; then let go of everything."""
        self._put(StopAsked())
        try:
            async with asyncio.timeout(within):
                await self.done.wait()
        except TimeoutError:
            log.warning("%s: no answer to the un-REGISTER in %.1f s", self.identity.aor, within)
        self._let_go()

    def _let_go(self) -> None:
        self._env.port.remove_user(self._user)
        if self._task is not None:
            self._task.cancel()
        if self._flow is not None:
            self._flow.close()

    def abandon(self) -> None:
        """Stop at once, sending nothing (after a bug; the binding expires by itself)."""
        self.done.set()
        self._let_go()

    def status(self) -> Status:
        now = asyncio.get_running_loop().time()
        m = self._machine
        bound = m.bound(now)
        return Status(
            state=m.shown_state(now).value,
            code=m.code,
            reason=m.reason,
            expires=m.granted if bound else None,
            next_refresh=_wall(m.next_at, now),
            contact=self._contact,
            public_address=f"{self._public[0]}:{self._public[1]}" if self._public else None,
            transport=self.identity.transport,
            register_last_attempt=_wall(m.last_attempt, now),
            bound=bound,
        )

    # --- the task ----------------------------------------------------------------------

    async def _run(self, first: Send) -> None:
        if self.identity.transport == "udp" and self.identity.stun_ip:
            # best effort, never waited for
            self._stun_task = asyncio.create_task(self._learn_public_address())
        await self._transmit(first)
        self._changed()
        while not self.done.is_set():
            event: Event
            try:
                async with asyncio.timeout_at(self._deadline()) as self._waiting:
                    event = await self._events.get()
            except TimeoutError:
                event = Tick()
            finally:
                self._waiting = None
            await self._handle(event)
            self._changed()
            if self._stopping and self._machine.state is State.DISABLED:
                self.done.set()

    async def _handle(self, event: Event) -> None:
        now = self._now()
        match event:
            case FinalResponse(tid, response) if tid == self._tid:
                await self._on_response(response, now)
            case TransactionFailed(tid, cause) if tid == self._tid:
                await self._target_failed(cause, now)
            case FinalResponse() | TransactionFailed():
                pass  # of a transaction no longer ours
            case Closed(flow):
                await self._on_closed(flow, now)
            case Unreachable(remote):
                self._unreachable_queued = False
                await self._on_unreachable(remote, now)
            case NewAccount():
                account, self._account = self._account, None
                assert account is not None  # set with each NewAccount queued
                await self._transmit(self._machine.update(account, now))
            case StopAsked():
                self._stopping = True
                await self._transmit(self._machine.unregister(now))
            case PublicAddress(address):
                await self._on_public(address, now)
            case Refresh():
                self._refresh_asked = False
                if self._tid is None and not self._stopping:
                    await self._transmit(self._machine.register(now))
            case Tick():
                await self._on_tick(now)

    def _ready_flow(self) -> Flow | None:
        """The flow to send on from outside the task: only while the task waits with
        nothing queued (what it does comes first), and only a flow that is open toward
        the current target (opening one, or a DNS lookup, waits: that is the task's)."""
        flow = self._flow
        waiting = self._waiting
        if waiting is None or waiting.expired() or not self._events.empty() or self._stopping:
            return None
        if flow is None or (flow.reliable and not _is_open(flow)):
            return None
        target = self._targets.current(self._now())
        if target is None or flow.remote != (target.host, target.port):
            return None
        return flow

    def _rearm(self) -> None:
        """The task waits until the earliest timer as it was: make it the one now."""
        if self._waiting is not None:
            self._waiting.reschedule(self._deadline())

    def _deadline(self) -> float | None:
        """The earliest timer; None waits for an event alone. Every timer here is reset
        or cleared when it fires, so a deadline in the past cannot recur (no busy loop)."""
        deadlines = [self._keepalive_at]
        if self._machine.next_at is not None:
            deadlines.append(self._machine.next_at)
        if self._machine.bound(self._now()):  # its end shows in the status: a change
            deadlines.append(self._machine.bound_until)
        earliest = min(deadlines)
        return None if earliest == math.inf else earliest

    async def _on_tick(self, now: float) -> None:
        if self._machine.due(now) and self._tid is None:
            await self._transmit(self._machine.register(now))
        if now >= self._keepalive_at:
            if self._flow is not None:
                self._send_on_flow(KEEPALIVE)
            self._keepalive_at = now + self._keepalive_every() if self._flow else math.inf

    async def _on_response(self, response: Response, now: float) -> None:
        self._tid = None
        via = parse_via(response.headers.get("Via") or "")
        # Our address is the one of the flow we sent on: an answer over UDP arrives on the
        # shared socket, whose own address may be 0.0.0.0.
        sent_on = self._flow
        if via is not None and sent_on is not None:
            self._learn_from_via(via.params, sent_on)
        answer = answer_of(response, self._contact)
        was_bound = self._machine.bound(now)
        await self._transmit(self._machine.on_answer(answer, now))
        self._log_outcome(answer, was_bound, now)
        if sent_on is not None and self._machine.bound(now) and self._contact_moved(sent_on):
            await self._transmit(self._machine.register(now))  # re-register at the new contact

    async def _on_closed(self, flow: Flow, now: float) -> None:
        if flow is not self._flow:
            return
        self._flow = None
        log.info("%s: %s connection to %s closed", self.identity.aor, flow.transport, flow.remote)
        if self._tid is not None:
            await self._target_failed("connection closed", now)
            return
        if not self._stopping:
            await self._transmit(self._machine.on_flow_closed(now))

    async def _on_unreachable(self, remote: Address, now: float) -> None:
        flow = self._flow
        if flow is None or flow.reliable or flow.remote != remote or self._tid is None:
            return  # not ours, or nothing waits on it: a keep-alive's ICMP tells no more
        await self._target_failed("port unreachable", now)

    async def _target_failed(self, cause: str, now: float) -> None:
        """A timeout or a transport error on the request in flight: the next target."""
        tid, self._tid = self._tid, None
        if tid is not None:
            self._env.port.fail(tid)  # no more retransmissions to where nobody listens
        failed = self._flow.remote if self._flow is not None else None
        self._drop_flow()
        if self._stopping:
            self._machine.on_failure(cause, now)  # an un-REGISTER goes where we were bound
            return
        following = self._targets.failed(now)
        if following is None:
            limited.log(
                "exhausted", logging.WARNING, "%s: %s, no target left", self.identity.aor, cause
            )
            self._machine.on_failure(cause, now)
            return
        log.info(
            "%s: %s at %s, trying %s:%d",
            self.identity.aor,
            cause,
            failed,
            following.host,
            following.port,
        )
        await self._transmit(self._machine.register(now))

    async def _on_public(self, public: Address, now: float) -> None:
        log.info("%s: STUN says our address is %s:%d", self.identity.aor, *public)
        self._public = public
        flow = self._flow
        if flow is not None and self._machine.bound(now) and self._contact_moved(flow):
            await self._transmit(self._machine.register(now))

    # --- sending -----------------------------------------------------------------------

    async def _transmit(self, send: Send | None) -> None:
        if send is None:
            return
        self._changed()  # `registering` (or `unregistering`) while the flow opens
        try:
            flow = await self._ensure_flow()
        except FlowError as exc:
            self._tid = None
            self._machine.on_failure(str(exc), self._now())
            limited.log("flow", logging.WARNING, "%s: %s", self.identity.aor, exc)
            return
        self._send(send, flow)

    def _send(self, send: Send, flow: Flow) -> None:
        """The REGISTER out on `flow`, as a transaction of the port's core."""
        branch = "z9hG4bK" + secrets.token_hex(8)
        request = self._build(send, flow, branch)
        self._tid = self._env.port.request(request, core_flow(flow), self._user)
        if self._tid is None:
            self._machine.on_failure("overload", self._now())  # the core's table is full
        self._env.port.pump()

    def _send_on_flow(self, data: bytes) -> None:
        assert self._flow is not None
        with contextlib.suppress(FlowError):  # the closed flow's event follows
            self._flow.send(data)

    async def _ensure_flow(self) -> Flow:
        flow = self._flow
        usable = flow is not None and (not flow.reliable or _is_open(flow))
        if flow is not None and usable and self._stopping:
            return flow  # the un-REGISTER goes where we are bound, whatever DNS says now
        try:
            target = self._targets.current(self._now()) or await self._locate()
        except FlowError:
            if flow is not None and usable:
                return flow  # DNS down at a refresh: the target we have still works
            raise
        if flow is not None and usable and flow.remote == (target.host, target.port):
            return flow
        self._drop_flow()
        while True:
            try:
                self._flow = await self._open((target.host, target.port))
            except FlowError as exc:
                following = self._targets.failed(self._now())
                if following is None:
                    raise
                log.info(
                    "%s: %s at %s:%d, trying %s:%d",
                    self.identity.aor,
                    exc,
                    target.host,
                    target.port,
                    following.host,
                    following.port,
                )
                target = following
                continue
            self._keepalive_at = self._now() + self._keepalive_every()
            return self._flow

    async def _locate(self) -> Target:
        """Look the proxy up (again): its first target."""
        located = await self._env.resolver.locate(self.identity.proxy, self.identity.transport)
        if isinstance(located, ResolveFailed):
            limited.log("dns", logging.WARNING, "%s: %s", self.identity.aor, located.reason)
            raise FlowError("DNS failure")
        target = self._targets.located(located, self._now())
        assert target is not None  # a Located holds one target at least
        return target

    async def _open(self, target: Address) -> Flow:
        transport = self.identity.transport
        if transport == "udp":
            return self._env.endpoint.flow_to(target)
        return await StreamFlow.connect(
            transport,
            remote=target,
            receive=self._env.receive,
            closed=self.flow_closed,
            tls=self._env.tls.context() if transport == "tls" else None,
            server_name=self.identity.server_name,
        )

    def _keepalive_every(self) -> float:
        return self._env.keepalive or KEEPALIVE_EVERY[self.identity.transport]

    def _drop_flow(self) -> None:
        """Let go of the flow; its closed event, if any, is then not ours."""
        flow, self._flow = self._flow, None
        if flow is not None:
            flow.close()

    def _build(self, send: Send, flow: Flow, branch: str) -> Request:
        contact = self._contact_uri(flow)
        stale = self._stale_contact if self._stale_contact != contact and send.expires else None
        self._contact, self._stale_contact = contact, None
        return self._template.request(
            send,
            self._machine.account,
            transport=flow.transport,
            via=self._advertised(flow),
            branch=branch,
            contact=contact,
            stale_contact=stale,
            cnonce=secrets.token_hex(8),
        )

    def _advertised(self, flow: Flow) -> Address:
        """Our address on this flow, at the fixed SIP port: a connection's own port
        changes with every connection, so it would make a new contact each time."""
        return (source_toward(flow.local[0], flow.remote), self._env.endpoint.bound[1])

    def _contact_uri(self, flow: Flow) -> str:
        address = self._public or self._advertised(flow)
        return self.identity.contact(address, flow.transport, self._env.token)

    def _contact_moved(self, flow: Flow) -> bool:
        current = self._contact
        if current is None or current == self._contact_uri(flow):
            return False
        self._stale_contact = current
        return True

    # --- reading answers ---------------------------------------------------------------

    def _learn_from_via(self, params: dict[str, str], flow: Flow) -> None:
        advertised = self._advertised(flow)
        public = public_address(params, advertised, flow.reliable)
        if public is not None and public != (self._public or advertised):
            log.info("%s: the registrar sees us at %s:%d", self.identity.aor, *public)
            self._public = public

    async def _learn_public_address(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(
                    self.identity.stun_ip,
                    self.identity.stun_port,
                    family=socket.AF_INET,
                    type=socket.SOCK_DGRAM,
                ),
                STUN_TIMEOUT,
            )
        except (OSError, TimeoutError):
            log.info("STUN server %s not found", self.identity.stun_ip)
            return
        server = (str(infos[0][4][0]), int(infos[0][4][1]))
        endpoint = self._env.endpoint
        public = await stun.query(endpoint.send, endpoint.stun_answers, server, STUN_TIMEOUT)
        if public is not None:
            self._put(PublicAddress(public))

    def _log_outcome(self, answer: RegisterReply, was_bound: bool, now: float) -> None:
        state = self._machine.state.value
        if state == "registered" and not was_bound:
            contact = (self._contact or "").replace(self._env.token or "\0", "<token>")
            log.info(
                "%s registered at %s (expires %s)",
                self.identity.aor,
                contact,
                self._machine.granted,
            )
        elif state == "failed":
            log.warning(
                "%s: REGISTER failed: %d %s",
                self.identity.aor,
                answer.code,
                escaped(answer.reason),
            )
        elif state == "disabled" and answer.code >= 300:
            log.warning(
                "%s: un-REGISTER answered %d %s; the binding expires by itself",
                self.identity.aor,
                answer.code,
                escaped(answer.reason),
            )
        elif state == "disabled":
            log.info("%s unregistered", self.identity.aor)

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()


def _nothing() -> None:
    """Nobody is told."""


def _is_open(flow: Flow) -> bool:
    return isinstance(flow, StreamFlow) and flow.open


def _wall(at: float | None, now: float) -> int | None:
    """A loop-clock instant as Unix time, for the status."""
    return None if at is None else round(time.time() + (at - now))
