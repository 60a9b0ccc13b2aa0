"""kamcmd, Kamailio's control client: run it and read what it prints.

What kamcmd 5.6.3 really does, seen on this machine:

- It exits 0 even when the RPC fails; the failure is a line `error: 500 - <text>` on stdout.
  Only a failure to reach the socket gives a non-zero status (255).
- A bare word that looks like a number is sent as an integer, so `htable.sets creds 101 pw`
  fails with "Not enough parameters"; prefixing `s:` forces a string (the prefix is removed).
- `ul.lookup location s:101` prints one indented block per AoR::

      {
          AoR: 101
          Contacts: {
              Contact: {
                  Address: sip:101@127.0.0.1:15070;transport=TCP
                  Expires: 23
                  Received: [not set]
                  Socket: tcp:127.0.0.1:15060
                  Instance: <urn:uuid:...>
                  Reg-Id: 1
                  ...
              }
          }
      }

  `Expires` counts down the seconds left; it is the word `permanent`, `deleted` or `expired`
  instead when there is no countdown. Unset values print as `[not set]`. An AoR with no
  binding is the error `AOR not found in location table`.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from . import binaries

NOT_SET = "[not set]"
AOR_NOT_FOUND = "AOR not found in location table"


class KamcmdError(RuntimeError):
    """kamcmd could not reach Kamailio, or the RPC answered with an error."""


@dataclass(frozen=True)
class Binding:
    """One registered contact, as Kamailio's location table holds it."""

    aor: str
    contact: str
    expires: int | None  # seconds left; None when permanent, deleted or expired
    received: str | None  # source address saved by fix_nated_register(), if NAT was seen
    socket: str  # the listening socket the REGISTER came in on, e.g. "tls:127.0.0.1:5061"
    instance: str | None  # +sip.instance, with its angle brackets
    reg_id: int
    user_agent: str | None
    call_id: str
    cseq: int

    @property
    def transport(self) -> str:
        """The transport of the socket the binding was made over: udp, tcp or tls."""
        return self.socket.split(":", 1)[0]


def run(ctl_socket: Path, *args: str, timeout: float = 5.0) -> str:
    """Run one kamcmd RPC and return its output; raise KamcmdError if it failed."""
    done = subprocess.run(
        [binaries.find("kamcmd"), "-s", f"unix:{ctl_socket}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    # Both streams matter: errors from the RPC go to stdout, socket errors to stderr.
    if done.returncode != 0 or done.stdout.lower().startswith("error:"):
        raise KamcmdError(f"kamcmd {' '.join(args)}: {(done.stdout + done.stderr).strip()}")
    return done.stdout


def lookup(ctl_socket: Path, aor_user: str) -> list[Binding]:
    """The bindings of one AoR; an empty list when it has none."""
    try:
        text = run(ctl_socket, "ul.lookup", "location", f"s:{aor_user}")
    except KamcmdError as error:
        if AOR_NOT_FOUND in str(error):
            return []
        raise
    return parse_bindings(text)


def parse_bindings(text: str) -> list[Binding]:
    """Every contact block of `ul.lookup` or `ul.dump` output, in order."""
    bindings: list[Binding] = []
    aor = ""
    fields: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if fields is None:
            if line.startswith("AoR:"):
                aor = _value(line)
            elif line == "Contact: {":
                fields = {}
        elif line == "}":
            bindings.append(_binding(aor, fields))
            fields = None
        elif ":" in line:
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
    return bindings


def _value(line: str) -> str:
    return line.partition(":")[2].strip()


def _optional(fields: dict[str, str], key: str) -> str | None:
    value = fields.get(key, NOT_SET)
    return None if value in (NOT_SET, "") else value


def _binding(aor: str, fields: dict[str, str]) -> Binding:
    expires = fields.get("Expires", "")
    return Binding(
        aor=aor,
        contact=fields["Address"],
        expires=int(expires) if expires.lstrip("-").isdigit() else None,
        received=_optional(fields, "Received"),
        socket=fields.get("Socket", ""),
        instance=_optional(fields, "Instance"),
        reg_id=int(fields.get("Reg-Id", "0")),
        user_agent=_optional(fields, "User-Agent"),
        call_id=fields.get("Call-ID", ""),
        cseq=int(fields.get("CSeq", "0")),
    )
