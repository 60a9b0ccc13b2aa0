"""What a finding's run gives back, and the table they make."""

import collections
from dataclasses import dataclass

from hostile_service import Latency, Watch

API_AIM_MS = 50.0
RSS_AIM_MB = 100.0


@dataclass(frozen=True)
class Options:
    quick: bool  # shorter attacks and fewer connections: a check of the bench itself
    rss_ceiling: float  # MB: an attack stops there, to spare a shared machine
    nofile: int  # the service's open-file limit

    def seconds(self, full: float) -> float:
        return full / 2 if self.quick else full


@dataclass(frozen=True)
class Row:
    measure: str
    before: str  # the figure
    now: str
    aim: str
    met: bool | None  # None: no aim to meet, or not measured


@dataclass(frozen=True)
class Outcome:
    did: str  # what the bench did, with its parameters
    rows: tuple[Row, ...]


def rss_row(watch: Watch, before: str) -> Row:
    return Row(
        "peak RSS", before, watch.peak_text(), f"≤ {RSS_AIM_MB:.0f} MB", watch.peak <= RSS_AIM_MB
    )


def api_row(latency: Latency, before: str) -> Row:
    """The API, asked by a fresh client every 200 ms throughout the attack."""
    return Row(
        "API GET /api/info",
        before,
        latency.text(),
        f"all < {API_AIM_MS:.0f} ms",
        bool(latency.answered) and latency.worst < API_AIM_MS,
    )


def lines_row(watch: Watch, before: str) -> Row:
    rate = watch.lines / watch.seconds if watch.seconds else 0.0
    return Row(
        "log lines",
        before,
        f"{watch.lines} ({watch.log_bytes / 1e6:.1f} MB) in {watch.seconds:.0f} s ({rate:.1f}/s)",
        "≤ 5/s",
        rate <= 5,
    )


def counted(counter: collections.Counter[str]) -> str:
    """`3 x 200, 1 x 431`."""
    return ", ".join(f"{count} x {what}" for what, count in sorted(counter.items())) or "none"


def status_of(answer: bytes, otherwise: str = "closed") -> str:
    """The status code of an HTTP answer's start, else `otherwise`."""
    parts = answer.split(b" ", 2)
    return parts[1].decode("ascii", "replace") if len(parts) == 3 else otherwise


HEADER = ("finding", "measure", "before (issue)", "now", "aim", "met?")
MET = {True: "yes", False: "NO", None: "-"}


def table(outcomes: list[tuple[str, Outcome]]) -> str:
    lines = [HEADER]
    for name, outcome in outcomes:
        for index, row in enumerate(outcome.rows):
            cells = (row.measure, row.before, row.now, row.aim, MET[row.met])
            lines.append((name if index == 0 else "", *cells))
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER))]
    text = [
        " | ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        for line in lines
    ]
    text.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in text)
