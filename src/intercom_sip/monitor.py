"""One indoor monitor: its store, administrator, SIP agent, handset, outbox, events and
HTTP listener, built together, started and stopped as one.

`serve` builds one (the device of `--host`/`--sip-host`) or, with `--devices N`, N of
them in one process, each at its own address (a building). Monitors share only what a
client cannot see: the event loop, the scrypt threads, the audio they send and the
OpenAPI document. Each has its own data directory, and so its own serial number,
password, tokens, settings, registration, calls and store writer.
"""

import asyncio
import logging
import os
import socket
import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field

from intercom_sip import USER_AGENT, events
from intercom_sip.admin import credentials as auth
from intercom_sip.admin.logins import Admin, ensure_credential
from intercom_sip.admin.watch import DirectoryWatch
from intercom_sip.agent.outbox import Outbox
from intercom_sip.agent.phoneshell import PhoneOptions, PhoneShell
from intercom_sip.agent.supervisor import Agent, AgentOptions
from intercom_sip.api import http
from intercom_sip.api.app import Api
from intercom_sip.api.connection import Limits
from intercom_sip.api.hosts import HostCheck
from intercom_sip.api.listener import Listener, connection_cap
from intercom_sip.api.routes import Routes
from intercom_sip.binding import RefusedToStart, bind, bind_sip
from intercom_sip.config import ServiceConfig
from intercom_sip.device import Device
from intercom_sip.media.ports import PortPool
from intercom_sip.media.source import AudioSource
from intercom_sip.sip import callevents, transactions
from intercom_sip.sip.registration import Timers
from intercom_sip.sip.transport import FlowError, InboundLimits, TlsOptions
from intercom_sip.store import Credential, Store
from intercom_sip.worker import Worker, Writer

log = logging.getLogger(__name__)

# The address of the monitor whose work is running: set in its start, so every task and
# callback it makes carries it (asyncio copies the context into each), for the log.
DEVICE: ContextVar[str] = ContextVar("device", default="-")

CALL_END_WAIT = 2.0  # seconds a stop gives the call's BYE and its call-log write


@dataclass
class Shared:
    """What the monitors of one process share: nothing a client of one can see."""

    hasher: Worker
    source: AudioSource
    openapi: http.HttpResponse  # the document's answer, made once
    watch: bool = True  # inotify per monitor (a building polls: instances are few, 128)
    refresh_jitter: float = 0.0  # a fraction of each grant, refreshed that much earlier
    # One SQLite connection per monitor, not two (a building): each costs ~130 KB (most
    # of it SQLite's lookaside memory, which Python cannot size). Reads are rare after
    # the start (the settings live in memory): they wait for a commit in flight.
    lean: bool = False
    _factory: Credential | None = field(default=None, repr=False)
    _tls_checked: set[TlsOptions] = field(default_factory=set)

    def factory(self) -> Credential:
        """The factory credential (admin / 123456), hashed once for the process (scrypt
        takes ~50 ms: 500 new monitors would take 25 s). Its password is public, so one
        salt for all reveals nothing; every password set later gets its own salt."""
        if self._factory is None:
            md5hex = auth.md5_hex(auth.FACTORY_PASSWORD)
            self._factory = auth.make_credential(md5hex, os.urandom(auth.SALT_BYTES))
        return self._factory

    def check_tls(self, tls: TlsOptions) -> None:
        """A CA file that cannot be used stops the start, not a flow. Checked once per
        process (loading the system's CA store takes ~25 ms: 500 monitors, 12 s)."""
        if tls in self._tls_checked:
            return
        try:
            tls.context()
        except FlowError as exc:
            raise RefusedToStart(str(exc)) from exc
        self._tls_checked.add(tls)

    def is_factory(self, credential: Credential) -> bool:
        if self._factory is not None and credential == self._factory:
            return True  # no hash needed
        return auth.is_factory(credential)


class Monitor:
    """One device. Built (sockets bound, store opened) in `__init__`, which raises
    RefusedToStart or StoreError; served from `start()` to `stop()`."""

    def __init__(self, config: ServiceConfig, shared: Shared) -> None:
        self.config = config
        store = Store.open(config.data_dir)
        try:
            self._build(config, shared, store)
        except BaseException:
            store.close()
            raise

    def _build(self, config: ServiceConfig, shared: Shared, store: Store) -> None:
        credential = ensure_credential(store, shared.factory)
        if not (config.loopback_only or config.allow_factory_password) and shared.is_factory(
            credential
        ):
            raise RefusedToStart(
                f"refusing to listen on {config.host} with the factory password:"
                " set one with `intercom-sip passwd`, or pass --allow-factory-password"
            )
        options = agent_options(config, store, shared.refresh_jitter)
        shared.check_tls(options.tls)
        self._sip_sockets = bind_sip(config.sip_host, config.sip_port)
        try:
            self._http_socket = bind(config.host, config.port)
        except RefusedToStart:
            for sock in self._sip_sockets:
                sock.close()
            raise
        # Every write on the writer's thread, on a connection of its own but in a building.
        self._writer = Writer(store if shared.lean else Store.open(config.data_dir))
        self.outbox = Outbox()  # the device's: its agent, phone and settings emit here
        self.agent = Agent(options, self.outbox)
        self.phone = PhoneShell(
            self.agent.port,
            self.agent,
            pool=PortPool(config.rtp_ports),
            source=shared.source,
            call_log=self._writer,
            options=phone_options(config, self._sip_sockets[0].getsockname()[1]),
            redialer=self.agent,
            outbox=self.outbox,
        )
        self.agent.on_settings = self.phone.apply
        self.device = Device(
            store, self.agent, phone=self.phone, writer=self._writer, outbox=self.outbox
        )
        self.admin = Admin(store, shared.hasher)
        self._hub, self._feed = events.for_device(self.device, self.admin.authorized)
        self._watch = DirectoryWatch(config.data_dir, self._credential_changed)
        self._use_watch = shared.watch
        self._store = store
        self.api = Api(
            Routes(self.device, self.admin, shared.openapi, self._hub),
            self.admin.authorized,
            HostCheck(config.host, config.allowed_hosts),
            self.startup,
            self.shutdown,
        )
        self._listener: Listener | None = None

    @property
    def http_socket(self) -> socket.socket:
        return self._http_socket

    @property
    def url(self) -> str:
        host, port = self._http_socket.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    def _credential_changed(self) -> None:
        self.admin.notice_changes()
        self._hub.sweep()  # a new password ends every token: their streams end at once

    async def startup(self) -> None:
        """The SIP side: the agent on its port, the phone, the stored settings applied."""
        loop = asyncio.get_running_loop()
        if self._use_watch:
            self.admin.watched = self._watch.start(loop)
        await self.agent.start(*self._sip_sockets)
        self.phone.start()
        self.device.start()

    async def shutdown(self) -> None:
        self._feed.close()
        await self.phone.close(CALL_END_WAIT)  # a call ends (BYE) before the un-REGISTER
        await self.agent.stop()  # unregisters, bounded in time
        self._watch.close(asyncio.get_running_loop())
        self._writer.close()  # after the call log's last write
        self._store.close()

    async def start(self) -> None:
        """Start the SIP side, then serve HTTP (in the caller's task: a building starts
        each monitor in a task of its own, so the address stays with its work)."""
        DEVICE.set(self.config.host)
        await self.startup()
        limits = Limits(timeout=self.config.http_timeout)
        cap = connection_cap(self.config.http_max_connections)
        self._listener = Listener(self.api, self._http_socket, limits, cap)
        self._listener.start()

    async def stop(self, grace: float = 5.0) -> None:
        """Stop serving HTTP (the answers in progress get `grace` seconds), then the SIP
        side; the store closes last."""
        await self.stop_http(grace)
        await self.shutdown()

    async def stop_http(self, grace: float) -> None:
        if self._listener is not None:
            await self._listener.stop(grace)
        else:
            self._http_socket.close()

    async def cut(self) -> None:
        """A second signal: cut the answers in progress short."""
        if self._listener is not None:
            await self._listener.stop(0)

    def close(self) -> None:
        """Let go of a monitor never started: its sockets and its store."""
        for sock in (*self._sip_sockets, self._http_socket):
            sock.close()
        self._writer.close()
        self._store.close()


def agent_options(
    config: ServiceConfig, store: Store, refresh_jitter: float = 0.0
) -> AgentOptions:
    instance = store.made_once("instance", f"urn:uuid:{uuid.uuid4()}")
    return AgentOptions(
        tls=TlsOptions(config.tls_ca_file, verify=not config.tls_no_verify),
        t1=config.sip_t1,
        timers=Timers(
            auth_retry=config.sip_auth_retry,
            backoff_max=config.sip_backoff_max,
            refresh_jitter=refresh_jitter,
        ),
        instance=instance,
        user_agent=USER_AGENT,
        keepalive=config.sip_keepalive,
        dns_servers=config.dns_servers,
        inbound=InboundLimits(idle=config.sip_tcp_idle, max_connections=config.sip_tcp_max),
    )


def phone_options(config: ServiceConfig, sip_port: int) -> PhoneOptions:
    timers = transactions.SipTimers(t1=config.sip_t1)
    call = callevents.Options(
        ring_time=config.ring_time,
        auto_answer_delay=config.auto_answer_delay,
        media_timeout=config.media_timeout,
        allow_direct=config.direct_calls,
        timers=timers,
        user_agent=USER_AGENT,
    )
    return PhoneOptions(call, config.sip_host, config.recordings, sip_port)


class DeviceField(logging.Filter):
    """Gives each log record the `device` whose work logged it (a building's log)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.device = DEVICE.get()
        return True
