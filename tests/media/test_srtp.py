"""SRTP over libsrtp: round trips, drops as values, bounds, and RFC 3711 checked independently.

libsrtp's own key derivation is not reachable through pylibsrtp, so the RFC 3711
Appendix B vectors are checked this way: a small AES-128 below (checked against
FIPS-197 C.1) builds AES-CM and the key derivation, which must give the B.2 keystream
and the B.3 session keys; then a packet protected by libsrtp with the B.3 master key
must be, byte for byte, the one built here from B.3's session keys with AES-CM and
HMAC-SHA1-80.
"""

import hashlib
import hmac
import random
import struct
from functools import cache

import pylibsrtp
import pytest

from intercom_sip.media.rtp import Rtcp, RtpPacket, build, parse
from intercom_sip.media.srtp import (
    AUTH_FAILED,
    MAX_PROTECT,
    MAX_SOURCES,
    MAX_UNPROTECT,
    NOT_SRTP,
    REPLAYED,
    TOO_LONG,
    TOO_MANY_SOURCES,
    TOO_OLD,
    SrtpError,
    SrtpSession,
    new_key,
)

OURS = bytes(range(30))
THEIRS = bytes(range(100, 130))
SSRC = 0xDEADBEEF


def rtp(sequence: int, ssrc: int = SSRC, payload: bytes = b"\xd5" * 160) -> bytes:
    return build(RtpPacket(8, sequence, sequence * 160, ssrc, payload))


def raw_sender(key: bytes) -> pylibsrtp.Session:
    """libsrtp with no bounds of ours: a peer, or a stranger, that may send anything."""
    policy = pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    return pylibsrtp.Session(policy)


def pair() -> tuple[SrtpSession, SrtpSession]:
    """Two ends of one call: each one's outbound key is the other's inbound key."""
    return SrtpSession(OURS, THEIRS), SrtpSession(THEIRS, OURS)


# --- round trips and what is on the wire ---


def test_round_trip_both_ways() -> None:
    monitor, panel = pair()
    assert panel.unprotect(monitor.protect(rtp(1))) == rtp(1)
    assert monitor.unprotect(panel.protect(rtp(7, ssrc=5))) == rtp(7, ssrc=5)


def test_on_the_wire_the_header_is_clear_the_payload_is_not() -> None:
    monitor, _ = pair()
    wire = monitor.protect(rtp(1))
    assert len(wire) == len(rtp(1)) + 10  # the 80-bit tag
    assert wire[:12] == rtp(1)[:12]
    assert b"\xd5" * 4 not in wire[12:]
    assert sum(a == b for a, b in zip(wire[12:172], rtp(1)[12:], strict=True)) < 10


def test_sequence_rollover_is_followed() -> None:
    monitor, panel = pair()
    sequences = [65534, 65535, 0, 1, 2]
    assert [panel.unprotect(monitor.protect(rtp(s))) for s in sequences] == [
        rtp(s) for s in sequences
    ]


def test_reordered_packets_within_the_window_pass() -> None:
    monitor, panel = pair()
    wires = [monitor.protect(rtp(s)) for s in range(10)]
    assert [panel.unprotect(wires[i]) for i in (0, 3, 1, 2, 9, 4)] == [
        rtp(i) for i in (0, 3, 1, 2, 9, 4)
    ]


# --- what is dropped, as values ---


@pytest.mark.parametrize("where", [0, 1, 3, 8, 12, 100, 171, 172, 181])
def test_a_tampered_packet_fails_authentication(where: int) -> None:
    monitor, panel = pair()
    wire = bytearray(monitor.protect(rtp(1)))
    wire[where] ^= 0x01  # header, payload or tag: all are covered
    assert panel.unprotect(bytes(wire)) == SrtpError(AUTH_FAILED)
    assert panel.unprotect(monitor.protect(rtp(2))) == rtp(2)


def test_a_forgery_does_not_use_up_the_real_packet() -> None:
    monitor, panel = pair()
    wire = monitor.protect(rtp(1))
    assert panel.unprotect(wire[:-1] + bytes([wire[-1] ^ 0x80])) == SrtpError(AUTH_FAILED)
    assert panel.unprotect(wire) == rtp(1)


def test_a_replayed_packet_is_dropped() -> None:
    monitor, panel = pair()
    wire = monitor.protect(rtp(1))
    assert panel.unprotect(wire) == rtp(1)
    assert panel.unprotect(wire) == SrtpError(REPLAYED)


def test_a_packet_behind_the_replay_window_is_dropped() -> None:
    monitor, panel = pair()
    late = monitor.protect(rtp(1))
    assert panel.unprotect(monitor.protect(rtp(0))) == rtp(0)
    assert panel.unprotect(monitor.protect(rtp(200))) == rtp(200)
    assert panel.unprotect(late) == SrtpError(TOO_OLD)


def test_a_packet_under_another_key_fails_authentication() -> None:
    monitor = SrtpSession(OURS, THEIRS)
    stranger = SrtpSession(bytes(30), OURS)
    assert monitor.unprotect(stranger.protect(rtp(1))) == SrtpError(AUTH_FAILED)


def test_plain_rtp_fails_authentication() -> None:
    monitor, _ = pair()
    assert monitor.unprotect(rtp(1)) == SrtpError(AUTH_FAILED)


@pytest.mark.parametrize(
    "datagram",
    [
        b"",
        b"\x80",
        b"\x80\x00\x00\x01",
        rtp(1)[:11],  # shorter than a header
        b"\x00\x01\x00\x08\x21\x12\xa4\x42" + bytes(20),  # STUN on the media port
        b"\x40" + rtp(1)[1:],  # version 1
    ],
)
def test_what_is_not_srtp_is_said_so(datagram: bytes) -> None:
    monitor, _ = pair()
    assert monitor.unprotect(datagram) == SrtpError(NOT_SRTP)


def test_a_header_with_no_room_for_a_tag_is_not_srtp() -> None:
    monitor, panel = pair()
    assert panel.unprotect(monitor.protect(rtp(1))[:12]) == SrtpError(NOT_SRTP)


def test_a_datagram_too_long_for_libsrtp_is_dropped() -> None:
    monitor, panel = pair()
    assert panel.unprotect(rtp(1, payload=bytes(MAX_UNPROTECT))) == SrtpError(TOO_LONG)
    assert TOO_LONG == "longer than 1500 bytes"
    longest = rtp(1, payload=bytes(MAX_PROTECT - 12))
    assert panel.unprotect(monitor.protect(longest)) == longest


# --- RTCP on the RTP port: SRTCP, checked and given back for rtp.parse to ignore ---

# A receiver report from SSRC 5 with one report block (RFC 3550 §6.4.2).
RECEIVER_REPORT = struct.pack("!BBHI", 0x81, 201, 7, 5) + struct.pack("!6I", SSRC, 0, 1, 0, 0, 0)


def test_srtcp_is_checked_and_given_back_clear() -> None:
    peer = raw_sender(THEIRS)
    monitor = SrtpSession(OURS, THEIRS)
    wire = peer.protect_rtcp(RECEIVER_REPORT)
    assert wire[:8] == RECEIVER_REPORT[:8]  # the header and sender SSRC stay clear
    assert wire[8:32] != RECEIVER_REPORT[8:]
    clear = monitor.unprotect(wire)
    assert clear == RECEIVER_REPORT
    assert parse(clear) == Rtcp(201)
    assert monitor.unprotect(wire) == SrtpError(REPLAYED)
    forged = peer.protect_rtcp(RECEIVER_REPORT)
    assert monitor.unprotect(forged[:-1] + b"\x00") == SrtpError(AUTH_FAILED)


# --- bounds ---


def test_the_sources_of_one_call_are_bounded() -> None:
    monitor, panel = pair()
    for ssrc in range(MAX_SOURCES):
        assert panel.unprotect(monitor.protect(rtp(1, ssrc))) == rtp(1, ssrc)
    one_more = SrtpSession(OURS, THEIRS).protect(rtp(1, MAX_SOURCES))
    assert panel.unprotect(one_more) == SrtpError(TOO_MANY_SOURCES)
    assert TOO_MANY_SOURCES == "more than 8 SSRCs in one call"
    assert panel.unprotect(monitor.protect(rtp(2, 0))) == rtp(2, 0)  # the known still pass


def test_packets_that_fail_authentication_take_no_place() -> None:
    monitor, panel = pair()
    stranger = raw_sender(bytes(30))
    for ssrc in range(100, 100 + 2 * MAX_SOURCES):
        assert panel.unprotect(stranger.protect(rtp(1, ssrc))) == SrtpError(AUTH_FAILED)
    assert panel.unprotect(monitor.protect(rtp(1))) == rtp(1)
    assert repr(panel) == "SrtpSession(sent=0 SSRCs, received=1)"


def test_our_own_sources_are_bounded_too() -> None:
    monitor, _ = pair()
    for ssrc in range(MAX_SOURCES):
        monitor.protect(rtp(1, ssrc))
    with pytest.raises(ValueError, match=r"^more than 8 SSRCs in one call$"):
        monitor.protect(rtp(1, MAX_SOURCES))


# --- protect's preconditions: our own packets, so a bug raises ---


@pytest.mark.parametrize("packet", [b"", rtp(1)[:11], rtp(1, payload=bytes(MAX_PROTECT - 11))])
def test_protect_refuses_what_is_no_packet_of_ours(packet: bytes) -> None:
    monitor, _ = pair()
    with pytest.raises(ValueError, match=r"^an RTP packet to protect has 12\.\.1356 bytes$"):
        monitor.protect(packet)


def test_protecting_a_sequence_number_twice_is_a_bug() -> None:
    monitor, _ = pair()
    monitor.protect(rtp(1))
    with pytest.raises(ValueError, match=r"^SRTP protect: replay check failed \(bad index\)$"):
        monitor.protect(rtp(1))


@pytest.mark.parametrize("key", [b"", bytes(29), bytes(31)])
def test_key_material_is_30_bytes(key: bytes) -> None:
    with pytest.raises(ValueError, match=r"^SRTP key material has 30 bytes$"):
        SrtpSession(key, OURS)
    with pytest.raises(ValueError, match=r"^SRTP key material has 30 bytes$"):
        SrtpSession(OURS, key)


# --- keys and secrets ---


def test_a_new_key_is_30_bytes_from_the_rng_given() -> None:
    assert new_key(random.Random(7)) == random.Random(7).randbytes(30)
    system = random.SystemRandom()
    assert len({new_key(system) for _ in range(3)}) == 3
    assert len(new_key(system)) == 30


def test_no_key_in_the_repr() -> None:
    monitor, panel = pair()
    panel.unprotect(monitor.protect(rtp(1)))
    text = repr(monitor) + repr(panel)
    assert repr(monitor) == "SrtpSession(sent=1 SSRCs, received=0)"
    assert repr(panel) == "SrtpSession(sent=0 SSRCs, received=1)"
    for key in (OURS, THEIRS):
        assert key.hex() not in text
    assert not any(isinstance(v, bytes | bytearray) for v in vars(monitor).values())


# --- RFC 3711 Appendix B, against an independent AES-CM and HMAC-SHA1-80 ---


@cache
def _tables() -> tuple[list[int], list[int], list[int]]:
    """exp and log of GF(2^8) by the generator 3, and the AES S-box made from them."""
    exp, log = [0] * 255, [0] * 256
    value = 1
    for power in range(255):
        exp[power], log[value] = value, power
        value ^= _xtime(value)
    sbox = []
    for byte in range(256):
        inverse = exp[(255 - log[byte]) % 255] if byte else 0
        affine = inverse ^ 0x63
        for n in range(1, 5):
            affine ^= ((inverse << n) | (inverse >> (8 - n))) & 0xFF
        sbox.append(affine)
    return exp, log, sbox


def _xtime(byte: int) -> int:
    return ((byte << 1) ^ 0x11B) if byte & 0x80 else byte << 1


def _round_keys(key: bytes) -> list[list[int]]:
    sbox = _tables()[2]
    words = [list(key[i : i + 4]) for i in range(0, 16, 4)]
    rcon = 1
    for i in range(4, 44):
        word = list(words[i - 1])
        if i % 4 == 0:
            word = [sbox[b] for b in word[1:] + word[:1]]
            word[0] ^= rcon
            rcon = _xtime(rcon)
        words.append([a ^ b for a, b in zip(words[i - 4], word, strict=True)])
    return [[b for word in words[r * 4 : r * 4 + 4] for b in word] for r in range(11)]


def aes128(key: bytes, block: bytes) -> bytes:
    """One AES-128 block encryption (FIPS-197), the state column by column."""
    sbox, keys = _tables()[2], _round_keys(key)
    state = [a ^ b for a, b in zip(block, keys[0], strict=True)]
    for rnd in range(1, 11):
        state = [sbox[state[(r + 4 * (c + r)) % 16]] for c in range(4) for r in range(4)]
        if rnd < 10:
            state = [x for c in range(4) for x in _mix(state[4 * c : 4 * c + 4])]
        state = [a ^ b for a, b in zip(state, keys[rnd], strict=True)]
    return bytes(state)


def _mix(column: list[int]) -> list[int]:
    doubled = [_xtime(a) & 0xFF for a in column]
    return [
        doubled[r]
        ^ doubled[(r + 1) % 4]
        ^ column[(r + 1) % 4]
        ^ column[(r + 2) % 4]
        ^ column[(r + 3) % 4]
        for r in range(4)
    ]


def keystream_block(key: bytes, iv: int, counter: int) -> bytes:
    """AES-CM (RFC 3711 §4.1.1): block `counter` is E(k, IV + counter)."""
    return aes128(key, ((iv + counter) % 2**128).to_bytes(16, "big"))


def keystream(key: bytes, iv: int, length: int) -> bytes:
    blocks = b"".join(keystream_block(key, iv, j) for j in range(-(-length // 16)))
    return blocks[:length]


def derive(master: bytes, label: int, length: int) -> bytes:
    """RFC 3711 §4.3.1 with a key derivation rate of 0: the index takes no part."""
    x = int.from_bytes(master[16:], "big") ^ (label << 48)
    return keystream(master[:16], x << 16, length)


def reference_protect(keys: tuple[bytes, bytes, bytes], packet: bytes, roc: int) -> bytes:
    """RFC 3711 §3.3 and §4.1.1, §4.2.1 for a 12-byte header: AES-CM, HMAC-SHA1-80."""
    cipher_key, salt, auth_key = keys
    sequence, ssrc = struct.unpack_from("!H4xI", packet, 2)
    index = (roc << 16) | sequence
    iv = (int.from_bytes(salt, "big") << 16) ^ (ssrc << 64) ^ (index << 16)
    payload = packet[12:]
    body = packet[:12] + bytes(
        a ^ b for a, b in zip(payload, keystream(cipher_key, iv, len(payload)), strict=True)
    )
    tag = hmac.new(auth_key, body + roc.to_bytes(4, "big"), hashlib.sha1).digest()[:10]
    return body + tag


def test_the_reference_aes_is_fips_197() -> None:
    key = bytes(range(16))
    block = bytes.fromhex("00112233445566778899aabbccddeeff")
    assert aes128(key, block).hex() == "69c4e0d86a7b0430d8cdb78070b4c55a"


B2_KEY = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")
B2_IV = int.from_bytes(bytes.fromhex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000"), "big")


@pytest.mark.parametrize(
    ("counter", "block"),
    [
        (0x0000, "E03EAD0935C95E80E166B16DD92B4EB4"),
        (0x0001, "D23513162B02D0F72A43A2FE4A5F97AB"),
        (0x0002, "41E95B3BB0A2E8DD477901E4FCA894C0"),
        (0xFEFF, "EC8CDF7398607CB0F2D21675EA9EA1E4"),
        (0xFF00, "362B7C3C6773516318A077D7FC5073AE"),
        (0xFF01, "6A2CC3787889374FBEB4C81B17BA6C44"),
    ],
)
def test_rfc_3711_b2_aes_cm_keystream(counter: int, block: str) -> None:
    assert keystream_block(B2_KEY, B2_IV, counter).hex().upper() == block


B3_MASTER = bytes.fromhex("E1F97A0D3E018BE0D64FA32C06DE41390EC675AD498AFEEBB6960B3AABE6")
B3_KEYS = (
    bytes.fromhex("C61E7A93744F39EE10734AFE3FF7A087"),
    bytes.fromhex("30CBBC08863D8C85D49DB34A9AE1"),
    bytes.fromhex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4"),
)


def test_rfc_3711_b3_key_derivation() -> None:
    assert (derive(B3_MASTER, 0, 16), derive(B3_MASTER, 2, 14), derive(B3_MASTER, 1, 20)) == (
        B3_KEYS
    )


def test_libsrtp_protects_as_rfc_3711_says_with_b3_keys() -> None:
    """libsrtp, given the B.3 master key, must use B.3's session keys, AES-CM and the tag."""
    session = SrtpSession(B3_MASTER, B3_MASTER)
    sent = [(65534, 0), (65535, 0), (0, 1), (1, 1)]  # the rollover counter steps to 1
    for sequence, roc in sent:
        packet = rtp(sequence, payload=bytes(range(160)))
        assert session.protect(packet) == reference_protect(B3_KEYS, packet, roc)


def test_libsrtp_accepts_what_the_reference_protects() -> None:
    session = SrtpSession(OURS, B3_MASTER)
    packet = rtp(9, payload=b"\x7f" * 160)
    assert session.unprotect(reference_protect(B3_KEYS, packet, 0)) == packet
