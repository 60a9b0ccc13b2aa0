"""A UDP relay that behaves like a NAT, so a STUN server sees an address we do not have.

Each client gets its own outside socket (a new port), as a port-restricted NAT would do;
datagrams from the target come back to the client they belong to.
"""

from __future__ import annotations

import selectors
import socket
import threading

from . import process

Address = tuple[str, int]


class UdpRelay(process.Peer):
    """Forward datagrams sent to `address` on to `target`, from a per-client outside port."""

    def __init__(self, target: Address, host: str = "127.0.0.1") -> None:
        self.target = target
        self._host = host
        self._inside = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._inside.bind((host, 0))
        self._outside: dict[Address, socket.socket] = {}
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> Address:
        """Where clients send their datagrams."""
        host, port = self._inside.getsockname()
        return host, port

    def outside(self, client: Address) -> Address:
        """The address the target sees for `client` (after its first datagram)."""
        host, port = self._outside[client].getsockname()
        return host, port

    def start(self) -> None:
        """Start forwarding in a daemon thread."""
        self._selector.register(self._inside, selectors.EVENT_READ, None)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._run, name="udp-relay", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the thread and close every socket."""
        if self._thread is not None:
            self._wake_w.send(b"x")
            self._thread.join(timeout=5)
            self._thread = None
        for sock in (self._inside, self._wake_r, self._wake_w, *self._outside.values()):
            sock.close()
        self._selector.close()

    def _run(self) -> None:
        while True:
            for key, _ in self._selector.select():
                if key.fileobj is self._wake_r:
                    return
                if key.fileobj is self._inside:
                    self._from_client()
                else:
                    self._from_target(key.fileobj, key.data)  # type: ignore[arg-type]

    def _from_client(self) -> None:
        data, client = self._inside.recvfrom(65535)
        if client not in self._outside:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((self._host, 0))
            self._outside[client] = sock
            self._selector.register(sock, selectors.EVENT_READ, client)
        self._outside[client].sendto(data, self.target)

    def _from_target(self, sock: socket.socket, client: Address) -> None:
        try:
            data, _ = sock.recvfrom(65535)
        except ConnectionRefusedError:  # ICMP from a target that is gone; nothing to relay
            return
        self._inside.sendto(data, client)
