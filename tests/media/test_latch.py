"""The latch (CONTRACT §6.7), pure: probation, the quiet second, the SDP address, a move."""

from intercom_sip.address import Address
from intercom_sip.media.latch import MAX_CANDIDATES, QUIET, RUN, Latch

SDP: Address = ("192.0.2.1", 40000)
NAT: Address = ("198.51.100.7", 61234)
SPRAY: Address = ("203.0.113.9", 5004)
T0 = 50.0


def run(latch: Latch, source: Address, count: int, at: float, ssrc: int = 7) -> list[bool]:
    """`count` packets in sequence from `source`, 20 ms apart from `at`."""
    return [latch.admit(source, ssrc, 1000 + n, at + n * 0.02) for n in range(count)]


def test_the_sdp_address_is_current_from_the_start_and_always_taken() -> None:
    latch = Latch(SDP, T0)
    assert latch.current == SDP
    assert latch.admit(SDP, 1, 5, T0) is True
    assert latch.admit(SDP, 2, 999, T0) is True  # any SSRC, any sequence
    assert latch.latches == 0


def test_at_the_start_the_first_source_to_pass_probation_is_latched() -> None:
    latch = Latch(SDP, T0)
    assert run(latch, NAT, RUN + 1, T0) == [False] * (RUN - 1) + [True, True]
    assert latch.current == NAT
    assert latch.latches == 1


def test_only_the_first_source_at_the_start_latches_so() -> None:
    latch = Latch(SDP, T0)
    run(latch, NAT, RUN, T0)
    assert run(latch, SPRAY, 20, T0 + 0.1) == [False] * 20
    assert latch.current == NAT


def test_a_broken_run_starts_again() -> None:
    latch = Latch(SDP, T0)
    sequences = [1, 2, 3, 5, 6, 7]  # a gap after 3: the run restarts at 5
    assert [latch.admit(NAT, 7, seq, T0) for seq in sequences] == [False] * 6
    assert latch.admit(NAT, 7, 8, T0) is True


def test_a_new_ssrc_starts_the_run_again() -> None:
    latch = Latch(SDP, T0)
    run(latch, NAT, RUN - 1, T0, ssrc=1)
    assert run(latch, NAT, RUN - 1, T0 + 0.1, ssrc=2) == [False] * (RUN - 1)
    assert latch.current == SDP


def test_the_run_wraps_at_65536() -> None:
    latch = Latch(SDP, T0)
    assert [latch.admit(NAT, 7, seq, T0) for seq in (65534, 65535, 0, 1)] == [
        False,
        False,
        False,
        True,
    ]


def test_once_the_sdp_address_spoke_another_needs_it_silent_for_a_second() -> None:
    latch = Latch(SDP, T0)
    latch.admit(SDP, 1, 1, T0)
    assert run(latch, NAT, 40, T0) == [False] * 40  # up to T0 + 0.78
    assert latch.admit(NAT, 7, 1040, T0 + QUIET - 0.001) is False
    assert latch.admit(NAT, 7, 1041, T0 + QUIET) is True
    assert latch.current == NAT


def test_the_sdp_address_takes_it_back_and_starts_the_second_afresh() -> None:
    latch = Latch(SDP, T0)
    latch.admit(SDP, 1, 1, T0)
    run(latch, NAT, RUN, T0 + 2)
    assert latch.current == NAT
    assert latch.admit(SDP, 1, 2, T0 + 3) is True
    assert latch.current == SDP
    assert run(latch, NAT, RUN, T0 + 3.5) == [False] * RUN
    assert latch.admit(SPRAY, 9, 1, T0 + 3.9) is False


def test_a_move_is_current_at_once_and_the_old_address_is_a_stranger() -> None:
    latch = Latch(SDP, T0)
    moved: Address = ("192.0.2.9", 50002)
    latch.move(moved, T0 + 1)
    assert latch.current == moved
    assert run(latch, SDP, 20, T0 + 1) == [False] * 20  # 400 ms still in flight
    assert latch.current == moved
    assert latch.admit(moved, 3, 1, T0 + 1.5) is True


def test_a_move_to_the_same_address_changes_nothing() -> None:
    latch = Latch(SDP, T0)
    run(latch, NAT, RUN, T0)
    latch.move(SDP, T0 + 1)
    assert latch.current == NAT


def test_a_move_to_no_address_holds() -> None:
    latch = Latch(SDP, T0)
    latch.move(None, T0)
    assert latch.current is None
    assert run(latch, NAT, RUN, T0 + 0.1) == [False] * (RUN - 1) + [False]


def test_the_candidates_are_bounded_and_the_oldest_forgotten() -> None:
    latch = Latch(SDP, T0)
    run(latch, NAT, RUN - 1, T0)
    for port in range(MAX_CANDIDATES):
        latch.admit(("10.0.0.1", port), 1, 1, T0)
    assert len(latch._candidates) == MAX_CANDIDATES
    assert NAT not in latch._candidates
    assert latch.admit(NAT, 7, 1000 + RUN - 1, T0 + 0.1) is False  # its run was forgotten


def test_rtcp_is_owned_from_the_current_port_or_the_one_above() -> None:
    latch = Latch(SDP, T0)
    assert latch.owns(SDP)
    assert latch.owns((SDP[0], SDP[1] + 1))
    assert not latch.owns((SDP[0], SDP[1] + 2))
    assert not latch.owns(NAT)
    assert not Latch(None, T0).owns(SDP)


def test_a_stranger_is_shut_out_while_the_current_source_is_live() -> None:
    latch = Latch(SDP, T0)
    assert not latch.shut_to(NAT, T0)  # the start: anyone may pass the probation
    latch.admit(SDP, 1, 1, T0)
    assert latch.shut_to(NAT, T0 + QUIET - 0.01)
    assert not latch.shut_to(SDP, T0 + 0.5)
    assert not latch.shut_to(NAT, T0 + QUIET)
