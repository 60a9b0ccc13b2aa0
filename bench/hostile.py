"""Issue 6's hostile findings 1-5, 8 and 13, and issue 11's attacker (11, spray), run
against a served instance.

Each finding starts a fresh `intercom-sip serve` (127.0.0.1, free ports, a temporary data
directory, an open-file limit of 1024 by prlimit), attacks it from this process, and
watches it: its peak RSS (/proc, every 100 ms), the lines it logs, and the API's latency
as a fresh client sees it (GET /api/info every 200 ms, from a process of its own). It
prints each figure beside the one the issue measured before the fixes, and the aim.

A bench prints, it does not assert: it exits 0 whatever the figures, and a finding that
fails to run is reported as such while the others go on.

Run: make bench-hostile   (Linux; about 3 minutes; `--quick` halves it, for a check)
"""

import argparse
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import hostile_held
import hostile_http
import hostile_media
import hostile_sip
import hostile_trust
from hostile_net import raise_file_limit
from hostile_service import needs
from hostile_table import Options, Outcome, Row, table

FINDINGS: tuple[tuple[str, Callable[[Options], Outcome]], ...] = (
    ("1", hostile_http.pipelined),
    ("2", hostile_http.big_heads),
    ("3 idle", hostile_held.idle),
    ("3 slowloris", hostile_held.slowloris),
    ("3 slow body", hostile_held.slow_body),
    ("4", hostile_http.deep_body),
    ("5", hostile_http.login_flood),
    ("8", hostile_sip.register_flood),
    ("13", hostile_sip.sip_pipelined),
    ("11 forged INVITE", hostile_trust.forged_invite),
    ("11 OPTIONS flood", hostile_trust.options_flood),
    ("11 INVITE flood", hostile_trust.invite_flood),
    ("11 held TCP cap", hostile_trust.held_tcp_cap),
    ("spray", hostile_media.rtp_spray),  # issue 11: RTP Bleed
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter, smaller attacks")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="N",
        help="findings to run (1 2 3 4 5 8 11 13 spray); default all",
    )
    parser.add_argument(
        "--rss-ceiling",
        type=float,
        default=1024,
        metavar="MB",
        help="stop an attack once the service's RSS passes this",
    )
    parser.add_argument("--nofile", type=int, default=1024, help="the service's file limit")
    args = parser.parse_args()
    missing = needs()
    if missing:
        print(f"hostile: {missing}", file=sys.stderr)
        return
    options = Options(args.quick, args.rss_ceiling, args.nofile)
    print(_machine(raise_file_limit(), options), flush=True)
    outcomes: list[tuple[str, Outcome]] = []
    for name, run in FINDINGS:
        if args.only and name.split()[0] not in args.only:
            continue
        outcomes.append((name, _run(name, run, options)))
    print()
    print(table(outcomes))
    print()
    for name, outcome in outcomes:
        print(f"{name}: {outcome.did}")


def _run(name: str, run: Callable[[Options], Outcome], options: Options) -> Outcome:
    """One finding; a failure becomes its row rather than the end of the bench."""
    started = time.monotonic()
    print(f"finding {name} ...", end=" ", flush=True)
    try:
        outcome = run(options)
    except Exception as exc:  # a bench reports and goes on
        traceback.print_exc()
        failure = f"failed: {type(exc).__name__}: {exc}"
        outcome = Outcome(failure, (Row("the run", "-", failure[:60], "-", None),))
    print(f"{time.monotonic() - started:.0f} s", flush=True)
    return outcome


def _machine(own_files: int, options: Options) -> str:
    load = ", ".join(f"{figure:.1f}" for figure in os.getloadavg())
    return (
        f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores"
        f" (load {load}), {platform.system()} {platform.release()}; code {_commit()};"
        f" service file limit {options.nofile}, bench file limit {own_files}"
        f"{'; quick' if options.quick else ''}"
    )


def _commit() -> str:
    """The code under test, as git names it, when it is a checkout."""
    try:
        return subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


if __name__ == "__main__":
    main()
