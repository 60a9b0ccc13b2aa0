"""Findings 1, 2, 4 and 5 of issue 6: the HTTP API under hostile clients (3: hostile_held)."""

import asyncio
import collections
import contextlib
import secrets
import socket
import threading
import time

from hostile_net import pump_for
from hostile_service import FACTORY_MD5, Service, Watch
from hostile_table import RSS_AIM_MB, Options, Outcome, Row, api_row, counted, rss_row, status_of

DEEP_AIM_MS = 50.0
GUESSES = 300
GUESS_AIM = 5
OTHER_LOGIN_AIM = 0.5  # seconds: one scrypt hash is ~50 ms


def _info(port: int) -> bytes:
    return f"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()


# --- 1: pipelined requests whose answers are never read ---------------------------------


def pipelined(options: Options) -> Outcome:
    connections, seconds = 2, options.seconds(10)
    with Service(options.nofile) as service, Watch(service, options.rss_ceiling) as watch:
        request = _info(service.port)
        pumped = pump_for(service.port, connections, request * 2000, seconds, watch.over_ceiling)
    did = (
        f"{connections} connections x `GET /api/info` x2000 per write, no reads, {seconds:.0f} s"
        f" (connecting again when dropped): {pumped.sent // len(request)} requests written,"
        f" {pumped.dropped} of {pumped.opened} connections dropped by the service"
    )
    return Outcome(
        did,
        (
            rss_row(watch, "36 -> 335 MB in 10 s (2 GB in 15 s)"),
            api_row(watch.latency, "-"),
        ),
    )


# --- 2: no limit on request headers ------------------------------------------------------


def big_heads(options: Options) -> Outcome:
    connections, size = (10 if options.quick else 20), 10 * 1024 * 1024
    with Service(options.nofile) as service:
        head = (
            f"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1:{service.port}\r\nX-Big: ".encode()
            + b"a" * size
            + b"\r\n\r\n"
        )
        results: list[str] = []
        with Watch(service, options.rss_ceiling) as watch:
            threads = [
                threading.Thread(target=_send_head, args=(service.port, head, results))
                for _ in range(connections)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            time.sleep(0.5)  # a last RSS sample with everything read
    answers = collections.Counter(results)
    grown = watch.peak - watch.start_rss
    did = f"{connections} connections each send a head with a 10 MB header, then read"
    return Outcome(
        did,
        (
            Row(
                "peak RSS",
                "+550 MB (20 heads)",
                f"+{grown:.0f} MB: {watch.peak_text()}",
                f"≤ {RSS_AIM_MB:.0f} MB",
                watch.peak <= RSS_AIM_MB,
            ),
            Row("answers", "200 (read whole)", counted(answers), "431", set(answers) == {"431"}),
            api_row(watch.latency, "-"),
        ),
    )


def _send_head(port: int, head: bytes, results: list[str]) -> None:
    """One big head; the status line of the answer, or how the connection ended."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        with contextlib.suppress(OSError):  # refused part-way: the answer may be there
            sock.sendall(head)
        try:
            first = sock.recv(64)
        except OSError as exc:
            results.append(type(exc).__name__)
            return
    results.append(status_of(first))


# --- 4: quadratic parse ------------------------------------------------------------------

DEEP_SECONDS = 3.0


def deep_body(options: Options) -> Outcome:
    body = b"[" * 33 + b'\\"' * 32_000
    with Service(options.nofile) as service:
        token = service.login()
        times, statuses = [], set()
        with Watch(service, options.rss_ceiling) as watch:
            ends = time.monotonic() + DEEP_SECONDS  # long enough for the probe to see it
            while time.monotonic() < ends:
                status, _, seconds = service.call(
                    "POST", "/api/v1/device/sip/settings", token, body
                )
                times.append(seconds)
                statuses.add(status)
    seconds, status = max(times), "/".join(str(code) for code in sorted(statuses))
    did = (
        f'POST /api/v1/device/sip/settings, {len(body)} bytes: 33 `[` then `\\"` x32,000,'
        f" {len(times)} times in {DEEP_SECONDS:.0f} s, one after the other (the slowest shown)"
    )
    return Outcome(
        did,
        (
            Row(
                "answer time",
                "7.9 s",
                f"{seconds * 1000:.0f} ms ({status})",
                f"< {DEEP_AIM_MS:.0f} ms",
                seconds * 1000 < DEEP_AIM_MS,
            ),
            api_row(watch.latency, "blocked 7.9 s"),
        ),
    )


# --- 5: the login limit is not atomic ----------------------------------------------------


def login_flood(options: Options) -> Outcome:
    with Service(options.nofile) as service:
        unloaded = asyncio.run(_login(service.port, FACTORY_MD5, "127.0.0.3"))
        with Watch(service, options.rss_ceiling) as watch:
            flood, other = asyncio.run(_flood(service.port))
    wrong = flood[:-1]
    evaluated = [seconds for status, seconds in wrong if status == 400]
    refused = sum(1 for status, _ in wrong if status == 429)
    span = max(evaluated, default=0.0)
    rate = f", {len(evaluated) / span:.0f}/s" if span else ""
    right = flood[-1][0]
    did = (
        f"{GUESSES} concurrent logins from 127.0.0.1, {GUESSES - 1} distinct wrong MD5s then"
        f" the right one; meanwhile a right login from 127.0.0.2"
        f" (unloaded, from 127.0.0.3: {unloaded[1] * 1000:.0f} ms);"
        f" answers: {counted(collections.Counter(str(status) for status, _ in wrong))}"
    )
    return Outcome(
        did,
        (
            Row(
                "wrong guesses evaluated",
                "300 of 300, none 429, ~70/s",
                f"{len(evaluated)} of {len(wrong)}, {refused} 429{rate}",
                f"≤ {GUESS_AIM} per minute",
                len(evaluated) <= GUESS_AIM,
            ),
            Row(
                "right pair amid the flood",
                "200: a token",
                str(right),
                "429: no token",
                right != 200,
            ),
            Row(
                "right login from 127.0.0.2",
                "8 s",
                f"{other[1] * 1000:.0f} ms ({other[0]})",
                f"< {OTHER_LOGIN_AIM * 1000:.0f} ms",
                other[0] == 200 and other[1] < OTHER_LOGIN_AIM,
            ),
            api_row(watch.latency, "-"),
        ),
    )


async def _flood(port: int) -> tuple[list[tuple[int, float]], tuple[int, float]]:
    guesses = [secrets.token_hex(16) for _ in range(GUESSES - 1)] + [FACTORY_MD5]
    flood = asyncio.gather(*(_login(port, guess, "127.0.0.1") for guess in guesses))
    await asyncio.sleep(0.2)  # the flood's requests are in: this one waits behind them
    other = await _login(port, FACTORY_MD5, "127.0.0.2")
    return list(await flood), other


async def _login(port: int, md5: str, source: str) -> tuple[int, float]:
    """The status of one login on a connection of its own from `source`, and its time."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(60):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, local_addr=(source, 0)
            )
            writer.write(
                f"GET /api/v1/login?username=admin&password={md5} HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode()
            )
            line = await reader.readline()
            writer.close()
    except (OSError, TimeoutError):
        return 0, time.perf_counter() - started
    parts = line.split(b" ")
    status = int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else 0
    return status, time.perf_counter() - started
