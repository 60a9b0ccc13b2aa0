"""RFC 3261 §17 and RFC 6026: every row of the four transaction tables, by a fake clock."""

import pytest

from intercom_sip.sip.message import Headers, Request, Response, parse, request_bytes, response_to
from intercom_sip.sip.transactions import (
    INVITE_CLIENT,
    INVITE_SERVER,
    NON_INVITE_CLIENT,
    NON_INVITE_SERVER,
    Deliver,
    Due,
    Output,
    SendBytes,
    SipTimers,
    Table,
    TimedOut,
    TimerName,
    Transaction,
    TransactionEvent,
    TransactionId,
    TransactionKind,
    TransactionState,
    TransportFailed,
    TwoXxRetransmissions,
    ack_for,
    cancel_for,
    client_id,
    event_of,
    server_id,
    trying,
)

S = TransactionState
DEFAULT = SipTimers()


def message(data: bytes) -> Request | Response:
    parsed = parse(data)
    assert isinstance(parsed, Request | Response), parsed
    return parsed


def request(method: str, via: str = "branch=z9hG4bKabc123", cseq: int = 7) -> Request:
    parsed = message(
        f"{method} sip:101@192.0.2.9 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 192.0.2.1:5060;{via}\r\n"
        "Via: SIP/2.0/UDP 192.0.2.7;branch=z9hG4bKproxy\r\n"
        "Route: <sip:proxy.example.com;lr>\r\n"
        "Max-Forwards: 69\r\n"
        "From: <sip:100@example.com>;tag=f1\r\n"
        "To: <sip:101@example.com>\r\n"
        "Call-ID: c1@192.0.2.1\r\n"
        f"CSeq: {cseq} {method}\r\n"
        "Content-Length: 0\r\n\r\n".encode()
    )
    assert isinstance(parsed, Request)
    return parsed


INVITE = request("INVITE")
BYE = request("BYE")
ACK = request("ACK")


def answer(to: Request, code: int) -> Response:
    reasons = {100: "Trying", 180: "Ringing", 200: "OK", 486: "Busy Here"}
    return response_to(to, code, reasons[code], "" if code == 100 else "t9")


def describe(outputs: list[Output]) -> list[str]:
    """Short words for outputs: 'send INVITE', 'send 486', 'deliver 180', ..."""
    words = []
    for output in outputs:
        if isinstance(output, SendBytes):
            first = output.data.split(b"\r\n")[0].decode().split(" ")
            words.append("send " + (first[1] if first[0] == "SIP/2.0" else first[0]))
        elif isinstance(output, Deliver):
            shown = output.message
            words.append(f"deliver {shown.code if isinstance(shown, Response) else shown.method}")
        else:
            words.append({TimedOut: "timed out", TransportFailed: "failed"}[type(output)])
    return words


# A step: a response received ("180"), the TU's response ("tu 486"), the request again,
# an ACK, the TU's CANCEL, a transport error, or a timer firing when it is due.
STEPS = {
    "180": TransactionEvent.PROVISIONAL,
    "200": TransactionEvent.SUCCESS,
    "486": TransactionEvent.FAILURE,
    "tu 180": TransactionEvent.TU_PROVISIONAL,
    "tu 200": TransactionEvent.TU_SUCCESS,
    "tu 486": TransactionEvent.TU_FAILURE,
    "again": TransactionEvent.REQUEST,
    "ACK": TransactionEvent.ACK,
    "CANCEL sent": TransactionEvent.CANCEL_SENT,
    "transport error": TransactionEvent.TRANSPORT_ERROR,
} | {f"timer {timer.value}": timer for timer in TimerName}


class Run:
    """A transaction and a fake clock that moves to each timer as it fires."""

    def __init__(
        self, kind: TransactionKind, reliable: bool = False, t: SipTimers = DEFAULT
    ) -> None:
        self.request = (
            INVITE
            if kind in (TransactionKind.INVITE_CLIENT, TransactionKind.INVITE_SERVER)
            else BYE
        )
        self.tx = Transaction(kind, self.request, reliable, t)
        self.now = 0.0
        self.first = describe(self.tx.start(self.now))

    def step(self, name: str) -> list[str]:
        event = STEPS[name]
        if isinstance(event, TimerName):
            self.now = self.tx.pending()[event]
            return describe(self.tx.fire(event, self.now))
        payload: Request | Response | None = None
        if name.rsplit(maxsplit=1)[-1].isdigit():
            payload = answer(self.request, int(name.rsplit(maxsplit=1)[-1]))
        elif name in ("again", "ACK"):
            payload = self.request if name == "again" else ACK
        return describe(self.tx.handle(event, self.now, payload))

    def running(self) -> set[str]:
        return {timer.value for timer in self.tx.pending()}


Case = tuple[tuple[str, ...], str, TransactionState, list[str], set[str]]

# (steps to the state, the event) -> (next state, outputs, timers running after)
CASES: dict[TransactionKind, list[Case]] = {
    TransactionKind.INVITE_CLIENT: [
        ((), "timer A", S.CALLING, ["send INVITE"], {"A", "B"}),
        ((), "timer B", S.TERMINATED, ["timed out"], set()),
        ((), "180", S.PROCEEDING, ["deliver 180"], set()),
        ((), "200", S.ACCEPTED, ["deliver 200"], {"M"}),
        ((), "486", S.COMPLETED, ["send ACK", "deliver 486"], {"D"}),
        ((), "transport error", S.TERMINATED, ["failed"], set()),
        (("180",), "180", S.PROCEEDING, ["deliver 180"], set()),
        (("180",), "200", S.ACCEPTED, ["deliver 200"], {"M"}),
        (("180",), "486", S.COMPLETED, ["send ACK", "deliver 486"], {"D"}),
        (("180",), "CANCEL sent", S.PROCEEDING, [], {"cancelled"}),
        (("180", "CANCEL sent"), "timer cancelled", S.TERMINATED, ["timed out"], set()),
        (("180",), "transport error", S.TERMINATED, ["failed"], set()),
        (("486",), "486", S.COMPLETED, ["send ACK"], {"D"}),
        (("486",), "timer D", S.TERMINATED, [], set()),
        (("486",), "transport error", S.TERMINATED, ["failed"], set()),
        (("200",), "200", S.ACCEPTED, ["deliver 200"], {"M"}),
        (("200",), "timer M", S.TERMINATED, [], set()),
        # absorbed: no row
        (("486",), "180", S.COMPLETED, [], {"D"}),
        (("200",), "486", S.ACCEPTED, [], {"M"}),
        ((), "CANCEL sent", S.CALLING, [], {"A", "B"}),
    ],
    TransactionKind.NON_INVITE_CLIENT: [
        ((), "timer E", S.TRYING, ["send BYE"], {"E", "F"}),
        ((), "timer F", S.TERMINATED, ["timed out"], set()),
        ((), "180", S.PROCEEDING, ["deliver 180"], {"E", "F"}),
        ((), "200", S.COMPLETED, ["deliver 200"], {"K"}),
        ((), "486", S.COMPLETED, ["deliver 486"], {"K"}),
        ((), "transport error", S.TERMINATED, ["failed"], set()),
        (("180",), "timer E", S.PROCEEDING, ["send BYE"], {"E", "F"}),
        (("180",), "timer F", S.TERMINATED, ["timed out"], set()),
        (("180",), "180", S.PROCEEDING, ["deliver 180"], {"E", "F"}),
        (("180",), "200", S.COMPLETED, ["deliver 200"], {"K"}),
        (("180",), "486", S.COMPLETED, ["deliver 486"], {"K"}),
        (("180",), "transport error", S.TERMINATED, ["failed"], set()),
        (("200",), "timer K", S.TERMINATED, [], set()),
        (("200",), "200", S.COMPLETED, [], {"K"}),  # absorbed
    ],
    TransactionKind.INVITE_SERVER: [
        ((), "timer 100", S.PROCEEDING, ["send 100"], set()),
        ((), "again", S.PROCEEDING, [], {"100"}),  # nothing sent yet to send again
        (("tu 180",), "again", S.PROCEEDING, ["send 180"], set()),
        ((), "tu 180", S.PROCEEDING, ["send 180"], set()),
        ((), "tu 200", S.ACCEPTED, ["send 200"], {"L"}),
        ((), "tu 486", S.COMPLETED, ["send 486"], {"G", "H"}),
        ((), "transport error", S.TERMINATED, ["failed"], set()),
        (("tu 486",), "again", S.COMPLETED, ["send 486"], {"G", "H"}),
        (("tu 486",), "timer G", S.COMPLETED, ["send 486"], {"G", "H"}),
        (("tu 486",), "timer H", S.TERMINATED, ["timed out"], set()),
        (("tu 486",), "ACK", S.CONFIRMED, [], {"I"}),
        (("tu 486",), "transport error", S.TERMINATED, ["failed"], set()),
        (("tu 486", "ACK"), "timer I", S.TERMINATED, [], set()),
        (("tu 200",), "tu 200", S.ACCEPTED, ["send 200"], {"L"}),
        (("tu 200",), "ACK", S.ACCEPTED, ["deliver ACK"], {"L"}),
        (("tu 200",), "transport error", S.TERMINATED, ["failed"], set()),
        (("tu 200",), "timer L", S.TERMINATED, [], set()),
        # absorbed: no row
        (("tu 486", "ACK"), "ACK", S.CONFIRMED, [], {"I"}),
        (("tu 486", "ACK"), "again", S.CONFIRMED, [], {"I"}),
        (("tu 200",), "again", S.ACCEPTED, [], {"L"}),
        (("tu 486",), "tu 200", S.COMPLETED, [], {"G", "H"}),
    ],
    TransactionKind.NON_INVITE_SERVER: [
        ((), "tu 180", S.PROCEEDING, ["send 180"], set()),
        ((), "tu 200", S.COMPLETED, ["send 200"], {"J"}),
        ((), "tu 486", S.COMPLETED, ["send 486"], {"J"}),
        (("tu 180",), "again", S.PROCEEDING, ["send 180"], set()),
        (("tu 180",), "tu 180", S.PROCEEDING, ["send 180"], set()),
        (("tu 180",), "tu 200", S.COMPLETED, ["send 200"], {"J"}),
        (("tu 180",), "tu 486", S.COMPLETED, ["send 486"], {"J"}),
        (("tu 180",), "transport error", S.TERMINATED, ["failed"], set()),
        (("tu 200",), "again", S.COMPLETED, ["send 200"], {"J"}),
        (("tu 200",), "transport error", S.TERMINATED, ["failed"], set()),
        (("tu 200",), "timer J", S.TERMINATED, [], set()),
        # absorbed: no row
        ((), "again", S.TRYING, [], set()),
        (("tu 200",), "tu 486", S.COMPLETED, [], {"J"}),
    ],
}
TABLES: dict[TransactionKind, Table] = {
    TransactionKind.INVITE_CLIENT: INVITE_CLIENT,
    TransactionKind.NON_INVITE_CLIENT: NON_INVITE_CLIENT,
    TransactionKind.INVITE_SERVER: INVITE_SERVER,
    TransactionKind.NON_INVITE_SERVER: NON_INVITE_SERVER,
}


@pytest.mark.parametrize(
    ("kind", "path", "event", "after", "outputs", "running"),
    [(kind, *case) for kind, cases in CASES.items() for case in cases],
    ids=[f"{kind.name}-{'+'.join(c[0]) or 'start'}-{c[1]}" for kind in CASES for c in CASES[kind]],
)
def test_each_row(
    kind: TransactionKind,
    path: tuple[str, ...],
    event: str,
    after: TransactionState,
    outputs: list[str],
    running: set[str],
) -> None:
    run = Run(kind)
    for name in path:
        run.step(name)
    assert run.step(event) == outputs
    assert run.tx.state is after
    assert run.running() == running


@pytest.mark.parametrize("kind", list(TransactionKind))
def test_the_cases_cover_every_row(kind: TransactionKind) -> None:
    covered = set()
    for path, event, *_ in CASES[kind]:
        run = Run(kind)
        for name in path:
            run.step(name)
        covered.add((run.tx.state, STEPS[event]))
    assert set(TABLES[kind]) <= covered


@pytest.mark.parametrize(
    ("kind", "first", "running"),
    [
        (TransactionKind.INVITE_CLIENT, ["send INVITE"], {"A", "B"}),
        (TransactionKind.NON_INVITE_CLIENT, ["send BYE"], {"E", "F"}),
        (TransactionKind.INVITE_SERVER, [], {"100"}),
        (TransactionKind.NON_INVITE_SERVER, [], set()),
    ],
)
def test_creation(kind: TransactionKind, first: list[str], running: set[str]) -> None:
    run = Run(kind)
    assert (run.first, run.running()) == (first, running)


# --- reliable transports: no retransmissions, nothing to wait for -------------------------


@pytest.mark.parametrize(
    ("kind", "path", "outputs", "state"),
    [
        (TransactionKind.INVITE_CLIENT, (), ["send INVITE"], S.CALLING),
        (
            TransactionKind.INVITE_CLIENT,
            ("486",),
            ["send ACK", "deliver 486"],
            S.TERMINATED,
        ),  # D = 0
        (TransactionKind.NON_INVITE_CLIENT, (), ["send BYE"], S.TRYING),
        (TransactionKind.NON_INVITE_CLIENT, ("200",), ["deliver 200"], S.TERMINATED),  # K = 0
        (TransactionKind.INVITE_SERVER, ("tu 486",), ["send 486"], S.COMPLETED),
        (TransactionKind.INVITE_SERVER, ("tu 486", "ACK"), [], S.TERMINATED),  # I = 0
        (TransactionKind.NON_INVITE_SERVER, ("tu 200",), ["send 200"], S.TERMINATED),  # J = 0
    ],
)
def test_reliable(
    kind: TransactionKind, path: tuple[str, ...], outputs: list[str], state: TransactionState
) -> None:
    run = Run(kind, reliable=True)
    last = run.first
    for name in path:
        last = run.step(name)
    assert (last, run.tx.state) == (outputs, state)
    assert run.running() & {"A", "E", "G"} == set()


def test_reliable_timers_that_remain() -> None:
    assert Run(TransactionKind.INVITE_CLIENT, reliable=True).running() == {"B"}
    assert Run(TransactionKind.NON_INVITE_CLIENT, reliable=True).running() == {"F"}
    server = Run(TransactionKind.INVITE_SERVER, reliable=True)
    server.step("tu 486")
    assert server.running() == {"H"}


# --- retransmission schedules ----------------------------------------------------------


def schedule(run: Run, until: float = 100.0) -> list[tuple[float, list[str]]]:
    """Every (time, outputs) as the fake clock jumps from deadline to deadline."""
    seen = []
    while (at := run.tx.deadline()) is not None and at <= until:
        outputs = describe(run.tx.tick(at))
        if outputs:
            seen.append((at, outputs))
    return seen


def test_timer_e_doubles_to_t2_until_timer_f() -> None:
    sent = [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    expected = [(at, ["send BYE"]) for at in sent] + [(32.0, ["timed out"])]
    assert schedule(Run(TransactionKind.NON_INVITE_CLIENT)) == expected


def test_timer_e_in_proceeding_is_t2() -> None:
    run = Run(TransactionKind.NON_INVITE_CLIENT)
    assert run.step("timer E") == ["send BYE"]  # at 0.5; next at 1.5
    run.step("180")
    sent = [at for at, _ in schedule(run, until=14.0)]
    assert sent == [1.5, 5.5, 9.5, 13.5]


def test_timer_a_doubles_without_cap_until_timer_b() -> None:
    sent = [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    expected = [(at, ["send INVITE"]) for at in sent] + [(32.0, ["timed out"])]
    assert schedule(Run(TransactionKind.INVITE_CLIENT)) == expected


def test_timer_g_doubles_to_t2_until_timer_h() -> None:
    run = Run(TransactionKind.INVITE_SERVER)
    run.step("tu 486")
    sent = [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    expected = [(at, ["send 486"]) for at in sent] + [(32.0, ["timed out"])]
    assert schedule(run) == expected


def test_timers_follow_t1_t2_t4() -> None:
    run = Run(TransactionKind.NON_INVITE_CLIENT, t=SipTimers(t1=0.1, t2=0.4, t4=1.0))
    assert [at for at, _ in schedule(run, until=1.6)] == pytest.approx([0.1, 0.3, 0.7, 1.1, 1.5])
    run.now = 1.5
    run.step("200")
    assert run.tx.pending() == {TimerName.K: pytest.approx(2.5)}  # T4 later


def test_100_trying_after_200_ms_unless_the_tu_answered() -> None:
    assert schedule(Run(TransactionKind.INVITE_SERVER), until=1.0) == [(0.2, ["send 100"])]
    answered = Run(TransactionKind.INVITE_SERVER)
    answered.step("tu 180")
    assert schedule(answered, until=1.0) == []


def test_a_late_tick_fires_the_timers_in_order() -> None:
    run = Run(TransactionKind.NON_INVITE_CLIENT)
    assert describe(run.tx.tick(40.0)) == ["send BYE", "timed out"]
    assert run.tx.terminated


def test_nothing_before_the_deadline() -> None:
    run = Run(TransactionKind.NON_INVITE_CLIENT)
    assert (run.tx.tick(0.49), run.tx.deadline()) == ([], 0.5)


# --- retransmissions absorbed, responses repeated ---------------------------------------


def test_a_retransmitted_final_response_gets_the_same_ack_and_reaches_the_tu_once() -> None:
    run = Run(TransactionKind.INVITE_CLIENT)
    first = run.tx.handle(TransactionEvent.FAILURE, 0.1, answer(INVITE, 486))
    again = run.tx.handle(TransactionEvent.FAILURE, 0.2, answer(INVITE, 486))
    assert first[0] == again[0] and describe(again) == ["send ACK"]


def test_the_server_answers_a_retransmission_with_the_same_bytes() -> None:
    run = Run(TransactionKind.NON_INVITE_SERVER)
    [sent] = run.tx.handle(TransactionEvent.TU_SUCCESS, 0.0, answer(BYE, 200))
    assert run.tx.handle(TransactionEvent.REQUEST, 1.0, BYE) == [sent]


def test_every_2xx_of_a_forked_invite_reaches_the_tu() -> None:
    run = Run(TransactionKind.INVITE_CLIENT)
    other = response_to(INVITE, 200, "OK", "fork2")
    run.tx.handle(TransactionEvent.SUCCESS, 0.1, answer(INVITE, 200))
    assert run.tx.handle(TransactionEvent.SUCCESS, 0.2, other) == [Deliver(other)]


# --- messages the transactions build ----------------------------------------------------


def test_the_ack_for_a_non_2xx() -> None:
    assert request_bytes(ack_for(INVITE, answer(INVITE, 486))) == (
        b"ACK sip:101@192.0.2.9 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc123\r\n"
        b"Route: <sip:proxy.example.com;lr>\r\n"
        b"Max-Forwards: 70\r\n"
        b"From: <sip:100@example.com>;tag=f1\r\n"
        b"To: <sip:101@example.com>;tag=t9\r\n"
        b"Call-ID: c1@192.0.2.1\r\n"
        b"CSeq: 7 ACK\r\n"
        b"Content-Length: 0\r\n\r\n"
    )


def test_the_cancel_of_an_invite() -> None:
    assert request_bytes(cancel_for(INVITE)) == (
        b"CANCEL sip:101@192.0.2.9 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc123\r\n"
        b"Route: <sip:proxy.example.com;lr>\r\n"
        b"Max-Forwards: 70\r\n"
        b"From: <sip:100@example.com>;tag=f1\r\n"
        b"To: <sip:101@example.com>\r\n"
        b"Call-ID: c1@192.0.2.1\r\n"
        b"CSeq: 7 CANCEL\r\n"
        b"Content-Length: 0\r\n\r\n"
    )


def test_100_trying_has_no_to_tag_and_echoes_timestamp() -> None:
    timed = Request("INVITE", INVITE.uri, Headers((*INVITE.headers, ("Timestamp", "5"))))
    response = trying(timed)
    assert (response.code, response.headers.get("To"), response.headers.get("Timestamp")) == (
        100,
        "<sip:101@example.com>",
        "5",
    )


@pytest.mark.parametrize(
    ("code", "tu", "event"),
    [
        (100, False, TransactionEvent.PROVISIONAL),
        (199, False, TransactionEvent.PROVISIONAL),
        (200, False, TransactionEvent.SUCCESS),
        (299, False, TransactionEvent.SUCCESS),
        (300, False, TransactionEvent.FAILURE),
        (699, False, TransactionEvent.FAILURE),
        (180, True, TransactionEvent.TU_PROVISIONAL),
        (200, True, TransactionEvent.TU_SUCCESS),
        (603, True, TransactionEvent.TU_FAILURE),
    ],
)
def test_event_of(code: int, tu: bool, event: TransactionEvent) -> None:
    assert event_of(code, tu) is event


# --- matching (§17.1.3, §17.2.3) ---------------------------------------------------------


def test_a_response_matches_by_branch_and_cseq_method() -> None:
    tid = TransactionId(False, "z9hG4bKabc123", "INVITE")
    assert client_id(INVITE) == client_id(answer(INVITE, 180)) == tid
    cancel_answer = response_to(cancel_for(INVITE), 200, "OK")
    assert client_id(cancel_answer) == TransactionId(False, "z9hG4bKabc123", "CANCEL")


def test_a_response_without_branch_matches_nothing() -> None:
    assert client_id(answer(request("OPTIONS", via="rport"), 200)) is None


def test_the_ack_of_a_non_2xx_matches_the_invite_and_a_cancel_is_its_own() -> None:
    invite = server_id(INVITE)
    assert invite == TransactionId(True, "z9hG4bKabc123", "INVITE", "192.0.2.1:5060")
    assert server_id(ack_for(INVITE, answer(INVITE, 486))) == invite
    cancel = server_id(cancel_for(INVITE))
    assert cancel is not None and cancel != invite and cancel.cancelled() == invite


def test_the_same_branch_from_another_sent_by_is_another_transaction() -> None:
    other = message(request_bytes(INVITE).replace(b"192.0.2.1:5060", b"192.0.2.2:5060", 1))
    assert isinstance(other, Request)
    assert server_id(other) != server_id(INVITE)


# RFC 4475 §3.4.1 (inv2543): an RFC 2543 INVITE, no branch at all.
INV2543 = (
    b"INVITE sip:UserB@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP iftgw.example.com\r\n"
    b"From: <sip:+13035551111@ift.client.example.net;user=phone>\r\n"
    b"Record-Route: <sip:UserB@example.com;maddr=ss1.example.com>\r\n"
    b"To: sip:+16505552222@ss1.example.net;user=phone\r\n"
    b"Call-ID: 1717@ift.client.example.net\r\n"
    b"CSeq: 56 INVITE\r\n"
    b"Content-Type: application/sdp\r\n"
    b"\r\n"
    b"v=0\r\n"
    b"o=mhandley 29739 7272939 IN IP4 192.0.2.5\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.5\r\n"
    b"t=0 0\r\n"
    b"m=audio 49217 RTP/AVP 0\r\n"
)


def test_rfc4475_inv2543_matches_by_the_fallback_fields() -> None:
    invite = message(INV2543)
    assert isinstance(invite, Request)
    tid = server_id(invite)
    assert tid is not None and tid.branch.startswith("2543 ")
    assert tid.sent_by == "iftgw.example.com:5060"
    assert server_id(message(INV2543)) == tid  # a retransmission
    ack = ack_for(invite, response_to(invite, 486, "Busy Here", "x1"))
    assert server_id(ack) == tid
    assert server_id(cancel_for(invite)) == TransactionId(True, tid.branch, "CANCEL", tid.sent_by)
    later = message(INV2543.replace(b"CSeq: 56", b"CSeq: 57"))
    assert isinstance(later, Request) and server_id(later) != tid


def test_rfc4475_bare_magic_cookie_falls_back_too() -> None:
    """RFC 4475 §3.2.1 (zeta...): branch=z9hG4bK and nothing after: no identifier."""
    bare = request("OPTIONS", via="branch=z9hG4bK")
    tid = server_id(bare)
    assert tid is not None and tid.branch.startswith("2543 ")


def test_uas_2xx_retransmissions_double_to_t2_for_64_t1() -> None:
    uas = TwoXxRetransmissions(sent=10.0)
    seen = []
    while (due := uas.tick(at := uas.deadline())) is not Due.GIVE_UP:
        seen.append((at, due))
    assert [at for at, _ in seen] == [10.5, 11.5, 13.5, 17.5, 21.5, 25.5, 29.5, 33.5, 37.5, 41.5]
    assert {due for _, due in seen} == {Due.RETRANSMIT}
    assert uas.deadline() == 42.0 and uas.tick(41.9) is Due.NOTHING
