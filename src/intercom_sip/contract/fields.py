"""The table of settings fields (contract §3.1): one row drives validation,
the factory defaults and the OpenAPI schema alike.
"""

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final, NamedTuple, Protocol

from intercom_sip.contract.settings import PASSWORD_PLACEHOLDER, Settings
from intercom_sip.sip import syntax

# ECMA-262 patterns (the OpenAPI document's dialect) that Python's `re.search` reads the
# same way: `$` alone would also match before a final newline in Python.
_END: Final = "(?!\\n)$"
_PORT_RANGE: Final = (
    "(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
)


def _host_pattern(stop: str) -> str:
    """An IPv4 address, or a name (not only digits and dots) of at most 253 characters;
    `stop` is what may follow the host."""
    return f"(?:{syntax.IPV4}|(?![0-9.]+{stop})(?=[^:]{{1,253}}{stop}){syntax.DNS_NAME})"


def _proxy_pattern(scheme: str) -> str:
    return f"^{scheme}{_host_pattern('(?::|$)')}(?::{_PORT_RANGE})?{_END}"


HOST_PATTERN: Final = f"^{_host_pattern('$')}{_END}"
PROXY_PATTERN: Final = _proxy_pattern("(?:sips?:)?")
SIPS_PROXY_PATTERN: Final = _proxy_pattern("sips:")  # the reading syntax.parse_proxy prefers

CHARSET_TEXT: Final = 'letters, digits, space and ~`!@#$%^&;*()_-+={[}]|"<,>.?/'
HOST_TEXT: Final = "an IPv4 address or a host name"


class Kind(Enum):
    BOOLEAN = "boolean"
    INTEGER = "integer"
    STRING = "string"
    OBJECT = "object"


# What json gives for each kind. Strict: true is no integer, 120.0 is no integer.
PYTHON_TYPE: Final[Mapping[Kind, type]] = {
    Kind.BOOLEAN: bool,
    Kind.INTEGER: int,
    Kind.STRING: str,
    Kind.OBJECT: dict,
}


class Context(NamedTuple):
    """What a rule may look at besides its own value (a tuple: one is made per body)."""

    values: Mapping[str, Any]  # the fields validated so far, by JSON name
    stored: Settings


class Rule(Protocol):
    def reason(self, value: Any, ctx: Context) -> str | None:
        """None when the value is valid, else the rule in words (never the value)."""

    def schema(self) -> dict[str, Any]:
        """The JSON Schema keywords that state this rule."""


@dataclass(frozen=True)
class OneOf:
    choices: tuple[int | str, ...]

    def reason(self, value: Any, ctx: Context) -> str | None:
        return None if value in self.choices else self._refusal

    @functools.cached_property
    def _refusal(self) -> str:
        return "must be one of " + ", ".join(str(choice) for choice in self.choices)

    def schema(self) -> dict[str, Any]:
        return {"enum": list(self.choices)}


@dataclass(frozen=True)
class Between:
    low: int
    high: int

    def reason(self, value: Any, ctx: Context) -> str | None:
        if self.low <= value <= self.high:
            return None
        return f"must be from {self.low} to {self.high}"

    def schema(self) -> dict[str, Any]:
        return {"minimum": self.low, "maximum": self.high}


class Chars:
    """low..high characters of the SIP character set (§3.3)."""

    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high
        self._pattern = syntax.sip_chars(low, high)

    def reason(self, value: Any, ctx: Context) -> str | None:
        if self._pattern.fullmatch(value):
            return None
        return f"must be {self.low} to {self.high} characters: {CHARSET_TEXT}"

    def schema(self) -> dict[str, Any]:
        return {
            "minLength": self.low,
            "maxLength": self.high,
            "pattern": f"^[{syntax.SIP_CHARS}]{{{self.low},{self.high}}}{_END}",
        }


@dataclass(frozen=True)
class Host:
    def reason(self, value: Any, ctx: Context) -> str | None:
        return None if syntax.is_host(value) else f"must be {HOST_TEXT}"

    def schema(self) -> dict[str, Any]:
        return {"maxLength": 253, "pattern": HOST_PATTERN}


@dataclass(frozen=True)
class Proxy:
    def reason(self, value: Any, ctx: Context) -> str | None:
        if syntax.is_proxy(value):
            return None
        return (
            f"must be {HOST_TEXT}, optionally with sip: or sips: before it"
            " and :port (1 to 65535) after it"
        )

    def schema(self) -> dict[str, Any]:
        return {"maxLength": 264, "pattern": PROXY_PATTERN}


@dataclass(frozen=True)
class EmptyWhenDisabled:
    """`""` is also valid while `enable` is false (the factory settings, a cleared account)."""

    rule: Rule

    def reason(self, value: Any, ctx: Context) -> str | None:
        if value == "" and ctx.values["enable"] is False:
            return None
        if value == "":
            return "must not be empty when enable is true"
        return self.rule.reason(value, ctx)

    def schema(self) -> dict[str, Any]:
        # "" only while enable is false: the document's settings schema adds that `if`.
        return {"anyOf": [{"const": ""}, self.rule.schema()]}


class Password:
    """6..31 SIP characters, or the placeholder that keeps the stored password."""

    def __init__(self) -> None:
        self._chars = Chars(6, 31)

    def reason(self, value: Any, ctx: Context) -> str | None:
        if value != PASSWORD_PLACEHOLDER:
            return self._chars.reason(value, ctx)
        if not ctx.stored.password:
            return f"cannot be {PASSWORD_PLACEHOLDER}: no password is stored"
        return None

    def schema(self) -> dict[str, Any]:
        return self._chars.schema()


@dataclass(frozen=True)
class EmptyOr:
    """`""` switches the feature off (STUN); else the inner rule."""

    rule: Rule

    def reason(self, value: Any, ctx: Context) -> str | None:
        if value == "":
            return None
        reason = self.rule.reason(value, ctx)
        return None if reason is None else f"{reason}, or empty for none"

    def schema(self) -> dict[str, Any]:
        return {"anyOf": [{"const": ""}, self.rule.schema()]}


@dataclass(frozen=True)
class StunPort:
    """1..65535, or 0..65535 when STUN is off."""

    def reason(self, value: Any, ctx: Context) -> str | None:
        low = 0 if ctx.values["stun.ip"] == "" else 1
        if low <= value <= 65535:
            return None
        return f"must be from {low} to 65535" + (" when stun.ip is empty" if low == 0 else "")

    def schema(self) -> dict[str, Any]:
        # 1.. unless stun.ip is "": the document's stun schema adds that `if`.
        return {"minimum": 0, "maximum": 65535}


@dataclass(frozen=True)
class Field:
    name: str  # JSON name; nested fields are dotted ("stun.ip")
    kind: Kind
    required: bool
    attr: str | None  # the Settings attribute it fills; None for a container
    default: Any
    rule: Rule | None
    doc: str
    # The value of an optional field left out, from the fields before it; None: the
    # stored value is kept.
    absent: Callable[[Context], Any] | None = None

    @functools.cached_property
    def path(self) -> tuple[str, ...]:
        return tuple(self.name.split("."))


def _user_id_when_absent(ctx: Context) -> str:
    """Kept for the same account only: else a new account would silently authenticate
    as the previous one's user id (contract §3.4)."""
    stored = ctx.stored
    same = (ctx.values["proxy"], ctx.values["realm"], ctx.values["user"]) == (
        stored.proxy,
        stored.realm,
        stored.user,
    )
    return stored.user_id if same else ""


TRANSPORTS: Final = ("udp", "tcp", "tls")
CALL_TIMEOUTS: Final = (120, 300, 600, 1200, 1800)

FIELDS: Final[tuple[Field, ...]] = (
    Field("enable", Kind.BOOLEAN, True, "enable", False, None, "Whether SIP is enabled"),
    Field(
        "proxy",
        Kind.STRING,
        True,
        "proxy",
        "",
        EmptyWhenDisabled(Proxy()),
        "SIP proxy: host, optionally sip:/sips: before it and :port after it",
    ),
    Field("realm", Kind.STRING, True, "realm", "", EmptyWhenDisabled(Host()), "SIP domain"),
    Field("user", Kind.STRING, True, "user", "", EmptyWhenDisabled(Chars(1, 31)), "SIP user"),
    Field(
        "password",
        Kind.STRING,
        True,
        "password",
        "",
        EmptyWhenDisabled(Password()),
        f"SIP password; {PASSWORD_PLACEHOLDER} keeps the stored one while the account stays",
    ),
    Field("transport", Kind.STRING, False, "transport", "udp", OneOf(TRANSPORTS), "Transport"),
    Field(
        "user_id",
        Kind.STRING,
        False,
        "user_id",
        "",
        Chars(0, 31),
        "Digest authentication user; empty means the user. Left out: kept while proxy,"
        " realm and user stay, else empty",
        _user_id_when_absent,
    ),
    Field(
        "is_enable_ring_code",
        Kind.BOOLEAN,
        False,
        "is_enable_ring_code",
        False,
        None,
        "Whether the ring code is enabled (stored only)",
    ),
    Field("timeout", Kind.INTEGER, True, "timeout", 120, OneOf(CALL_TIMEOUTS), "Call timeout, s"),
    Field(
        "registration_interval",
        Kind.INTEGER,
        False,
        "registration_interval",
        60,
        Between(30, 900),
        "Expiry asked for in REGISTER, s",
    ),
    Field("stun", Kind.OBJECT, True, None, None, None, "STUN server"),
    Field("stun.ip", Kind.STRING, True, "stun_ip", "", EmptyOr(Host()), "STUN host; empty: none"),
    Field("stun.port", Kind.INTEGER, True, "stun_port", 3478, StunPort(), "STUN port"),
)

FACTORY: Final = Settings(**{f.attr: f.default for f in FIELDS if f.attr is not None})

# The body of POST /device/sip/enable (contract §7.2): one field, read like the others.
SWITCH: Final = Field(
    "sip_enable", Kind.BOOLEAN, True, "enable", False, None, "Whether SIP is enabled"
)
