"""Where the peers' programs live, and the one message when one is missing."""

from __future__ import annotations

import os
import shutil

# Debian puts kamailio and kamcmd in /usr/sbin, which a non-root PATH often lacks.
_EXTRA_PATH = ("/usr/local/sbin", "/usr/sbin", "/sbin")


class PeerMissing(RuntimeError):
    """A program a peer test needs is not installed."""


def find(name: str) -> str:
    """The absolute path of program `name`, or PeerMissing naming the install script."""
    path = os.pathsep.join([os.environ.get("PATH", ""), *_EXTRA_PATH])
    found = shutil.which(name, path=path)
    if found is None:
        raise PeerMissing(
            f"{name} is not installed: run scripts/install-peers (as root) to install "
            "the packages the peer tests need"
        )
    return found
