"""A fresh client asking `GET /api/info` every INTERVAL seconds until its stdin closes.

Run by bench/hostile.py as a process of its own, so that the attack's threads cannot
slow the probe down and pass that off as the service's latency. Prints one JSON list:
the latency of each probe in ms, or null for one that failed (no 200 within 2 s).
"""

import http.client
import json
import sys
import threading
import time

TIMEOUT = 2.0
MAX_PROBES = 10_000  # about 40 minutes at 0.25 s: a bound, never reached by the bench


def probe(host: str, port: int) -> float | None:
    started = time.perf_counter()
    connection = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    try:
        connection.request("GET", "/api/info")
        reply = connection.getresponse()
        reply.read()
        if reply.status != 200:
            return None
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()
    return (time.perf_counter() - started) * 1000


def _until_stdin_closes(done: threading.Event) -> None:
    sys.stdin.read()
    done.set()


def main() -> None:
    host, port, interval = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    done = threading.Event()
    threading.Thread(target=_until_stdin_closes, args=(done,), daemon=True).start()
    latencies: list[float | None] = []
    while not done.is_set() and len(latencies) < MAX_PROBES:
        started = time.monotonic()
        latencies.append(probe(host, port))
        done.wait(max(0.0, interval - (time.monotonic() - started)))
    print(json.dumps(latencies))


if __name__ == "__main__":
    main()
