"""STUN Binding (RFC 5389) by hand: just the request and XOR-MAPPED-ADDRESS."""

from __future__ import annotations

import secrets
import socket
import struct

MAGIC_COOKIE = 0x2112A442
BINDING_REQUEST = 0x0001
BINDING_SUCCESS = 0x0101
MAPPED_ADDRESS = 0x0001
XOR_MAPPED_ADDRESS = 0x0020
HEADER = struct.Struct("!HHI12s")  # type, length, magic cookie, transaction id
FAMILY_IPV4 = 0x01


def binding_request(transaction_id: bytes) -> bytes:
    """A Binding request with no attributes (RFC 5389 §6)."""
    return HEADER.pack(BINDING_REQUEST, 0, MAGIC_COOKIE, transaction_id)


def mapped_address(response: bytes, transaction_id: bytes) -> tuple[str, int]:
    """The XOR-MAPPED-ADDRESS of a Binding success response to `transaction_id`."""
    kind, length, cookie, tid = HEADER.unpack_from(response)
    if kind != BINDING_SUCCESS or cookie != MAGIC_COOKIE or tid != transaction_id:
        raise ValueError(f"not a success response to our request: type {kind:#06x}")
    for attr, value in _attributes(response[HEADER.size : HEADER.size + length]):
        if attr == XOR_MAPPED_ADDRESS:
            return _xor_address(value)
    raise ValueError("no XOR-MAPPED-ADDRESS in the response")


def _attributes(data: bytes) -> list[tuple[int, bytes]]:
    found = []
    while len(data) >= 4:
        attr, length = struct.unpack_from("!HH", data)
        found.append((attr, data[4 : 4 + length]))
        data = data[4 + ((length + 3) & ~3) :]  # values are padded to 4 bytes
    return found


def _xor_address(value: bytes) -> tuple[str, int]:
    _, family, xport = struct.unpack_from("!BBH", value)
    if family != FAMILY_IPV4:
        raise ValueError(f"address family {family} is not IPv4")
    (xaddr,) = struct.unpack_from("!I", value, 4)
    port = xport ^ (MAGIC_COOKIE >> 16)
    return socket.inet_ntoa(struct.pack("!I", xaddr ^ MAGIC_COOKIE)), port


def query(sock: socket.socket, server: tuple[str, int], timeout: float = 1.0) -> tuple[str, int]:
    """Send one Binding request from `sock` to `server`; return the mapped address."""
    transaction_id = secrets.token_bytes(12)
    sock.settimeout(timeout)
    sock.sendto(binding_request(transaction_id), server)
    while True:
        data, _ = sock.recvfrom(2048)
        try:
            return mapped_address(data, transaction_id)
        except ValueError:
            continue  # a stray or late answer to an earlier request


def answers(server: tuple[str, int], timeout: float = 0.2) -> bool:
    """Whether anything answers a Binding request at `server` within `timeout`."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        try:
            query(sock, server, timeout)
        except OSError:  # timeout, or ICMP port unreachable
            return False
    return True
