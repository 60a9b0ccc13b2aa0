"""A request's app runs at once, as far as it goes without waiting; a task takes over only
if it waits, and then drives it exactly as a task of its own would have."""

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest

from intercom_sip.api.connection import _run_eagerly
from intercom_sip.server import LOOPS


class Owner:
    """Spawns tasks as the listener does, and keeps them."""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[None]] = []

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        self.tasks.append(asyncio.get_running_loop().create_task(work))


@pytest.fixture(params=["uvloop", "asyncio"])
def run(request: pytest.FixtureRequest) -> Any:
    def runner(main: Coroutine[Any, Any, None]) -> None:
        with asyncio.Runner(loop_factory=LOOPS[request.param]) as loop:
            loop.run(main)

    return runner


def test_work_that_never_waits_is_done_at_once_without_a_task(run: Any) -> None:
    async def main() -> None:
        steps: list[str] = []

        async def inner() -> str:
            steps.append("inner")
            return "value"

        async def work() -> None:
            steps.append(await inner())

        owner = Owner()
        _run_eagerly(work(), owner)  # type: ignore[arg-type]
        assert (steps, owner.tasks) == (["inner", "value"], [])

    run(main())


def test_work_that_waits_goes_on_in_a_task_with_each_outcome(run: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in range(3)]
        seen: list[object] = []

        async def work() -> None:
            seen.append("began")
            seen.append(await futures[0])
            try:
                await futures[1]
            except KeyError as exc:
                seen.append(repr(exc))
            await asyncio.sleep(0)  # a bare yield
            seen.append(await futures[2])

        owner = Owner()
        _run_eagerly(work(), owner)  # type: ignore[arg-type]
        assert seen == ["began"] and len(owner.tasks) == 1
        futures[0].set_result(1)
        await asyncio.sleep(0)
        futures[1].set_exception(KeyError("k"))
        for _ in range(5):
            await asyncio.sleep(0)
        assert seen == ["began", 1, "KeyError('k')"]
        futures[2].set_result(3)
        await owner.tasks[0]
        assert seen == ["began", 1, "KeyError('k')", 3]

    run(main())


def test_a_cancel_of_the_task_reaches_the_work_where_it_waits(run: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        held = loop.create_future()
        seen: list[str] = []

        async def work() -> None:
            try:
                await asyncio.shield(held)  # the shield is cancelled, never `held`
            except asyncio.CancelledError:
                seen.append("cancelled")
                raise

        owner = Owner()
        _run_eagerly(work(), owner)  # type: ignore[arg-type]
        await asyncio.sleep(0)
        owner.tasks[0].cancel()
        with pytest.raises(asyncio.CancelledError):
            await owner.tasks[0]
        assert seen == ["cancelled"] and not held.cancelled()

    run(main())


@pytest.mark.parametrize("eager", [True, False])
def test_a_cancel_after_the_wait_ended_is_thrown_in_as_by_a_task(run: Any, eager: bool) -> None:
    """The same case run eagerly and as a plain task must end alike."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        first, second = loop.create_future(), loop.create_future()
        seen: list[str] = []

        async def work() -> None:
            try:
                await first
            except asyncio.CancelledError:
                seen.append("cancelled at the first")
                raise
            await second

        owner = Owner()
        if eager:
            _run_eagerly(work(), owner)  # type: ignore[arg-type]
        else:
            owner.spawn(work())
            await asyncio.sleep(0)
        first.set_result(None)
        owner.tasks[0].cancel()  # before it resumed: the cancel comes in where it waited
        with pytest.raises(asyncio.CancelledError):
            await owner.tasks[0]
        assert seen == ["cancelled at the first"]
        assert not second.done()

    run(main())
