"""Latency of the live events: from a change to its event at a client, for each kind.

Runs the service in process (tests/web/rig.py: a fake phone and a fake SIP agent) and
prints, per kind, the median and the worst of N changes, with 1 and with 32 streams.
Settings: from the POST's send to the event; registration and call: from the change of
the agent's or the phone's state (made on the service's loop) to the event.
Usage: .venv/bin/python bench/events.py [N]
"""

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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
    for kind, values in figures.items():
        ms = sorted(v * 1000 for v in values)
        print(
            f"  {kind:13} median {statistics.median(ms):6.1f} ms   worst {ms[-1]:6.1f} ms"
            f"   (n={len(ms)})"
        )


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 40
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
