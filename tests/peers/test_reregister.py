"""POST /device/sip/reregister sends a REGISTER now (contract §7.3): Kamailio's `ul.dump`
sees the binding's CSeq grow long before its refresh was due."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers.kamailio import Kamailio
from tests.peers.test_agent import Device, body, only_binding, registered
from tests.served import wait_for

pytestmark = pytest.mark.peers
REREGISTER = "/api/v1/device/sip/reregister"


@pytest.fixture
def device(tmp_path: Path, kamailio: Kamailio) -> Iterator[Device]:
    made = Device(tmp_path / "data", kamailio.ca_cert).start()
    yield made
    made.stop()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_reregister_refreshes_the_binding_now(
    kamailio: Kamailio, device: Device, transport: str
) -> None:
    assert device.served is not None
    # 300 s: the timer's own refresh is 4.5 minutes away, far beyond this test
    assert device.post(body(kamailio, transport, registration_interval=300))[0] == 200
    device.wait_status(registered)
    first = only_binding(kamailio, "101", device)
    assert device.served.call("POST", REREGISTER, device.token) == (200, {})
    wait_for(lambda: kamailio.bindings("101")[0].cseq > first.cseq, timeout=15)
    second = only_binding(kamailio, "101", device)
    assert (second.call_id, second.contact) == (first.call_id, first.contact)
    assert registered(device.wait_status(registered))


def test_reregister_while_disabled_sends_nothing(kamailio: Kamailio, device: Device) -> None:
    assert device.served is not None
    device.post(body(kamailio))
    device.wait_status(registered)
    assert device.post(body(kamailio, enable=False))[0] == 200
    wait_for(lambda: kamailio.bindings("101") == [], timeout=15)
    assert device.served.call("POST", REREGISTER, device.token) == (
        409,
        {"error": "SIP is disabled"},
    )
    assert kamailio.bindings("101") == []
