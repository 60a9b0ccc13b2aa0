"""Every route of the API as one table: dispatch and the OpenAPI document read it."""

from dataclasses import dataclass
from typing import Final

API_PREFIXES: Final = ("/api/v1", "/api/v0")  # v0: monitors from firmware 5.0 (vendor)


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # versioned paths start with "/v1"; both prefixes serve them
    handler: str  # the name of the Routes method that answers
    protected: bool
    summary: str
    statuses: tuple[int, ...]  # every status its handler or auth gives (the server's aside)
    answer: str  # the schema of its 200 answer, in the OpenAPI document
    body: str | None = None  # the schema of its request body
    media: str = "application/json"  # the media type of its 200 answer

    @property
    def versioned(self) -> bool:
        return self.path.startswith("/v1/")

    def full_paths(self) -> tuple[str, ...]:
        if not self.versioned:
            return (self.path,)
        tail = self.path.removeprefix("/v1")
        return tuple(prefix + tail for prefix in API_PREFIXES)


# The statuses of the call actions: with no body, with a JSON body, and dialling.
_ACT: Final = (200, 401, 409)
_BODY_ACT: Final = (200, 400, 401, 409, 413)
_DIAL: Final = _BODY_ACT
# The web page's files (contract §1): no auth, not under /api.
_PAGE: Final = (
    ("/", "page_index", "The web page", "text/html"),
    ("/app.css", "page_css", "The web page's style", "text/css"),
    ("/app.js", "page_js", "The web page's script", "text/javascript"),
    ("/md5.js", "page_md5", "The web page's MD5 (for the login)", "text/javascript"),
)

ENDPOINTS: Final[tuple[Endpoint, ...]] = (
    Endpoint("GET", "/api/info", "info", False, "Device identity", (200,), "Info"),
    Endpoint("GET", "/api/openapi.json", "openapi", False, "This document", (200,), "Document"),
    Endpoint("GET", "/v1/login", "login", False, "Log in", (200, 400, 429), "Login"),
    Endpoint("GET", "/v1/logout", "logout", True, "End this token", (200, 401), "Empty"),
    Endpoint(
        "GET",
        "/v1/device/sip/settings",
        "get_settings",
        True,
        "Get SIP settings",
        (200, 401),
        "SipSettingsView",
    ),
    Endpoint(
        "POST",
        "/v1/device/sip/settings",
        "post_settings",
        True,
        "Set SIP settings",
        (200, 400, 401, 413, 503),
        "SipSettingsView",
        "SipSettings",
    ),
    Endpoint(
        "GET",
        "/v1/sip/status",
        "sip_status",
        True,
        "SIP registration status",
        (200, 401),
        "SipStatus",
    ),
    Endpoint(
        "GET",
        "/v1/device/sip/enable",
        "get_sip_enable",
        True,
        "Whether SIP is enabled",
        (200, 401),
        "SipEnableView",
    ),
    Endpoint(
        "POST",
        "/v1/device/sip/enable",
        "post_sip_enable",
        True,
        "Turn SIP on or off, the other settings kept",
        (200, 400, 401, 413, 503),
        "SipEnableView",
        "SipEnable",
    ),
    Endpoint(
        "POST",
        "/v1/device/sip/reregister",
        "reregister",
        True,
        "Send a REGISTER refresh now",
        (200, 401, 409),
        "Empty",
    ),
    # Calls (contract §6): one handset, one call; 409 when the call's state forbids it.
    Endpoint("GET", "/v1/call/status", "call_status", True, "The call", (200, 401), "Call"),
    Endpoint(
        "POST", "/v1/call/answer", "call_answer", True, "Answer the ringing call", _ACT, "Call"
    ),
    Endpoint(
        "POST", "/v1/call/hangup", "call_hangup", True, "Decline, cancel or end", _ACT, "Call"
    ),
    Endpoint("POST", "/v1/call/dial", "call_dial", True, "Call a number", _DIAL, "Call", "Dial"),
    Endpoint(
        "POST", "/v1/call/dtmf", "call_dtmf", True, "Send DTMF digits", _BODY_ACT, "Call", "Dtmf"
    ),
    Endpoint(
        "GET",
        "/v1/call/history",
        "call_history",
        True,
        "The call log, newest first",
        (200, 400, 401, 503),
        "CallLog",
    ),
    Endpoint(
        "GET",
        "/v1/device/call/auto_answer",
        "get_auto_answer",
        True,
        "Whether incoming calls are answered by themselves",
        (200, 401),
        "AutoAnswerView",
    ),
    Endpoint(
        "POST",
        "/v1/device/call/auto_answer",
        "post_auto_answer",
        True,
        "Answer incoming calls by themselves, or not",
        (200, 400, 401, 413, 503),
        "AutoAnswerView",
        "AutoAnswer",
    ),
    Endpoint(
        "GET",
        "/v1/device/sip/settings/history",
        "settings_history",
        True,
        "The changes of the SIP settings, newest first (ours)",
        (200, 400, 401, 503),
        "SettingsHistory",
    ),
    Endpoint(
        "GET",
        "/v1/events",
        "events",
        True,
        "Live events, server-sent: registration, call, settings (ours)",
        (200, 401, 503),
        "Events",
        media="text/event-stream",
    ),
    *(
        Endpoint("GET", path, handler, False, summary, (200,), "Text", media=media)
        for path, handler, summary, media in _PAGE
    ),
    # The vendor's names for three of them (§6.3): same bodies, same answers.
    Endpoint(
        "POST",
        "/v1/system/debug/call/start",
        "debug_call_start",
        True,
        "Call a number (vendor alias of call/dial)",
        _DIAL,
        "Call",
        "Dial",
    ),
    Endpoint(
        "POST",
        "/v1/system/debug/call/end",
        "debug_call_end",
        True,
        "Decline, cancel or end (vendor alias of call/hangup)",
        _ACT,
        "Call",
    ),
    Endpoint(
        "GET",
        "/v1/system/call/status",
        "system_call_status",
        True,
        "The call (vendor alias of call/status)",
        (200, 401),
        "Call",
    ),
)
