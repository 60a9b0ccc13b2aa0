"""The SIP settings as one immutable value, and the shapes it takes outside."""

from dataclasses import dataclass, field
from typing import Any, Final

from intercom_sip import USER_AGENT

# What GET shows in place of a stored password (contract §4).
PASSWORD_PLACEHOLDER: Final = "WebPass"  # noqa: S105 (a placeholder, not a secret)


@dataclass(frozen=True, slots=True)
class Settings:
    """Desired SIP settings. The password never appears in repr()."""

    enable: bool
    proxy: str
    realm: str
    user: str
    password: str = field(repr=False)
    transport: str
    user_id: str
    is_enable_ring_code: bool
    timeout: int
    registration_interval: int
    stun_ip: str
    stun_port: int

    @property
    def auth_user(self) -> str:
        return self.user_id or self.user

    def identity(self) -> tuple[str, str, str, str]:
        """What names the account; a change of any needs the password again."""
        return (self.proxy, self.realm, self.user, self.user_id)


def to_view(settings: Settings) -> dict[str, Any]:
    """The GET shape: §3.1's order, the password hidden, plus `user_agent`."""
    return {
        "enable": settings.enable,
        "proxy": settings.proxy,
        "realm": settings.realm,
        "user": settings.user,
        "password": PASSWORD_PLACEHOLDER if settings.password else "",
        "transport": settings.transport,
        "user_id": settings.user_id,
        "is_enable_ring_code": settings.is_enable_ring_code,
        "timeout": settings.timeout,
        "registration_interval": settings.registration_interval,
        "stun": {"ip": settings.stun_ip, "port": settings.stun_port},
        "user_agent": USER_AGENT,
    }
