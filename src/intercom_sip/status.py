"""The registration status of contract §5, as one value and its JSON shape."""

from dataclasses import asdict, dataclass
from typing import Any, Final

from intercom_sip.settings import Settings

STATES: Final = ("disabled", "registering", "registered", "unregistering", "failed")


@dataclass(frozen=True)
class Status:
    state: str = "disabled"
    code: int | None = None
    reason: str | None = None
    expires: int | None = None
    next_refresh: int | None = None  # Unix time
    contact: str | None = None
    public_address: str | None = None
    transport: str | None = None
    register_last_attempt: int | None = None  # Unix time
    bound: bool = False  # a binding granted by the registrar is still valid


# Until the SIP agent runs, nothing is registered: what the settings alone say.
NO_AGENT: Final = Status(state="failed", reason="SIP agent not running")


def to_view(settings: Settings, status: Status) -> dict[str, Any]:
    """`sip_status` follows the stored settings at once; the rest is the agent's view."""
    sip_status = "OFFLINE" if not settings.enable else ("OK" if status.bound else "ERROR")
    view = asdict(status)
    del view["bound"]
    last = view.pop("register_last_attempt")
    return {"sip_status": sip_status, "register_last_attempt": last, **view}
