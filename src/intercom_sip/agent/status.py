"""The registration status of contract §5, as one value and its JSON shape."""

from dataclasses import asdict
from typing import Any, Final

from intercom_sip.contract.settings import Settings
from intercom_sip.sip.registration import Status

__all__ = ["NO_AGENT", "STATES", "Status", "to_view"]

STATES: Final = ("disabled", "registering", "registered", "unregistering", "failed")


# Until the SIP agent runs, nothing is registered: what the settings alone say.
NO_AGENT: Final = Status(state="failed", reason="SIP agent not running")


def to_view(settings: Settings, status: Status) -> dict[str, Any]:
    """`sip_status` follows the stored settings at once; the rest is the agent's view."""
    sip_status = "OFFLINE" if not settings.enable else ("OK" if status.bound else "ERROR")
    view = asdict(status)
    del view["bound"]
    last = view.pop("register_last_attempt")
    return {"sip_status": sip_status, "register_last_attempt": last, **view}
