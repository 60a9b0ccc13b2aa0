"""Fixtures that start real peers on free loopback ports and always stop them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from . import binaries
from .baresip import Account, Baresip, Registrar
from .coturn import Coturn
from .kamailio import Kamailio, MakeKamailio
from .linphone import Linphone
from .ports import free_port, free_tcp_port

# The users every default registrar knows: auth user -> password.
USERS = {"101": "secret", "u102": "p=>w$(d) 2"}  # u102: characters Kamailio syntax uses


def require(*programs: str) -> None:
    """Fail (never skip) the test when a peer program is missing."""
    try:
        for program in programs:
            binaries.find(program)
    except binaries.PeerMissing as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture
def kamailio_factory() -> Iterator[MakeKamailio]:
    """Make started Kamailio instances: `make(users=..., min_expires_mode=1, ...)`.

    Keyword arguments go to `Kamailio`; ports are chosen here. Every instance is stopped
    and its temp dir removed at teardown, whatever the test did.
    """
    require("kamailio", "kamcmd", "openssl", "setpriv")
    made: list[Kamailio] = []

    def make(users: dict[str, str] | None = None, **options: Any) -> Kamailio:
        server = Kamailio(free_port(both=True), free_tcp_port(), users or USERS, **options)
        made.append(server)
        try:
            server.start()
        except binaries.PeerMissing as error:  # tls.so is a file, not a program
            pytest.fail(str(error), pytrace=False)
        return server

    try:
        yield make
    finally:
        for server in made:
            server.close()


@pytest.fixture
def kamailio(kamailio_factory: MakeKamailio) -> Kamailio:
    """A started Kamailio with the default USERS, min_expires 10, max_expires 3600."""
    return kamailio_factory()


@pytest.fixture
def coturn() -> Iterator[Coturn]:
    """A started coturn STUN server on a free 127.0.0.1 port (UDP and TCP)."""
    require("turnserver", "setpriv")
    server = Coturn(free_port(both=True))  # turnserver listens on TCP too
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def sipp() -> str:
    """The sipp program (package sip-tester)."""
    require("sipp")
    return binaries.find("sipp")


MakeBaresip = Callable[..., Baresip]


@pytest.fixture
def baresip_factory() -> Iterator[MakeBaresip]:
    """Make started baresips: `make(kamailio, Account("201", "pw"), tone_hz=600, ...)`.

    Keyword arguments go to `Baresip`. Each returns once registered; all are stopped and
    their temp dirs removed at teardown.
    """
    require("baresip", "setpriv")
    made: list[Baresip] = []

    def make(server: Kamailio, account: Account, **options: Any) -> Baresip:
        phone = Baresip(Registrar.of(server), account, **options)
        made.append(phone)
        phone.start()
        return phone

    try:
        yield make
    finally:
        for phone in made:
            phone.close()


MakeLinphone = Callable[..., Linphone]


@pytest.fixture
def linphone_factory() -> Iterator[MakeLinphone]:
    """Make started linphonecs: `make(kamailio, Account("201", "pw", "tcp"), tone_hz=...)`.

    Keyword arguments go to `Linphone`. Each returns once registered; all are stopped and
    their temp dirs removed at teardown.
    """
    require("linphonec", "setpriv")
    made: list[Linphone] = []

    def make(server: Kamailio, account: Account, **options: Any) -> Linphone:
        phone = Linphone(Registrar.of(server), account, **options)
        made.append(phone)
        phone.start()
        return phone

    try:
        yield make
    finally:
        for phone in made:
            phone.close()
