"""create_app(): the ASGI application, dispatching on one table of endpoints."""

import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from intercom_sip.api import http
from intercom_sip.api.endpoints import ENDPOINTS
from intercom_sip.api.hosts import HostCheck
from intercom_sip.api.http import HttpResponse, Receive, Scope, Send
from intercom_sip.api.routes import Call, Routes

log = logging.getLogger(__name__)
access_log = logging.getLogger("intercom_sip.access")

Handler = Callable[[Call], Awaitable[HttpResponse]]
Hook = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Path:
    protected: bool
    methods: Mapping[str, Handler]
    not_allowed: HttpResponse  # 405 with this path's `Allow`


class Api:
    """The whole HTTP side; `startup`/`shutdown` run in the lifespan of the server."""

    def __init__(
        self,
        routes: Routes,
        authorized: Callable[[str], bool],
        hosts: HostCheck,
        startup: Hook,
        shutdown: Hook,
    ) -> None:
        self._paths = _dispatch_table(routes)
        self._authorized, self._hosts = authorized, hosts
        self._startup, self._shutdown = startup, shutdown

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        logged = access_log.isEnabledFor(logging.DEBUG)
        started = time.perf_counter() if logged else 0.0
        client = scope["client"][0] if scope.get("client") else "-"
        try:
            response = await self._answer(scope, receive, client)
        except Exception:  # a bug of ours: answer, log, keep serving
            log.exception("unhandled error in %s %s", scope["method"], ascii(scope["path"]))
            response = http.INTERNAL
        if response.stream is not None and scope["method"] == "HEAD":
            response.stream.end()  # the head of a stream is all a HEAD gets: no stream held
            response = dataclasses.replace(response, stream=None)
        await http.send_response(send, response, receive)
        if logged:
            # At debug level: a poll every second would drown the log's real events.
            # The path only: a query string may hold the login's password hash.
            access_log.debug(
                '%s "%s %s" %d %.1fms',
                client,
                scope["method"],
                ascii(scope["path"])[1:-1],
                response.status,
                (time.perf_counter() - started) * 1000,
            )

    async def _answer(self, scope: Scope, receive: Receive, client: str) -> HttpResponse:
        host = authorization = None
        for name, value in scope["headers"]:
            if name == b"host":
                if host is not None:
                    return http.BAD_REQUEST  # two: RFC 9112 §3.2
                host = value
            elif name == b"authorization":
                authorization = b"" if authorization is not None else value  # two: refused
        if not self._hosts.allows(host):
            return http.MISDIRECTED
        path = self._paths.get(scope["path"])
        if path is None:
            return http.NOT_FOUND
        token = http.bearer_token(authorization) if authorization else None
        if path.protected and (token is None or not self._authorized(token)):
            return http.LOG_IN
        handler = path.methods.get(scope["method"])
        if handler is None:
            return path.not_allowed
        return await handler(Call(scope, receive, client, token))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self._startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _dispatch_table(routes: Routes) -> dict[str, Path]:
    table: dict[str, dict[str, Handler]] = {}
    protected: dict[str, bool] = {}
    for endpoint in ENDPOINTS:
        for full in endpoint.full_paths():
            table.setdefault(full, {})[endpoint.method] = getattr(routes, endpoint.handler)
            protected[full] = protected.get(full, True) and endpoint.protected
    for methods in table.values():
        if "GET" in methods:  # RFC 9110 §9.3.2: HEAD is GET without the body (the server drops it)
            methods.setdefault("HEAD", methods["GET"])
    return {
        full: Path(protected[full], methods, http.method_not_allowed(methods))
        for full, methods in table.items()
    }
