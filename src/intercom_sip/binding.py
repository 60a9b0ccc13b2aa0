"""The sockets a device listens on, taken before serving so that a clash stops the start."""

import os
import socket


class RefusedToStart(Exception):
    """A start that would be unsafe or cannot work; the message says why."""


def bind_sip(host: str, port: int) -> tuple[socket.socket, socket.socket]:
    """The fixed SIP port, UDP and TCP, taken before serving so that a clash stops the
    start. Port 0 (for tests) takes a free port, the same for both."""
    for _ in range(20):
        udp = _bound(socket.SOCK_DGRAM, host, port)
        try:
            tcp = _bound(socket.SOCK_STREAM, host, udp.getsockname()[1])
        except RefusedToStart:
            udp.close()
            if port:
                raise
            continue
        tcp.listen(128)
        return udp, tcp
    raise RefusedToStart(f"cannot find a free SIP port on {host}")


def _bound(kind: socket.SocketKind, host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, kind)
    try:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise RefusedToStart(f"cannot use SIP port {host}:{port}: {reason}") from exc
    return sock


def bind(host: str, port: int) -> socket.socket:
    """The HTTP listening socket."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(
            4096
        )  # the kernel caps it (somaxconn); a burst of connects then waits, not its SYNs
    except OSError as exc:
        sock.close()
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise RefusedToStart(f"cannot listen on {host}:{port}: {reason}") from exc
    return sock
