"""Wiring: the store, the device, the API and its HTTP server, for `intercom-sip serve`."""

import asyncio
import gc
import logging
import os
import signal
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import uvloop

from intercom_sip import USER_AGENT, events
from intercom_sip.admin import credentials as auth
from intercom_sip.admin.logins import Admin, ensure_credential
from intercom_sip.admin.watch import DirectoryWatch
from intercom_sip.agent.outbox import Outbox
from intercom_sip.agent.phoneshell import PhoneOptions, PhoneShell
from intercom_sip.agent.supervisor import Agent, AgentOptions
from intercom_sip.api import openapi
from intercom_sip.api.app import Api
from intercom_sip.api.connection import AsgiApp, Limits
from intercom_sip.api.hosts import HostCheck
from intercom_sip.api.lifespan import Lifespan
from intercom_sip.api.listener import Listener, connection_cap
from intercom_sip.api.routes import Routes
from intercom_sip.config import ServiceConfig
from intercom_sip.device import Device
from intercom_sip.loglimit import LogLimit
from intercom_sip.media.ports import PortPool
from intercom_sip.media.source import AudioSource, SourceError, load_wav, tone
from intercom_sip.sip import callevents, transactions
from intercom_sip.sip.registration import Timers
from intercom_sip.sip.transport import FlowError, InboundLimits, TlsOptions
from intercom_sip.store import Store
from intercom_sip.worker import Worker, Writer

log = logging.getLogger(__name__)

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
CALL_END_WAIT = 2.0  # seconds a stop gives the call's BYE and its call-log write


class RefusedToStart(Exception):
    """A start that would be unsafe or cannot work; the message says why."""


def run(config: ServiceConfig) -> None:
    """Serve until SIGTERM or SIGINT. Raises RefusedToStart or StoreError."""
    store = Store.open(config.data_dir)
    credential = ensure_credential(store)
    if not (config.loopback_only or config.allow_factory_password) and auth.is_factory(credential):
        raise RefusedToStart(
            f"refusing to listen on {config.host} with the factory password:"
            " set one with `intercom-sip passwd`, or pass --allow-factory-password"
        )
    options = agent_options(config, store)
    try:
        options.tls.context()  # a CA file that cannot be used stops the start, not a flow
    except FlowError as exc:
        raise RefusedToStart(str(exc)) from exc
    source = audio_source(config)
    recordings_dir(config)
    hasher = Worker("hash", threads=2)
    writer = Writer(Store.open(config.data_dir))  # every write, on its own connection
    sip_sockets = bind_sip(config.sip_host, config.sip_port)
    outbox = Outbox()  # the device's: its agent, phone and settings emit here
    agent = Agent(options, outbox)
    phone = PhoneShell(
        agent.port,
        agent,
        pool=PortPool(config.rtp_ports),
        source=source,
        call_log=writer,
        options=phone_options(config, sip_sockets[0].getsockname()[1]),
        redialer=agent,
        outbox=outbox,
    )
    agent.on_settings = phone.apply
    device = Device(store, agent, phone=phone, writer=writer, outbox=outbox)
    admin = Admin(store, hasher)
    hub, feed = events.for_device(device, admin.authorized)

    def credential_changed() -> None:
        admin.notice_changes()
        hub.sweep()  # a new password ends every token: their streams end at once

    watch = DirectoryWatch(config.data_dir, credential_changed)

    async def startup() -> None:
        admin.watched = watch.start(asyncio.get_running_loop())
        await agent.start(*sip_sockets)
        phone.start()
        device.start()

    async def shutdown() -> None:
        feed.close()
        await phone.close(CALL_END_WAIT)  # a call ends (BYE) before the un-REGISTER
        await agent.stop()  # unregisters, bounded in time
        watch.close(asyncio.get_running_loop())
        hasher.close()
        writer.close()  # after the call log's last write

    api = Api(
        Routes(device, admin, openapi.build(), hub),
        admin.authorized,
        HostCheck(config.host, config.allowed_hosts),
        startup,
        shutdown,
    )
    http = HttpOptions(config.http_timeout, config.http_max_connections, loop=config.loop)
    serve_asgi(api, bind(config.host, config.port), http)


def agent_options(config: ServiceConfig, store: Store) -> AgentOptions:
    instance = store.made_once("instance", f"urn:uuid:{uuid.uuid4()}")
    return AgentOptions(
        tls=TlsOptions(config.tls_ca_file, verify=not config.tls_no_verify),
        t1=config.sip_t1,
        timers=Timers(auth_retry=config.sip_auth_retry, backoff_max=config.sip_backoff_max),
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


def audio_source(config: ServiceConfig) -> AudioSource:
    """The audio calls send; a file that cannot be used stops the start."""
    source = tone() if config.audio is None else load_wav(config.audio)
    if isinstance(source, SourceError):
        raise RefusedToStart(f"--audio {config.audio}: {source.message}")
    return source


def recordings_dir(config: ServiceConfig) -> None:
    """The recordings directory, made if missing; one that cannot be written stops the start."""
    folder = config.recordings
    if folder is None:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".intercom-sip-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise RefusedToStart(f"--recordings {folder}: {reason}") from exc


def bind_sip(host: str, port: int) -> tuple[socket.socket, socket.socket]:
    """The fixed SIP port, UDP and TCP, taken before serving so that a clash stops the
    start. Port 0 (for tests) takes a free port, the same for both."""
    for _ in range(20):
        udp = _bound(socket.SOCK_DGRAM, host, port)
        try:
            tcp = _bound(socket.SOCK_STREAM, host, udp.getsockname()[1])
        except RefusedToStart:
            udp.close()
            if port:
                raise
            continue
        tcp.listen(128)
        return udp, tcp
    raise RefusedToStart(f"cannot find a free SIP port on {host}")


def _bound(kind: socket.SocketKind, host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, kind)
    try:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise RefusedToStart(f"cannot use SIP port {host}:{port}: {reason}") from exc
    return sock


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(
            4096
        )  # the kernel caps it (somaxconn); a burst of connects then waits, not its SYNs
    except OSError as exc:
        sock.close()
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise RefusedToStart(f"cannot listen on {host}:{port}: {reason}") from exc
    return sock


@dataclass(frozen=True)
class HttpOptions:
    timeout: float = 10.0
    max_connections: int | None = None  # None: as many as the file limit allows, at most 1024
    grace: float = 5.0  # seconds the answers in progress get at a stop
    loop: str = "uvloop"  # a name in LOOPS


# The event loops the service runs on, chosen at start. uvloop (libuv) takes about half
# the time of the standard loop per wake-up; the standard loop stays supported.
LOOPS: Final[dict[str, Callable[[], asyncio.AbstractEventLoop]]] = {
    "uvloop": uvloop.new_event_loop,
    "asyncio": asyncio.new_event_loop,
}


def serve_asgi(app: AsgiApp, sock: socket.socket, options: HttpOptions | None = None) -> None:
    """Serve an ASGI app on our HTTP server until SIGTERM or SIGINT (the benchmark's bare
    app runs under the same)."""
    options = options or HttpOptions()
    with asyncio.Runner(loop_factory=LOOPS[options.loop]) as runner:
        runner.run(_serve(app, sock, options))


async def _serve(app: AsgiApp, sock: socket.socket, options: HttpOptions) -> None:
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_LoopErrors().report)
    stops = asyncio.Queue[signal.Signals]()
    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, stops.put_nowait, sig)
    try:
        lifespan = Lifespan(app)
        await lifespan.startup()
        _freeze_heap()
        listener = Listener(
            app, sock, Limits(timeout=options.timeout), connection_cap(options.max_connections)
        )
        listener.start()
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        log.info("event loop: %s", "uvloop" if isinstance(loop, uvloop.Loop) else "asyncio")
        log.info("intercom-sip ready on http://%s:%d", shown, port)
        await stops.get()
        # A second signal cuts the answers in progress short.
        grace = loop.create_task(listener.stop(options.grace))
        second = loop.create_task(stops.get())
        await asyncio.wait({grace, second}, return_when=asyncio.FIRST_COMPLETED)
        second.cancel()
        if not grace.done():
            grace.cancel()
            await listener.stop(0)
        await lifespan.shutdown()
    finally:
        for sig in _STOP_SIGNALS:
            loop.remove_signal_handler(sig)


def _freeze_heap() -> None:
    """Keep what the start made (modules, tables, the app: ~40,000 objects) out of every
    later garbage collection. They live as long as the service; walking them in each full
    collection held every request 50-75 ms on a loaded machine (hostile finding 4's
    slowest answer), with uvloop or without."""
    gc.collect()
    gc.freeze()
    log.info("heap at start: %d objects kept out of collections", gc.get_freeze_count())


class _LoopErrors:
    """asyncio's reports of errors nobody caught, a few lines a second at most."""

    def __init__(self) -> None:
        self._log = LogLimit(log, per_window=3)

    def report(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        message = str(context.get("message", "error in the event loop"))
        self._log.log(message, logging.ERROR, "%s: %r", message, exc, exc_info=exc is not None)
