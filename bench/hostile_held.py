"""Finding 3 of issue 6: connections that send nothing, or too slowly, held forever."""

import collections
import time

from hostile_net import Held, connect_many
from hostile_service import Service, Watch
from hostile_table import Options, Outcome, Row, api_row, counted, lines_row, status_of

HOLD_AIM = 15.0  # seconds: every idle or slow connection closed by then


# --- 3: no idle or header timeout --------------------------------------------------------


def idle(options: Options) -> Outcome:
    count = 1100 if options.quick else 2000
    return _held(options, count, "send nothing", b"", 0.0, b"", "all 2,000 held", lines=True)


def slowloris(options: Options) -> Outcome:
    count = 300 if options.quick else 3000
    return _held(
        options,
        count,
        "send a request line, then a header line every 2 s",
        b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n",
        2.0,
        b"X-Slow: 1\r\n",
        "all 3,000 held",
    )


def slow_body(options: Options) -> Outcome:
    count = 50 if options.quick else 200
    return _held(
        options,
        count,
        "send a settings POST's head (Content-Length: 1000), then its body at 1 byte/s",
        b"POST /api/v1/device/sip/settings HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
        b"Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n{",
        1.0,
        b" ",
        "all 200 held",
    )


def _held(
    options: Options,
    count: int,
    what: str,
    first: bytes,
    every: float,
    then: bytes,
    before: str,
    lines: bool = False,
) -> Outcome:
    """`count` connections that `first` send their opening, then `then` every `every` s;
    how many the service still holds HOLD_AIM seconds after they were opened."""
    held = Held()
    with Service(options.nofile) as service:
        token = service.login().encode() if b"%s" in first else b""
        opening = first.replace(b"%d", str(service.port).encode()).replace(b"%s", token)
        try:
            with Watch(service, options.rss_ceiling) as watch:
                opened = time.monotonic()
                conns = held.add(connect_many(service.port, count), opened)
                for conn in conns if opening else ():
                    held.send(conn, opening)
                _trickle(held, opened + HOLD_AIM + 0.5, every, then)
                kept = held.held_longer_than(HOLD_AIM, time.monotonic())
        finally:
            held.close()
    answers = collections.Counter(status_of(c.answer, "nothing") for c in held.conns)
    did = (
        f"{count} connections {what}; {len(conns)} connected;"
        f" the service answered: {counted(answers)}"
    )
    rows = [
        Row(
            f"held after {HOLD_AIM:.0f} s",
            before,
            f"{kept} of {len(conns)}",
            "0",
            kept == 0 and len(conns) > 0,
        ),
        api_row(watch.latency, "no answer once 1,100 held" if lines else "-"),
    ]
    if lines:
        rows.append(lines_row(watch, "350,000 (155 MB) in 25 s"))
    return Outcome(did, tuple(rows))


def _trickle(held: Held, until: float, every: float, then: bytes) -> None:
    due = time.monotonic() + every
    while (now := time.monotonic()) < until:
        if every and now >= due:
            for conn in held.conns:
                held.send(conn, then)
            due += every
        held.poll(0.1)
