"""Kamailio as the registrar and proxy a SIP agent test talks to.

One instance per test: it writes its config, a test CA and a server certificate into a
private temp dir, and runs kamailio in the foreground as `nobody` on caller-chosen ports.
The location table (`bindings()`) is the ground truth a test asserts on.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal

from . import binaries, certs, kamcmd, process, sipclient
from .kamailio_config import (
    AUTH_PARAMS,
    CONFIG,
    INVITE_AUTH,
    TLS_CONFIG,
    NonceMode,
    fill,
    seed_lines,
)
from .kamcmd import Binding

Certificate = Literal["valid", "untrusted", "wrong-name"]
HOST = "127.0.0.1"


class Kamailio(process.Peer):
    """A Kamailio registrar/proxy on 127.0.0.1: UDP and TCP on `sip_port`, TLS on `tls_port`.

    `users` maps auth user to password. `certificate` chooses what the TLS side presents:
    "valid" (signed by `ca_cert`, for localhost and 127.0.0.1), "untrusted" (signed by
    another CA) or "wrong-name" (signed by `ca_cert`, for wrong.invalid only). `nonces`
    chooses the auth module's nonce mode (kamailio_config.AUTH_PARAMS). `auth_invites`
    challenges every new INVITE from one of `users` with 407 (kamailio_config's
    route[INVITE_AUTH], which logs "invite-auth <user>: challenged|refused|authorized").
    """

    def __init__(
        self,
        sip_port: int,
        tls_port: int,
        users: Mapping[str, str],
        *,
        realm: str = "kamailio.test",
        min_expires: int = 10,
        min_expires_mode: int = 0,
        max_expires: int = 3600,
        certificate: Certificate = "valid",
        nonces: NonceMode = "default",
        auth_invites: bool = False,
    ) -> None:
        self.sip_port = sip_port
        self.tls_port = tls_port
        self.realm = realm
        self.users = dict(users)  # what the creds htable holds, kept by set_password
        self._settings = {
            "MIN_EXPIRES": min_expires,
            "MIN_EXPIRES_MODE": min_expires_mode,
            "MAX_EXPIRES": max_expires,
            "AUTH_PARAMS": AUTH_PARAMS[nonces],
            "INVITE_AUTH": INVITE_AUTH[auth_invites],
        }
        self._certificate = certificate
        self._dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def directory(self) -> Path:
        """The private temp dir holding config, certificates, log and control socket."""
        if self._dir is None:
            self._dir = self._prepare()
        return self._dir

    @property
    def ctl(self) -> Path:
        """The control socket, for `kamcmd -s unix:<ctl>`."""
        return self.directory / "ctl"

    @property
    def ca_cert(self) -> Path:
        """The CA certificate a TLS client loads to verify a "valid" server certificate."""
        return self.directory / "test-ca.pem"

    @property
    def log_path(self) -> Path:
        """Kamailio's stderr log (appended to across restarts)."""
        return self.directory / "kamailio.log"

    def start(self, timeout: float = 30.0) -> None:
        """Start kamailio and return once it answers SIP and its control socket."""
        if self.running:
            return
        # Written at every start so that a restart keeps passwords set at run time, as a
        # registrar with a database would.
        config = self.directory / "kamailio.cfg"
        config.write_text(self._config(self.directory))
        config.chmod(0o644)
        self._process = process.spawn(self._command(), self.log_path)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, wait up to `timeout`, then SIGKILL what is left (a no-op if stopped)."""
        child, self._process = self._process, None
        if child is not None:
            process.terminate(child, timeout)

    def restart(self) -> None:
        """Stop and start on the same ports: every binding is lost (db_mode 0), passwords
        set with set_password() are kept."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop and remove the temp dir."""
        self.stop()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    @property
    def running(self) -> bool:
        """Whether the kamailio main process is alive."""
        return self._process is not None and self._process.poll() is None

    def set_password(self, user: str, password: str) -> None:
        """Change (or add) a user's password at run time, over the control socket."""
        kamcmd.run(self.ctl, "htable.sets", "creds", f"s:{user}", f"s:{password}")
        self.users[user] = password

    def bindings(self, aor_user: str) -> list[Binding]:
        """The contacts registered for `aor_user`, read from Kamailio's location table."""
        return kamcmd.lookup(self.ctl, aor_user)

    def log_text(self) -> str:
        """Everything kamailio has logged so far."""
        return self.log_path.read_text(errors="replace") if self._dir else ""

    def _command(self) -> list[str]:
        d = self.directory
        command = [binaries.find("kamailio"), "-DD", "-E", "-f", str(d / "kamailio.cfg")]
        command += ["-P", str(d / "kamailio.pid"), "-Y", str(d / "run")]
        return process.unprivileged(command)

    def _prepare(self) -> Path:
        directory = process.private_dir("kamailio-")
        (directory / "run").mkdir()
        if os.geteuid() == 0:
            os.chown(directory / "run", *process.NOBODY)
        pair = self._make_certificates(directory)
        (directory / "tls.cfg").write_text(fill(TLS_CONFIG, {"KEY": pair.key, "CERT": pair.cert}))
        for path in directory.iterdir():
            if path.is_file():
                path.chmod(0o644)  # test keys: nobody must read them
        return directory

    def _make_certificates(self, directory: Path) -> certs.CertPair:
        ca = certs.make_ca(directory, "test")
        if self._certificate == "untrusted":
            ca = certs.make_ca(directory, "rogue")
        hosts = ("wrong.invalid",) if self._certificate == "wrong-name" else ("localhost", HOST)
        return certs.issue(ca, directory, "server", hosts)

    def _config(self, directory: Path) -> str:
        values: dict[str, object] = {
            "HOST": HOST,
            "SIP_PORT": self.sip_port,
            "TLS_PORT": self.tls_port,
            "MODULES": modules_dir(),
            "CTL": directory / "ctl",
            "TLS_CFG": directory / "tls.cfg",
            "REALM": self.realm,
            "SEED": seed_lines(self.users),
            **self._settings,
        }
        return fill(CONFIG, values)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"kamailio exited at start:\n{self._log_tail()}")
            if self._answers():
                return
            time.sleep(0.02)
        raise TimeoutError(f"kamailio not ready after {timeout} s:\n{self._log_tail()}")

    def _answers(self) -> bool:
        # SIP workers and the ctl process come up separately; a test needs both.
        if not sipclient.answers_options((HOST, self.sip_port)):
            return False
        try:
            kamcmd.run(self.ctl, "core.version", timeout=1.0)
        except (kamcmd.KamcmdError, subprocess.TimeoutExpired):
            return False
        return True

    def _log_tail(self) -> str:
        return process.tail(self.log_path)


def modules_dir() -> str:
    """Kamailio's module directory, which must hold tls.so (kamailio-tls-modules)."""
    # The multiarch triplet differs between machines, hence the glob.
    found = sorted(glob.glob("/usr/lib/*/kamailio/modules/tls.so"))
    found += sorted(glob.glob("/usr/lib/kamailio/modules/tls.so"))
    if not found:
        raise binaries.PeerMissing(
            "Kamailio's tls.so is not installed: run scripts/install-peers (as root) to "
            "install kamailio-tls-modules and the other peer packages"
        )
    return str(Path(found[0]).parent) + "/"


# What the kamailio_factory fixture returns: keyword arguments of Kamailio, ports chosen.
MakeKamailio = Callable[..., Kamailio]
