"""One INVITE session per dialog (RFC 3261 §12-15, RFC 3311, RFC 6086), pure, both roles.

A `Session` is the SIP side of one call: the offer/answer (`negotiation.py`), our 2xx
sent again until its ACK, CANCEL, BYE, re-INVITE and UPDATE, DTMF by INFO, and the
digest answer to a 401/407 of our INVITE. It knows nothing of policy: whether a call
may ring, when it is answered or given up is the handset's (`call.py`).

Its state changes only through `TABLE`: a row says, for a state and an event kind, the
handler that carries the event out and the state the event leads to. A handler whose
outcome depends on the message (our digest answer refused, an SDP answer we cannot
take) feeds the session a follow-up event (`End`, `GiveUp`) that moves it again through
the table. A (state, event) pair without a row is answered in one place, `unanswered`:
a request finds no dialog (481), an API input finds no call to act on (`No call`),
anything else (an ACK, a response, a timer) is absorbed, as RFC 3261 absorbs them.

The handlers live by role and verb, as re's sipsess splits them: `uas.py` (answering,
the 2xx until its ACK), `uac.py` (our INVITE's fate, digest, redirects, CANCEL),
`renegotiation.py` (re-INVITE, UPDATE), `info.py` (INFO and DTMF); this module keeps
what every dialog shares (BYE, OPTIONS, 405, the CSeq check). The values are
`sessionevents.py`'s. Besides the messages for the core and the media orders, a session
gives its owner two notes: `Connected` (the call is answered: the call's clock starts)
and `Over` (the session ended: why, and the status line that ended it).
"""

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from intercom_sip.sip import digest, info, negotiation, renegotiation, sdp, uac, uas
from intercom_sip.sip.callevents import (
    NO_CALL,
    Answer,
    Dial,
    Dtmf,
    Failure,
    Hangup,
    NotStarted,
    Options,
    Received,
    Refused,
    Respond,
    SendRequest,
    StartMedia,
    StopMedia,
    UpdateMedia,
)
from intercom_sip.sip.callflow import (
    REDIRECTS,
    SDP,
    SUPPORTED,
    Here,
    InviteRefusal,
    Outgoing,
    invite,
    new_branch,
    new_tag,
    offer_of,
    refusal_of,
    respond,
    via,
)
from intercom_sip.sip.core import (
    CancelReceived,
    Channel,
    ResponseReceived,
    TransactionTimedOut,
    TransportError,
)
from intercom_sip.sip.dialog import Dialog, DialogError, as_uac, as_uas
from intercom_sip.sip.message import Request, Response, parse_cseq
from intercom_sip.sip.negotiation import Negotiated, NotAcceptable
from intercom_sip.sip.sessionevents import (
    AutoAnswer,
    DialogId,
    End,
    GiveUp,
    Over,
    PeerAck,
    PeerRequest,
    Retransmit,
    Role,
    SessionEvent,
    SessionInput,
    SessionState,
    Steps,
)
from intercom_sip.sip.transactions import TransactionId, TwoXxRetransmissions, trying
from intercom_sip.sip.trust import uri_host

S, E = SessionState, SessionEvent

NO_DIALOG: Final = (481, "Call/Transaction Does Not Exist")
CHALLENGED: Final = frozenset({401, 407})
DIALOG_GONE: Final = frozenset({408, 481})


@dataclass
class TwoXx:
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
    two_xx: TwoXx | None = None
    ack: Request | None = None  # out: the ACK of the 2xx, again for each retransmission
    outgoing: Outgoing | None = None
    credentials: digest.Credentials | None = field(default=None, repr=False)
    auth: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict, repr=False)
    nonces: set[str] = field(default_factory=set)
    waiting: deque[str] = field(default_factory=deque)  # digits for INFO
    info_tid: TransactionId | None = None
    tried: tuple[str, ...] = ()  # out: the Request-URIs our INVITEs went to (§6.10)

    # --- the owner's side ------------------------------------------------------------------

    def handle(self, event: SessionInput, now: float) -> Steps:
        """Any input of the session: its kind, then the table."""
        return self.step(self.kind_of(event), event, now)

    def kind_of(self, event: SessionInput) -> SessionEvent:
        return _KINDS[type(event)](self, event)

    def step(self, kind: SessionEvent, event: SessionInput, now: float) -> Steps:
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
        """When the 2xx is due again: the only timer of the session's own, which runs in
        ANSWERED alone (the state whose RETRANSMIT row moves it on)."""
        pending = self.two_xx if self.state is S.ANSWERED else None
        return pending.schedule.deadline() if pending is not None else None

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

    # --- for the handlers of every role ----------------------------------------------------

    def expect_ack(
        self,
        tid: TransactionId,
        response: Response,
        our_offer: sdp.SessionDescription | None,
        now: float,
    ) -> None:
        """Our 2xx went out: again until its ACK (the table's ANSWERED)."""
        cseq = parse_cseq(response.headers.get("CSeq") or "")
        schedule = TwoXxRetransmissions(now, self.options.timers)
        self.two_xx = TwoXx(tid, response, cseq[0] if cseq else 0, schedule, our_offer)

    def take_answer(
        self, message: Request | Response, our_offer: sdp.SessionDescription, now: float
    ) -> Steps:
        """The peer's answer to our offer (in an ACK or a 2xx): the media, or the end."""
        theirs = offer_of(message)
        if not isinstance(theirs, sdp.SessionDescription):
            return self.step(E.END, End("failed", "no SDP answer"), now)
        media = negotiation.read_answer(theirs, our_offer)
        if isinstance(media, NotAcceptable):
            return self.step(E.END, End("failed", media.reason), now)
        return self.start_media(media)

    def start_media(self, media: Negotiated) -> Steps:
        """Start the media, or change it."""
        first, self.media = self.media is None, media
        return [StartMedia(self.here.media, media) if first else UpdateMedia(media)]

    def answer_to(self, offer: sdp.SessionDescription) -> negotiation.SdpAnswer | NotAcceptable:
        return negotiation.answer(offer, self.here.media, self.here.secure, self.sent)

    def local_tag(self) -> str:
        return self.dialog.local_tag if self.dialog else ""

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

    def _reply_kind(self, event: ResponseReceived) -> SessionEvent:
        tid, response = event.transaction_id, event.response
        if tid == self.invite_tid and self.role is Role.OUTGOING:
            return _invite_reply_kind(self.invite, response)
        if tid == self.info_tid and response.code >= 200:
            return E.INFO_GONE if response.code in DIALOG_GONE else E.INFO_DONE
        return E.STRAY

    def _failure_kind(self, event: Failure) -> SessionEvent:
        tid = event.transaction_id
        if tid == self.invite_tid and self.role is Role.OUTGOING:
            return E.INVITE_FAILED
        return E.INFO_FAILED if tid == self.info_tid else E.STRAY

    def _cancel_kind(self, event: CancelReceived) -> SessionEvent:
        return E.CANCELLED if event.invite_id == self.invite_tid else E.STRAY

    def _offer_taken(self, request: Request) -> bool:
        offer = offer_of(request)
        if isinstance(offer, sdp.SdpError):
            return False
        return offer is None or not isinstance(self.answer_to(offer), NotAcceptable)

    def _receive(self, request: Request) -> None:
        if self.dialog is not None:
            updated = self.dialog.receive(request)
            if isinstance(updated, Dialog):
                self.dialog = updated


# --- what every dialog shares --------------------------------------------------------------


def bad_sequence(session: Session, event: PeerRequest, now: float) -> Steps:
    assert session.dialog is not None
    error = session.dialog.receive(event.request)
    assert isinstance(error, DialogError)
    response = respond(event.request, error.status, error.reason, event.tag)
    return [Respond(event.transaction_id, response)]


def not_allowed(session: Session, event: PeerRequest, now: float) -> Steps:
    response = respond(event.request, 405, "Method Not Allowed", event.tag)
    return [Respond(event.transaction_id, response)]


def options(session: Session, event: PeerRequest, now: float) -> Steps:
    extra = (("Accept", SDP), ("Supported", SUPPORTED))
    response = respond(event.request, 200, "OK", "", extra=extra)
    return [Respond(event.transaction_id, response)]


def bye(session: Session, event: PeerRequest, now: float) -> Steps:
    ok = Respond(event.transaction_id, respond(event.request, 200, "OK", ""))
    return [ok, StopMedia(), Over("remote hangup")]


def hang_up(session: Session, event: Hangup, now: float) -> Steps:
    return end_answered(session, End("local hangup"), now)


def end_answered(session: Session, event: End, now: float) -> Steps:
    """An answered call ended from our side: BYE."""
    assert session.dialog is not None
    branch = new_branch(session.rng)
    session.dialog, request = session.dialog.request("BYE", via(session.here, branch))
    send = SendRequest(request, session.flow, TransactionId(False, branch, "BYE"))
    session.two_xx = None
    return [send, StopMedia(), Over(event.reason, detail=event.detail)]


# --- the table ---------------------------------------------------------------------------------

Handler = Callable[[Session, Any, float], Steps]


@dataclass(frozen=True)
class Transition:
    handler: Handler
    next: SessionState | None = None  # None: the state stays (unless the handler moves on)


Table = dict[tuple[SessionState, SessionEvent], Transition]
T = Transition
_LIVE: Final = (S.RINGING, S.ANSWERED, S.CONFIRMED)  # the states with a dialog both sides know
_UP: Final = (S.ANSWERED, S.CONFIRMED)  # answered, whether our 2xx was ACKed or not


def _rows(states: tuple[SessionState, ...], kind: SessionEvent, row: Transition) -> Table:
    return {(state, kind): row for state in states}


TABLE: Final[Table] = {
    # ringing (in)
    (S.RINGING, E.ANSWER): T(uas.answer, S.ANSWERED),
    (S.RINGING, E.AUTO_ANSWER): T(uas.auto_answer, S.ANSWERED),
    (S.RINGING, E.HANGUP): T(uas.decline, S.ENDED),
    (S.RINGING, E.END): T(uas.end_ringing, S.ENDED),
    (S.RINGING, E.CANCELLED): T(uas.cancelled, S.ENDED),
    (S.RINGING, E.BYE): T(uas.early_bye, S.ENDED),
    (S.RINGING, E.REINVITE): T(renegotiation.retry_later),
    (S.RINGING, E.REINVITE_REFUSED): T(renegotiation.retry_later),
    (S.RINGING, E.UPDATE): T(renegotiation.retry_later),
    (S.RINGING, E.UPDATE_REFUSED): T(renegotiation.retry_later),
    # calling (out)
    (S.CALLING, E.PROVISIONAL): T(uac.provisional),
    (S.CALLING, E.SUCCESS): T(uac.connected, S.CONFIRMED),
    (S.CALLING, E.SUCCESS_UNUSABLE): T(uac.unusable, S.ENDED),
    (S.CALLING, E.CHALLENGE): T(uac.challenged),
    (S.CALLING, E.REDIRECT): T(uac.redirected),
    (S.CALLING, E.REFUSED): T(uac.refused, S.ENDED),
    (S.CALLING, E.INVITE_FAILED): T(uac.invite_failed, S.ENDED),
    (S.CALLING, E.GIVE_UP): T(uac.give_up, S.ENDED),
    (S.CALLING, E.HANGUP): T(uac.abandon, S.TERMINATING),
    (S.CALLING, E.END): T(uac.cancel, S.TERMINATING),
    # cancelled (out)
    (S.TERMINATING, E.SUCCESS): T(uac.hang_up_2xx),
    # answered, awaiting the ACK of our 2xx
    (S.ANSWERED, E.ACK): T(uas.ack, S.CONFIRMED),
    (S.ANSWERED, E.RETRANSMIT): T(uas.retransmit),
    (S.ANSWERED, E.REINVITE): T(renegotiation.retry_later),
    (S.ANSWERED, E.REINVITE_REFUSED): T(renegotiation.retry_later),
    (S.ANSWERED, E.UPDATE): T(renegotiation.update),
    (S.ANSWERED, E.UPDATE_REFUSED): T(renegotiation.offer_refused),
    # confirmed
    (S.CONFIRMED, E.REINVITE): T(renegotiation.reinvite, S.ANSWERED),
    (S.CONFIRMED, E.REINVITE_REFUSED): T(renegotiation.offer_refused),
    (S.CONFIRMED, E.UPDATE): T(renegotiation.update),
    (S.CONFIRMED, E.UPDATE_REFUSED): T(renegotiation.offer_refused),
    # every state with a dialog
    **_rows(_LIVE, E.INFO, T(info.received)),
    **_rows(_LIVE, E.OPTIONS, T(options)),
    **_rows(_LIVE, E.UPDATE_REFRESH, T(renegotiation.refresh)),
    **_rows(_LIVE, E.OTHER_REQUEST, T(not_allowed)),
    **_rows(_LIVE, E.BAD_SEQUENCE, T(bad_sequence)),
    # answered, whether the ACK came or not
    **_rows(_UP, E.BYE, T(bye, S.ENDED)),
    **_rows(_UP, E.HANGUP, T(hang_up, S.ENDED)),
    **_rows(_UP, E.END, T(end_answered, S.ENDED)),
    **_rows(_UP, E.DTMF, T(info.send)),
    **_rows(_UP, E.INFO_DONE, T(info.done)),
    **_rows(_UP, E.INFO_GONE, T(info.gone)),
    **_rows(_UP, E.INFO_FAILED, T(info.failed)),
    **_rows(_UP, E.SUCCESS, T(uac.late_2xx)),
    **_rows(_UP, E.SUCCESS_UNUSABLE, T(uac.late_2xx)),
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
API_INPUTS: Final = frozenset({E.ANSWER, E.DTMF})  # an API input that finds no call


def unanswered(kind: SessionEvent, event: SessionInput) -> Steps:
    """The one answer of a (state, event) pair without a row: a request finds no dialog
    (481); an API input finds no call; anything else is absorbed."""
    if kind in REQUESTS and isinstance(event, PeerRequest):
        return [no_dialog(event.request, event.transaction_id, event.tag)]
    if kind in API_INPUTS:
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
    ResponseReceived: Session._reply_kind,
    TransactionTimedOut: Session._failure_kind,
    TransportError: Session._failure_kind,
    NotStarted: Session._failure_kind,
    CancelReceived: Session._cancel_kind,
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
