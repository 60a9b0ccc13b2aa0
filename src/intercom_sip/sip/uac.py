"""The INVITE session's outgoing role (RFC 3261 §13.2): what becomes of our INVITE
(the 2xx and its ACK, forks, the digest answer to 401/407, redirects, failures) and its
CANCEL. Handlers of `session.TABLE`, pure."""

from dataclasses import replace
from typing import TYPE_CHECKING

from intercom_sip.sip import digest
from intercom_sip.sip.callevents import (
    CAUSES,
    MAX_REDIRECTS,
    Failure,
    Hangup,
    SendAck,
    SendCancel,
    SendRequest,
)
from intercom_sip.sip.callflow import (
    DigestAnswer,
    Outgoing,
    answer_challenge,
    end_reason_of,
    invite,
    new_branch,
    redirect_problem,
    redirect_target,
    via,
)
from intercom_sip.sip.core import ResponseReceived
from intercom_sip.sip.dialog import Dialog, DialogError, as_uac, ids_of
from intercom_sip.sip.message import Response, parse_cseq
from intercom_sip.sip.sessionevents import (
    Connected,
    End,
    GiveUp,
    Over,
    SessionEvent,
    Steps,
)
from intercom_sip.sip.transactions import TransactionId

if TYPE_CHECKING:
    from intercom_sip.sip.session import Session


def provisional(session: "Session", event: ResponseReceived, now: float) -> Steps:
    return []  # 180/183: still calling (early media is not played)


def connected(session: "Session", event: ResponseReceived, now: float) -> Steps:
    """A 2xx: the dialog, our ACK (with the INVITE's credentials), the answer's media."""
    response = event.response
    dialog = as_uac(session.invite, response)
    assert isinstance(dialog, Dialog)  # SUCCESS_UNUSABLE's otherwise
    session.dialog = dialog
    session.ack = dialog.ack(_cseq(session), via(session.here), tuple(session.auth.values()))
    steps: Steps = [SendAck(session.ack, session.flow), Connected()]
    assert session.offer is not None
    return steps + session.take_answer(response, session.offer, now)


def unusable(session: "Session", event: ResponseReceived, now: float) -> Steps:
    """A 2xx without a To-tag: nothing we could ACK."""
    response = event.response
    error = as_uac(session.invite, response)
    detail = error.reason if isinstance(error, DialogError) else ""
    return [Over("failed", response.code, response.reason, detail)]


def late_2xx(session: "Session", event: ResponseReceived, now: float) -> Steps:
    """A 2xx again: our ACK again; a 2xx of another fork: ACK it and BYE it
    (§13.2.2.4)."""
    assert session.dialog is not None and session.ack is not None
    if ids_of(event.response)[1] == session.dialog.remote_tag:
        return [SendAck(session.ack, session.flow)]
    return hang_up_2xx(session, event, now)


def hang_up_2xx(session: "Session", event: ResponseReceived, now: float) -> Steps:
    """ACK a 2xx we no longer want, then BYE its dialog."""
    dialog = as_uac(session.invite, event.response)
    if isinstance(dialog, DialogError):
        return []
    here, flow = session.here, session.flow
    ack = dialog.ack(_cseq(session), via(here), tuple(session.auth.values()))
    branch = new_branch(session.rng)
    _, bye = dialog.request("BYE", via(here, branch))
    return [SendAck(ack, flow), SendRequest(bye, flow, TransactionId(False, branch, "BYE"))]


def refused(session: "Session", event: ResponseReceived, now: float) -> Steps:
    code = event.response.code
    return [Over(end_reason_of(code), code, event.response.reason)]


def invite_failed(session: "Session", event: Failure, now: float) -> Steps:
    return [Over("failed", detail=CAUSES[type(event)])]


def give_up(session: "Session", event: GiveUp, now: float) -> Steps:
    return [event.over]


def redirected(session: "Session", event: ResponseReceived, now: float) -> Steps:
    """§6.10 (RFC 3261 §8.1.3.4): a new INVITE to the first Contact, in the same
    call (Call-ID and From-tag kept, CSeq up by one, a new branch: what re's sipsess
    does), at most MAX_REDIRECTS times and never to a URI already tried."""
    response, out = event.response, session.outgoing
    target = redirect_target(response)
    tried = session.tried or (session.invite.uri,)
    why = redirect_problem(target, tried, MAX_REDIRECTS)
    if why or out is None or target is None:
        return _give_up(session, response, why, now)
    session.tried = (*tried, target)
    session.outgoing = out = replace(out, request_uri=target)
    return _invite_again(session, out)


def challenged(session: "Session", event: ResponseReceived, now: float) -> Steps:
    """401/407: answered once per nonce, `max_auth` times at most (a second challenge
    to our answer is the proxy refusing our credentials)."""
    response, creds, out = event.response, session.credentials, session.outgoing
    answered: DigestAnswer | digest.Unsupported = digest.Unsupported("no credentials")
    if creds is not None and len(session.nonces) < session.options.max_auth:
        cnonce = f"{session.rng.getrandbits(64):016x}"
        answered = answer_challenge(response, session.invite.uri, creds, cnonce)
    if isinstance(answered, digest.Unsupported) or answered.nonce in session.nonces or not out:
        detail = answered.reason if isinstance(answered, digest.Unsupported) else "refused"
        return _give_up(session, response, detail, now)
    session.nonces.add(answered.nonce)
    session.auth[(answered.header[0], answered.realm)] = answered.header
    return _invite_again(session, out)


def abandon(session: "Session", event: Hangup, now: float) -> Steps:
    return cancel(session, End("local hangup"), now)


def cancel(session: "Session", event: End, now: float) -> Steps:
    """While calling: CANCEL; a 2xx that crosses it is ACKed and BYEd."""
    return [SendCancel(session.invite_tid), Over(event.reason, detail=event.detail)]


def _give_up(session: "Session", response: Response, detail: str, now: float) -> Steps:
    over = Over("failed", response.code, response.reason, detail)
    return session.step(SessionEvent.GIVE_UP, GiveUp(over), now)


def _invite_again(session: "Session", out: Outgoing) -> Steps:
    """Our INVITE again, CSeq up by one, a new branch (a challenge, a redirect)."""
    branch = new_branch(session.rng)
    assert session.offer is not None
    auth = tuple(session.auth.values())
    session.invite = invite(out, _cseq(session) + 1, branch, session.offer, auth)
    session.invite_tid = TransactionId(False, branch, "INVITE")
    return [SendRequest(session.invite, session.flow, session.invite_tid)]


def _cseq(session: "Session") -> int:
    """Our INVITE's CSeq number, which its ACK carries."""
    cseq = parse_cseq(session.invite.headers.get("CSeq") or "")
    return cseq[0] if cseq else 1
