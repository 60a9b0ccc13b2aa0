"""One call's media, pure, under a fake clock: the schedule, latching, hold, DTMF, receiving."""

import io
import random
import wave
from dataclasses import replace
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from intercom_sip.calls import RtpFigures
from intercom_sip.media import rtcp, rtp
from intercom_sip.media.dtmf import digit_payloads
from intercom_sip.media.g711 import PCMA, PCMU
from intercom_sip.media.latch import MAX_CANDIDATES, QUIET, RUN
from intercom_sip.media.recording import Recorder
from intercom_sip.media.source import FRAME_BYTES, Loop, tone
from intercom_sip.media.srtp import AUTH_FAILED, REPLAYED
from intercom_sip.media.stream import (
    FOREIGN,
    MAX_DIGITS,
    NO_EVENTS,
    NOT_DIGITS,
    NOT_RTCP,
    TOO_LONG,
    TOO_MANY_DIGITS,
    UNKNOWN_TYPE,
    Address,
    DtmfRefused,
    MediaStream,
)
from intercom_sip.sip.negotiation import Negotiated

A: Address = ("192.0.2.1", 40000)
B: Address = ("192.0.2.2", 50000)
NAT: Address = ("198.51.100.7", 61234)
KEY_A = bytes(range(30))
KEY_B = bytes(range(100, 130))
T0 = 1000.0


def negotiated(to: Address, **changes: object) -> Negotiated:
    base = Negotiated("PCMU", 0, 101, to[0], to[1], "sendrecv")
    return replace(base, **changes)  # type: ignore[arg-type]


def the_tone() -> Loop:
    source = tone(425)
    assert isinstance(source, Loop)
    return source


def stream(to: Address, seed: int = 1, **kwargs: object) -> MediaStream:
    key = kwargs.pop("our_key", None)
    recorder = kwargs.pop("recorder", None)
    return MediaStream(
        negotiated(to, **kwargs),
        the_tone(),
        random.Random(seed),
        T0,
        our_key=key,  # type: ignore[arg-type]
        recorder=recorder,  # type: ignore[arg-type]
    )


def packets(datagrams: list[tuple[bytes, Address]]) -> list[rtp.RtpPacket]:
    parsed = [rtp.parse(data) for data, _ in datagrams]
    assert all(isinstance(p, rtp.RtpPacket) for p in parsed)
    return parsed  # type: ignore[return-value]


def slots(sender: MediaStream, count: int, start: float = T0) -> list[tuple[bytes, Address]]:
    """Tick at each slot's due time: one datagram a slot."""
    sent = []
    for n in range(count):
        sent += sender.tick(start + n * 0.020)
    return sent


# --- the schedule ---


def test_one_packet_a_slot_on_time_to_the_sdp_address() -> None:
    a = stream(B)
    assert a.deadline() == T0
    first = a.tick(T0)
    assert [to for _, to in first] == [B]
    assert a.tick(T0 + 0.019) == []
    assert a.deadline() == pytest.approx(T0 + 0.020)
    assert len(a.tick(T0 + 0.020)) == 1
    assert a.lateness.recent() == (0.0, 0.0)


@pytest.mark.parametrize("ptime", [20, 30, 40])
def test_a_wakeup_at_the_slots_millisecond_is_the_slots(ptime: int) -> None:
    """uvloop's clock counts whole milliseconds: it wakes at the millisecond of a slot's
    time, and start + n * ptime, in floats, may read a hair past it. That slot is sent
    then, once, and no later wake-up is asked for it (that spun the loop until the clock's
    next millisecond)."""
    start = 11360.322  # as uvloop's time() gives it: a millisecond count / 1000
    a = MediaStream(negotiated(B, ptime=ptime), the_tone(), random.Random(1), start)
    for n in range(500):
        woken = (round(start * 1000) + n * ptime) / 1000  # the loop's reading at slot n
        assert len(a.tick(woken)) == 1, n
        assert a.deadline() == pytest.approx(woken + ptime / 1000)
    assert a.lateness.worst == 0.0


def test_late_wakeups_do_not_shift_the_schedule() -> None:
    a = stream(B)
    for n in range(100):
        assert len(a.tick(T0 + n * 0.020 + 0.007)) == 1  # always 7 ms late
    assert a.deadline() == T0 + 100 * 0.020  # still on the grid, no drift
    assert a.lateness.summary().p99_ms == pytest.approx(7.0)


def test_a_few_slots_late_sends_the_missed_ones_at_once() -> None:
    a = stream(B)
    a.tick(T0)
    burst = packets(a.tick(T0 + 0.065))  # slots 1, 2 and 3 are due
    first = packets([(a.tick(T0 + 0.080)[0][0], B)])[0]
    assert [p.sequence - burst[0].sequence for p in [*burst, first]] == [0, 1, 2, 3]
    assert [p.timestamp - burst[0].timestamp for p in burst] == [0, 160, 320]
    assert a.skipped == 0


def test_far_behind_skips_ahead_instead_of_bursting() -> None:
    a = stream(B)
    before = packets(a.tick(T0))[0]
    after = packets(a.tick(T0 + 0.205))  # slots 1..10 due: 9 skipped, slot 10 sent
    assert len(after) == 1
    assert after[0].sequence == (before.sequence + 1) & 0xFFFF  # nothing lost on the wire
    assert after[0].timestamp == (before.timestamp + 10 * 160) & 0xFFFFFFFF  # time moved on
    assert a.skipped == 9
    assert a.deadline() == pytest.approx(T0 + 0.220)
    assert a.stats().sent == 2


def test_the_payload_is_the_source_encoded() -> None:
    a = stream(B, codec="PCMA", payload_type=8)
    source = the_tone()
    sent = packets(slots(a, 3))
    assert [p.payload_type for p in sent] == [8, 8, 8]
    assert [p.payload for p in sent] == [PCMA.encode(source.next_frame()) for _ in range(3)]
    assert [p.marker for p in sent] == [True, False, False]


# --- hold ---


@pytest.mark.parametrize(
    "held",
    [
        {"direction": "recvonly"},
        {"direction": "inactive"},
        {"remote_address": None},
    ],
)
def test_nothing_is_sent_on_hold_and_resuming_starts_now(held: dict[str, object]) -> None:
    a = stream(B, **held)
    assert a.deadline() is None
    assert a.target is None
    assert slots(a, 10) == []
    a.update(negotiated(B), T0 + 5.0)
    assert a.deadline() == T0 + 5.0
    assert [to for _, to in a.tick(T0 + 5.0)] == [B]
    a.update(negotiated(B, **held), T0 + 5.01)
    assert a.tick(T0 + 6.0) == []
    assert a.stats().sent == 1


@pytest.mark.parametrize("held", [{"direction": "recvonly"}, {"remote_address": None}])
def test_received_rtp_does_not_end_a_hold(held: dict[str, object]) -> None:
    a, b = stream(B, **held), stream(A, seed=2)
    for data, _ in slots(b, 3):
        a.receive(data, B, T0)
    assert a.target is None
    assert a.deadline() is None


# --- latching (symmetric RTP) ---


def run_from(a: MediaStream, b: MediaStream, source: Address, count: int, at: float) -> None:
    """`count` of b's packets, in sequence, arriving at `a` from `source` at `at`."""
    for n in range(count):
        for data, _ in b.tick(at + n * 0.020):
            a.receive(data, source, at + n * 0.020)


def test_a_caller_behind_nat_is_latched_after_a_run_at_the_start() -> None:
    """Before anything came from the SDP address, the first source to show RUN packets
    in sequence of one SSRC is latched (RFC 3550 A.1 probation)."""
    a, b = stream(B), stream(A, seed=2)
    assert [to for _, to in a.tick(T0)] == [B]
    run_from(a, b, NAT, RUN - 1, T0)
    assert a.target == B
    assert a.dropped == {FOREIGN: RUN - 1}
    run_from(a, b, NAT, 1, T0 + 0.1)
    assert a.target == NAT
    assert [to for _, to in a.tick(T0 + 0.12)] == [NAT]


def test_packets_out_of_sequence_never_pass_the_probation() -> None:
    a = stream(B)
    for n in range(50):
        spray = rtp.build(rtp.RtpPacket(0, n * 2, n * 160, 7, bytes(160)))
        a.receive(spray, NAT, T0 + n * 0.001)
    assert a.target == B
    assert a.dropped == {FOREIGN: 50}
    assert a.stats().received == 0
    assert a.last_arrival is None


def test_the_sdp_address_always_wins_back() -> None:
    a, b = stream(B), stream(A, seed=2)
    run_from(a, b, NAT, RUN, T0)
    assert a.target == NAT
    run_from(a, b, B, 1, T0 + 0.2)
    assert a.target == B
    assert a.dropped == {FOREIGN: RUN - 1}


def test_a_live_source_is_not_taken_over_by_a_sprayer() -> None:
    """Once the SDP address has sent, another source needs the current one silent for
    QUIET seconds: a sprayer's perfect runs are dropped while the peer talks."""
    a, b, c = stream(B), stream(A, seed=2), stream(A, seed=3)
    run_from(a, b, B, 1, T0)
    run_from(a, c, NAT, 40, T0 + 0.02)  # 0.8 s of a sprayer's run, the peer quiet
    assert a.target == B
    assert a.dropped == {FOREIGN: 41}  # c's first tick sends its two slots due by then
    # The peer silent for QUIET: NAT may latch, after a run heard from then on.
    run_from(a, c, NAT, RUN - 1, T0 + QUIET + 0.021)
    assert a.target == B
    run_from(a, c, NAT, 1, T0 + QUIET + 0.2)
    assert a.target == NAT


def test_a_source_made_current_starts_the_quiet_second_afresh() -> None:
    a, b, c = stream(B), stream(A, seed=2), stream(A, seed=3)
    run_from(a, b, B, 1, T0)
    run_from(a, c, NAT, RUN, T0 + 5)  # B silent for 5 s: NAT latched
    assert a.target == NAT
    run_from(a, b, B, RUN, T0 + 5.5)  # the SDP address takes it back at once
    assert a.target == B
    other: Address = ("203.0.113.5", 7000)
    run_from(a, c, other, RUN + 10, T0 + 5.6)  # within a second of B: refused
    assert a.target == B


def test_a_new_sdp_address_is_current_at_once_and_the_old_cannot_pull_it_back() -> None:
    """RFC 3264 §8.3.1: after a re-INVITE to a new address, packets in flight from the
    old one are dropped, even a perfect run of them."""
    a, b = stream(B), stream(A, seed=2)
    run_from(a, b, B, 5, T0)
    moved: Address = ("192.0.2.9", 50002)
    a.update(negotiated(moved), T0 + 0.1)
    assert a.target == moved
    dropped = a.junk
    run_from(a, b, B, 15, T0 + 0.1)  # the old source lingers 300 ms
    assert a.target == moved
    assert a.junk == dropped + 15
    run_from(a, b, moved, 1, T0 + 0.45)
    assert a.target == moved
    assert [to for _, to in a.tick(T0 + 0.5)] == [moved]


def test_the_old_source_cannot_latch_even_before_the_new_one_sends() -> None:
    a, b = stream(B), stream(A, seed=2)
    moved: Address = ("192.0.2.9", 50002)
    a.update(negotiated(moved), T0)  # nothing came from B yet: still no start exception
    run_from(a, b, B, 30, T0)
    assert a.target == moved


def test_an_address_that_is_no_ip_literal_waits_for_rtp() -> None:
    # A name in c= would need a DNS look-up; the first source to pass probation instead.
    a, b = stream(("panel.example", 50000)), stream(A, seed=2)
    assert a.target is None
    assert a.deadline() is None
    run_from(a, b, B, RUN, T0 + 0.5)
    assert a.target == B
    assert a.deadline() == T0 + 0.5 + (RUN - 1) * 0.020


def test_the_candidates_on_probation_are_bounded() -> None:
    a = stream(B)
    for n in range(10 * MAX_CANDIDATES):
        a.receive(rtp.build(rtp.RtpPacket(0, 1, 160, 7, bytes(160))), ("10.0.0.1", n), T0)
    assert len(a.latch._candidates) == MAX_CANDIDATES
    assert a.target == B


# --- receiving ---


def test_audio_is_counted_decoded_and_recorded() -> None:
    file = io.BytesIO()
    a, b = stream(B, recorder=Recorder(file)), stream(A, seed=2)
    for n, (data, _) in enumerate(slots(b, 50)):
        assert a.receive(data, B, T0 + n * 0.020) == ""
    a.close()
    assert a.stats() == RtpFigures(0, 50, 0, 0.0)
    assert a.last_arrival == T0 + 49 * 0.020
    file.seek(0)
    with wave.open(file, "rb") as reader:
        recorded = reader.readframes(reader.getnframes())
    # The first packet is held back by the sequence check (RFC 3550 A.1 probation).
    source = the_tone()
    frames = [PCMU.decode(PCMU.encode(source.next_frame())) for _ in range(50)]
    assert recorded == b"".join(frames[1:])


def test_stats_count_what_was_sent_received_and_lost() -> None:
    a, b = stream(B), stream(A, seed=2)
    sent = slots(b, 20)
    for n, (data, _) in enumerate(sent):
        if n not in (5, 6):  # two lost on the way
            a.receive(data, B, T0 + n * 0.020)
    assert b.stats() == RtpFigures(20, 0, 0, 0.0)
    assert a.stats() == RtpFigures(0, 18, 2, 0.0)


def test_rtcp_from_the_current_source_is_a_sign_of_life_not_media() -> None:
    a = stream(B)
    sender_report = bytes([0x80, 200, 0, 6]) + bytes(24)
    assert a.receive(sender_report, B, T0) == ""
    a.receive_rtcp(sender_report, (B[0], B[1] + 1), T0 + 1)
    assert a.rtcp == 2
    assert a.last_arrival == T0 + 1
    assert a.stats().received == 0
    assert a.target == B


def test_rtcp_from_anyone_else_is_dropped() -> None:
    a = stream(B)
    sender_report = bytes([0x80, 200, 0, 6]) + bytes(24)
    a.receive(sender_report, NAT, T0)
    a.receive_rtcp(sender_report, (B[0], B[1] + 2), T0)
    a.receive_rtcp(b"hello", (B[0], B[1] + 1), T0)
    a.receive_rtcp(bytes([0x80, 202, 0, 1]) + bytes(4), (B[0], B[1] + 1), T0)
    assert a.rtcp == 0
    assert a.last_arrival is None
    assert a.dropped == {FOREIGN: 2, NOT_RTCP: 1, rtcp.NOT_RTCP: 1}


def test_comfort_noise_counts_in_the_stream_but_is_not_played() -> None:
    file = io.BytesIO()
    a = stream(B, recorder=Recorder(file))
    for n in range(3):
        a.receive(rtp.build(rtp.RtpPacket(13, n, n * 160, 7, b"\x40")), B, T0)
    assert a.stats().received == 3
    assert a.junk == 0
    a.close()
    assert len(file.getvalue()) == 44  # a WAV header, no frames


@pytest.mark.parametrize(
    ("datagram", "reason"),
    [
        (bytes(1501), TOO_LONG),
        (b"\x80\x00\x00", rtp.TOO_SHORT),
        (bytes(20), rtp.BAD_VERSION),
        (rtp.build(rtp.RtpPacket(96, 1, 1, 1, b"x")), UNKNOWN_TYPE),
    ],
)
def test_junk_is_dropped_and_counted(datagram: bytes, reason: str) -> None:
    a = stream(B)
    assert a.receive(datagram, NAT, T0) == ""
    assert a.dropped == {reason: 1}
    assert a.junk == 1
    assert a.last_arrival is None
    assert a.target == B


@given(st.binary(max_size=1600))
def test_no_datagram_raises(datagram: bytes) -> None:
    a = stream(B)
    a.receive(datagram, NAT, T0)


@given(st.binary(max_size=1600))
def test_no_datagram_raises_with_srtp(datagram: bytes) -> None:
    a = stream(B, our_key=KEY_A, remote_key=KEY_B)
    a.receive(datagram, NAT, T0)


@given(st.binary(max_size=1600), st.booleans())
def test_no_datagram_raises_from_the_sdp_address_or_on_the_rtcp_port(
    datagram: bytes, secure: bool
) -> None:
    keys = {"our_key": KEY_A, "remote_key": KEY_B} if secure else {}
    a = stream(B, **keys)
    a.receive(datagram, B, T0)
    a.receive_rtcp(datagram, (B[0], B[1] + 1), T0)


# --- DTMF ---


def test_a_digit_takes_the_audio_slots_as_telephone_events() -> None:
    a = stream(B)
    assert a.send_dtmf("5") is None
    sent = packets(slots(a, 10))
    assert [p.payload_type for p in sent] == [101] * 7 + [0] * 3
    assert [p.payload for p in sent[:7]] == list(digit_payloads("5"))
    assert [p.marker for p in sent[:7]] == [True] + [False] * 6
    assert {p.timestamp for p in sent[:7]} == {sent[0].timestamp}  # the event's start
    assert sent[7].timestamp == (sent[0].timestamp + 7 * 160) & 0xFFFFFFFF


def test_far_behind_a_digit_loses_growing_packets_never_its_ends() -> None:
    a = stream(B)
    assert a.send_dtmf("5") is None
    first = packets(a.tick(T0))  # the event's first packet
    late = packets(a.tick(T0 + 0.205))  # 9 slots skipped: 3 growing packets are lost
    rest = packets(slots(a, 3, start=T0 + 0.220))
    sent = [*first, *late, *rest]
    ends = [p.payload for p in sent if p.payload_type == 101][1:]
    assert ends == list(digit_payloads("5"))[-3:]  # all three ends went, in order
    assert [p.payload_type for p in sent] == [101] * 4 + [0]


def test_digits_arrive_once_each_with_audio_between() -> None:
    a, b = stream(B), stream(A, seed=2)
    heard = []
    assert b.send_dtmf("1#*") is None
    sent = slots(b, 40)
    kinds = [p.payload_type for p in packets(sent)]
    assert kinds == [101] * 7 + [0] * 3 + [101] * 7 + [0] * 3 + [101] * 7 + [0] * 13
    for n, (data, _) in enumerate(sent):
        heard.append(a.receive(data, B, T0 + n * 0.020))
    assert "".join(heard) == "1#*"
    assert a.stats().lost == 0


def test_digits_wait_through_a_hold() -> None:
    a = stream(B, direction="recvonly")
    a.send_dtmf("9")
    a.update(negotiated(B), T0 + 1)
    assert packets(a.tick(T0 + 1))[0].payload_type == 101


@pytest.mark.parametrize(
    ("changes", "digits", "reason"),
    [
        ({"event_payload_type": None}, "1", NO_EVENTS),
        ({}, "", NOT_DIGITS),
        ({}, "12x", NOT_DIGITS),
        ({}, "1" * (MAX_DIGITS + 1), TOO_MANY_DIGITS),
    ],
)
def test_digits_refused(changes: dict[str, object], digits: str, reason: str) -> None:
    a = stream(B, **changes)
    assert a.send_dtmf(digits) == DtmfRefused(reason)
    assert [p.payload_type for p in packets(a.tick(T0))] == [0]  # nothing was queued


def test_the_digit_queue_is_bounded() -> None:
    a = stream(B)
    assert a.send_dtmf("1" * MAX_DIGITS) is None
    assert a.send_dtmf("2") == DtmfRefused(TOO_MANY_DIGITS)
    a.tick(T0)  # the first digit started: its place is free again
    assert a.send_dtmf("2") is None


# --- SRTP ---


def test_srtp_both_ways_and_no_clear_payload_on_the_wire() -> None:
    file = io.BytesIO()
    a = stream(B, our_key=KEY_A, remote_key=KEY_B, recorder=Recorder(file))
    b = stream(A, seed=2, our_key=KEY_B, remote_key=KEY_A)
    clear = PCMU.encode(the_tone().next_frame())
    wire = slots(b, 10)
    assert all(clear[:16] not in data for data, _ in wire)
    assert all(len(data) == 12 + 160 + 10 for data, _ in wire)  # the 80-bit tag
    for data, _ in wire:
        a.receive(data, B, T0)
    for data, _ in slots(a, 5):
        b.receive(data, A, T0)
    assert (a.stats().received, b.stats().received, a.junk, b.junk) == (10, 5, 0, 0)
    a.close()
    assert len(file.getvalue()) == 44 + 9 * FRAME_BYTES


def test_srtp_with_the_wrong_key_is_dropped_and_does_not_latch() -> None:
    a = stream(B, our_key=KEY_A, remote_key=KEY_B)
    stranger = stream(A, seed=3, our_key=bytes(30), remote_key=KEY_A)
    a.receive(stranger.tick(T0)[0][0], NAT, T0)
    assert a.dropped == {AUTH_FAILED: 1}
    assert a.target == B


def test_a_new_key_is_a_new_stream() -> None:
    a = stream(B, our_key=KEY_A, remote_key=KEY_B)
    b = stream(A, seed=2, our_key=KEY_B, remote_key=KEY_A)
    old = a.tick(T0)[0][0]
    a.update(negotiated(B, remote_key=bytes(range(50, 80))), T0)
    b_new = stream(A, seed=2, our_key=bytes(range(50, 80)), remote_key=KEY_A)
    new = a.tick(T0 + 0.020)[0][0]
    assert old[8:12] != new[8:12]  # another SSRC: no packet index twice under one key
    b.receive(old, A, T0)
    b_new.receive(new, A, T0)
    assert (b.junk, b_new.junk) == (0, 0)
    assert a.stats().sent == 2


def test_an_srtp_call_needs_our_key() -> None:
    with pytest.raises(ValueError, match=r"^an SRTP call needs our key as well as the peer's$"):
        stream(B, remote_key=KEY_B)


def test_srtp_a_stranger_run_of_forged_packets_never_latches() -> None:
    """Over SRTP a packet counts toward the probation only once authenticated."""
    a = stream(B, our_key=KEY_A, remote_key=KEY_B)
    stranger = stream(A, seed=3, our_key=bytes(30), remote_key=KEY_A)
    for n in range(3 * RUN):
        for data, _ in stranger.tick(T0 + n * 0.020):
            a.receive(data, NAT, T0 + n * 0.020)
    assert a.dropped == {AUTH_FAILED: 3 * RUN}
    assert a.target == B


# --- ptime ---


@pytest.mark.parametrize("ptime", [20, 30, 40])
def test_packets_of_the_offer_ptime(ptime: int) -> None:
    """The payload holds ptime ms (160, 240, 320 bytes), the timestamp steps as much, and
    a slot is due every ptime ms."""
    a = stream(B, ptime=ptime)
    samples = ptime * 8
    sent = []
    for n in range(5):
        assert a.deadline() == pytest.approx(T0 + n * ptime / 1000)
        sent += packets(a.tick(T0 + n * ptime / 1000))
    assert [len(p.payload) for p in sent] == [samples] * 5
    steps = [(q.timestamp - p.timestamp) % (1 << 32) for p, q in pairwise(sent)]
    assert steps == [samples] * 4
    source = the_tone()
    pcm = b"".join(source.next_frame() for _ in range(ptime // 20 * 5 // 1 + 2))
    assert sent[1].payload == PCMU.encode(pcm[2 * samples : 4 * samples])


def test_a_digit_at_ptime_30_steps_its_durations_by_240() -> None:
    a = stream(B, ptime=30)
    a.send_dtmf("5")
    events = [p for p in packets(a.tick(T0)) if p.payload_type == 101]
    assert events[0].payload == digit_payloads("5", 240)[0]
    following = packets(a.tick(T0 + 0.030))
    assert following[0].payload == digit_payloads("5", 240)[1]


def test_a_reinvite_changing_the_ptime_keeps_the_next_slot() -> None:
    a = stream(B)
    a.tick(T0)
    a.update(negotiated(B, ptime=40), T0 + 0.005)
    assert a.deadline() == pytest.approx(T0 + 0.020)
    a.tick(T0 + 0.020)
    assert a.deadline() == pytest.approx(T0 + 0.060)


# --- RTCP ---


def test_a_report_every_five_seconds_to_the_port_above_or_the_same_with_mux() -> None:
    a, b = stream(B), stream(A, seed=2)
    assert a.report(T0 + 2.4) is None
    run_from(a, b, B, 3, T0)
    report = a.report(T0 + 2.5)
    assert report is not None
    assert report[1] == (B[0], B[1] + 1)
    parsed = rtcp.parse(report[0])
    assert isinstance(parsed, rtcp.Compound)
    assert parsed.packet_types == (rtcp.SR, rtcp.SDES)
    assert report[0][1] == rtcp.SR and report[0][0] == 0x81  # one report block, of b's
    assert a.report_due() == T0 + 7.5
    muxed = stream(B, rtcp_mux=True)
    report = muxed.report(T0 + 2.5)
    assert report is not None
    assert report[1] == B


def test_on_hold_a_receiver_report_and_no_wakeup_but_the_report() -> None:
    a = stream(B, direction="recvonly")
    assert a.deadline() is None
    assert a.report_due() == T0 + 2.5
    report = a.report(T0 + 2.5)
    assert report is not None
    assert rtcp.parse(report[0]) == rtcp.Compound(a._sender.ssrc, (rtcp.RR, rtcp.SDES), None)


def test_srtcp_both_ways() -> None:
    a = stream(B, our_key=KEY_A, remote_key=KEY_B)
    b = stream(A, seed=2, our_key=KEY_B, remote_key=KEY_A)
    report = a.report(T0 + 2.5)
    assert report is not None
    b.receive_rtcp(report[0], (A[0], A[1] + 1), T0 + 3)
    assert (b.rtcp, b.last_arrival) == (1, T0 + 3)
    b.receive_rtcp(report[0], (A[0], A[1] + 1), T0 + 4)  # SRTCP's replay check
    later = a.report(T0 + 7.5)
    assert later is not None
    b.receive_rtcp(later[0], (B[0], B[1] + 1), T0 + 8)  # authentic, from the wrong host
    forged = stream(A, seed=3, our_key=bytes(30), remote_key=KEY_A).report(T0 + 2.5)
    assert forged is not None
    b.receive_rtcp(forged[0], (A[0], A[1] + 1), T0 + 9)
    assert (b.rtcp, b.last_arrival) == (1, T0 + 3)
    assert b.dropped == {REPLAYED: 1, FOREIGN: 1, AUTH_FAILED: 1}


def test_rtcp_goes_to_and_is_taken_from_the_sdp_rtcp_port() -> None:
    """RFC 3605: an SBC's RTCP port need not be RTP's + 1."""
    a = stream(B, rtcp_port=B[1] + 7)
    report = a.report(T0 + 2.5)
    assert report is not None
    assert report[1] == (B[0], B[1] + 7)
    sender_report = bytes([0x80, 200, 0, 6]) + bytes(24)
    a.receive_rtcp(sender_report, (B[0], B[1] + 7), T0 + 3)
    assert (a.rtcp, a.last_arrival) == (1, T0 + 3)
