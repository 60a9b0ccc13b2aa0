"""The handset (CONTRACT §6), pure: the call policy over INVITE sessions.

The shell feeds `handle(input, now)` with what the core and the API say (a request for
our user, a response, a cancelled or failed transaction, answer, hang up, dial, DTMF,
"RTP arrived", settings, shutdown) and carries out the outputs in order: responses and
requests for the core, media orders for the RTP side, and reported events (`Ringing`,
`Answered`, `Ended`...) for the status, the call log and the log lines. `deadline()` /
`tick(now)` drive its timers, as the transactions' do. The clock and the rng come in.

The SIP mechanics of a call are its `Session` (`session.py`), held here by dialog id;
the handset keeps what is policy: whether an INVITE may ring (busy, disabled, shutdown),
the ring, auto-answer, no-answer, call and media timers, and the call's record. It takes
one call at a time (§6): a second INVITE is answered busy. The phase is the session's
state.
"""

import random
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from intercom_sip.calls import (
    IDLE,
    CallRecord,
    CallStatus,
    bounded_digits,
    bounded_reason,
    bounded_remote,
)
from intercom_sip.sip.callevents import (
    BUSY,
    DEFAULT_OPTIONS,
    FACTORY_SETTINGS,
    MAX_ABANDONED,
    NO_CALL,
    Answer,
    Answered,
    Calling,
    Dial,
    Dtmf,
    DtmfHeard,
    DtmfReceived,
    Ended,
    FlowMoved,
    Hangup,
    Input,
    NotStarted,
    Options,
    Outcome,
    Output,
    Outputs,
    Phase,
    Received,
    Refused,
    Rejected,
    Respond,
    Ringing,
    RtpArrived,
    SettingsChanged,
    Shutdown,
    StartMedia,
    Timer,
    UpdateMedia,
    transaction_of,
)
from intercom_sip.sip.callflow import (
    ALLOW,
    NO_PORT_REFUSAL,
    NO_RTP_PORT,
    SDP,
    SUPPORTED,
    InviteRefusal,
    new_tag,
    respond,
)
from intercom_sip.sip.core import (
    CancelReceived,
    ResponseReceived,
    Strays,
    TransactionTimedOut,
    TransportError,
)
from intercom_sip.sip.dialog import ids_of
from intercom_sip.sip.message import (
    Request,
    Response,
    escape_user,
    parse_name_addr,
)
from intercom_sip.sip.negotiation import Negotiated
from intercom_sip.sip.session import Session, incoming, no_dialog, outgoing
from intercom_sip.sip.sessionevents import (
    AutoAnswer,
    Connected,
    DialogId,
    End,
    Over,
    PeerAck,
    PeerRequest,
    Retransmit,
    SessionInput,
    SessionState,
    Steps,
)
from intercom_sip.sip.transactions import TransactionId
from intercom_sip.sip.trust import user_of

# The handset's phase, read from its call's session.
PHASES: Final = {
    SessionState.RINGING: Phase.RINGING,
    SessionState.CALLING: Phase.CALLING,
    SessionState.ANSWERED: Phase.ACTIVE,
    SessionState.CONFIRMED: Phase.ACTIVE,
}


@dataclass
class _Call:
    """What the handset keeps of a call beside its session: the record's facts."""

    id: str
    session: Session
    remote: str
    started: float
    answered: float | None = None
    dtmf: str = ""


class Handset:
    """One handset: its call, its timers, the settings that concern it."""

    def __init__(
        self,
        rng: random.Random,
        options: Options = DEFAULT_OPTIONS,
        settings: SettingsChanged = FACTORY_SETTINGS,
        clock_offset: float = 0.0,
    ) -> None:
        self._rng, self.options, self.settings = rng, options, settings
        self.clock_offset = clock_offset  # Unix time = now + clock_offset
        self._calls: dict[DialogId, _Call] = {}
        self._timers: dict[Timer, float] = {}
        # Cancelled INVITEs of ours: a 2xx that crossed the CANCEL is ACKed and BYEd.
        self._abandoned: OrderedDict[TransactionId, Session] = OrderedDict()
        self._closing = False

    # --- the shell's side ----------------------------------------------------------------

    @property
    def phase(self) -> Phase:
        call = self._current
        return PHASES.get(call.session.state, Phase.IDLE) if call else Phase.IDLE

    def handle(self, event: Input, now: float) -> Outputs:
        return _ON_INPUT[type(event)](self, event, now)

    def deadline(self) -> float | None:
        return min(self.pending().values(), default=None)

    def tick(self, now: float) -> Outputs:
        """Fire every timer due by `now`, earliest first."""
        outputs: Outputs = []
        while (due := self._next_due(now)) is not None:
            self._timers.pop(due, None)  # the 2xx's is the session's: it moves on itself
            outputs += _ON_TIMER[due](self, now)
        return outputs

    def pending(self) -> dict[Timer, float]:
        """The running timers and when each fires (the 2xx's is the session's)."""
        timers = dict(self._timers)
        call = self._current
        retransmit = call.session.deadline() if call is not None else None
        if retransmit is not None:
            timers[Timer.RETRANSMIT] = retransmit
        return timers

    def peers(self) -> frozenset[str]:
        """Whose requests within a call are taken (§6.9): the host it came from or went
        to, and its dialog's remote target."""
        return frozenset().union(*(call.session.peers() for call in self._calls.values()))

    def status(self, now: float) -> CallStatus:
        call = self._current
        if call is None:
            return IDLE
        answered, media = call.answered, call.session.agreed()
        return CallStatus(
            state=self.phase.value,
            id=call.id,
            direction=call.session.role.value,
            remote=bounded_remote(call.remote),
            started=self._unix(call.started),
            answered=self._unix(answered) if answered is not None else None,
            ends_at=self._unix(answered) + self.settings.timeout if answered is not None else None,
            duration=int(now - answered) if answered is not None else None,
            codec=media.codec if media else None,
            srtp=_srtp(media),
            dtmf_received=call.dtmf,
        )

    @property
    def _current(self) -> _Call | None:
        return next(iter(self._calls.values()), None)

    # --- API inputs ------------------------------------------------------------------------

    def _to_session(self, event: Answer | Hangup | Dtmf, now: float) -> Outputs:
        """An input for the call's session; without a call, an API input has nothing to
        act on (the session's table says the same of a call in the wrong phase)."""
        call = self._current
        return self._step(call, event, now) if call is not None else [Refused(NO_CALL)]

    def _on_dial(self, event: Dial, now: float) -> Outputs:
        if self._calls or self._closing:
            return [Refused(BUSY)]
        session, steps = outgoing(event, self.options, self._rng)
        call = self._hold(_Call(self._call_id(), session, event.target.uri, now))
        self._timers[Timer.NO_ANSWER] = now + self.options.dial_time
        return [*self._carry(call, steps, now), Calling(self.status(now))]

    # --- settings and shutdown ---------------------------------------------------------

    def _on_settings(self, event: SettingsChanged, now: float) -> Outputs:
        previous, self.settings = self.settings, event
        call = self._current
        if call is None:
            return []
        if not event.enabled:
            return self._end("disabled", now)
        if call.answered is not None:
            return self._set_call_timeout(call.answered, now)
        if self.phase is Phase.RINGING and event.auto_answer != previous.auto_answer:
            self._schedule_auto_answer(call, now)
        return []

    def _on_flow_moved(self, event: FlowMoved, now: float) -> Outputs:
        for call in self._calls.values():
            call.session.move(event.old, event.new)
        return []

    def _on_shutdown(self, event: Shutdown, now: float) -> Outputs:
        self._closing = True
        return self._end("shutdown", now)

    def _set_call_timeout(self, answered: float, now: float) -> Outputs:
        """§6.6: `ends_at` moves with the setting; already past, the call ends now."""
        at = answered + self.settings.timeout
        if at <= now:
            return self._end("timeout", now)
        self._timers[Timer.CALL_TIMEOUT] = at
        return []

    def _schedule_auto_answer(self, call: _Call, now: float) -> None:
        self._timers.pop(Timer.AUTO_ANSWER, None)
        if self.settings.auto_answer:
            at = call.started + self.options.auto_answer_delay
            self._timers[Timer.AUTO_ANSWER] = max(now, at)

    # --- media-side inputs ---------------------------------------------------------------

    def _on_rtp(self, event: RtpArrived, now: float) -> Outputs:
        if Timer.MEDIA in self._timers:
            self._timers[Timer.MEDIA] = now + self.options.media_timeout
        return []

    def _on_dtmf_heard(self, event: DtmfHeard, now: float) -> Outputs:
        call = self._current
        return self._heard(call, event.digits) if call is not None else []

    def _heard(self, call: _Call, digits: str) -> Outputs:
        call.dtmf = (call.dtmf + digits)[-self.options.max_dtmf_kept :]
        return [DtmfReceived(digits)]

    # --- requests from the network ---------------------------------------------------------

    def _on_received(self, event: Received, now: float) -> Outputs:
        request, tid = event.request, event.transaction_id
        if request.method == "ACK":
            return self._on_ack(request, now)
        if tid is None:
            return []  # nothing to answer on
        if ids_of(request)[1]:
            return self._in_dialog(request, tid, now)
        if request.method == "INVITE":
            return self._on_invite(event, tid, now)
        if request.method == "OPTIONS":
            return [Respond(tid, self._capabilities(request))]
        return [Respond(tid, _outside_dialog(request, new_tag(self._rng)))]

    def _on_ack(self, ack: Request, now: float) -> Outputs:
        call = self._calls.get(_dialog_id(ack))
        if call is None or not call.session.takes(ack):
            return []  # an ACK is never answered
        return self._step(call, PeerAck(ack), now)

    def _in_dialog(self, request: Request, tid: TransactionId, now: float) -> Outputs:
        tag = new_tag(self._rng)
        call = self._calls.get(_dialog_id(request))
        if call is None or not call.session.takes(request):
            return [no_dialog(request, tid, tag)]
        return self._step(call, PeerRequest(request, tid, tag), now)

    def _capabilities(self, request: Request) -> Response:
        """§6.10 (RFC 3261 §11.2): OPTIONS gets what an INVITE would (200, 486 busy, 480
        disabled), and says what we take."""
        refusal = self._refusal_now()
        code, reason = (refusal.code, refusal.reason) if refusal else (200, "OK")
        allow = () if code == 200 else (("Allow", ALLOW),)
        extra = (*allow, ("Accept", SDP), ("Supported", SUPPORTED))
        return respond(request, code, reason, new_tag(self._rng), extra=extra)

    def _on_invite(self, event: Received, tid: TransactionId, now: float) -> Outputs:
        request, tag, call = event.request, new_tag(self._rng), self._current
        if call is not None and _merged(request, call.session.invite):
            # §8.2.2.2: the same request again by another path (a fork merged back).
            return [Respond(tid, respond(request, 482, "Loop Detected", tag))]
        refusal = self._refusal(event)
        made = incoming(event, tid, tag, self.options, self._rng) if refusal is None else refusal
        if isinstance(made, InviteRefusal):
            return self._reject(event, tid, tag, made, now)
        session, steps = made
        call = self._hold(_Call(self._call_id(), session, _caller(event), now))
        self._timers[Timer.RING] = now + self.options.ring_time
        self._schedule_auto_answer(call, now)
        return [*self._carry(call, steps, now), Ringing(self.status(now))]

    def _refusal(self, event: Received) -> InviteRefusal | None:
        """The handset's own reasons first (§6.2's order), then the message's. A stranger
        never gets here: the core answered it (§6.9)."""
        refusal = self._refusal_now(direct=event.direct)
        if refusal is not None:
            return refusal
        if event.here.media.port == NO_RTP_PORT:
            return NO_PORT_REFUSAL
        return None

    def _refusal_now(self, direct: bool = False) -> InviteRefusal | None:
        """Why no call could start now, whoever asked; a direct call rings with SIP
        disabled (§6.2)."""
        if self._closing:
            return InviteRefusal(480, "Temporarily Unavailable", "shutdown")
        if not self.settings.enabled and not direct:
            return InviteRefusal(480, "Temporarily Unavailable", "disabled")
        if self._calls:
            return InviteRefusal(486, "Busy Here", "busy")
        return None

    def _reject(
        self, event: Received, tid: TransactionId, tag: str, refusal: InviteRefusal, now: float
    ) -> Outputs:
        request = event.request
        response = respond(request, refusal.code, refusal.reason, tag, extra=refusal.extra)
        record = CallRecord(
            id=self._call_id(),
            direction="in",
            remote=bounded_remote(_caller(event)),
            started=self._unix(now),
            ended=self._unix(now),
            end_reason=refusal.end_reason,
            code=refusal.code,
            reason=bounded_reason(refusal.reason),
            detail=refusal.detail,
        )
        return [Respond(tid, response), Rejected(record)]

    # --- responses and failed transactions ---------------------------------------------------

    def _on_transaction(self, event: Outcome, now: float) -> Outputs:
        """What became of a transaction: its session's, or a cancelled INVITE's."""
        tid = transaction_of(event)
        call = next((c for c in self._calls.values() if c.session.owns(tid)), None)
        if call is not None:
            return self._step(call, event, now)
        abandoned = self._abandoned.get(tid)
        if abandoned is None or not isinstance(event, ResponseReceived):
            return []
        return [s for s in abandoned.handle(event, now) if not isinstance(s, Connected | Over)]

    # --- the session's steps -----------------------------------------------------------------

    def _timed(self, event: AutoAnswer | Retransmit, now: float) -> Outputs:
        call = self._current
        return self._step(call, event, now) if call is not None else []

    def _step(self, call: _Call, event: SessionInput, now: float) -> Outputs:
        return self._carry(call, call.session.handle(event, now), now)

    def _carry(self, call: _Call, steps: Steps, now: float) -> Outputs:
        """The session's outputs, with the handset's part: the call's clock and timers
        at `Connected`, the record at `Over`, the media timer at each media change."""
        outputs: Outputs = []
        for step in steps:
            if isinstance(step, Connected):
                outputs += self._connected(call, now)
            elif isinstance(step, Over):
                outputs.append(self._over(call, step, now))
            else:
                outputs += self._noted(call, step, now)
        if any(isinstance(step, Connected) for step in steps) and call.session.id in self._calls:
            outputs.append(Answered(self.status(now)))
        return outputs

    def _connected(self, call: _Call, now: float) -> Outputs:
        call.answered = now
        for timer in (Timer.RING, Timer.AUTO_ANSWER, Timer.NO_ANSWER):
            self._timers.pop(timer, None)
        return self._set_call_timeout(now, now)

    def _noted(self, call: _Call, output: Output, now: float) -> Outputs:
        if isinstance(output, StartMedia | UpdateMedia):
            self._media_timer(output.media, now)
        if isinstance(output, DtmfReceived):
            return self._heard(call, output.digits)
        return [output]

    def _media_timer(self, media: Negotiated, now: float) -> None:
        """The media timer runs only while the call is not held: a phone that holds with
        `sendonly` may send nothing (baresip 1.0.0 does), and a held call must not end as
        `no media`; a resume starts the timer afresh."""
        if media.direction != "sendrecv":
            self._timers.pop(Timer.MEDIA, None)
        elif Timer.MEDIA not in self._timers:
            self._timers[Timer.MEDIA] = now + self.options.media_timeout

    def _end(self, reason: str, now: float, detail: str = "") -> Outputs:
        """End the call from our side, as its session's state allows."""
        call = self._current
        return self._step(call, End(reason, detail), now) if call is not None else []

    def _over(self, call: _Call, over: Over, now: float) -> Ended:
        """The call is over: its record out, the handset idle."""
        session, answered, media = call.session, call.answered, call.session.agreed()
        record = CallRecord(
            id=call.id,
            direction=session.role.value,
            remote=bounded_remote(call.remote),
            started=self._unix(call.started),
            answered=self._unix(answered) if answered is not None else None,
            ended=self._unix(now),
            duration=int(now - answered) if answered is not None else None,
            codec=media.codec if media else None,
            srtp=_srtp(media) if answered is not None else None,
            dtmf_received=bounded_digits(call.dtmf),
            end_reason=over.reason,
            code=over.code,
            reason=bounded_reason(over.phrase),
            detail=over.detail,
        )
        self._calls.pop(session.id, None)
        self._timers.clear()
        if session.state is SessionState.TERMINATING:
            self._abandoned[session.invite_tid] = session
            while len(self._abandoned) > MAX_ABANDONED:
                self._abandoned.popitem(last=False)
        return Ended(record)

    # --- small helpers ---------------------------------------------------------------------

    def _hold(self, call: _Call) -> _Call:
        self._calls[call.session.id] = call
        return call

    def _next_due(self, now: float) -> Timer | None:
        due = [(at, timer.value, timer) for timer, at in self.pending().items() if at <= now]
        return min(due)[2] if due else None

    def _unix(self, t: float) -> int:
        return round(t + self.clock_offset)

    def _call_id(self) -> str:
        return f"c-{self._rng.getrandbits(64):016x}"


def _ender(reason: str) -> Callable[[Handset, float], Outputs]:
    return lambda handset, now: handset._end(reason, now)


def _to_session(event: AutoAnswer | Retransmit) -> Callable[[Handset, float], Outputs]:
    """A timer of the call's session's (its table says whether it still applies)."""
    return lambda handset, now: handset._timed(event, now)


_ON_TIMER: Final[dict[Timer, Callable[[Handset, float], Outputs]]] = {
    Timer.RING: _ender("no answer"),
    Timer.AUTO_ANSWER: _to_session(AutoAnswer()),
    Timer.RETRANSMIT: _to_session(Retransmit()),
    Timer.NO_ANSWER: _ender("no answer"),
    Timer.CALL_TIMEOUT: _ender("timeout"),
    Timer.MEDIA: _ender("no media"),
}

_ON_INPUT: Final[dict[type, Callable[[Handset, Any, float], Outputs]]] = {
    Received: Handset._on_received,
    ResponseReceived: Handset._on_transaction,
    CancelReceived: Handset._on_transaction,
    TransactionTimedOut: Handset._on_transaction,
    TransportError: Handset._on_transaction,
    NotStarted: Handset._on_transaction,
    Answer: Handset._to_session,
    Hangup: Handset._to_session,
    Dial: Handset._on_dial,
    Dtmf: Handset._to_session,
    RtpArrived: Handset._on_rtp,
    DtmfHeard: Handset._on_dtmf_heard,
    SettingsChanged: Handset._on_settings,
    Shutdown: Handset._on_shutdown,
    FlowMoved: Handset._on_flow_moved,
}


# --- pure helpers ----------------------------------------------------------------------------


def _outside_dialog(request: Request, tag: str) -> Response:
    """A request outside any dialog that is not an INVITE: the core's stray answers
    (OPTIONS 200, BYE/INFO/UPDATE 481, else 405)."""
    return _STRAYS.answer(request, tag)


_STRAYS: Final = Strays()


def _dialog_id(request: Request) -> DialogId:
    """The dialog a request of the peer's names: its Call-ID and our tag (its To-tag)."""
    call_id, local, _ = ids_of(request)
    return call_id, local


def _merged(request: Request, invite: Request) -> bool:
    """Call-ID, From-tag and CSeq of an INVITE we are already handling."""
    call_id, _, remote = ids_of(request)
    same = (call_id, remote, request.headers.get("CSeq"))
    return same == (ids_of(invite)[0], ids_of(invite)[2], invite.headers.get("CSeq"))


def _caller(event: Received) -> str:
    """Who calls, for the status and the call log: the From URI; for a direct call, the
    panel's address it came from (a panel's From names whatever it was set up with)."""
    sender = _uri_of(event.request, "From")
    if not event.direct:
        return sender
    user = user_of(sender)
    host, port = event.flow.remote
    return f"sip:{escape_user(user)}@{host}:{port}" if user else f"sip:{host}:{port}"


def _uri_of(message: Request | Response, header: str) -> str:
    parsed = parse_name_addr(message.headers.get(header) or "")
    return parsed.uri if parsed else ""


def _srtp(media: Negotiated | None) -> bool:
    return media is not None and media.remote_key is not None
