"""The service in process on its own event loop thread, with a fake phone and a fake SIP
agent the tests drive: calls ring and registrations change without any SIP."""

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from intercom_sip import events
from intercom_sip.admin.logins import Admin, ensure_credential
from intercom_sip.agent import status
from intercom_sip.agent.outbox import Outbox, RegistrationChanged
from intercom_sip.api import openapi
from intercom_sip.api.app import Api
from intercom_sip.api.connection import Limits
from intercom_sip.api.hosts import HostCheck
from intercom_sip.api.listener import Listener
from intercom_sip.api.routes import Routes
from intercom_sip.contract.settings import Settings
from intercom_sip.device import Device
from intercom_sip.server import bind
from intercom_sip.store import Store
from intercom_sip.worker import Worker
from tests.phones import FakePhone
from tests.served import Served


class FakeAgent:
    """Each change of `current` goes to `outbox` as `RegistrationChanged`, as the real
    agent's do."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self._current = status.Status()
        self.applied: list[Settings] = []
        self.reregistered = 0

    @property
    def current(self) -> status.Status:
        return self._current

    @current.setter
    def current(self, value: status.Status) -> None:
        if value != self._current:
            self._current = value
            self.outbox.emit(RegistrationChanged(value))

    def apply(self, settings: Settings) -> None:
        self.applied.append(settings)

    def status(self) -> status.Status:
        return self.current

    def reregister(self) -> None:
        self.reregistered += 1


class InProcessService:
    # The small HTTP client of the served instance: it only needs `url`.
    call = Served.call
    login = Served.login

    def __init__(
        self,
        data_dir: Path,
        max_streams: int = events.MAX_STREAMS,
        keepalive: float = events.KEEPALIVE,
    ) -> None:
        self.data_dir = data_dir
        self.keepalive = keepalive
        self.outbox = Outbox()  # the device's, shared by the fakes as by the real parts
        self.phone = FakePhone(outbox=self.outbox)
        self.agent = FakeAgent(self.outbox)
        self.max_streams = max_streams
        self.sock = bind("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._ready = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    def start(self) -> "InProcessService":
        self._thread.start()
        assert self._ready.wait(20)
        return self

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.store = store = Store.open(self.data_dir)
        ensure_credential(store)
        hasher = Worker("hash")
        self.device = Device(store, self.agent, phone=self.phone, outbox=self.outbox)
        admin = Admin(store, hasher)
        self.hub, self.feed = events.for_device(
            self.device, admin.authorized, self.max_streams, self.keepalive
        )
        self.device.start()
        api = Api(
            Routes(self.device, admin, openapi.build(), self.hub),
            admin.authorized,
            HostCheck("127.0.0.1", ()),
            _nothing,
            _nothing,
        )
        self.listener = Listener(api, self.sock, Limits(timeout=10.0), 200)
        self.listener.start()
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        await self.listener.stop(5.0)
        self.feed.close()
        hasher.close()
        store.close()

    def run(self, action: Callable[[], Any]) -> Any:
        """Run `action` on the service's loop and give its result."""
        return asyncio.run_coroutine_threadsafe(_call(action), self.loop).result(10)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(20)


async def _call(action: Callable[[], Any]) -> Any:
    return action()


async def _nothing() -> None:
    pass
