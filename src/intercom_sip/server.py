"""Wiring: one monitor (`monitor.Monitor`), or a building of them, served on one event
loop, for `intercom-sip serve`."""

import asyncio
import dataclasses
import gc
import ipaddress
import logging
import random
import resource
import signal
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import uvloop

from intercom_sip.api import http, openapi
from intercom_sip.api.connection import AsgiApp, Limits
from intercom_sip.api.lifespan import Lifespan
from intercom_sip.api.listener import Listener, connection_cap
from intercom_sip.binding import RefusedToStart, bind
from intercom_sip.config import ServiceConfig
from intercom_sip.loglimit import LogLimit
from intercom_sip.media.source import AudioSource, SourceError, load_wav, tone
from intercom_sip.monitor import Monitor, Shared
from intercom_sip.worker import Worker

__all__ = ["LOOPS", "HttpOptions", "RefusedToStart", "bind", "run", "serve_asgi"]

log = logging.getLogger(__name__)

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# A building's monitors start over this many seconds per monitor (0.5 s per 100), each at
# a random moment: their first REGISTERs spread out, and so do all that follow.
START_SPREAD_PER_DEVICE: Final = 0.005
REFRESH_JITTER: Final = 0.05  # of each grant: refreshes drift apart (registration.Timers)
# Descriptors a monitor holds: two store connections (database, WAL, shared memory
# each), the HTTP socket, SIP's UDP and TCP sockets, and a few more for its clients.
FILES_PER_DEVICE: Final = 16
FILES_RESERVE: Final = 256  # the loop, the log, the process's own
# HTTP connections a building's device holds at once unless --http-max-connections says
# (at the cap the longest idle goes): a flood at one device takes its share of the
# process's descriptors, not its neighbours'.
DEVICE_MAX_CONNECTIONS: Final = 64


def run(config: ServiceConfig) -> None:
    """Serve until SIGTERM or SIGINT. Raises RefusedToStart or StoreError."""
    source = audio_source(config)
    building = config.devices is not None
    if config.devices is not None:
        enough_files(config.devices)
    shared = Shared(
        hasher=Worker("hash", threads=2),
        source=source,
        openapi=http.json_response(200, openapi.build()),
        watch=not building,
        refresh_jitter=REFRESH_JITTER if building else 0.0,
        lean=building,
    )
    try:
        monitors = build_monitors(config, shared)
    except BaseException:
        shared.hasher.close()
        raise
    options = HttpOptions(config.http_timeout, config.http_max_connections, loop=config.loop)
    spread = START_SPREAD_PER_DEVICE * len(monitors) if building else 0.0
    try:
        with asyncio.Runner(loop_factory=LOOPS[options.loop]) as runner:
            runner.run(_serve([_Monitored(m, spread) for m in monitors], options))
    finally:
        shared.hasher.close()


def build_monitors(config: ServiceConfig, shared: Shared) -> list[Monitor]:
    """One monitor, or one per device of `--devices`; on a failure, none stays open."""
    if config.devices is not None:
        recordings_dir(config)  # the building's; each device's below
    made: list[Monitor] = []
    try:
        for one in device_configs(config):
            recordings_dir(one)
            made.append(Monitor(one, shared))
    except BaseException:
        for monitor in made:
            monitor.close()
        raise
    return made


def device_configs(config: ServiceConfig) -> list[ServiceConfig]:
    """The config of each device: device i at address first + i, for HTTP and SIP, with
    its data (and recordings) in a directory named after the address."""
    if config.devices is None or config.first_address is None:
        return [config]
    first = ipaddress.IPv4Address(config.first_address)
    configs = []
    for i in range(config.devices):
        address = str(first + i)
        configs.append(
            dataclasses.replace(
                config,
                host=address,
                sip_host=address,
                data_dir=config.data_dir / address,
                recordings=None if config.recordings is None else config.recordings / address,
                http_max_connections=config.http_max_connections or DEVICE_MAX_CONNECTIONS,
                devices=None,
                first_address=None,
            )
        )
    return configs


def enough_files(devices: int) -> None:
    """Raise the open-file limit to what the hard limit allows; a building that would
    still run out stops the start, with the numbers."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = devices * FILES_PER_DEVICE + FILES_RESERVE
    if soft != resource.RLIM_INFINITY and soft < needed:
        soft = hard if hard == resource.RLIM_INFINITY else max(soft, min(hard, needed * 4))
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if soft != resource.RLIM_INFINITY and soft < needed:
        raise RefusedToStart(
            f"--devices {devices} needs {needed} open files; the limit is {soft}"
            " (raise it: ulimit -n, or LimitNOFILE= in a systemd unit)"
        )


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
        runner.run(_serve([_AppSite(app, sock, options)], options))


class _Site(Protocol):
    """What `_serve` runs: one HTTP listener and what lives behind it."""

    @property
    def url(self) -> str: ...

    async def start(self) -> None: ...

    async def stop_http(self, grace: float) -> None: ...

    async def cut(self) -> None: ...

    async def shutdown(self) -> None: ...


class _AppSite:
    """An ASGI app under the lifespan protocol (the bare app of the benchmark)."""

    def __init__(self, app: AsgiApp, sock: socket.socket, options: HttpOptions) -> None:
        self._app, self._sock, self._options = app, sock, options
        self._lifespan = Lifespan(app)
        self._listener: Listener | None = None
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{port}"

    async def start(self) -> None:
        await self._lifespan.startup()
        o = self._options
        limits = Limits(timeout=o.timeout)
        self._listener = Listener(self._app, self._sock, limits, connection_cap(o.max_connections))
        self._listener.start()

    async def stop_http(self, grace: float) -> None:
        if self._listener is not None:
            await self._listener.stop(grace)

    async def cut(self) -> None:
        if self._listener is not None:
            await self._listener.stop(0)

    async def shutdown(self) -> None:
        await self._lifespan.shutdown()


class _Monitored:
    """A monitor whose start waits a random part of `spread` seconds: a building's
    monitors then do not all REGISTER in the same millisecond."""

    def __init__(self, monitor: Monitor, spread: float) -> None:
        self._monitor, self._spread = monitor, spread
        self.url = monitor.url

    async def start(self) -> None:
        if self._spread:
            await asyncio.sleep(random.uniform(0, self._spread))
        await self._monitor.start()

    async def stop_http(self, grace: float) -> None:
        await self._monitor.stop_http(grace)

    async def cut(self) -> None:
        await self._monitor.cut()

    async def shutdown(self) -> None:
        await self._monitor.shutdown()


async def _serve(sites: Sequence[_Site], options: HttpOptions) -> None:
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_LoopErrors().report)
    stops = asyncio.Queue[signal.Signals]()
    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, stops.put_nowait, sig)
    try:
        await asyncio.gather(*(site.start() for site in sites))
        _freeze_heap()
        log.info("event loop: %s", "uvloop" if isinstance(loop, uvloop.Loop) else "asyncio")
        if len(sites) == 1:
            log.info("intercom-sip ready on %s", sites[0].url)
        else:
            log.info(
                "intercom-sip ready on %s (%d devices, the last on %s)",
                sites[0].url,
                len(sites),
                sites[-1].url,
            )
        await stops.get()
        # A second signal cuts the answers in progress short.
        grace = loop.create_task(_each(sites, lambda site: site.stop_http(options.grace)))
        second = loop.create_task(stops.get())
        await asyncio.wait({grace, second}, return_when=asyncio.FIRST_COMPLETED)
        second.cancel()
        if not grace.done():
            grace.cancel()
            await _each(sites, lambda site: site.cut())
        await _each(sites, lambda site: site.shutdown())
    finally:
        for sig in _STOP_SIGNALS:
            loop.remove_signal_handler(sig)


async def _each(sites: Sequence[_Site], step: Callable[[_Site], Awaitable[None]]) -> None:
    """`step` for every site at once; one site's failure is logged, the others go on."""
    if len(sites) == 1:  # one device: its failure is the process's, as it always was
        await step(sites[0])
        return
    results = await asyncio.gather(*(step(site) for site in sites), return_exceptions=True)
    for site, result in zip(sites, results, strict=True):
        if isinstance(result, Exception):
            log.error("stopping %s failed: %r", site.url, result, exc_info=result)


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
