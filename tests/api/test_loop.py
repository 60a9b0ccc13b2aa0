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
