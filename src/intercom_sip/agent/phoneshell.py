"""The phone: the asyncio shell around the pure call machine (`sip/call.py`'s `Handset`).

It hands the port's core events to the handset (a request with where we are on the wire),
carries out the handset's outputs (core calls, the RTP session, log lines, the call log),
and keeps one timer for the handset's deadline. The API drives it through the `Phone`
Protocol; every method returns at once. Nothing here waits on the store: ended calls go to
a bounded queue that one task writes on a worker thread.

Where the call is on the wire (`Here`) comes from the registration (`Lines.line()`): the
registered contact's address (STUN and `received`/`rport` already applied) is our Contact,
Via sent-by and SDP address; the RTP port is leased from the pool before the SDP is made.
"""

import asyncio
import contextlib
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Final, Protocol

from intercom_sip.agent import phone
from intercom_sip.agent.outbox import CallChanged, CallEnded, DtmfSent, Outbox
from intercom_sip.calls import IDLE, CallRecord, CallStatus, RtpFigures
from intercom_sip.contract.dialing import DIRECT_PORT, DialTarget
from intercom_sip.contract.settings import Settings
from intercom_sip.loglimit import LogLimit, escaped
from intercom_sip.media.ports import PortError, PortPool, RtpPort
from intercom_sip.media.recording import Recorder
from intercom_sip.media.session import MediaSession
from intercom_sip.media.source import AudioSource
from intercom_sip.sip import callevents as ev
from intercom_sip.sip import core, digest
from intercom_sip.sip.call import Handset
from intercom_sip.sip.callflow import Callee, Here
from intercom_sip.sip.dialog import Hop, ids_of, next_hop
from intercom_sip.sip.message import Request
from intercom_sip.sip.negotiation import Local
from intercom_sip.sip.port import UDP, SipPort, UserEvent, transport_of
from intercom_sip.sip.transactions import TransactionId
from intercom_sip.sip.transport import FlowError, OurAddresses, StreamFlow, source_toward
from intercom_sip.sip.trust import Trust

log = logging.getLogger(__name__)
limited = LogLimit(log)

USER: Final = "phone"  # the port's name for this user
MAX_WRITES: Final = 64  # ended calls waiting for the store; beyond, dropped with a warning
BYE_GRACE: Final = 0.5  # seconds a SIGTERM waits after ending a call
KEY_BYTES: Final = 30  # an SDES AES_CM_128_HMAC_SHA1_80 key and salt
MAX_HELD: Final = 8  # in-dialog messages waiting for a new connection; beyond, sent as before
LINGER: Final = 32.0  # seconds a connection opened for a call outlives it (64*T1: the BYE's)


@dataclass(frozen=True)
class Line:
    """The account as the phone needs it: who we are, and where we are registered."""

    user: str
    realm: str
    aor: str
    credentials: digest.Credentials | None
    contact: str | None  # the registered Contact URI; None until registered
    flow: core.Channel | None  # the registration's flow to the proxy
    bound: bool
    proxies: frozenset[str] = frozenset()  # the proxy's resolved addresses
    token: str = field(default="", repr=False)  # our registered Contact's (§6.9)


class Lines(Protocol):
    def line(self) -> Line | None:
        """The current account; None while SIP is disabled."""


class Redialer(Protocol):
    async def open_flow(self, hop: Hop, transport: str) -> core.Channel:
        """A flow to `hop` for a dialog whose connection is gone; raises FlowError."""


class CallLog(Protocol):
    def save_call(self, record: CallRecord) -> None:
        """Blocking: the shell runs it on a worker thread."""


@dataclass(frozen=True)
class PhoneOptions:
    call: ev.Options
    rtp_host: str  # where RTP ports are bound
    recordings: Path | None = None
    local_port: int = 5060  # our SIP port, for a Contact without a registration


class PhoneShell:
    """The handset on the wire: implements `phone.Phone` for the API."""

    def __init__(
        self,
        port: SipPort,
        lines: Lines,
        *,
        pool: PortPool,
        source: AudioSource,
        call_log: CallLog,
        options: PhoneOptions,
        rng: random.Random | None = None,
        redialer: Redialer | None = None,
        outbox: Outbox | None = None,
    ) -> None:
        """Each change of the call goes to `outbox` (the device's) as it happens:
        `CallChanged`, `CallEnded`, `DtmfReceived`, `DtmfSent`."""
        self._port, self._lines, self._pool, self._source = port, lines, pool, source
        self._outbox = outbox or Outbox()
        self._shown = IDLE  # the status last emitted
        self._log, self._options = call_log, options
        self._rng = rng or random.SystemRandom()
        offset = time.time() - time.monotonic()  # asyncio's loops run on time.monotonic
        self._handset = Handset(self._rng, options.call, clock_offset=offset)
        self._settings = ev.FACTORY_SETTINGS
        self._user = ""
        self._lease: RtpPort | None = None  # the RTP port of the call being set up
        self._media: MediaSession | None = None
        self._opening: asyncio.Task[None] | None = None
        self._opening_lease: RtpPort | None = None  # released if the opening is cancelled
        self._media_file: IO[bytes] | None = None
        self._final_rtp: RtpFigures | None = None
        self._heard_at: float | None = None  # the last RTP arrival told to the handset
        self._timer: asyncio.TimerHandle | None = None
        self._writes: asyncio.Queue[CallRecord] = asyncio.Queue(MAX_WRITES)
        self._writer: asyncio.Task[None] | None = None
        self._ours = OurAddresses(options.rtp_host)
        self._token = ""  # the registered Contact's, once there is one
        self._redialer = redialer
        self._held: list[ev.SendRequest | ev.SendAck] = []  # waiting for a new flow
        self._unsent: list[TransactionId] = []  # the core refused them; told after the turn
        self._moving: asyncio.Task[None] | None = None  # one new connection at a time
        self._opened: core.Channel | None = None  # a connection opened for the call
        port.add_user(USER, self)
        port.trust = self.trust

    # --- wiring -----------------------------------------------------------------------------

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_forever(), name="call log")

    def apply(self, settings: Settings) -> None:
        """The applied settings: our user at the port, and what the handset needs."""
        if settings.user != self._user:
            if self._user:
                self._port.core.remove_user(self._user)
            if settings.user:
                self._port.core.add_user(settings.user, USER)
            self._user = settings.user
        self._settings = replace(self._settings, enabled=settings.enable, timeout=settings.timeout)
        self._feed(self._settings)

    async def close(self, within: float) -> None:
        """SIGTERM: end the call (BYE, CANCEL or 480), let its last messages and the call
        log's writes go, for `within` seconds at most."""
        in_call = self._handset.phase is not ev.Phase.IDLE
        self._feed(ev.Shutdown())
        self._stop_media()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self._writes.join()
                if in_call:  # the BYE's answer, or a retransmission of the BYE
                    await asyncio.sleep(BYE_GRACE)
        if self._writer is not None:
            self._writer.cancel()
        if self._moving is not None:
            self._moving.cancel()
        if self._timer is not None:
            self._timer.cancel()

    def trust(self) -> Trust:
        """What the port's core judges requests by (§6.9), as of now: the registration's
        proxy and token, the call's peers, and our addresses when direct calls are on."""
        line = self._lines.line()
        if line is not None:
            # Made once per start, so still ours after SIP is disabled: a registrar's stale
            # binding then gets 480 (§6.2's order), a forger still 403.
            self._token = line.token
        direct = self._options.call.allow_direct
        return Trust(
            token=self._token,
            proxies=line.proxies if line is not None else frozenset(),
            registration=line.flow.key if line is not None and line.flow else None,
            peers=self._handset.peers(),
            ours=self._ours.get(line.contact if line else None) if direct else frozenset(),
            direct=direct,
            direct_to=USER,
        )

    # --- the Phone Protocol ---------------------------------------------------------------

    def status(self) -> CallStatus:
        return self._status(self._port.now())

    def answer(self) -> CallStatus | phone.NoCall:
        return self._act(ev.Answer(), phone.NO_CALL)

    def hangup(self) -> CallStatus | phone.NoCall:
        return self._act(ev.Hangup(), phone.NO_CALL)

    def dtmf(self, digits: str) -> CallStatus | phone.NoCall:
        answer = self._act(ev.Dtmf(digits), phone.NO_CALL)
        if not isinstance(answer, phone.NoCall):
            self._outbox.emit(DtmfSent(digits))
        return answer

    def set_auto_answer(self, enabled: bool) -> None:
        self._settings = replace(self._settings, auto_answer=enabled)
        self._feed(self._settings)

    def dial(self, target: DialTarget) -> CallStatus | phone.Busy | phone.NotRegistered:
        line = self._lines.line()
        if self._handset.phase is not ev.Phase.IDLE:
            return phone.BUSY
        if target.needs_registration and (line is None or not line.bound or not line.flow):
            return phone.NOT_REGISTERED
        if target.needs_registration:
            assert line is not None and line.flow is not None
            flow, realm = line.flow, line.realm
        else:
            flow, realm = core.Channel(UDP, False, (target.host or "", DIRECT_PORT)), ""
        here = self._here(flow, line, new_call=True)
        if here is None:
            return phone.BUSY  # no RTP port: nothing can be set up (logged)
        dial = ev.Dial(
            Callee(target.uri(realm), not target.needs_registration),
            flow,
            here,
            line.aor if line else f"sip:intercom@{_host_port(here.contact)}",
            line.credentials if line and target.needs_registration else None,
        )
        refused = self._feed(dial)
        if refused is not None:
            return phone.BUSY
        return self.status()

    # --- the core's events --------------------------------------------------------------

    def core_event(self, event: UserEvent) -> None:
        if isinstance(event, core.RequestReceived):
            self._on_request(event)
        else:  # a transaction's response, cancel, timeout or failure: the handset's as is
            self._feed(event)

    def _on_request(self, event: core.RequestReceived) -> None:
        request, line = event.request, self._lines.line()
        new_call = (
            request.method == "INVITE"
            and not ids_of(request)[1]
            and self._handset.phase is ev.Phase.IDLE
        )
        here = self._here(event.flow, line, new_call)
        if here is None:  # no RTP port (logged): the handset answers a new INVITE 503
            here = self._here(event.flow, line, new_call=False)
            assert here is not None
        received = ev.Received(request, event.transaction_id, event.flow, here, event.direct)
        self._feed(received)
        if self._handset.phase is ev.Phase.IDLE:
            self._release_lease()  # the INVITE did not become the call

    # --- inputs and outputs ----------------------------------------------------------------

    def _act(self, event: ev.Input, refusal: phone.NoCall) -> CallStatus | phone.NoCall:
        return refusal if self._feed(event) is not None else self.status()

    def _feed(self, event: ev.Input) -> ev.Refused | None:
        """One input to the handset; its outputs carried out. The refusal, if any."""
        outputs = self._handset.handle(event, self._port.now())
        return self._carry_out(outputs)

    def _carry_out(self, outputs: ev.Outputs) -> ev.Refused | None:
        refused = None
        for output in outputs:
            if isinstance(output, ev.Refused):
                refused = output
            else:
                _OUTPUTS[type(output)](self, output)
        self._tell_unsent()
        self._port.pump()
        self._arm()
        self._emit_status()
        return refused

    def _emit_status(self) -> None:
        """Every input to the handset may change the call: emitted when it did, once."""
        shown = self.status()
        if shown != self._shown:
            self._shown = shown
            self._outbox.emit(CallChanged(shown))

    def _respond(self, output: ev.Respond) -> None:
        self._port.respond(output.transaction_id, output.response)

    def _send_request(self, output: ev.SendRequest) -> None:
        if self._held_for_flow(output):
            return
        if self._port.request(output.request, output.flow, USER) is None:
            # Told once the outputs in hand are carried out: the call's "calling" is
            # among them, and the call must not end before its start is logged.
            self._unsent.append(output.transaction_id)

    def _tell_unsent(self) -> None:
        """The requests the core could not start, to the handset (each ends its call)."""
        unsent, self._unsent = self._unsent, []
        for transaction_id in unsent:
            self._feed(ev.NotStarted(transaction_id))

    def _send_cancel(self, output: ev.SendCancel) -> None:
        self._port.cancel(output.transaction_id)

    def _send_ack(self, output: ev.SendAck) -> None:
        if not self._held_for_flow(output):
            self._port.send(output.request, output.flow)

    # --- a call whose connection is gone (§6.10, RFC 3261 §18.1.1) ---------------------------

    def _held_for_flow(self, output: ev.SendRequest | ev.SendAck) -> bool:
        """Whether `output` waits for a new connection: its TCP/TLS flow is gone."""
        if self._redialer is None or not _gone(output.flow):
            return False
        if len(self._held) >= MAX_HELD:
            limited.log("held", logging.WARNING, "too many requests wait for a new connection")
            return False  # sent on the closed flow: it fails as a transport error
        self._held.append(output)
        if self._moving is None:
            self._moving = asyncio.create_task(self._move(output.flow, output.request))
        return True

    async def _move(self, old: core.Channel, request: Request) -> None:
        hop = next_hop(request)
        new: core.Channel | None = None
        try:
            if hop is None:
                raise FlowError("no next hop")
            assert self._redialer is not None
            new = await self._redialer.open_flow(hop, hop.transport or transport_of(old))
        except FlowError as exc:
            where = hop.host_port if hop else request.uri
            limited.log("redial", logging.WARNING, "cannot reach %s for the call: %s", where, exc)
        except Exception:  # a bug: the waiting requests fail, the phone goes on
            log.exception("cannot open a new connection for the call")
        finally:
            self._moving = None
        held, self._held = self._held, []
        if new is None:
            for output in held:
                if isinstance(output, ev.SendRequest):
                    self._feed(core.TransportError(output.transaction_id, USER))
            return
        line = self._lines.line()
        which = "the registration's" if line is not None and line.flow == new else "a new one"
        log.info("call flow to %s:%d gone: on %s to %s:%d", *old.remote, which, *new.remote)
        self._adopt(new)
        self._feed(ev.FlowMoved(old, new))
        for output in held:
            moved = replace(output, flow=new) if output.flow == old else output
            _OUTPUTS[type(moved)](self, moved)
        self._tell_unsent()
        self._port.pump()

    def _adopt(self, flow: core.Channel) -> None:
        """Keep a connection we opened for the call until LINGER after the call."""
        line = self._lines.line()
        if not isinstance(flow.key, StreamFlow) or (line is not None and line.flow == flow):
            return
        self._let_linger()
        self._opened = flow
        if self._handset.phase is ev.Phase.IDLE:
            self._let_linger()

    def _let_linger(self) -> None:
        opened, self._opened = self._opened, None
        if opened is not None and isinstance(opened.key, StreamFlow):
            asyncio.get_running_loop().call_later(LINGER, opened.key.close)

    def _send_dtmf(self, output: ev.SendDtmf) -> None:
        if self._media is not None:
            self._media.send_dtmf(output.digits)

    def _reported(self, output: ev.Ringing | ev.Calling | ev.Answered) -> None:
        s = output.status
        log.info("call %s %s %s: %s", s.id, s.direction, escaped(s.remote or ""), s.state)

    def _dtmf_received(self, output: ev.DtmfReceived) -> None:
        log.info("DTMF received: %s", output.digits)
        self._outbox.emit(output)

    # --- media -------------------------------------------------------------------------------

    def _start_media(self, output: ev.StartMedia) -> None:
        lease, self._lease = self._lease, None
        if lease is None:
            log.error("no RTP port for the call's media")
            return
        self._heard_at = None
        status = self._handset.status(self._port.now())
        self._opening_lease = lease
        self._opening = asyncio.create_task(self._open_media(lease, output, status.id or "call"))

    async def _open_media(self, lease: RtpPort, output: ev.StartMedia, call_id: str) -> None:
        file, recorder = self._recording(call_id)
        try:
            session = await MediaSession.open(
                lease,
                output.media,
                self._source,
                our_key=output.local.key,
                recorder=recorder,
                on_digit=self._digit,
                clock=asyncio.get_running_loop().time,
            )
        except (OSError, ValueError) as exc:
            log.error("cannot start the call's RTP: %s", exc)
            _close_file(file, recorder)
            return
        finally:
            self._opening = self._opening_lease = None
        if self._handset.status(self._port.now()).id != call_id:
            session.close()  # the call ended meanwhile
            _close_file(file, None)
            return
        self._media, self._media_file = session, file

    def _recording(self, call_id: str) -> tuple[IO[bytes] | None, Recorder | None]:
        folder = self._options.recordings
        if folder is None:
            return None, None
        try:
            file = (folder / f"{call_id}.wav").open("wb")
        except OSError as exc:
            limited.log("recording", logging.WARNING, "cannot record the call: %s", exc)
            return None, None
        return file, Recorder(file)

    def _update_media(self, output: ev.UpdateMedia) -> None:
        if self._media is not None:
            self._media.update(output.media)

    def _stop_media(self, output: ev.StopMedia | None = None) -> None:
        if self._opening is not None:
            self._opening.cancel()  # a task cancelled before it ran never saw its lease
            if self._opening_lease is not None:
                self._opening_lease.release()
            self._opening = self._opening_lease = None
        session, self._media = self._media, None
        if session is not None:
            self._final_rtp = session.stats()
            session.close()
        file, self._media_file = self._media_file, None
        _close_file(file, None)
        self._release_lease()

    def _digit(self, digit: str) -> None:
        self._feed(ev.DtmfHeard(digit))

    def _release_lease(self) -> None:
        lease, self._lease = self._lease, None
        if lease is not None:
            lease.release()

    # --- the end of a call -------------------------------------------------------------------

    def _ended(self, output: ev.Ended | ev.Rejected) -> None:
        record = output.record
        if isinstance(output, ev.Ended):
            self._let_linger()
        rtp = self._final_rtp
        if self._media is not None or self._opening is not None or self._lease is not None:
            self._stop_media()
            rtp = self._final_rtp
        self._final_rtp = None
        # The remote, the reason phrase and the detail come from the wire: escaped (§6.9).
        answer = f" ({record.code} {escaped(record.reason or '')})" if record.code else ""
        detail = f": {escaped(record.detail)}" if record.detail else ""
        log.info(
            "call %s %s %s ended: %s%s%s",
            record.id,
            record.direction,
            escaped(record.remote),
            record.end_reason,
            answer,
            detail,
        )
        logged = replace(record, rtp=rtp) if record.answered is not None else record
        self._outbox.emit(CallEnded(logged))
        try:
            self._writes.put_nowait(logged)
        except asyncio.QueueFull:
            limited.log("log full", logging.WARNING, "call log writes behind: a call dropped")

    async def _write_forever(self) -> None:
        while True:
            record = await self._writes.get()
            try:
                await asyncio.to_thread(self._log.save_call, record)
            except Exception:  # StoreError, or a bug: never the end of the writer
                log.exception("cannot write call %s to the call log", record.id)
            finally:
                self._writes.task_done()

    # --- timers and status ------------------------------------------------------------------

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        at = self._handset.deadline()
        if at is not None:
            self._timer = asyncio.get_running_loop().call_at(at, self._due)

    def _due(self) -> None:
        self._timer = None
        self._tell_rtp()
        self._carry_out(self._handset.tick(self._port.now()))

    def _tell_rtp(self) -> None:
        """RTP heard since the last report restarts the media timer from its arrival."""
        heard = self._media.last_arrival if self._media is not None else None
        if heard is not None and heard != self._heard_at:
            self._heard_at = heard
            self._handset.handle(ev.RtpArrived(), heard)

    def _status(self, now: float) -> CallStatus:
        stats = self._media.stats() if self._media is not None else None
        return replace(self._handset.status(now), rtp=stats)

    # --- where we are ------------------------------------------------------------------------

    def _here(self, flow: core.Channel, line: Line | None, new_call: bool) -> Here | None:
        transport = transport_of(flow)
        address = _host_port(line.contact) if line and line.contact else self._local(flow)
        user = line.user if line else "intercom"
        contact = f"sip:{user}@{address};transport={transport}"
        host = address.rpartition(":")[0].strip("[]")
        port = 0
        if new_call:
            self._release_lease()
            lease = self._pool.take(self._options.rtp_host)
            if isinstance(lease, PortError):
                limited.log("rtp", logging.ERROR, "cannot take an RTP port: %s", lease.message)
                return None
            self._lease, port = lease, lease.port
        key = os.urandom(KEY_BYTES) if transport == "tls" else None
        media = Local(host, port, self._rng.getrandbits(31), key)
        return Here(contact, address, transport, media)

    def _local(self, flow: core.Channel) -> str:
        host = source_toward(self._options.rtp_host, flow.remote)
        return f"{host}:{self._options.local_port}"


OutputHandler = Callable[[PhoneShell, ev.Output], None]
_OUTPUTS: Final[dict[type, OutputHandler]] = {
    ev.Respond: PhoneShell._respond,  # type: ignore[dict-item]
    ev.SendRequest: PhoneShell._send_request,  # type: ignore[dict-item]
    ev.SendCancel: PhoneShell._send_cancel,  # type: ignore[dict-item]
    ev.SendAck: PhoneShell._send_ack,  # type: ignore[dict-item]
    ev.StartMedia: PhoneShell._start_media,  # type: ignore[dict-item]
    ev.UpdateMedia: PhoneShell._update_media,  # type: ignore[dict-item]
    ev.StopMedia: PhoneShell._stop_media,  # type: ignore[dict-item]
    ev.SendDtmf: PhoneShell._send_dtmf,  # type: ignore[dict-item]
    ev.Ringing: PhoneShell._reported,  # type: ignore[dict-item]
    ev.Calling: PhoneShell._reported,  # type: ignore[dict-item]
    ev.Answered: PhoneShell._reported,  # type: ignore[dict-item]
    ev.Ended: PhoneShell._ended,  # type: ignore[dict-item]
    ev.Rejected: PhoneShell._ended,  # type: ignore[dict-item]
    ev.DtmfReceived: PhoneShell._dtmf_received,  # type: ignore[dict-item]
}


def _gone(flow: core.Channel) -> bool:
    """A connection of ours that is closed (UDP is never gone)."""
    return isinstance(flow.key, StreamFlow) and not flow.key.open


def _host_port(uri: str) -> str:
    """`host:port` of `sip:user@host:port;params`."""
    rest = uri.partition(":")[2]
    return rest.rpartition("@")[2].partition(";")[0].partition(">")[0]


def _close_file(file: IO[bytes] | None, recorder: Recorder | None) -> None:
    with contextlib.suppress(OSError):
        if recorder is not None:
            recorder.close()
        if file is not None:
            file.close()
