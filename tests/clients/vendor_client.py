"""The documented client sequence, as an integrator's script would run it.

Usage: vendor_client.py BASE_URL. Prints one JSON line per step: [step, status, answer].
Standard library only, nothing from intercom_sip: it stands for a client written
against the vendor's device.
"""

import hashlib
import json
import sys
import urllib.error
import urllib.request
from typing import Any

BODY = {
    "enable": True,
    "proxy": "sip:sip.bas-ip.com",
    "realm": "sip.bas-ip.com",
    "user": "7001",
    "password": "SecretPass1",
    "transport": "udp",
    "user_id": "",
    "is_enable_ring_code": False,
    "timeout": 300,
    "registration_interval": 120,
    "stun": {"ip": "stun.bas-ip.com", "port": 3478},
}


def call(base: str, method: str, path: str, token: str = "", body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as reply:
        return reply.code, json.loads(reply.read())


def step(name: str, status: int, answer: Any) -> None:
    print(json.dumps([name, status, answer]), flush=True)


def main(base: str) -> None:
    md5 = hashlib.md5(b"123456").hexdigest()
    status, answer = call(base, "GET", f"/api/v1/login?username=admin&password={md5}")
    step("login-lower", status, answer)
    status, answer = call(base, "GET", f"/api/v1/login?username=admin&password={md5.upper()}")
    step("login-upper", status, answer)
    token = answer["token"]
    step("post", *call(base, "POST", "/api/v1/device/sip/settings", token, BODY))
    status, got = call(base, "GET", "/api/v1/device/sip/settings", token)
    step("get", status, got)
    got["timeout"] = 600
    step("post-back", *call(base, "POST", "/api/v1/device/sip/settings", token, got))
    step("status", *call(base, "GET", "/api/v1/sip/status", token))
    step("logout", *call(base, "GET", "/api/v1/logout", token))
    step("after-logout", *call(base, "GET", "/api/v1/device/sip/settings", token))


if __name__ == "__main__":
    main(sys.argv[1])
