"""One INVITE session per dialog (RFC 3261 §13-15, RFC 3311, RFC 6086), pure, both roles.

A `Session` is the SIP side of one call: the offer/answer (`negotiation.py`), our 2xx
sent again until its ACK, CANCEL, BYE, re-INVITE and UPDATE, DTMF by INFO, and the
digest answer to a 401/407 of our INVITE. It knows nothing of policy: whether a call
may ring, when it is answered or given up is the handset's (`call.py`).

Its phase changes only through `TABLE`: a row says, for a state and an event kind,
the handler that carries the event out and the state the event leads to. A handler
whose outcome depends on the message (our digest answer refused, an SDP answer we
cannot take) feeds the session a follow-up event (`End`, `GiveUp`) that moves it again
through the table. A (state, event) pair without a row is answered in one place,
`unanswered`: a request finds no dialog (481), an API call finds no call to act on
(`No call`), anything else (an ACK, a response, a timer) is absorbed, as RFC 3261
absorbs them.

Besides the messages for the core and the media orders, a session emits two notes for
its owner: `Connected` (the call is answered, at the point the call's clock starts)
and `Over` (the session ended: why, and the status line that ended it).
"""

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import Enum, auto
from typing import Any, Final

from intercom_sip.sip import digest, negotiation, sdp
from intercom_sip.sip.callevents import (
    MAX_DIGITS,
    MAX_REDIRECTS,
    NO_CALL,
    TOO_MANY_DIGITS,
    WRONG_DIGITS,
    Answer,
    Cancelled,
    Dial,
    Dtmf,
    DtmfReceived,
    Failed,
    Hangup,
    Options,
    Output,
    Received,
    Refused,
    Replied,
    Respond,
    SendAck,
    SendCancel,
    SendDtmf,
    SendRequest,
    StartMedia,
    StopMedia,
    UpdateMedia,
)
from intercom_sip.sip.callflow import (
    DTMF,
    DTMF_RELAY,
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
from intercom_sip.sip.core import Channel
from intercom_sip.sip.dialog import Dialog, DialogError, as_uac, as_uas, ids_of
from intercom_sip.sip.message import Request, Response, parse_cseq
from intercom_sip.sip.negotiation import Negotiated, NotAcceptable
from intercom_sip.sip.syntax import DTMF_DIGITS
from intercom_sip.sip.transactions import Due, TransactionId, TwoXxRetransmissions, trying
from intercom_sip.sip.trust import uri_host

DialogId = tuple[str, str]  # (Call-ID, our tag): what every request of the peer names


class Role(Enum):
    INCOMING = "in"
    OUTGOING = "out"


class SessionState(Enum):
    RINGING = "ringing"  # in: their INVITE answered 180; ours to answer
    CALLING = "calling"  # out: our INVITE sent, no final response yet
    ANSWERED = "answered"  # a 2xx of ours (the first, or a re-INVITE's) awaits its ACK
    CONFIRMED = "confirmed"  # the call is up, no offer of theirs unfinished
    TERMINATING = "terminating"  # out: CANCEL sent; a 2xx that crossed it is ACKed, BYEd
    ENDED = "ended"


class SessionEvent(Enum):
    # the peer's requests in the dialog (by method, after the CSeq check)
    ACK = auto()  # the ACK of the 2xx we are sending again
    STRAY_ACK = auto()  # an ACK of nothing we wait for
    BYE = auto()
    INFO = auto()
    OPTIONS = auto()
    REINVITE = auto()  # with an offer we can answer, or none
    REINVITE_REFUSED = auto()  # with an offer we cannot take (400, 488)
    UPDATE = auto()  # with an offer we can answer
    UPDATE_REFUSED = auto()
    UPDATE_REFRESH = auto()  # without a body: nothing changes (RFC 3311)
    OTHER_REQUEST = auto()  # a method we do not take in a dialog: 405
    BAD_SEQUENCE = auto()  # a CSeq out of order, or unreadable (§12.2.2)
    CANCELLED = auto()  # the core answered their CANCEL
    # what became of our INVITE
    PROVISIONAL = auto()
    SUCCESS = auto()
    SUCCESS_UNUSABLE = auto()  # a 2xx that makes no dialog (no To-tag...)
    CHALLENGE = auto()  # 401/407
    REDIRECT = auto()  # 301/302
    REFUSED = auto()  # any other final response
    INVITE_FAILED = auto()  # timed out, transport error, overload
    # what became of our INFO
    INFO_DONE = auto()
    INFO_GONE = auto()  # 408/481: the dialog is gone (§12.2.1.2)
    INFO_FAILED = auto()
    STRAY = auto()  # a response or failure of no transaction of this session
    # ours
    ANSWER = auto()
    AUTO_ANSWER = auto()
    HANGUP = auto()
    END = auto()
    GIVE_UP = auto()
    DTMF = auto()
    RETRANSMIT = auto()


S, E = SessionState, SessionEvent

# --- the inputs of a session beside the handset's ------------------------------------------


@dataclass(frozen=True)
class PeerRequest:
    """A request of the peer's in the dialog; `tag` is the To-tag of a 481 or 405."""

    request: Request
    transaction_id: TransactionId
    tag: str = ""


@dataclass(frozen=True)
class PeerAck:
    """An ACK in the dialog (it has no transaction, and is never answered)."""

    request: Request


@dataclass(frozen=True)
class AutoAnswer:
    """Answer now, the media held until the ACK that carries our To-tag (§6.9)."""


@dataclass(frozen=True)
class End:
    """End the session from our side, as its state allows: a final response while
    ringing (603 when declined, else 480), CANCEL while calling, BYE when answered."""

    reason: str
    detail: str = ""


@dataclass(frozen=True)
class GiveUp:
    """The session is over without a message of ours (our INVITE failed)."""

    reason: str
    code: int | None = None
    phrase: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class Retransmit:
    """The 2xx timer is due."""


# --- the notes for the owner -----------------------------------------------------------------


@dataclass(frozen=True)
class Connected:
    """The call is answered: our 2xx went out, or theirs came in."""


@dataclass(frozen=True)
class Over:
    """The session ended: for the call log."""

    reason: str
    code: int | None = None
    phrase: str | None = None
    detail: str = ""


Note = Connected | Over
Steps = list[Output | Note]

NO_DIALOG: Final = (481, "Call/Transaction Does Not Exist")
RINGING_ANSWERS: Final = {"declined": (603, "Decline")}  # else 480 Temporarily Unavailable
TEMPORARILY_UNAVAILABLE: Final = (480, "Temporarily Unavailable")
CHALLENGED: Final = frozenset({401, 407})
DIALOG_GONE: Final = frozenset({408, 481})


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
class Session:
    """One INVITE dialog, ours or theirs; made by `incoming` or `outgoing`."""

    id: DialogId
    role: Role
    state: SessionState
    flow: Channel
    here: Here
    invite: Request  # theirs, or our latest (with credentials)
    invite_tid: TransactionId
    options: Options
    rng: random.Random = field(repr=False)
    dialog: Dialog | None = None
    offer: sdp.SessionDescription | None = None  # out: ours in the INVITE
    pending: negotiation.SdpAnswer | None = None  # in: our answer to their offer, for the 200
    sent: sdp.SessionDescription | None = None  # our latest SDP sent
    media: Negotiated | None = None
    two_xx: _TwoXx | None = None
    ack: Request | None = None  # out: the ACK of the 2xx, again for each retransmission
    outgoing: Outgoing | None = None
    credentials: digest.Credentials | None = field(default=None, repr=False)
    auth: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict, repr=False)
    nonces: set[str] = field(default_factory=set)
    waiting: deque[str] = field(default_factory=deque)  # digits for INFO
    info_tid: TransactionId | None = None
    tried: tuple[str, ...] = ()  # out: the Request-URIs our INVITEs went to (§6.10)

    # --- the owner's side ------------------------------------------------------------------

    def handle(self, event: Any, now: float) -> Steps:
        """Any input of the session: its kind, then the table."""
        return self.step(self.kind_of(event), event, now)

    def kind_of(self, event: Any) -> SessionEvent:
        return _KINDS[type(event)](self, event)

    def step(self, kind: SessionEvent, event: Any, now: float) -> Steps:
        """The one way a session's state changes: the row of (state, kind)."""
        row = TABLE.get((self.state, kind))
        if row is None:
            return unanswered(kind, event)
        if isinstance(event, PeerRequest) and kind is not E.BAD_SEQUENCE:
            self._receive(event.request)  # its CSeq and target, whatever the method (§12.2.2)
        if row.next is not None:
            self.state = row.next
        return row.handler(self, event, now)

    def deadline(self) -> float | None:
        """When the 2xx is due again (the only timer of the session's own)."""
        return self.two_xx.schedule.deadline() if self.two_xx is not None else None

    def owns(self, tid: TransactionId) -> bool:
        return tid in (self.invite_tid, self.info_tid)

    def takes(self, request: Request) -> bool:
        """Whether a request of the peer's names this dialog (before a dialog exists,
        the table answers it)."""
        return self.dialog is None or self.dialog.matches(request)

    def move(self, old: Channel, new: Channel) -> None:
        """The call's TCP/TLS flow was replaced (RFC 3261 §18.1.1)."""
        if self.flow == old:
            self.flow = new

    def peers(self) -> frozenset[str]:
        """The host it came from or went to, and the dialog's remote target (§6.9)."""
        target = self.dialog.remote_target if self.dialog is not None else ""
        return frozenset(host for host in (self.flow.remote[0], uri_host(target)) if host)

    def agreed(self) -> Negotiated | None:
        """The media the call runs, or has agreed and starts at the ACK (§6.9)."""
        return self.media or (self.two_xx.media if self.two_xx else None)

    # --- event kinds ---------------------------------------------------------------------

    def _request_kind(self, event: PeerRequest) -> SessionEvent:
        request = event.request
        if self.dialog is not None and isinstance(self.dialog.receive(request), DialogError):
            return E.BAD_SEQUENCE
        if request.method == "INVITE":
            return E.REINVITE if self._offer_taken(request) else E.REINVITE_REFUSED
        if request.method == "UPDATE":
            if not request.body:
                return E.UPDATE_REFRESH
            return E.UPDATE if self._offer_taken(request) else E.UPDATE_REFUSED
        return _METHODS.get(request.method, E.OTHER_REQUEST)

    def _ack_kind(self, event: PeerAck) -> SessionEvent:
        cseq = parse_cseq(event.request.headers.get("CSeq") or "")
        pending = self.two_xx
        return E.ACK if pending and cseq and cseq[0] == pending.cseq else E.STRAY_ACK

    def _reply_kind(self, event: Replied) -> SessionEvent:
        tid, response = event.transaction_id, event.response
        if tid == self.invite_tid and self.role is Role.OUTGOING:
            return _invite_reply_kind(self.invite, response)
        if tid == self.info_tid and response.code >= 200:
            return E.INFO_GONE if response.code in DIALOG_GONE else E.INFO_DONE
        return E.STRAY

    def _failure_kind(self, event: Failed) -> SessionEvent:
        tid = event.transaction_id
        if tid == self.invite_tid and self.role is Role.OUTGOING:
            return E.INVITE_FAILED
        return E.INFO_FAILED if tid == self.info_tid else E.STRAY

    def _cancel_kind(self, event: Cancelled) -> SessionEvent:
        return E.CANCELLED if event.transaction_id == self.invite_tid else E.STRAY

    def _offer_taken(self, request: Request) -> bool:
        offer = offer_of(request)
        if isinstance(offer, sdp.SdpError):
            return False
        return offer is None or not isinstance(self._answer_to(offer), NotAcceptable)

    def _answer_to(self, offer: sdp.SessionDescription) -> negotiation.SdpAnswer | NotAcceptable:
        return negotiation.answer(offer, self.here.media, self.here.secure, self.sent)

    def _receive(self, request: Request) -> None:
        if self.dialog is not None:
            updated = self.dialog.receive(request)
            if isinstance(updated, Dialog):
                self.dialog = updated

    # --- answering (in) ------------------------------------------------------------------

    def _on_answer(self, event: Answer, now: float) -> Steps:
        return self._answer(now, at_ack=False)

    def _on_auto_answer(self, event: AutoAnswer, now: float) -> Steps:
        return self._answer(now, at_ack=True)

    def _answer(self, now: float, at_ack: bool) -> Steps:
        """Answer 200. `at_ack` (auto-answer, §6.9): no media before the ACK that carries
        our To-tag, which a forger who never saw our 200 cannot send."""
        assert self.dialog is not None
        body = self.pending.sdp if self.pending else negotiation.make_offer(self.here.media)
        tag, contact = self.dialog.local_tag, self.here.contact
        response = respond(self.invite, 200, "OK", tag, contact, body)
        self.sent = body
        self._expect_ack(self.invite_tid, response, None if self.pending else body, now)
        steps: Steps = [Respond(self.invite_tid, response), Connected()]
        if self.pending is not None and at_ack and self.two_xx is not None:
            self.two_xx.media = self.pending.media
        elif self.pending is not None:
            steps += self._start(self.pending.media)
        return steps

    def _expect_ack(
        self,
        tid: TransactionId,
        response: Response,
        our_offer: sdp.SessionDescription | None,
        now: float,
    ) -> None:
        cseq = parse_cseq(response.headers.get("CSeq") or "")
        schedule = TwoXxRetransmissions(now, self.options.timers)
        self.two_xx = _TwoXx(tid, response, cseq[0] if cseq else 0, schedule, our_offer)

    def _on_ack(self, event: PeerAck, now: float) -> Steps:
        pending = self.two_xx
        assert pending is not None
        self.two_xx = None
        if pending.media is not None:
            return self._start(pending.media)
        if pending.our_offer is None:
            return []
        return self._take_answer(event.request, pending.our_offer, now)

    def _on_retransmit(self, event: Retransmit, now: float) -> Steps:
        pending = self.two_xx
        assert pending is not None
        due = pending.schedule.tick(now)
        if due is Due.GIVE_UP:
            return self.step(E.END, End("failed", "no ACK"), now)
        if due is Due.RETRANSMIT:
            return [Respond(pending.transaction_id, pending.response)]
        return []

    def _take_answer(
        self, message: Request | Response, our_offer: sdp.SessionDescription, now: float
    ) -> Steps:
        """The peer's answer to our offer (in an ACK or a 2xx): the media, or the end."""
        theirs = offer_of(message)
        if not isinstance(theirs, sdp.SessionDescription):
            return self.step(E.END, End("failed", "no SDP answer"), now)
        media = negotiation.read_answer(theirs, our_offer)
        if isinstance(media, NotAcceptable):
            return self.step(E.END, End("failed", media.reason), now)
        return self._start(media)

    def _start(self, media: Negotiated) -> Steps:
        """Start the media, or change it."""
        first, self.media = self.media is None, media
        return [StartMedia(self.here.media, media) if first else UpdateMedia(media)]

    # --- the peer's requests in the dialog ----------------------------------------------------

    def _on_bad_sequence(self, event: PeerRequest, now: float) -> Steps:
        assert self.dialog is not None
        error = self.dialog.receive(event.request)
        assert isinstance(error, DialogError)
        response = respond(event.request, error.status, error.reason, event.tag)
        return [Respond(event.transaction_id, response)]

    def _on_other_request(self, event: PeerRequest, now: float) -> Steps:
        response = respond(event.request, 405, "Method Not Allowed", event.tag)
        return [Respond(event.transaction_id, response)]

    def _on_early_bye(self, event: PeerRequest, now: float) -> Steps:
        """The caller's BYE on the early dialog (§15): the INVITE ends 487."""
        ok = Respond(event.transaction_id, respond(event.request, 200, "OK", ""))
        terminated = respond(self.invite, 487, "Request Terminated", self._local_tag())
        over = Over("cancelled", 487, "Request Terminated")
        return [ok, Respond(self.invite_tid, terminated), over]

    def _on_bye(self, event: PeerRequest, now: float) -> Steps:
        ok = Respond(event.transaction_id, respond(event.request, 200, "OK", ""))
        return [ok, StopMedia(), Over("remote hangup")]

    def _on_cancelled(self, event: Cancelled, now: float) -> Steps:
        return [Over("cancelled", 487, "Request Terminated")]

    def _on_info(self, event: PeerRequest, now: float) -> Steps:
        info, tid = event.request, event.transaction_id
        digits = dtmf_of(info)
        if digits is None:
            accept = (("Accept", f"{DTMF_RELAY}, {DTMF}"),)
            unsupported = respond(info, 415, "Unsupported Media Type", "", extra=accept)
            return [Respond(tid, unsupported)]
        if isinstance(digits, BadDtmf):
            return [Respond(tid, respond(info, 400, digits.reason, ""))]
        heard: Steps = [DtmfReceived(digits)] if digits else []
        return [Respond(tid, respond(info, 200, "OK", "")), *heard]

    def _on_options(self, event: PeerRequest, now: float) -> Steps:
        extra = (("Accept", SDP), ("Supported", SUPPORTED))
        return [Respond(event.transaction_id, respond(event.request, 200, "OK", "", extra=extra))]

    def _on_retry_later(self, event: PeerRequest, now: float) -> Steps:
        """§14.2 (RFC 3311 §5.2 for UPDATE): an offer while ours is unfinished (the call
        not answered yet, or our 2xx not ACKed): 500 with Retry-After 0..10 s."""
        retry = (("Retry-After", str(self.rng.randint(0, 10))),)
        response = respond(event.request, 500, "Server Internal Error", "", extra=retry)
        return [Respond(event.transaction_id, response)]

    def _on_refresh(self, event: PeerRequest, now: float) -> Steps:
        response = respond(event.request, 200, "OK", "", self.here.contact)
        return [Respond(event.transaction_id, response)]

    def _on_offer_refused(self, event: PeerRequest, now: float) -> Steps:
        """An offer we cannot take: the session goes on as it was."""
        bad = isinstance(offer_of(event.request), sdp.SdpError)
        code, phrase = (400, "Bad SDP") if bad else (488, "Not Acceptable Here")
        return [Respond(event.transaction_id, respond(event.request, code, phrase, ""))]

    def _on_reinvite(self, event: PeerRequest, now: float) -> Steps:
        return self._renegotiate(event, now, with_ack=True)

    def _on_update(self, event: PeerRequest, now: float) -> Steps:
        return self._renegotiate(event, now, with_ack=False)

    def _renegotiate(self, event: PeerRequest, now: float, with_ack: bool) -> Steps:
        """A re-INVITE or UPDATE, answered from the current session (§6.2): an offer gets
        our answer (a `sendonly` one `recvonly`: hold); a re-INVITE without one gets our
        offer, and its answer comes in the ACK."""
        request, tid = event.request, event.transaction_id
        offer = offer_of(request)
        assert not isinstance(offer, sdp.SdpError)  # REINVITE_REFUSED's
        media: Negotiated | None = None
        if offer is None:
            body = negotiation.make_offer(self.here.media, self.sent)
        else:
            answer = self._answer_to(offer)
            assert not isinstance(answer, NotAcceptable)
            body, media = answer.sdp, answer.media
        ok = respond(request, 200, "OK", "", self.here.contact, body)
        self.sent = body
        if self.two_xx is not None:
            self.two_xx.media = None  # the media this offer agrees on supersedes it
        if with_ack:
            self._expect_ack(tid, ok, body if offer is None else None, now)
        changed = self._start(media) if media and media != self.media else []
        return [Respond(tid, ok), *changed]

    # --- our INVITE's fate (out) ---------------------------------------------------------------

    def _on_provisional(self, event: Replied, now: float) -> Steps:
        return []  # 180/183: still calling (early media is not played)

    def _on_connected(self, event: Replied, now: float) -> Steps:
        response = event.response
        dialog = as_uac(self.invite, response)
        assert isinstance(dialog, Dialog)  # SUCCESS_UNUSABLE's otherwise
        cseq = parse_cseq(self.invite.headers.get("CSeq") or "")
        self.dialog = dialog
        self.ack = dialog.ack(cseq[0] if cseq else 1, via(self.here), tuple(self.auth.values()))
        steps: Steps = [SendAck(self.ack, self.flow), Connected()]
        assert self.offer is not None
        return steps + self._take_answer(response, self.offer, now)

    def _on_unusable(self, event: Replied, now: float) -> Steps:
        """A 2xx without a To-tag: nothing we could ACK."""
        response = event.response
        error = as_uac(self.invite, response)
        detail = error.reason if isinstance(error, DialogError) else ""
        return [Over("failed", response.code, response.reason, detail)]

    def _on_late_2xx(self, event: Replied, now: float) -> Steps:
        """A 2xx again: our ACK again; a 2xx of another fork: ACK it and BYE it
        (§13.2.2.4)."""
        assert self.dialog is not None and self.ack is not None
        if ids_of(event.response)[1] == self.dialog.remote_tag:
            return [SendAck(self.ack, self.flow)]
        return self._hang_up_2xx(event, now)

    def _hang_up_2xx(self, event: Replied, now: float) -> Steps:
        """ACK a 2xx we no longer want, then BYE its dialog."""
        dialog = as_uac(self.invite, event.response)
        if isinstance(dialog, DialogError):
            return []
        cseq = parse_cseq(self.invite.headers.get("CSeq") or "")
        auth = tuple(self.auth.values())
        ack = dialog.ack(cseq[0] if cseq else 1, via(self.here), auth)
        branch = new_branch(self.rng)
        _, bye = dialog.request("BYE", via(self.here, branch))
        tid = TransactionId(False, branch, "BYE")
        return [SendAck(ack, self.flow), SendRequest(bye, self.flow, tid)]

    def _on_refused(self, event: Replied, now: float) -> Steps:
        code = event.response.code
        return [Over(end_reason_of(code), code, event.response.reason)]

    def _on_invite_failed(self, event: Failed, now: float) -> Steps:
        return [Over("failed", detail=event.cause)]

    def _on_give_up(self, event: GiveUp, now: float) -> Steps:
        return [Over(event.reason, event.code, event.phrase, event.detail)]

    def _on_redirect(self, event: Replied, now: float) -> Steps:
        """§6.10 (RFC 3261 §8.1.3.4): a new INVITE to the first Contact, in the same
        call (Call-ID and From-tag kept, CSeq up by one, a new branch: what re's sipsess
        does), at most MAX_REDIRECTS times and never to a URI already tried."""
        response, out = event.response, self.outgoing
        target = redirect_target(response)
        tried = self.tried or (self.invite.uri,)
        why = redirect_problem(target, tried, MAX_REDIRECTS)
        if why or out is None or target is None:
            return self._give_up(response, why, now)
        self.tried = (*tried, target)
        self.outgoing = out = replace(out, request_uri=target)
        return self._reinvite(out)

    def _on_challenge(self, event: Replied, now: float) -> Steps:
        """401/407: answered once per nonce, `max_auth` times at most (a second challenge
        to our answer is the proxy refusing our credentials)."""
        response, creds, out = event.response, self.credentials, self.outgoing
        answered: DigestAnswer | digest.Unsupported = digest.Unsupported("no credentials")
        if creds is not None and len(self.nonces) < self.options.max_auth:
            cnonce = f"{self.rng.getrandbits(64):016x}"
            answered = answer_challenge(response, self.invite.uri, creds, cnonce)
        if isinstance(answered, digest.Unsupported) or answered.nonce in self.nonces or not out:
            detail = answered.reason if isinstance(answered, digest.Unsupported) else "refused"
            return self._give_up(response, detail, now)
        self.nonces.add(answered.nonce)
        self.auth[(answered.header[0], answered.realm)] = answered.header
        return self._reinvite(out)

    def _give_up(self, response: Response, detail: str, now: float) -> Steps:
        return self.step(E.GIVE_UP, GiveUp("failed", response.code, response.reason, detail), now)

    def _reinvite(self, out: Outgoing) -> Steps:
        """Our INVITE again, CSeq up by one, a new branch (a challenge, a redirect)."""
        cseq = parse_cseq(self.invite.headers.get("CSeq") or "")
        branch = new_branch(self.rng)
        assert self.offer is not None
        auth = tuple(self.auth.values())
        self.invite = invite(out, (cseq[0] if cseq else 1) + 1, branch, self.offer, auth)
        self.invite_tid = TransactionId(False, branch, "INVITE")
        return [SendRequest(self.invite, self.flow, self.invite_tid)]

    # --- DTMF by INFO (either role) -----------------------------------------------------------

    def _on_dtmf(self, event: Dtmf, now: float) -> Steps:
        digits = event.digits.upper()
        if not 1 <= len(digits) <= MAX_DIGITS or any(d not in DTMF_DIGITS for d in digits):
            return [Refused(WRONG_DIGITS)]
        if self.media is not None and self.media.event_payload_type is not None:
            return [SendDtmf(digits)]
        if len(self.waiting) + len(digits) > self.options.max_dtmf_waiting:
            return [Refused(TOO_MANY_DIGITS)]
        self.waiting.extend(digits)
        return self._next_info() if self.info_tid is None else []

    def _on_info_done(self, event: Replied, now: float) -> Steps:
        self.info_tid = None
        return self._next_info() if self.waiting else []

    def _on_info_gone(self, event: Replied, now: float) -> Steps:
        self.info_tid = None
        detail = f"INFO answered {event.response.code}"
        return self.step(E.END, End("failed", detail), now)

    def _on_info_failed(self, event: Failed, now: float) -> Steps:
        self.info_tid = None
        return self.step(E.END, End("failed", f"INFO {event.cause}"), now)

    def _next_info(self) -> Steps:
        assert self.dialog is not None
        content_type, body = dtmf_info_body(self.waiting.popleft())
        branch = new_branch(self.rng)
        self.dialog, request = self.dialog.request(
            "INFO", via(self.here, branch), content_type, body
        )
        self.info_tid = TransactionId(False, branch, "INFO")
        return [SendRequest(request, self.flow, self.info_tid)]

    # --- ending from our side ----------------------------------------------------------------

    def _on_decline(self, event: Hangup, now: float) -> Steps:
        return self._decline(End("declined"), now)

    def _on_abandon(self, event: Hangup, now: float) -> Steps:
        return self._cancel(End("local hangup"), now)

    def _on_hang_up(self, event: Hangup, now: float) -> Steps:
        return self._bye(End("local hangup"), now)

    def _decline(self, event: End, now: float) -> Steps:
        """While ringing: a final response (603 when declined, else 480)."""
        code, phrase = RINGING_ANSWERS.get(event.reason, TEMPORARILY_UNAVAILABLE)
        response = respond(self.invite, code, phrase, self._local_tag())
        return [Respond(self.invite_tid, response), Over(event.reason, code, phrase, event.detail)]

    def _cancel(self, event: End, now: float) -> Steps:
        """While calling: CANCEL; a 2xx that crosses it is ACKed and BYEd."""
        return [SendCancel(self.invite_tid), Over(event.reason, detail=event.detail)]

    def _bye(self, event: End, now: float) -> Steps:
        assert self.dialog is not None
        branch = new_branch(self.rng)
        self.dialog, bye = self.dialog.request("BYE", via(self.here, branch))
        send = SendRequest(bye, self.flow, TransactionId(False, branch, "BYE"))
        self.two_xx = None
        return [send, StopMedia(), Over(event.reason, detail=event.detail)]

    def _local_tag(self) -> str:
        return self.dialog.local_tag if self.dialog else ""


# --- the table ---------------------------------------------------------------------------------

Handler = Callable[[Session, Any, float], Steps]


@dataclass(frozen=True)
class Row:
    handler: Handler
    next: SessionState | None = None  # None: the state stays (unless the handler moves on)


_LIVE: Final = (S.RINGING, S.ANSWERED, S.CONFIRMED)  # states with a dialog both sides know
_UP: Final = (S.ANSWERED, S.CONFIRMED)  # answered


def _rows(states: tuple[SessionState, ...], kind: SessionEvent, row: Row) -> dict[Any, Row]:
    return {(state, kind): row for state in states}


Table = dict[tuple[SessionState, SessionEvent], Row]
TABLE: Final[Table] = {
    # ringing (in)
    (S.RINGING, E.ANSWER): Row(Session._on_answer, S.ANSWERED),
    (S.RINGING, E.AUTO_ANSWER): Row(Session._on_auto_answer, S.ANSWERED),
    (S.RINGING, E.HANGUP): Row(Session._on_decline, S.ENDED),
    (S.RINGING, E.END): Row(Session._decline, S.ENDED),
    (S.RINGING, E.CANCELLED): Row(Session._on_cancelled, S.ENDED),
    (S.RINGING, E.BYE): Row(Session._on_early_bye, S.ENDED),
    (S.RINGING, E.REINVITE): Row(Session._on_retry_later),
    (S.RINGING, E.REINVITE_REFUSED): Row(Session._on_retry_later),
    (S.RINGING, E.UPDATE): Row(Session._on_retry_later),
    (S.RINGING, E.UPDATE_REFUSED): Row(Session._on_retry_later),
    # calling (out)
    (S.CALLING, E.PROVISIONAL): Row(Session._on_provisional),
    (S.CALLING, E.SUCCESS): Row(Session._on_connected, S.CONFIRMED),
    (S.CALLING, E.SUCCESS_UNUSABLE): Row(Session._on_unusable, S.ENDED),
    (S.CALLING, E.CHALLENGE): Row(Session._on_challenge),
    (S.CALLING, E.REDIRECT): Row(Session._on_redirect),
    (S.CALLING, E.REFUSED): Row(Session._on_refused, S.ENDED),
    (S.CALLING, E.INVITE_FAILED): Row(Session._on_invite_failed, S.ENDED),
    (S.CALLING, E.GIVE_UP): Row(Session._on_give_up, S.ENDED),
    (S.CALLING, E.HANGUP): Row(Session._on_abandon, S.TERMINATING),
    (S.CALLING, E.END): Row(Session._cancel, S.TERMINATING),
    # cancelled (out)
    (S.TERMINATING, E.SUCCESS): Row(Session._hang_up_2xx),
    # answered, awaiting the ACK of our 2xx
    (S.ANSWERED, E.ACK): Row(Session._on_ack, S.CONFIRMED),
    (S.ANSWERED, E.RETRANSMIT): Row(Session._on_retransmit),
    (S.ANSWERED, E.REINVITE): Row(Session._on_retry_later),
    (S.ANSWERED, E.REINVITE_REFUSED): Row(Session._on_retry_later),
    (S.ANSWERED, E.UPDATE): Row(Session._on_update),
    (S.ANSWERED, E.UPDATE_REFUSED): Row(Session._on_offer_refused),
    # confirmed
    (S.CONFIRMED, E.REINVITE): Row(Session._on_reinvite, S.ANSWERED),
    (S.CONFIRMED, E.REINVITE_REFUSED): Row(Session._on_offer_refused),
    (S.CONFIRMED, E.UPDATE): Row(Session._on_update),
    (S.CONFIRMED, E.UPDATE_REFUSED): Row(Session._on_offer_refused),
    # every state with a dialog
    **_rows(_LIVE, E.INFO, Row(Session._on_info)),
    **_rows(_LIVE, E.OPTIONS, Row(Session._on_options)),
    **_rows(_LIVE, E.UPDATE_REFRESH, Row(Session._on_refresh)),
    **_rows(_LIVE, E.OTHER_REQUEST, Row(Session._on_other_request)),
    **_rows(_LIVE, E.BAD_SEQUENCE, Row(Session._on_bad_sequence)),
    # answered, whether the ACK came or not
    **_rows(_UP, E.BYE, Row(Session._on_bye, S.ENDED)),
    **_rows(_UP, E.HANGUP, Row(Session._on_hang_up, S.ENDED)),
    **_rows(_UP, E.END, Row(Session._bye, S.ENDED)),
    **_rows(_UP, E.DTMF, Row(Session._on_dtmf)),
    **_rows(_UP, E.INFO_DONE, Row(Session._on_info_done)),
    **_rows(_UP, E.INFO_GONE, Row(Session._on_info_gone)),
    **_rows(_UP, E.INFO_FAILED, Row(Session._on_info_failed)),
    **_rows(_UP, E.SUCCESS, Row(Session._on_late_2xx)),
    **_rows(_UP, E.SUCCESS_UNUSABLE, Row(Session._on_late_2xx)),
}

REQUESTS: Final = frozenset(
    {
        E.BYE,
        E.INFO,
        E.OPTIONS,
        E.REINVITE,
        E.REINVITE_REFUSED,
        E.UPDATE,
        E.UPDATE_REFUSED,
        E.UPDATE_REFRESH,
        E.OTHER_REQUEST,
        E.BAD_SEQUENCE,
    }
)
API_CALLS: Final = frozenset({E.ANSWER, E.DTMF})  # an API input that finds no call


def unanswered(kind: SessionEvent, event: Any) -> Steps:
    """The one answer of a (state, event) pair without a row: a request finds no dialog
    (481); an API input finds no call; anything else is absorbed."""
    if kind in REQUESTS:
        return [no_dialog(event.request, event.transaction_id, event.tag)]
    if kind in API_CALLS:
        return [Refused(NO_CALL)]
    return []


def no_dialog(request: Request, tid: TransactionId, tag: str) -> Respond:
    """A request in a dialog we do not have (§12.2.2)."""
    return Respond(tid, respond(request, *NO_DIALOG, tag))


_METHODS: Final = {"BYE": E.BYE, "INFO": E.INFO, "OPTIONS": E.OPTIONS}


def _constant(kind: SessionEvent) -> Callable[[Session, Any], SessionEvent]:
    return lambda session, event: kind


_KINDS: Final[dict[type, Callable[[Session, Any], SessionEvent]]] = {
    PeerRequest: Session._request_kind,
    PeerAck: Session._ack_kind,
    Replied: Session._reply_kind,
    Failed: Session._failure_kind,
    Cancelled: Session._cancel_kind,
    Answer: _constant(E.ANSWER),
    AutoAnswer: _constant(E.AUTO_ANSWER),
    Hangup: _constant(E.HANGUP),
    End: _constant(E.END),
    GiveUp: _constant(E.GIVE_UP),
    Dtmf: _constant(E.DTMF),
    Retransmit: _constant(E.RETRANSMIT),
}


def _invite_reply_kind(sent: Request, response: Response) -> SessionEvent:
    code = response.code
    if code < 200:
        return E.PROVISIONAL
    if code < 300:
        unusable = isinstance(as_uac(sent, response), DialogError)
        return E.SUCCESS_UNUSABLE if unusable else E.SUCCESS
    if code in CHALLENGED:
        return E.CHALLENGE
    return E.REDIRECT if code in REDIRECTS else E.REFUSED


# --- making a session --------------------------------------------------------------------------


def incoming(
    event: Received,
    tid: TransactionId,
    tag: str,
    options: Options,
    rng: random.Random,
) -> tuple[Session, Steps] | InviteRefusal:
    """Their INVITE, which the handset lets ring: the session, ringing, with its 100 and
    180; or why the message itself is refused."""
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
    session = Session(
        id=(dialog.call_id, tag),
        role=Role.INCOMING,
        state=S.RINGING,
        flow=event.flow,
        here=here,
        invite=request,
        invite_tid=tid,
        options=options,
        rng=rng,
        dialog=dialog,
        pending=answer,
    )
    ringing = respond(request, 180, "Ringing", tag, here.contact)
    return session, [Respond(tid, trying(request)), Respond(tid, ringing)]


def outgoing(dial: Dial, options: Options, rng: random.Random) -> tuple[Session, Steps]:
    """Our INVITE with our offer: the session, calling."""
    here = dial.here
    out = Outgoing(
        target=dial.target.uri,
        aor=dial.aor,
        tag=new_tag(rng),
        call_id=f"{rng.getrandbits(128):032x}",
        route=dial.route,
        here=here,
        user_agent=options.user_agent,
    )
    offer = negotiation.make_offer(here.media)
    branch = new_branch(rng)
    request = invite(out, 1, branch, offer)
    tid = TransactionId(False, branch, "INVITE")
    session = Session(
        id=(out.call_id, out.tag),
        role=Role.OUTGOING,
        state=S.CALLING,
        flow=dial.flow,
        here=here,
        invite=request,
        invite_tid=tid,
        options=options,
        rng=rng,
        offer=offer,
        sent=offer,
        outgoing=out,
        credentials=dial.credentials,
    )
    return session, [SendRequest(request, dial.flow, tid)]
