"""Latency of the live events: from a change to its event at a client, for each kind.

First the service in process (tests/web/rig.py: a fake phone and a fake SIP agent, which
emit into the device's outbox as the real ones do), with 1 and with 32 streams.
Settings: from the POST's send to the event; registration and call: from the change of
the agent's or the phone's state (made on the service's loop) to the event.

Then the real parts: `intercom-sip serve` registered at our registrar
(tests/peers/registrar.py, in this process), one stream. Registration: from the
registrar's answer (200 and 403 in turn, after a "Register now") to the event with its
code; call: from the 180's arrival (the phone sends it, then emits `ringing`) to the
`ringing` event, and from the hangup POST's send to the `idle` event; the phone's own
work on an INVITE (INVITE -> 180) is shown apart. Every instant is read in this
process, on one clock.
Usage: .venv/bin/python bench/events.py [N]
"""

import secrets
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.peers.registrar import Registrar
from tests.served import Served
from tests.sse import EventStream
from tests.web.rig import InProcessService

from intercom_sip.agent import status

BODY = {
    "enable": True,
    "proxy": "sip.example.com",
    "realm": "example.com",
    "user": "101",
    "password": "s3cret-pass",
    "timeout": 120,
    "stun": {"ip": "", "port": 3478},
}


def wait(stream: EventStream, kind: str) -> float:
    while (event := stream.event()) is not None:
        if event[0] == kind:
            return time.perf_counter()
    raise SystemExit("stream ended")


def measure(service: InProcessService, streams: list[EventStream], token: str, n: int) -> None:
    last = streams[-1]  # the one served last in each fan-out
    figures: dict[str, list[float]] = {"settings": [], "registration": [], "call": []}
    for i in range(n):
        started = time.perf_counter()
        service.call(
            "POST", "/api/v1/device/sip/settings", token, {**BODY, "timeout": 300 - 180 * (i % 2)}
        )
        figures["settings"].append(wait(last, "settings") - started)
        state = status.Status(state="registered" if i % 2 else "failed", reason=str(i))
        started = time.perf_counter()
        service.run(lambda state=state: setattr(service.agent, "current", state))
        figures["registration"].append(wait(last, "registration") - started)
        started = time.perf_counter()
        service.run(service.phone.ring if i % 2 == 0 else service.phone.hangup)
        figures["call"].append(wait(last, "call") - started)
    show(figures)


def until(stream: EventStream, kind: str, wanted: Callable[[Any], bool]) -> float:
    """The instant the first `kind` event that is `wanted` arrived."""
    while (event := stream.event()) is not None:
        if event[0] == kind and wanted(event[1]):
            return time.perf_counter()
    raise SystemExit("stream ended")


def show(figures: dict[str, list[float]]) -> None:
    for kind, values in figures.items():
        ms = sorted(v * 1000 for v in values)
        print(
            f"  {kind:13} median {statistics.median(ms):6.1f} ms   worst {ms[-1]:6.1f} ms"
            f"   (n={len(ms)})"
        )


def stamped(registrar: Registrar) -> list[float]:
    """The instants the registrar's answers leave (appended as each is made)."""
    answered: list[float] = []
    handle = registrar.handle

    def handle_and_stamp(*args: Any) -> Any:
        answer = handle(*args)
        answered.append(time.perf_counter())
        return answer

    registrar.handle = handle_and_stamp  # type: ignore[method-assign]
    return answered


def invite(
    uri: str,
    sock: socket.socket,
    call_id: str,
    branch: str,
    method: str = "INVITE",
    to: str = "<sip:101@fake.test>",
) -> bytes:
    host, port = sock.getsockname()
    return (
        f"{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {host}:{port};branch={branch}\r\n"
        f"From: <sip:door@fake.test>;tag=d1\r\nTo: {to}\r\nCall-ID: {call_id}\r\n"
        f"CSeq: 1 {method}\r\nContact: <sip:door@{host}:{port}>\r\nMax-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def answer(sock: socket.socket, code: str) -> tuple[float, str]:
    """When the response with this code arrived (those before it skipped), and its To."""
    while True:
        data = sock.recv(65535).decode()
        if data.startswith(f"SIP/2.0 {code}"):
            to = next(line for line in data.split("\r\n") if line.startswith("To:"))
            return time.perf_counter(), to[4:]


def real_calls(
    service: Served, stream: EventStream, token: str, contact: str, n: int
) -> dict[str, list[float]]:
    """Ringing: from the 180's arrival here (the phone sends it, then emits) to the event;
    the phone's own work on the INVITE before it (port lease, offer) is shown apart."""
    uri = contact.partition(";")[0]
    host, port = uri.rpartition("@")[2].split(":")
    figures: dict[str, list[float]] = {"call ringing": [], "call hangup": [], "INVITE->180": []}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(10)
        for _ in range(n):
            call_id, branch = secrets.token_hex(8), "z9hG4bK" + secrets.token_hex(6)
            started = time.perf_counter()
            sock.sendto(invite(uri, sock, call_id, branch), (host, int(port)))
            rang, _ = answer(sock, "180")
            seen = until(stream, "call", lambda c: c["state"] == "ringing")
            figures["call ringing"].append(seen - rang)
            figures["INVITE->180"].append(rang - started)
            started = time.perf_counter()
            service.call("POST", "/api/v1/call/hangup", token)
            figures["call hangup"].append(
                until(stream, "call", lambda c: c["state"] == "idle") - started
            )
            ack = invite(uri, sock, call_id, branch, "ACK", answer(sock, "603")[1])
            sock.sendto(ack, (host, int(port)))
    return figures


def real(n: int) -> None:
    with Registrar() as registrar, tempfile.TemporaryDirectory() as folder:
        answered = stamped(registrar)
        service = Served(Path(folder) / "data").start()
        try:
            token = service.login()
            stream = EventStream(int(service.url.rpartition(":")[2]), token)
            body = {**BODY, "proxy": registrar.proxy, "realm": "fake.test", "password": "secret"}
            service.call("POST", "/api/v1/device/sip/settings", token, body)
            until(stream, "registration", lambda r: r["code"] == 200)
            figures: dict[str, list[float]] = {"registration": []}
            serve = registrar.behaviour
            for i in range(n):
                code = 403 if i % 2 == 0 else 200
                registrar.behaviour = replace(serve, mode="forbid" if code == 403 else "serve")
                service.call("POST", "/api/v1/device/sip/reregister", token)
                seen = until(stream, "registration", lambda r, code=code: r["code"] == code)
                figures["registration"].append(seen - answered[-1])
            contact = registrar.bindings("101")[0]
            figures.update(real_calls(service, stream, token, contact, n))
            stream.close()
            print(
                f"the real agent and phone (intercom-sip serve, our registrar), {n} changes each:"
            )
            show(figures)
        finally:
            service.stop()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    real(n)
    with tempfile.TemporaryDirectory() as folder:
        service = InProcessService(Path(folder) / "data").start()
        try:
            token = service.login()
            service.call("POST", "/api/v1/device/sip/settings", token, BODY)
            for count in (1, 32):
                streams = [EventStream(service.port, token) for _ in range(count)]
                for stream in streams:
                    for _ in range(3):
                        stream.event()
                print(f"{count} stream(s), {n} changes of each kind:")
                measure(service, streams, token, n)
                for stream in streams:
                    stream.close()
                time.sleep(0.3)  # the slots free
        finally:
            service.stop()


if __name__ == "__main__":
    main()
