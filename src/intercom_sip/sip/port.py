"""The asyncio shell of one SIP port's `Core`: bytes in from the sockets, bytes out to them.

The pure core (`sip/core.py`) keeps the transactions; this shell only feeds it what the
UDP endpoint and the TCP/TLS flows receive, sends its `Transmit`s, keeps one timer for
its deadline, and hands every other event to its users. A core `Channel`'s key names the
socket: `UDP` for the shared endpoint (the remote address says where), or the
`StreamFlow` object itself for a connection.

Every user event goes to the one user the core names in it (`user`): a request to the user
its Request-URI names, a transaction's response, timeout or transport error to the user
that opened it (`request(..., owner)`). An event for a user gone is dropped.
"""

import asyncio
import logging
from collections.abc import Callable, Hashable
from typing import Final, Protocol

from intercom_sip.address import Address
from intercom_sip.loglimit import LogLimit, escaped
from intercom_sip.sip import core
from intercom_sip.sip.message import Request, Response, redacted
from intercom_sip.sip.transactions import TransactionId
from intercom_sip.sip.transport import Flow, FlowError, StreamFlow
from intercom_sip.sip.trust import Trust

log = logging.getLogger(__name__)
trace = logging.getLogger("intercom_sip.sip.trace")
limited = LogLimit(log)

UDP: Final = "udp"  # the key of every flow over the shared UDP endpoint

UserEvent = (
    core.RequestReceived
    | core.CancelReceived
    | core.ResponseReceived
    | core.TransactionTimedOut
    | core.TransportError
)
SendUdp = Callable[[bytes, Address], None]
TrustSource = Callable[[], Trust]


class CoreUser(Protocol):
    def core_event(self, event: UserEvent) -> None:
        """One event of the core for this user (a request of its, or of a transaction it
        opened or serves)."""


def core_flow(flow: Flow) -> core.Channel:
    """The core's view of a transport flow."""
    key: Hashable = flow if flow.reliable else UDP
    return core.Channel(key, flow.reliable, flow.remote)


def transport_of(flow: core.Channel) -> str:
    """udp, tcp or tls: the transport a core flow runs on."""
    return flow.key.transport if isinstance(flow.key, StreamFlow) else UDP


class SipPort:
    """One SIP port: its core, the sockets it sends on, its users by name."""

    def __init__(
        self, sip_core: core.Core, trust: TrustSource | None = None, *, token: str = ""
    ) -> None:
        """`trust`: what the core judges requests by (§6.9), asked before each message,
        so that it always knows the current registration, proxy and dialogs. `token`:
        our Contact's, kept out of the debug trace."""
        self.core = sip_core
        self.trust = trust
        self._token = token
        self._send_udp: SendUdp | None = None
        self._users: dict[str, CoreUser] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None

    def attach(self, send_udp: SendUdp) -> None:
        """The shared UDP endpoint's send, once it is open."""
        self._send_udp = send_udp

    def add_user(self, name: str, user: CoreUser) -> None:
        self._users[name] = user

    def remove_user(self, name: str) -> None:
        self._users.pop(name, None)

    # --- what arrives -------------------------------------------------------------------

    def receive(self, data: bytes, flow: Flow) -> None:
        """A whole message from the UDP endpoint or a connection."""
        if self.trust is not None:
            self.core.trust = self.trust()
        self.core.receive(data, core_flow(flow), self.now())
        self.pump()

    def flow_closed(self, flow: Flow) -> None:
        self.core.flow_closed(flow, self.now())
        self.pump()

    # --- the users' side ------------------------------------------------------------------

    def request(self, request: Request, flow: core.Channel, owner: str) -> TransactionId | None:
        """A client transaction whose events go to the user added as `owner` alone."""
        return self.core.request(request, flow, self.now(), owner=owner)

    def respond(self, transaction_id: TransactionId, response: Response) -> bool:
        return self.core.respond(transaction_id, response, self.now())

    def cancel(self, invite_id: TransactionId) -> TransactionId | None:
        return self.core.cancel(invite_id, self.now())

    def send(self, request: Request, flow: core.Channel) -> None:
        self.core.send(request, flow)

    def fail(self, transaction_id: TransactionId) -> None:
        """The user knows this transaction's flow failed (ICMP, a closed connection)."""
        self.core.send_failed(transaction_id, self.now())
        self.pump()

    def pump(self) -> None:
        """Carry out what the core has queued, then wake at its next deadline. Users may
        call the core from their handlers: what they queue is carried out here too."""
        while (event := self.core.next_event()) is not None:
            if isinstance(event, core.Transmit):
                self._transmit(event)
            elif isinstance(event, core.StrangerRefused):
                _told(event)
            elif isinstance(event, core.FlowRefused):
                _close_stranger(event.flow)
            elif (user := self._users.get(event.user)) is not None:
                user.core_event(event)
        self._arm()

    @staticmethod
    def now() -> float:
        return asyncio.get_running_loop().time()

    # --- sending and timers -------------------------------------------------------------

    def _transmit(self, transmit: core.Transmit) -> None:
        flow = transmit.flow
        if trace.isEnabledFor(logging.DEBUG):
            trace.debug("to %s:%d\n%s", *flow.remote, redacted(transmit.data, self._token))
        try:
            if isinstance(flow.key, StreamFlow):
                flow.key.send(transmit.data)
            elif self._send_udp is not None:
                self._send_udp(transmit.data, flow.remote)
        except FlowError as exc:
            limited.log("send", logging.INFO, "cannot send to %s: %s", flow.remote, exc)
            if transmit.transaction_id is not None:
                self.core.send_failed(transmit.transaction_id, self.now())

    def _arm(self) -> None:
        at = self.core.deadline()
        if at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = None, at
        if at is not None:
            self._timer = asyncio.get_running_loop().call_at(at, self._due)

    def _due(self) -> None:
        self._timer = self._timer_at = None
        self.core.tick(self.now())
        self.pump()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._timer_at = None


def _told(event: core.StrangerRefused) -> None:
    """A stranger's refusal (the core keeps these to a few a second, §6.9); every value
    from the wire escaped."""
    more = f" ({event.left_out} more like it not logged)" if event.left_out else ""
    log.warning(
        "%s from %s at %s:%d refused 403: not the proxy (see --direct-calls)%s",
        escaped(event.method),
        escaped(event.sender),
        *event.source,
        more,
    )


def _close_stranger(flow: core.Channel) -> None:
    if isinstance(flow.key, StreamFlow) and flow.key.open:
        limited.log(
            "stranger flow",
            logging.WARNING,
            "closing the %s connection from %s:%d: a stranger past its answer budget",
            flow.key.transport,
            *flow.remote,
        )
        flow.key.abort()
