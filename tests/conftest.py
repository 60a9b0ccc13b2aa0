import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, settings

from intercom_sip.admin import credentials as auth
from intercom_sip.admin.logins import Admin, ensure_credential
from intercom_sip.agent.phone import Phone
from intercom_sip.api import openapi
from intercom_sip.api.app import Api
from intercom_sip.api.hosts import HostCheck
from intercom_sip.api.routes import Routes
from intercom_sip.device import Device, NoAgent, SipSide
from intercom_sip.store import Store
from intercom_sip.worker import Worker
from tests.asgi import AsgiClient

if TYPE_CHECKING:
    from tests.served import Served

FACTORY_MD5 = auth.md5_hex("123456")

# The machine is shared and loaded: no timing in property tests either. The default run
# takes a tenth of each test's examples (at least 25); `--slow` (make test-slow) all.
QUICK_SHARE = 10
settings.register_profile(
    "full", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile("intercom", settings.get_profile("full"), max_examples=25)
settings.load_profile("intercom")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--slow",
        action="store_true",
        help="also run the tests marked slow (real-time timers, full example counts)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--slow"):
        settings.load_profile("full")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without --slow, the slow tests are deselected (not skipped); every property test is
    marked `property` so that `make test-slow` can run them all with their full counts."""
    quick = not config.getoption("--slow")
    kept, dropped = [], []
    for item in items:
        test = getattr(item, "obj", None)
        if getattr(test, "is_hypothesis_test", False):
            item.add_marker(pytest.mark.property)
            if quick:
                _fewer_examples(test)
        (dropped if quick and item.get_closest_marker("slow") else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = _dealt(sorted(kept, key=_waits_first))


# The order the tests run in: the long ones first (schemathesis, the property tests, then
# those that start a process: peers, a served instance, a browser), the quick ones after.
# Side by side (make test: xdist's worksteal gives each worker a contiguous share of this
# list, and a worker that runs out takes the far end of another's), the list is dealt like
# cards, so that each share starts with its part of the long tests and ends with quick
# ones that fill the gaps, instead of one worker holding every long test. The tests of a
# module with a module-scoped fixture (a browser) are dealt together: it starts once.
def _dealt(items: list[pytest.Item]) -> list[pytest.Item]:
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    units: dict[str, list[pytest.Item]] = {}
    for item in items:
        units.setdefault(str(item.path) if _module_scoped(item) else item.nodeid, []).append(item)
    ordered = list(units.values())
    return [item for share in range(workers) for unit in ordered[share::workers] for item in unit]


def _module_scoped(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    definitions = getattr(info, "name2fixturedefs", {})
    return any(defs and defs[-1].scope == "module" for defs in definitions.values())


_LONGEST = ("test_schemathesis.py", "test_validation_property.py", "test_durability.py")
_PROCESSES = ("peers", "served")


def _waits_first(item: pytest.Item) -> int:
    if item.path.name in _LONGEST:
        return _LONGEST.index(item.path.name)
    if item.get_closest_marker("property"):
        return len(_LONGEST)
    if any(item.get_closest_marker(name) for name in _PROCESSES) or "web" in item.path.parts:
        return len(_LONGEST) + 1
    return len(_LONGEST) + 2


def _fewer_examples(test: object) -> None:
    """A test's own @settings(max_examples=N) becomes N / QUICK_SHARE (at least 25)."""
    own = getattr(test, "_hypothesis_internal_use_settings", None)
    if own is None or own.max_examples <= 25 or getattr(test, "_quick", False):
        return  # a parametrized test is one function for several items: once is enough
    quicker = settings(own, max_examples=max(25, own.max_examples // QUICK_SHARE))
    test._hypothesis_internal_use_settings = quicker  # type: ignore[attr-defined]
    test._quick = True  # type: ignore[attr-defined]


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Rig:
    """The app over a real store in a temporary directory, with a fake clock."""

    client: AsgiClient
    store: Store
    data_dir: Path
    clock: FakeClock

    def login(self) -> str:
        status, answer = self.client.get(
            "/api/v1/login", query=f"username=admin&password={FACTORY_MD5}"
        )
        assert status == 200, answer
        token: str = answer["token"]
        return token


def make_rig(
    data_dir: Path,
    agent: SipSide | None = None,
    hasher: Worker | None = None,
    phone: Phone | None = None,
) -> Rig:
    store = Store.open(data_dir)
    ensure_credential(store)
    clock = FakeClock()
    hasher = hasher or Worker("hash")
    device = Device(store, agent or NoAgent(), wallclock=clock, phone=phone)
    admin = Admin(store, hasher, clock=clock)

    async def startup() -> None:
        device.start()

    async def shutdown() -> None:
        hasher.close()

    api = Api(
        Routes(device, admin, openapi.build()),
        admin.authorized,
        HostCheck("127.0.0.1", ("intercom.example",)),
        startup,
        shutdown,
    )
    return Rig(AsgiClient(api), store, data_dir, clock)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    made = make_rig(tmp_path / "data")
    yield made
    made.client.close()


@pytest.fixture(scope="module")
def module_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    made = make_rig(tmp_path_factory.mktemp("module") / "data")
    yield made
    made.client.close()


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("INTERCOM_SIP_"):
            monkeypatch.delenv(name)


@pytest.fixture
def served(tmp_path: Path) -> Iterator["Served"]:
    from tests.served import Served

    instance = Served(tmp_path / "data").start()
    yield instance
    instance.stop()
