"""The floor under a valid POST: durable commits of the store alone, no HTTP.

Prints one JSON line: commits per second and p50/p99 commit time in ms.
"""

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from intercom_sip.contract.fields import FACTORY
from intercom_sip.store import Store


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="intercom-commit-") as tmp:
        store = Store.open(Path(tmp) / "data")
        settings = (replace(FACTORY, timeout=120), replace(FACTORY, timeout=300))
        times: list[float] = []
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            started = time.perf_counter()
            new = settings[len(times) % 2]
            store.save_settings(new, settings[(len(times) + 1) % 2], time.time(), "bench")
            times.append(time.perf_counter() - started)
        store.close()
    quantiles = statistics.quantiles(times, n=100)
    print(
        json.dumps(
            {
                "rps": len(times) / sum(times),
                "p50": quantiles[49] * 1e3,
                "p99": quantiles[98] * 1e3,
            }
        )
    )


if __name__ == "__main__":
    main()
