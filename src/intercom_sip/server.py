"""Wiring: the store, the device, the API and uvicorn, for `intercom-sip serve`."""

import asyncio
import contextlib
import logging
import os
import signal
import socket
import uuid
from collections.abc import Callable, Iterator

import uvicorn

from intercom_sip import USER_AGENT, auth
from intercom_sip.admin import Admin, ensure_credential
from intercom_sip.agent import Agent, AgentOptions
from intercom_sip.api import openapi
from intercom_sip.api.app import Api
from intercom_sip.api.hosts import HostCheck
from intercom_sip.api.http import Receive, Scope, Send
from intercom_sip.api.routes import Routes
from intercom_sip.config import ServiceConfig
from intercom_sip.device import Device
from intercom_sip.sip.registration import Timers
from intercom_sip.sip.transport import InboundLimits, TlsOptions
from intercom_sip.store import Store
from intercom_sip.watch import DirectoryWatch
from intercom_sip.worker import Worker

log = logging.getLogger(__name__)

AsgiApp = Callable[[Scope, Receive, Send], object]
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


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
    hasher = Worker("hash", threads=2)
    sip_sockets = bind_sip(config.sip_host, config.sip_port)
    agent = Agent(agent_options(config, store))
    device = Device(store, agent)
    admin = Admin(store, hasher)

    watch = DirectoryWatch(config.data_dir, admin.notice_changes)

    async def startup() -> None:
        admin.watched = watch.start(asyncio.get_running_loop())
        await agent.start(*sip_sockets)
        device.start()

    async def shutdown() -> None:
        await agent.stop()  # unregisters, bounded in time
        watch.close(asyncio.get_running_loop())
        hasher.close()

    api = Api(
        Routes(device, admin, openapi.build()),
        admin.authorized,
        HostCheck(config.host, config.allowed_hosts),
        startup,
        shutdown,
    )
    serve_asgi(api, bind(config.host, config.port))


def agent_options(config: ServiceConfig, store: Store) -> AgentOptions:
    instance = store.identity_value("instance", f"urn:uuid:{uuid.uuid4()}")
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
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on sockets that say so,
    # and without it every answer waits out the peer's delayed ACK (40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise RefusedToStart(f"cannot listen on {host}:{port}: {reason}") from exc
    return sock


def serve_asgi(app: AsgiApp, sock: socket.socket) -> None:
    """Run an ASGI app under the one uvicorn set-up we use (the benchmark shares it)."""
    config = uvicorn.Config(
        app,
        http="httptools",
        loop="asyncio",
        ws="none",
        lifespan="on",
        log_config=None,
        access_log=False,  # ours leaves out the query string, which may hold a secret
        proxy_headers=False,  # X-Forwarded-For would let a client dodge the login throttle
        server_header=False,
        timeout_graceful_shutdown=5,
    )
    asyncio.run(_ReadyServer(config).serve(sockets=[sock]))


class _ReadyServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn re-raises SIGTERM after a graceful shutdown, so the process would
        # end "killed by signal"; a clean stop here ends with status 0 instead.
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in _STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.should_exit or not sockets:
            return
        host, port = sockets[0].getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        log.info("intercom-sip ready on http://%s:%d", shown, port)
