"""A small DNS server for tests: UDP on 127.0.0.1, records set while it runs.

dnspython builds and parses the messages; a thread answers, so a service in another
process can use it through `--dns-server 127.0.0.1:PORT`. Names it does not hold get
NXDOMAIN; a name that holds other types gets an empty NOERROR answer.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Srv:
    priority: int
    weight: int
    port: int
    target: str  # a name, with or without the final dot

    def text(self) -> str:
        return f"{self.priority} {self.weight} {self.port} {self.target.rstrip('.')}."


class DnsServer:
    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((HOST, 0))
        self._sock.settimeout(0.2)
        self.port: int = self._sock.getsockname()[1]
        self._records: dict[tuple[str, str], tuple[list[str], int]] = {}
        self._lock = threading.Lock()
        self.queries: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="test dns", daemon=True)

    @property
    def address(self) -> str:
        """What `--dns-server` takes."""
        return f"{HOST}:{self.port}"

    def set_srv(self, name: str, records: list[Srv], ttl: int = 300) -> None:
        self._set(name, "SRV", [record.text() for record in records], ttl)

    def set_a(self, name: str, addresses: list[str], ttl: int = 300) -> None:
        self._set(name, "A", addresses, ttl)

    def asked(self, name: str, kind: str) -> int:
        """How many queries for `name` and `kind` came so far."""
        with self._lock:
            return self.queries.count((_absolute(name), kind))

    def _set(self, name: str, kind: str, values: list[str], ttl: int) -> None:
        with self._lock:
            self._records[(_absolute(name), kind)] = (values, ttl)

    def start(self) -> DnsServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self._sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                query = dns.message.from_wire(data)
            except dns.exception.DNSException:
                continue
            self._sock.sendto(self._answer(query).to_wire(), peer)

    def _answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        question = query.question[0]
        key = (question.name.to_text(), dns.rdatatype.to_text(question.rdtype))
        with self._lock:
            self.queries.append(key)
            found = self._records.get(key)
            known = any(name == key[0] for name, _ in self._records)
        if found is not None:
            values, ttl = found
            response.answer.append(dns.rrset.from_text(key[0], ttl, "IN", key[1], *values))
        elif not known:
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response


def _absolute(name: str) -> str:
    return name.rstrip(".") + "."


@contextmanager
def dns_server() -> Iterator[DnsServer]:
    server = DnsServer().start()
    try:
        yield server
    finally:
        server.close()
