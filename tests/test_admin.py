"""Contract §2 through Admin: the throttle decides before any await; hashes are counted."""

import asyncio
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from intercom_sip.admin import credentials as auth
from intercom_sip.admin.logins import Admin, Login, LoginResult, ensure_credential
from intercom_sip.store import Store
from tests.conftest import FACTORY_MD5, FakeClock

T = TypeVar("T")
OK, WRONG, THROTTLED = LoginResult.OK, LoginResult.WRONG, LoginResult.THROTTLED
FLOOD = "192.0.2.66"


class GatedHasher:
    """Counts the hashes; each waits for the gate, as if the pool were busy."""

    threads = 3  # one address may hash two at once, and leave one thread to the others

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.hashed: list[object] = []  # each hash's verdict, in the order they started

    async def run(self, call: Callable[[], T]) -> T:
        index = len(self.hashed)
        self.hashed.append(None)
        await self.gate.wait()  # waiters wake in the order they came: a FIFO pool
        self.hashed[index] = verdict = call()
        return verdict


class Pool:
    """A pool of `threads` threads: the hashes start in the order given as threads free
    up, and each ends when its own gate opens."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._free = asyncio.Semaphore(threads)
        self.started: list[int] = []  # the index of each hash, as it starts
        self.gates: list[asyncio.Event] = []

    async def run(self, call: Callable[[], T]) -> T:
        index = len(self.gates)
        self.gates.append(asyncio.Event())
        async with self._free:
            self.started.append(index)
            await self.gates[index].wait()
            return call()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "data")
    ensure_credential(opened)
    yield opened
    opened.close()


def results(logins: list[Login]) -> list[LoginResult]:
    return [login.result for login in logins]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_flood_is_decided_before_any_hash_ends(store: Store) -> None:
    async def flood() -> tuple[list[Login], GatedHasher]:
        hasher = GatedHasher()
        admin = Admin(store, hasher, FakeClock())
        guesses = [auth.md5_hex(f"guess{n}") for n in range(300)]
        guesses[150] = FACTORY_MD5  # the right pair, among them
        tasks = [asyncio.create_task(admin.login("admin", md5, FLOOD)) for md5 in guesses]
        await settle()
        assert sum(task.done() for task in tasks) == 298  # answered while two hash
        hasher.gate.set()
        return await asyncio.gather(*tasks), hasher

    logins, hasher = asyncio.run(flood())
    assert hasher.hashed == [False, False]
    assert results(logins) == [WRONG, WRONG] + [THROTTLED] * 298
    assert logins[150].token is None


def test_at_most_five_guesses_hashed_per_window(store: Store) -> None:
    async def waves() -> list[LoginResult]:
        hasher = GatedHasher()
        hasher.gate.set()
        admin = Admin(store, hasher, FakeClock())
        answers = []
        for wave in range(10):
            logins = [admin.login("admin", auth.md5_hex(f"g{wave}.{n}"), FLOOD) for n in range(30)]
            answers += results(await asyncio.gather(*logins))
        assert len(hasher.hashed) == 5
        return answers

    answers = asyncio.run(waves())
    assert answers.count(WRONG) == 5
    assert answers.count(THROTTLED) == 295


def test_another_address_is_not_held_up_by_a_flood(store: Store) -> None:
    async def both() -> tuple[Login, GatedHasher]:
        hasher = GatedHasher()
        admin = Admin(store, hasher, FakeClock())
        flood = [admin.login("admin", auth.md5_hex(f"g{n}"), FLOOD) for n in range(300)]
        tasks = [asyncio.create_task(login) for login in flood]
        mine = asyncio.create_task(admin.login("admin", FACTORY_MD5, "192.0.2.7"))
        await settle()
        hasher.gate.set()
        await asyncio.gather(*tasks)
        return await mine, hasher

    login, hasher = asyncio.run(both())
    assert login.result is OK
    assert hasher.hashed == [False, False, True]  # queued behind two flood hashes, not 300


def test_the_same_pair_at_once_is_hashed_once(store: Store) -> None:
    async def twice() -> tuple[list[Login], GatedHasher]:
        hasher = GatedHasher()
        admin = Admin(store, hasher, FakeClock())
        tasks = [asyncio.create_task(admin.login("admin", FACTORY_MD5, FLOOD)) for _ in range(5)]
        await settle()
        hasher.gate.set()
        return await asyncio.gather(*tasks), hasher

    logins, hasher = asyncio.run(twice())
    assert results(logins) == [OK] * 5
    assert len({login.token for login in logins}) == 5
    assert hasher.hashed == [True]


def test_a_retrying_old_password_is_hashed_once_and_blocks_no_one(store: Store) -> None:
    async def retries() -> tuple[list[Login], GatedHasher]:
        hasher, clock = GatedHasher(), FakeClock()
        hasher.gate.set()
        admin = Admin(store, hasher, clock)
        answers = []
        for _ in range(30):
            answers.append(await admin.login("admin", auth.md5_hex("old"), FLOOD))
            clock.now += 5
        for n in range(3):
            answers.append(await admin.login("admin", auth.md5_hex(f"typo{n}"), FLOOD))
        answers.append(await admin.login("admin", FACTORY_MD5.upper(), FLOOD))
        return answers, hasher

    answers, hasher = asyncio.run(retries())
    assert results(answers) == [WRONG] * 33 + [OK]
    assert hasher.hashed == [False] * 4 + [True]  # "old" once, the typos, the right one


def test_a_wrong_username_is_counted_without_a_hash(store: Store) -> None:
    async def users() -> tuple[list[Login], GatedHasher]:
        hasher = GatedHasher()
        admin = Admin(store, hasher, FakeClock())
        answers = [await admin.login(f"user{n}", FACTORY_MD5, FLOOD) for n in range(6)]
        return answers, hasher

    answers, hasher = asyncio.run(users())
    assert results(answers) == [WRONG] * 5 + [THROTTLED]
    assert hasher.hashed == []


def test_a_client_that_leaves_holds_its_slot_until_the_hash_ends(store: Store) -> None:
    async def leave() -> list[LoginResult]:
        hasher = GatedHasher()
        admin = Admin(store, hasher, FakeClock())
        gone = asyncio.create_task(admin.login("admin", auth.md5_hex("a"), FLOOD))
        await settle()
        gone.cancel()
        await settle()
        second = asyncio.create_task(admin.login("admin", auth.md5_hex("b"), FLOOD))
        await settle()
        # Two slots taken: answered at once (the guard only keeps a regression from hanging).
        third = await asyncio.wait_for(admin.login("admin", auth.md5_hex("c"), FLOOD), 60)
        hasher.gate.set()
        answers = [third.result, (await second).result]
        for n in range(3):  # "a" was judged and counted: with "b", three more make five
            answers.append((await admin.login("admin", auth.md5_hex(f"d{n}"), FLOOD)).result)
        answers.append((await admin.login("admin", FACTORY_MD5, FLOOD)).result)
        return answers

    assert asyncio.run(leave()) == [THROTTLED, WRONG, WRONG, WRONG, WRONG, THROTTLED]


def test_a_password_change_forgets_known_wrong_pairs_and_tokens(store: Store) -> None:
    async def change() -> list[Login]:
        hasher = GatedHasher()
        hasher.gate.set()
        admin = Admin(store, hasher, FakeClock())
        token = (await admin.login("admin", FACTORY_MD5, FLOOD)).token
        answers = [await admin.login("admin", auth.md5_hex("next"), FLOOD)]
        store.save_credential(auth.make_credential(auth.md5_hex("next"), os.urandom(16)), 0.0)
        answers.append(await admin.login("admin", auth.md5_hex("next"), FLOOD))
        assert token is not None and not admin.authorized(token)
        return answers

    assert results(asyncio.run(change())) == [WRONG, OK]


def test_at_most_max_tokens_live(store: Store) -> None:
    hasher = GatedHasher()
    admin = Admin(store, hasher, FakeClock(), max_tokens=2)

    async def logins() -> list[str]:
        hasher.gate.set()
        issued = [await admin.login("admin", FACTORY_MD5, FLOOD) for _ in range(3)]
        return [login.token or "" for login in issued]

    tokens = asyncio.run(logins())
    assert [admin.authorized(token) for token in tokens] == [False, True, True]


def test_a_password_changed_while_hashing_gives_no_token(store: Store) -> None:
    async def race() -> Login:
        hasher = GatedHasher()
        admin = Admin(store, hasher, FakeClock())
        login = asyncio.create_task(admin.login("admin", FACTORY_MD5, FLOOD))
        await settle()
        store.save_credential(auth.make_credential(auth.md5_hex("next"), os.urandom(16)), 0.0)
        admin.notice_changes()  # as the directory watch does, at once
        hasher.gate.set()
        return await login

    assert asyncio.run(race()) == Login(WRONG)


def test_a_flood_never_holds_every_thread_of_the_pool(store: Store) -> None:
    async def both() -> tuple[list[int], Login, list[Login]]:
        pool = Pool(threads=2)
        admin = Admin(store, pool, FakeClock())
        flood = [admin.login("admin", auth.md5_hex(f"g{n}"), FLOOD) for n in range(300)]
        tasks = [asyncio.create_task(login) for login in flood]
        await settle()
        mine = asyncio.create_task(admin.login("admin", FACTORY_MD5, "192.0.2.7"))
        await settle()
        started = list(pool.started)  # before any flood hash ends
        for gate in pool.gates:
            gate.set()
        return started, await mine, await asyncio.gather(*tasks)

    started, login, flood = asyncio.run(both())
    assert started == [0, 1]  # the flood's one hash, and mine beside it at once
    assert login.result is OK
    assert results(flood) == [WRONG] + [THROTTLED] * 299
