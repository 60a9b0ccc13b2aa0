"""The call machine (CONTRACT §6), pure: one handset, one call at a time.

The shell feeds `handle(input, now)` with what the core and the API say (a request for
our user, a response, a cancelled or failed transaction, answer, hang up, dial, DTMF,
"RTP arrived", settings, shutdown) and carries out the outputs in order: responses and
requests for the core, media orders for the RTP side, and reported events (`Ringing`,
`Answered`, `Ended`...) for the status, the call log and the log lines. `deadline()` /
`tick(now)` drive its timers, as the transactions' do. The clock and the rng come in.

The phase is not stored: it is read from the call (none: idle; answered: active; else
ringing or calling by direction), so that it cannot disagree with the call's facts.
"""

import random
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Final

from intercom_sip.sip import digest, negotiation, sdp
from intercom_sip.sip.callevents import (
    BUSY,
    DEFAULT_OPTIONS,
    FACTORY_SETTINGS,
    IDLE_STATUS,
    MAX_ABANDONED,
    MAX_DIGITS,
    MAX_REDIRECTS,
    NO_CALL,
    TOO_MANY_DIGITS,
    WRONG_DIGITS,
    Answer,
    Answered,
    Calling,
    CallRecord,
    CallStatus,
    Cancelled,
    Dial,
    Dtmf,
    DtmfHeard,
    DtmfReceived,
    Ended,
    Failed,
    FlowMoved,
    Hangup,
    Input,
    Options,
    Outputs,
    Phase,
    Received,
    Refused,
    Rejected,
    Replied,
    Respond,
    Ringing,
    RtpArrived,
    SendAck,
    SendCancel,
    SendDtmf,
    SendRequest,
    SettingsChanged,
    Shutdown,
    StartMedia,
    StopMedia,
    Timer,
    UpdateMedia,
)
from intercom_sip.sip.callflow import (
    ALLOW,
    DTMF,
    DTMF_RELAY,
    NO_PORT_REFUSAL,
    NO_RTP_PORT,
    REDIRECTS,
    SDP,
    SUPPORTED,
    BadDtmf,
    DigestAnswer,
    Here,
    InviteRefusal,
    Outgoing,
    answer_challenge,
    dtmf_info_body,
    dtmf_of,
    end_reason_of,
    invite,
    new_branch,
    new_tag,
    offer_of,
    redirect_problem,
    redirect_target,
    refusal_of,
    respond,
    via,
)
from intercom_sip.sip.core import Channel, Strays
from intercom_sip.sip.dialog import Dialog, DialogError, as_uac, as_uas, ids_of
from intercom_sip.sip.message import (
    Request,
    Response,
    escape_user,
    parse_cseq,
    parse_name_addr,
)
from intercom_sip.sip.negotiation import Negotiated, NotAcceptable
from intercom_sip.sip.syntax import DTMF_DIGITS
from intercom_sip.sip.transactions import Due, TransactionId, TwoXxRetransmissions, trying
from intercom_sip.sip.trust import uri_host, user_of

# --- the call --------------------------------------------------------------------------------


@dataclass
class _TwoXx:
    """A 2xx of ours awaiting its ACK; `our_offer` when the answer comes in the ACK."""

    transaction_id: TransactionId
    response: Response
    cseq: int
    schedule: TwoXxRetransmissions
    our_offer: sdp.SessionDescription | None
    media: Negotiated | None = None  # auto-answered: the media starts at the ACK (§6.9)


@dataclass
class _Call:
    id: str
    direction: str  # "in" or "out"
    remote: str
    flow: Channel
    here: Here
    started: float
    invite: Request  # theirs, or our latest (with credentials)
    invite_tid: TransactionId
    dialog: Dialog | None = None
    answered: float | None = None
    offer: sdp.SessionDescription | None = None  # out: ours in the INVITE
    pending: negotiation.SdpAnswer | None = None  # in: our answer to their offer, for the 200
    session: sdp.SessionDescription | None = None  # our latest SDP sent
    media: Negotiated | None = None
    two_xx: _TwoXx | None = None
    ack: Request | None = None  # out: the ACK of the 2xx, again for each retransmission
    outgoing: Outgoing | None = None
    credentials: digest.Credentials | None = field(default=None, repr=False)
    auth: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict, repr=False)
    nonces: set[str] = field(default_factory=set)
    dtmf: str = ""
    waiting: deque[str] = field(default_factory=deque)  # digits for INFO
    info_tid: TransactionId | None = None
    tried: tuple[str, ...] = ()  # out: the Request-URIs our INVITEs went to (§6.10)


@dataclass(frozen=True)
class _Abandoned:
    """A cancelled INVITE of ours: a 2xx that crossed the CANCEL is ACKed and BYEd."""

    invite: Request
    flow: Channel
    here: Here
    auth: tuple[tuple[str, str], ...]


# --- the machine -------------------------------------------------------------------------------


class Handset:
    """One handset: the call, its timers, the settings that concern it."""

    def __init__(
        self,
        rng: random.Random,
        options: Options = DEFAULT_OPTIONS,
        settings: SettingsChanged = FACTORY_SETTINGS,
        clock_offset: float = 0.0,
    ) -> None:
        self._rng, self.options, self.settings = rng, options, settings
        self.clock_offset = clock_offset  # Unix time = now + clock_offset
        self._call: _Call | None = None
        self._timers: dict[Timer, float] = {}
        self._abandoned: OrderedDict[TransactionId, _Abandoned] = OrderedDict()
        self._closing = False

    # --- the shell's side ----------------------------------------------------------------

    @property
    def phase(self) -> Phase:
        call = self._call
        if call is None:
            return Phase.IDLE
        if call.answered is not None:
            return Phase.ACTIVE
        return Phase.RINGING if call.direction == "in" else Phase.CALLING

    def handle(self, event: Input, now: float) -> Outputs:
        return _ON_INPUT[type(event)](self, event, now)

    def deadline(self) -> float | None:
        return min(self._timers.values(), default=None)

    def tick(self, now: float) -> Outputs:
        """Fire every timer due by `now`, earliest first."""
        outputs: Outputs = []
        while (due := self._next_due(now)) is not None:
            del self._timers[due]
            outputs += _ON_TIMER[due](self, now)
        return outputs

    def pending(self) -> dict[Timer, float]:
        """The running timers and when each fires."""
        return dict(self._timers)

    def peers(self) -> frozenset[str]:
        """Whose requests within the call are taken (§6.9): the host it came from or went
        to, and its dialog's remote target."""
        call = self._call
        if call is None:
            return frozenset()
        target = call.dialog.remote_target if call.dialog is not None else ""
        return frozenset(host for host in (call.flow.remote[0], uri_host(target)) if host)

    def status(self, now: float) -> CallStatus:
        call = self._call
        if call is None:
            return IDLE_STATUS
        answered = call.answered
        return CallStatus(
            state=self.phase.value,
            id=call.id,
            direction=call.direction,
            remote=call.remote,
            started=self._unix(call.started),
            answered=self._unix(answered) if answered is not None else None,
            ends_at=self._unix(answered) + self.settings.timeout if answered is not None else None,
            duration=int(now - answered) if answered is not None else None,
            codec=_codec(call),
            srtp=_srtp(call),
            dtmf_received=call.dtmf,
        )

    # --- API inputs ------------------------------------------------------------------------

    def _on_answer(self, event: Answer, now: float) -> Outputs:
        if self.phase is not Phase.RINGING:
            return [Refused(NO_CALL)]
        return self._answer(now)

    def _on_hangup(self, event: Hangup, now: float) -> Outputs:
        reasons = {Phase.RINGING: "declined", Phase.CALLING: "local hangup"}
        if self.phase is Phase.IDLE:
            return [Refused(NO_CALL)]
        return self._end(reasons.get(self.phase, "local hangup"), now)

    def _on_dial(self, event: Dial, now: float) -> Outputs:
        if self._call is not None or self._closing:
            return [Refused(BUSY)]
        here, rng = event.here, self._rng
        out = Outgoing(
            target=event.target.uri,
            aor=event.aor,
            tag=new_tag(rng),
            call_id=f"{rng.getrandbits(128):032x}",
            route=event.route,
            here=here,
            user_agent=self.options.user_agent,
        )
        offer = negotiation.make_offer(here.media)
        branch = new_branch(rng)
        request = invite(out, 1, branch, offer)
        tid = TransactionId(False, branch, "INVITE")
        self._call = _Call(
            id=self._call_id(),
            direction="out",
            remote=event.target.uri,
            flow=event.flow,
            here=here,
            started=now,
            invite=request,
            invite_tid=tid,
            offer=offer,
            session=offer,
            outgoing=out,
            credentials=event.credentials,
        )
        self._timers[Timer.NO_ANSWER] = now + self.options.dial_time
        return [SendRequest(request, event.flow, tid), Calling(self.status(now))]

    def _on_dtmf(self, event: Dtmf, now: float) -> Outputs:
        call, digits = self._call, event.digits.upper()
        if call is None or self.phase is not Phase.ACTIVE:
            return [Refused(NO_CALL)]
        if not 1 <= len(digits) <= MAX_DIGITS or any(d not in DTMF_DIGITS for d in digits):
            return [Refused(WRONG_DIGITS)]
        if call.media is not None and call.media.event_payload_type is not None:
            return [SendDtmf(digits)]
        if len(call.waiting) + len(digits) > self.options.max_dtmf_waiting:
            return [Refused(TOO_MANY_DIGITS)]
        call.waiting.extend(digits)
        return self._next_info(call) if call.info_tid is None else []

    # --- settings and shutdown ---------------------------------------------------------

    def _on_settings(self, event: SettingsChanged, now: float) -> Outputs:
        previous, self.settings = self.settings, event
        call = self._call
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
        call = self._call
        if call is not None and call.flow == event.old:
            call.flow = event.new
        return []

    def _on_shutdown(self, event: Shutdown, now: float) -> Outputs:
        self._closing = True
        return self._end("shutdown", now) if self._call is not None else []

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
        return self._heard(self._call, event.digits) if self._call is not None else []

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
            return self._in_dialog(event, tid, now)
        if request.method == "INVITE":
            return self._on_invite(event, tid, now)
        if request.method == "OPTIONS":
            return [Respond(tid, self._capabilities(request))]
        return [Respond(tid, _outside_dialog(request, new_tag(self._rng)))]

    def _capabilities(self, request: Request) -> Response:
        """§6.10 (RFC 3261 §11.2): OPTIONS gets what an INVITE would (200, 486 busy, 480
        disabled), and says what we take."""
        refusal = self._refusal_now()
        code, reason = (refusal.code, refusal.reason) if refusal else (200, "OK")
        allow = () if code == 200 else (("Allow", ALLOW),)
        extra = (*allow, ("Accept", SDP), ("Supported", SUPPORTED))
        return respond(request, code, reason, new_tag(self._rng), extra=extra)

    def _on_invite(self, event: Received, tid: TransactionId, now: float) -> Outputs:
        request, tag = event.request, new_tag(self._rng)
        if self._call is not None and _merged(request, self._call.invite):
            # §8.2.2.2: the same request again by another path (a fork merged back).
            return [Respond(tid, respond(request, 482, "Loop Detected", tag))]
        refusal = self._refusal(event)
        accepted = self._acceptance(event, tag) if refusal is None else refusal
        if isinstance(accepted, InviteRefusal):
            return self._reject(event, tid, tag, accepted, now)
        return self._ring(event, tid, *accepted, now)

    def _acceptance(
        self, event: Received, tag: str
    ) -> InviteRefusal | tuple[Dialog, negotiation.SdpAnswer | None]:
        """The dialog and our answer to the offer, if any; or why the INVITE is refused."""
        request, here = event.request, event.here
        refusal = refusal_of(request)
        if refusal is not None:
            return refusal
        offer = offer_of(request)
        if isinstance(offer, sdp.SdpError):
            return InviteRefusal(400, "Bad SDP", detail=offer.reason)
        answer = None if offer is None else negotiation.answer(offer, here.media, here.secure)
        if isinstance(answer, NotAcceptable):
            return InviteRefusal(answer.status, "Not Acceptable Here", detail=answer.reason)
        dialog = as_uas(request, tag)
        if isinstance(dialog, DialogError):
            return InviteRefusal(dialog.status, dialog.reason, detail=dialog.reason)
        return dialog, answer

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
        if self._call is not None:
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
            remote=_caller(event),
            started=self._unix(now),
            answered=None,
            ended=self._unix(now),
            duration=None,
            codec=None,
            srtp=False,
            dtmf_received="",
            end_reason=refusal.end_reason,
            code=refusal.code,
            reason=refusal.reason,
            detail=refusal.detail,
        )
        return [Respond(tid, response), Rejected(record)]

    def _ring(
        self,
        event: Received,
        tid: TransactionId,
        dialog: Dialog,
        answer: negotiation.SdpAnswer | None,
        now: float,
    ) -> Outputs:
        request, here = event.request, event.here
        self._call = call = _Call(
            id=self._call_id(),
            direction="in",
            remote=_caller(event),
            flow=event.flow,
            here=here,
            started=now,
            invite=request,
            invite_tid=tid,
            dialog=dialog,
            pending=answer,
        )
        ringing = respond(request, 180, "Ringing", dialog.local_tag, here.contact)
        self._timers[Timer.RING] = now + self.options.ring_time
        self._schedule_auto_answer(call, now)
        return [
            Respond(tid, trying(request)),
            Respond(tid, ringing),
            Ringing(self.status(now)),
        ]

    def _answer(self, now: float, at_ack: bool = False) -> Outputs:
        """Answer 200. `at_ack` (auto-answer, §6.9): no media before the ACK that carries
        our To-tag, which a forger who never saw our 200 cannot send."""
        call = self._call
        assert call is not None and call.dialog is not None
        local = call.here.media
        body = call.pending.sdp if call.pending else negotiation.make_offer(local)
        response = respond(call.invite, 200, "OK", call.dialog.local_tag, call.here.contact, body)
        call.session, call.answered = body, now
        self._expect_ack(call, call.invite_tid, response, None if call.pending else body, now)
        self._timers.pop(Timer.RING, None)
        self._timers.pop(Timer.AUTO_ANSWER, None)
        outputs: Outputs = [Respond(call.invite_tid, response)]
        outputs += self._set_call_timeout(now, now)
        if call.pending is not None and at_ack and call.two_xx is not None:
            call.two_xx.media = call.pending.media
        elif call.pending is not None:
            outputs += self._media(call, call.pending.media, now)
        return [*outputs, Answered(self.status(now))]

    def _expect_ack(
        self,
        call: _Call,
        tid: TransactionId,
        response: Response,
        our_offer: sdp.SessionDescription | None,
        now: float,
    ) -> None:
        cseq = parse_cseq(response.headers.get("CSeq") or "")
        number = cseq[0] if cseq else 0
        schedule = TwoXxRetransmissions(now, self.options.timers)
        call.two_xx = _TwoXx(tid, response, number, schedule, our_offer)
        self._timers[Timer.RETRANSMIT] = schedule.deadline()

    def _on_ack(self, ack: Request, now: float) -> Outputs:
        call = self._call
        if call is None or call.dialog is None or not call.dialog.matches(ack):
            return []  # an ACK is never answered
        pending, cseq = call.two_xx, parse_cseq(ack.headers.get("CSeq") or "")
        if pending is None or cseq is None or cseq[0] != pending.cseq:
            return []
        call.two_xx = None
        self._timers.pop(Timer.RETRANSMIT, None)
        if pending.media is not None:
            return self._media(call, pending.media, now)
        if pending.our_offer is None:
            return []
        return self._take_answer(call, ack, pending.our_offer, now)

    def _take_answer(
        self,
        call: _Call,
        message: Request | Response,
        our_offer: sdp.SessionDescription,
        now: float,
    ) -> Outputs:
        """The peer's answer to our offer (in an ACK or a 2xx): the media, or the end."""
        theirs = offer_of(message)
        if not isinstance(theirs, sdp.SessionDescription):
            return self._end("failed", now, detail="no SDP answer")
        media = negotiation.read_answer(theirs, our_offer)
        if isinstance(media, NotAcceptable):
            return self._end("failed", now, detail=media.reason)
        return self._media(call, media, now)

    def _media(self, call: _Call, media: Negotiated, now: float) -> Outputs:
        """Start the media, or change it. The media timer runs only while the call is not
        held: a phone that holds with `sendonly` may send nothing (baresip 1.0.0 does), and
        a held call must not end as `no media`; a resume starts the timer afresh."""
        first, call.media = call.media is None, media
        if media.direction != "sendrecv":
            self._timers.pop(Timer.MEDIA, None)
        elif Timer.MEDIA not in self._timers:
            self._timers[Timer.MEDIA] = now + self.options.media_timeout
        return [StartMedia(call.here.media, media) if first else UpdateMedia(media)]

    # --- in-dialog requests -----------------------------------------------------------------

    def _in_dialog(self, event: Received, tid: TransactionId, now: float) -> Outputs:
        request, call = event.request, self._call
        dialog = call.dialog if call is not None else None
        tag = new_tag(self._rng)
        if call is None or dialog is None or not dialog.matches(request):
            no_dialog = respond(request, 481, "Call/Transaction Does Not Exist", tag)
            return [Respond(tid, no_dialog)]
        updated = dialog.receive(request)
        if isinstance(updated, DialogError):
            return [Respond(tid, respond(request, updated.status, updated.reason, tag))]
        call.dialog = updated
        handler = _IN_DIALOG.get(request.method)
        if handler is None:
            return [Respond(tid, respond(request, 405, "Method Not Allowed", tag))]
        return handler(self, call, request, tid, now)

    def _on_bye(self, call: _Call, bye: Request, tid: TransactionId, now: float) -> Outputs:
        ok = Respond(tid, respond(bye, 200, "OK", ""))
        if call.answered is None:  # the caller's BYE on the early dialog (§15)
            terminated = respond(call.invite, 487, "Request Terminated", _local_tag(call))
            ended = self._finish("cancelled", now, 487, "Request Terminated")
            return [ok, Respond(call.invite_tid, terminated), *ended]
        return [ok, StopMedia(), *self._finish("remote hangup", now)]

    def _on_info(self, call: _Call, info: Request, tid: TransactionId, now: float) -> Outputs:
        digits = dtmf_of(info)
        if digits is None:
            accept = (("Accept", f"{DTMF_RELAY}, {DTMF}"),)
            unsupported = respond(info, 415, "Unsupported Media Type", "", extra=accept)
            return [Respond(tid, unsupported)]
        if isinstance(digits, BadDtmf):
            return [Respond(tid, respond(info, 400, digits.reason, ""))]
        heard = self._heard(call, digits) if digits else []
        return [Respond(tid, respond(info, 200, "OK", "")), *heard]

    def _on_options(
        self, call: _Call, options: Request, tid: TransactionId, now: float
    ) -> Outputs:
        extra = (("Accept", SDP), ("Supported", SUPPORTED))
        return [Respond(tid, respond(options, 200, "OK", "", extra=extra))]

    def _on_reinvite(
        self, call: _Call, request: Request, tid: TransactionId, now: float
    ) -> Outputs:
        if call.answered is None or call.two_xx is not None:
            return [self._retry_later(request, tid)]
        return self._renegotiate(call, request, tid, now, with_ack=True)

    def _retry_later(self, request: Request, tid: TransactionId) -> Respond:
        """§14.2 (RFC 3311 §5.2 for UPDATE): an offer while ours is unfinished (the call
        not answered yet, or our 2xx not ACKed): 500 with Retry-After 0..10 s."""
        retry = (("Retry-After", str(self._rng.randint(0, 10))),)
        return Respond(tid, respond(request, 500, "Server Internal Error", "", extra=retry))

    def _on_update(self, call: _Call, request: Request, tid: TransactionId, now: float) -> Outputs:
        if not request.body:  # a refresh without an offer: nothing changes (RFC 3311)
            return [Respond(tid, respond(request, 200, "OK", "", call.here.contact))]
        if call.answered is None:
            return [self._retry_later(request, tid)]
        return self._renegotiate(call, request, tid, now, with_ack=False)

    def _renegotiate(
        self, call: _Call, request: Request, tid: TransactionId, now: float, with_ack: bool
    ) -> Outputs:
        """A re-INVITE or UPDATE, answered from the current session (§6.2): an offer gets
        our answer (a `sendonly` one `recvonly`: hold); a re-INVITE without one gets our
        offer, and its answer comes in the ACK."""
        offer, local = offer_of(request), call.here.media
        if isinstance(offer, sdp.SdpError):
            return [Respond(tid, respond(request, 400, "Bad SDP", ""))]
        if offer is None:
            body = negotiation.make_offer(local, call.session)
            media = None
        else:
            answer = negotiation.answer(offer, local, call.here.secure, call.session)
            if isinstance(answer, NotAcceptable):  # the session goes on as it was
                return [Respond(tid, respond(request, 488, "Not Acceptable Here", ""))]
            body, media = answer.sdp, answer.media
        ok = respond(request, 200, "OK", "", call.here.contact, body)
        call.session = body
        if call.two_xx is not None:
            call.two_xx.media = None  # the media this offer agrees on supersedes it
        if with_ack:
            self._expect_ack(call, tid, ok, body if offer is None else None, now)
        changed = self._media(call, media, now) if media and media != call.media else []
        return [Respond(tid, ok), *changed]

    # --- responses and failed transactions ---------------------------------------------------

    def _on_replied(self, event: Replied, now: float) -> Outputs:
        call, tid, response = self._call, event.transaction_id, event.response
        if call is not None and tid == call.invite_tid and call.direction == "out":
            if call.answered is None:
                return self._invite_answered(call, response, now)
            return self._late_2xx(call, response) if 200 <= response.code < 300 else []
        if tid in self._abandoned and 200 <= response.code < 300:
            return _hang_up_2xx(self._abandoned[tid], response, self._rng)
        if call is not None and tid == call.info_tid and response.code >= 200:
            return self._info_done(call, response, now)
        return []

    def _invite_answered(self, call: _Call, response: Response, now: float) -> Outputs:
        code = response.code
        if code < 200:
            return []  # 180/183: still calling (early media is not played)
        if code < 300:
            return self._connected(call, response, now)
        if code in (401, 407):
            return self._challenged(call, response, now)
        if code in REDIRECTS:
            return self._redirected(call, response, now)
        return self._finish(end_reason_of(code), now, code, response.reason)

    def _redirected(self, call: _Call, response: Response, now: float) -> Outputs:
        """§6.10 (RFC 3261 §8.1.3.4): a new INVITE to the first Contact, in the same
        call (Call-ID and From-tag kept, CSeq up by one, a new branch: what re's sipsess
        does), at most MAX_REDIRECTS times and never to a URI already tried."""
        out, target = call.outgoing, redirect_target(response)
        tried = call.tried or (call.invite.uri,)
        why = redirect_problem(target, tried, MAX_REDIRECTS)
        if why or out is None or target is None:
            return self._finish("failed", now, response.code, response.reason, why)
        call.tried = (*tried, target)
        call.outgoing = out = replace(out, request_uri=target)
        return self._reinvite(call, out)

    def _reinvite(self, call: _Call, out: Outgoing) -> Outputs:
        """Our INVITE again, CSeq up by one, a new branch (a challenge, a redirect)."""
        cseq = parse_cseq(call.invite.headers.get("CSeq") or "")
        branch = new_branch(self._rng)
        assert call.offer is not None
        auth = tuple(call.auth.values())
        call.invite = invite(out, (cseq[0] if cseq else 1) + 1, branch, call.offer, auth)
        call.invite_tid = TransactionId(False, branch, "INVITE")
        return [SendRequest(call.invite, call.flow, call.invite_tid)]

    def _connected(self, call: _Call, response: Response, now: float) -> Outputs:
        dialog = as_uac(call.invite, response)
        if isinstance(dialog, DialogError):  # no To-tag: nothing we could ACK
            return self._finish("failed", now, response.code, response.reason, dialog.reason)
        cseq = parse_cseq(call.invite.headers.get("CSeq") or "")
        call.dialog, call.answered = dialog, now
        call.ack = dialog.ack(cseq[0] if cseq else 1, via(call.here), tuple(call.auth.values()))
        self._timers.pop(Timer.NO_ANSWER, None)
        outputs: Outputs = [SendAck(call.ack, call.flow)]
        outputs += self._set_call_timeout(now, now)
        assert call.offer is not None
        outputs += self._take_answer(call, response, call.offer, now)
        if self._call is call:
            outputs.append(Answered(self.status(now)))
        return outputs

    def _late_2xx(self, call: _Call, response: Response) -> Outputs:
        """A 2xx again: our ACK again; a 2xx of another fork: ACK it and BYE it (§13.2.2.4)."""
        assert call.dialog is not None and call.ack is not None
        if ids_of(response)[1] == call.dialog.remote_tag:
            return [SendAck(call.ack, call.flow)]
        auth = tuple(call.auth.values())
        return _hang_up_2xx(
            _Abandoned(call.invite, call.flow, call.here, auth), response, self._rng
        )

    def _challenged(self, call: _Call, response: Response, now: float) -> Outputs:
        """401/407: answered once per nonce, `max_auth` times at most (a second challenge
        to our answer is the proxy refusing our credentials)."""
        creds, out = call.credentials, call.outgoing
        answered: DigestAnswer | digest.Unsupported = digest.Unsupported("no credentials")
        if creds is not None and len(call.nonces) < self.options.max_auth:
            cnonce = f"{self._rng.getrandbits(64):016x}"
            answered = answer_challenge(response, call.invite.uri, creds, cnonce)
        if isinstance(answered, digest.Unsupported) or answered.nonce in call.nonces or not out:
            detail = answered.reason if isinstance(answered, digest.Unsupported) else "refused"
            return self._finish("failed", now, response.code, response.reason, detail)
        call.nonces.add(answered.nonce)
        call.auth[(answered.header[0], answered.realm)] = answered.header
        return self._reinvite(call, out)

    def _info_done(self, call: _Call, response: Response, now: float) -> Outputs:
        call.info_tid = None
        if response.code in (408, 481):  # §12.2.1.2: the dialog is gone
            return self._end("failed", now, detail=f"INFO answered {response.code}")
        return self._next_info(call) if call.waiting else []

    def _next_info(self, call: _Call) -> Outputs:
        assert call.dialog is not None
        content_type, body = dtmf_info_body(call.waiting.popleft())
        branch = new_branch(self._rng)
        call.dialog, request = call.dialog.request(
            "INFO", via(call.here, branch), content_type, body
        )
        call.info_tid = TransactionId(False, branch, "INFO")
        return [SendRequest(request, call.flow, call.info_tid)]

    def _on_failed(self, event: Failed, now: float) -> Outputs:
        call, tid = self._call, event.transaction_id
        if call is None:
            return []
        if tid == call.invite_tid and call.direction == "out" and call.answered is None:
            return self._finish("failed", now, detail=event.cause)
        if tid == call.info_tid:
            call.info_tid = None
            return self._end("failed", now, detail=f"INFO {event.cause}")
        return []

    def _on_cancelled(self, event: Cancelled, now: float) -> Outputs:
        call = self._call
        if call is None or event.transaction_id != call.invite_tid or call.answered is not None:
            return []
        return self._finish("cancelled", now, 487, "Request Terminated")

    # --- timers ------------------------------------------------------------------------------

    def _on_ring_time(self, now: float) -> Outputs:
        return self._end("no answer", now)

    def _on_auto_answer(self, now: float) -> Outputs:
        return self._answer(now, at_ack=True) if self.phase is Phase.RINGING else []

    def _on_no_answer(self, now: float) -> Outputs:
        return self._end("no answer", now)

    def _on_retransmit(self, now: float) -> Outputs:
        call = self._call
        pending = call.two_xx if call is not None else None
        if pending is None:
            return []
        due = pending.schedule.tick(now)
        if due is Due.GIVE_UP:
            return self._end("failed", now, detail="no ACK")
        self._timers[Timer.RETRANSMIT] = pending.schedule.deadline()
        if due is Due.RETRANSMIT:
            return [Respond(pending.transaction_id, pending.response)]
        return []

    def _on_call_timeout(self, now: float) -> Outputs:
        return self._end("timeout", now)

    def _on_media_timeout(self, now: float) -> Outputs:
        return self._end("no media", now)

    # --- ending -------------------------------------------------------------------------------

    def _end(self, reason: str, now: float, detail: str = "") -> Outputs:
        """End the call from our side, as its phase allows: a final response while
        ringing (603 when declined, else 480), CANCEL while calling, BYE when active."""
        call = self._call
        if call is None:
            return []
        return _ENDERS[self.phase](self, call, reason, now, detail)

    def _end_ringing(self, call: _Call, reason: str, now: float, detail: str) -> Outputs:
        code, phrase = RINGING_ANSWERS.get(reason, (480, "Temporarily Unavailable"))
        response = respond(call.invite, code, phrase, _local_tag(call))
        return [
            Respond(call.invite_tid, response),
            *self._finish(reason, now, code, phrase, detail),
        ]

    def _end_calling(self, call: _Call, reason: str, now: float, detail: str) -> Outputs:
        auth = tuple(call.auth.values())
        self._abandoned[call.invite_tid] = _Abandoned(call.invite, call.flow, call.here, auth)
        while len(self._abandoned) > MAX_ABANDONED:
            self._abandoned.popitem(last=False)
        return [SendCancel(call.invite_tid), *self._finish(reason, now, detail=detail)]

    def _end_active(self, call: _Call, reason: str, now: float, detail: str) -> Outputs:
        assert call.dialog is not None
        branch = new_branch(self._rng)
        call.dialog, bye = call.dialog.request("BYE", via(call.here, branch))
        send = SendRequest(bye, call.flow, TransactionId(False, branch, "BYE"))
        return [send, StopMedia(), *self._finish(reason, now, detail=detail)]

    def _finish(
        self,
        reason: str,
        now: float,
        code: int | None = None,
        phrase: str | None = None,
        detail: str = "",
    ) -> Outputs:
        """The call is over: its record out, the handset idle."""
        call = self._call
        assert call is not None
        answered = call.answered
        record = CallRecord(
            id=call.id,
            direction=call.direction,
            remote=call.remote,
            started=self._unix(call.started),
            answered=self._unix(answered) if answered is not None else None,
            ended=self._unix(now),
            duration=int(now - answered) if answered is not None else None,
            codec=_codec(call),
            srtp=bool(_srtp(call)),
            dtmf_received=call.dtmf,
            end_reason=reason,
            code=code,
            reason=phrase,
            detail=detail,
        )
        self._call = None
        self._timers.clear()
        return [Ended(record)]

    # --- small helpers ---------------------------------------------------------------------

    def _next_due(self, now: float) -> Timer | None:
        due = [(at, timer.value, timer) for timer, at in self._timers.items() if at <= now]
        return min(due)[2] if due else None

    def _unix(self, t: float) -> int:
        return round(t + self.clock_offset)

    def _call_id(self) -> str:
        return f"c-{self._rng.getrandbits(64):016x}"


RINGING_ANSWERS: Final = {"declined": (603, "Decline")}  # else 480 Temporarily Unavailable

_ENDERS: Final[dict[Phase, Callable[[Handset, _Call, str, float, str], Outputs]]] = {
    Phase.RINGING: Handset._end_ringing,
    Phase.CALLING: Handset._end_calling,
    Phase.ACTIVE: Handset._end_active,
}

InDialog = Callable[[Handset, _Call, Request, TransactionId, float], Outputs]
_IN_DIALOG: Final[dict[str, InDialog]] = {
    "BYE": Handset._on_bye,
    "INFO": Handset._on_info,
    "OPTIONS": Handset._on_options,
    "INVITE": Handset._on_reinvite,
    "UPDATE": Handset._on_update,
}

_ON_TIMER: Final[dict[Timer, Callable[[Handset, float], Outputs]]] = {
    Timer.RING: Handset._on_ring_time,
    Timer.AUTO_ANSWER: Handset._on_auto_answer,
    Timer.NO_ANSWER: Handset._on_no_answer,
    Timer.RETRANSMIT: Handset._on_retransmit,
    Timer.CALL_TIMEOUT: Handset._on_call_timeout,
    Timer.MEDIA: Handset._on_media_timeout,
}

_ON_INPUT: Final[dict[type, Callable[[Handset, Any, float], Outputs]]] = {
    Received: Handset._on_received,
    Cancelled: Handset._on_cancelled,
    Replied: Handset._on_replied,
    Failed: Handset._on_failed,
    Answer: Handset._on_answer,
    Hangup: Handset._on_hangup,
    Dial: Handset._on_dial,
    Dtmf: Handset._on_dtmf,
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


def _merged(request: Request, invite: Request) -> bool:
    """Call-ID, From-tag and CSeq of an INVITE we are already handling."""
    call_id, _, remote = ids_of(request)
    same = (call_id, remote, request.headers.get("CSeq"))
    return same == (ids_of(invite)[0], ids_of(invite)[2], invite.headers.get("CSeq"))


def _hang_up_2xx(abandoned: _Abandoned, response: Response, rng: random.Random) -> Outputs:
    """ACK a 2xx we no longer want, then BYE its dialog."""
    dialog = as_uac(abandoned.invite, response)
    if isinstance(dialog, DialogError):
        return []
    cseq = parse_cseq(abandoned.invite.headers.get("CSeq") or "")
    ack = dialog.ack(cseq[0] if cseq else 1, via(abandoned.here), abandoned.auth)
    branch = new_branch(rng)
    _, bye = dialog.request("BYE", via(abandoned.here, branch))
    tid = TransactionId(False, branch, "BYE")
    return [SendAck(ack, abandoned.flow), SendRequest(bye, abandoned.flow, tid)]


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


def _local_tag(call: _Call) -> str:
    return call.dialog.local_tag if call.dialog else ""


def _agreed(call: _Call) -> Negotiated | None:
    """The media the call runs, or has agreed and starts at the ACK (auto-answer, §6.9)."""
    return call.media or (call.two_xx.media if call.two_xx else None)


def _codec(call: _Call) -> str | None:
    media = _agreed(call)
    return media.codec if media else None


def _srtp(call: _Call) -> bool:
    media = _agreed(call)
    return media is not None and media.remote_key is not None
