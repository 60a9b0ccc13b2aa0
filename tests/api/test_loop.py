"""The service's event loop, chosen at start: uvloop, or the standard loop when told."""

from pathlib import Path

import pytest

from tests.served import Served

pytestmark = pytest.mark.served


@pytest.mark.parametrize(
    ("options", "shown"), [((), "uvloop"), (("--loop", "asyncio"), "asyncio")]
)
def test_the_service_runs_on_the_loop_chosen(
    tmp_path: Path, options: tuple[str, ...], shown: str
) -> None:
    service = Served(tmp_path / "data", *options).start()
    try:
        assert service.call("GET", "/api/info")[0] == 200
        assert any(line.endswith(f"event loop: {shown}\n") for line in service.lines)
    finally:
        assert service.stop() == 0


def test_the_heap_made_at_start_is_kept_out_of_collections(tmp_path: Path) -> None:
    service = Served(tmp_path / "data").start()
    try:
        frozen = [line for line in service.lines if "objects kept out of collections" in line]
        assert len(frozen) == 1
        count = int(frozen[0].split("heap at start: ")[1].split()[0])
        assert count > 10_000  # the modules, the tables, the app
    finally:
        assert service.stop() == 0
