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

# The machine is shared and loaded: no timing in property tests either.
settings.register_profile(
    "intercom", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("intercom")


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
