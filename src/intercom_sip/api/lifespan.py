"""The ASGI lifespan protocol, driven by our server: startup before serving, shutdown after."""

import asyncio
from typing import Final

from intercom_sip.api.connection import AsgiApp
from intercom_sip.api.http import Message

_SCOPE: Final = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}


class LifespanFailed(Exception):
    """The app said its startup or shutdown failed, or ended without answering."""


class Lifespan:
    def __init__(self, app: AsgiApp) -> None:
        self._app = app
        self._inbox: asyncio.Queue[Message] = asyncio.Queue(maxsize=2)
        self._replies: asyncio.Queue[Message] = asyncio.Queue(maxsize=2)
        self._task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())
        await self._phase("startup")

    async def _run(self) -> None:
        await self._app(dict(_SCOPE), self._inbox.get, self._replies.put)

    async def shutdown(self) -> None:
        if self._task is not None and not self._task.done():
            await self._phase("shutdown")
            await self._task

    async def _phase(self, phase: str) -> None:
        assert self._task is not None
        await self._inbox.put({"type": f"lifespan.{phase}"})
        reply = asyncio.ensure_future(self._replies.get())
        await asyncio.wait({reply, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if not reply.done():
            reply.cancel()
            self._task.result()  # raises what the app raised
            raise LifespanFailed(f"the app ended during its {phase}")
        message = reply.result()
        if message["type"] != f"lifespan.{phase}.complete":
            raise LifespanFailed(str(message.get("message", f"{phase} failed")))
