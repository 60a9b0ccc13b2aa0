"""The web page's files (contract §1): read once from the package, served with the
headers that keep the page to itself."""

import functools
from importlib import resources
from typing import Final

from intercom_sip.api import http
from intercom_sip.api.endpoints import ENDPOINTS
from intercom_sip.api.http import HttpResponse

# No inline script or style, nothing from elsewhere, no framing, no form posted by the
# browser itself (the script sends everything: a form that would submit without it
# could put the password in a URL).
CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self';"
    " img-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS: Final = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),  # frame-ancestors for browsers that predate it
    (b"referrer-policy", b"no-referrer"),
)


def page_files() -> dict[str, HttpResponse]:
    """Handler name -> its answer, for every page file of the endpoint table (read once
    per process: a building's monitors share the bytes, 36 KB each)."""
    return dict(_page_files())


@functools.cache
def _page_files() -> dict[str, HttpResponse]:
    folder = resources.files("intercom_sip") / "web"
    answers = {}
    for endpoint in ENDPOINTS:
        if endpoint.protected or not endpoint.handler.startswith("page_"):
            continue
        name = "index.html" if endpoint.path == "/" else endpoint.path.lstrip("/")
        body = (folder / name).read_bytes()
        headers = (
            (b"content-type", f"{endpoint.media}; charset=utf-8".encode()),
            (b"cache-control", b"no-cache"),
            (b"content-length", str(len(body)).encode()),
            *SECURITY_HEADERS,
        )
        answers[endpoint.handler] = HttpResponse(200, body, headers)
    return answers


def event_stream(stream: http.BodyStream) -> HttpResponse:
    headers = (
        (b"content-type", b"text/event-stream"),
        (b"cache-control", b"no-store"),
        (b"x-content-type-options", b"nosniff"),
    )
    return HttpResponse(200, b"", headers, stream)
