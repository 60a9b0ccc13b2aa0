"""A login flood against a served instance: what is hashed, and who waits.

Starts `intercom-sip serve` on 127.0.0.1 in a fresh data directory, then, ROUNDS times:
FLOOD concurrent logins with distinct wrong passwords from 127.0.0.1 and, at the same
moment, one right login from 127.0.0.2 (Linux routes all of 127/8 to loopback). It prints
how the flood was answered (400 = a guess that was hashed, 429 = refused at once), the
right login's answer and time, and the right login's time on an idle service.

Run: .venv/bin/python bench/login_flood.py [--flood 300] [--rounds 3]
"""

import argparse
import asyncio
import hashlib
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

READY = re.compile(rb"intercom-sip ready on http://127\.0\.0\.1:(\d+)")


def md5(password: str) -> str:
    return hashlib.md5(password.encode()).hexdigest()  # noqa: S324 (the vendor's login)


async def login(port: int, password: str, source: str) -> tuple[int, float]:
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    query = f"username=admin&password={md5(password)}"
    request = f"GET /api/v1/login?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    writer.write(request.encode())
    status = int((await reader.readline()).split()[1])
    await reader.read()
    writer.close()
    return status, time.perf_counter() - started


async def round_(port: int, flood: int, n: int) -> tuple[Counter[int], int, float]:
    guesses = [login(port, f"guess{n}.{i}", "127.0.0.1") for i in range(flood)]
    right = login(port, "123456", "127.0.0.2")
    *answers, (status, seconds) = await asyncio.gather(*guesses, right)
    return Counter(code for code, _ in answers), status, seconds


async def bench(port: int, flood: int, rounds: int) -> None:
    idle = [(await login(port, "123456", "127.0.0.3"))[1] for _ in range(5)]
    print(f"right login, idle service: median {statistics.median(idle) * 1000:.0f} ms")
    for n in range(rounds):
        answers, status, seconds = await round_(port, flood, n)
        codes = dict(sorted(answers.items()))
        print(
            f"round {n + 1}: flood of {flood} from 127.0.0.1 answered {codes};"
            f" right login from 127.0.0.2: {status} in {seconds * 1000:.0f} ms"
        )
        await asyncio.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flood", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        command = [sys.executable, "-m", "intercom_sip", "serve", "--port", "0"]
        command += ["--data-dir", str(Path(data) / "data"), "--sip-host", "127.0.0.1"]
        command += ["--sip-port", "0"]
        server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            assert server.stdout is not None
            for line in server.stdout:
                ready = READY.search(line)
                if ready:
                    break
            else:
                raise SystemExit("the service did not start")
            asyncio.run(bench(int(ready[1]), args.flood, args.rounds))
        finally:
            server.terminate()
            server.wait(15)


if __name__ == "__main__":
    main()
