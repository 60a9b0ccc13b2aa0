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
    statuses: tuple[int, ...]  # every status this route can answer, 421 aside

    @property
    def versioned(self) -> bool:
        return self.path.startswith("/v1/")

    def full_paths(self) -> tuple[str, ...]:
        if not self.versioned:
            return (self.path,)
        tail = self.path.removeprefix("/v1")
        return tuple(prefix + tail for prefix in API_PREFIXES)


ENDPOINTS: Final[tuple[Endpoint, ...]] = (
    Endpoint("GET", "/api/info", "info", False, "Device identity", (200,)),
    Endpoint("GET", "/api/openapi.json", "openapi", False, "This document", (200,)),
    Endpoint("GET", "/v1/login", "login", False, "Log in", (200, 400, 429)),
    Endpoint("GET", "/v1/logout", "logout", True, "End this token", (200, 401)),
    Endpoint(
        "GET", "/v1/device/sip/settings", "get_settings", True, "Get SIP settings", (200, 401)
    ),
    Endpoint(
        "POST",
        "/v1/device/sip/settings",
        "post_settings",
        True,
        "Set SIP settings",
        (200, 400, 401, 413, 503),
    ),
    Endpoint("GET", "/v1/sip/status", "sip_status", True, "SIP registration status", (200, 401)),
)
