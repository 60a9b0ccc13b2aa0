"""The administrator's session: login, tokens, and noticing a password change."""

import logging
import os
import time
from dataclasses import dataclass
from enum import Enum

from intercom_sip import auth
from intercom_sip.store import Credential, Store
from intercom_sip.worker import Worker

log = logging.getLogger(__name__)


class LoginResult(Enum):
    OK = "ok"
    WRONG = "wrong"
    THROTTLED = "throttled"


@dataclass(frozen=True)
class Login:
    result: LoginResult
    token: str | None = None

    def __repr__(self) -> str:
        return f"Login({self.result.value})"


class Admin:
    """Checks logins against the stored credential and keeps the tokens it issued.

    The command line changes the password in the store; the store's credential stamp
    tells, and then every token ends.
    """

    def __init__(self, store: Store, hasher: Worker, clock: auth.Clock = time.monotonic) -> None:
        self._store, self._hasher = store, hasher
        self._tokens = auth.Tokens(clock, os.urandom)
        self._throttle = auth.LoginThrottle(clock)
        self._stamp = store.credential_stamp()
        self._credential = self._read_credential()
        self.watched = False  # True while something calls notice_changes() for us

    async def login(self, username: str, md5hex: str, address: str) -> Login:
        self.notice_changes()
        if self._throttle.blocked(address):
            return Login(LoginResult.THROTTLED)
        credential = self._credential
        # A password changed meanwhile ends this token at the next request anyway.
        good = username == auth.ADMIN and await self._hasher.run(
            lambda: auth.verify(credential, md5hex)
        )
        if not good:
            self._throttle.failed(address)
            log.info("failed login from %s", address)
            return Login(LoginResult.WRONG)
        return Login(LoginResult.OK, self._tokens.issue())

    def authorized(self, token: str) -> bool:
        if not self.watched:
            self.notice_changes()
        return self._tokens.valid(token)

    def logout(self, token: str) -> None:
        self._tokens.revoke(token)

    def notice_changes(self) -> None:
        """End every token if the credential changed since we last looked."""
        stamp = self._store.credential_stamp()
        if stamp == self._stamp:
            return
        self._stamp = stamp
        credential = self._read_credential()
        if credential != self._credential:
            log.info("administrator's password changed: every token ends")
            self._tokens.clear()
            self._credential = credential

    def _read_credential(self) -> Credential:
        credential = self._store.load_credential()
        if credential is None:  # the store makes one at first open; be safe anyway
            raise RuntimeError("the store holds no administrator credential")
        return credential


def ensure_credential(store: Store) -> Credential:
    """The stored credential; the factory one (admin / 123456) is stored first if none is."""
    credential = store.load_credential()
    if credential is None:
        credential = auth.make_credential(
            auth.md5_hex(auth.FACTORY_PASSWORD), os.urandom(auth.SALT_BYTES)
        )
        store.save_credential(credential, time.time())
    return credential
