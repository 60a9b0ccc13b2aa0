"""The call peers proven among themselves: baresip, SIPp and Kamailio, before our monitor joins."""

from __future__ import annotations

import pytest

from . import audio
from .baresip import Account, Baresip, Registrar
from .conftest import require
from .kamailio import Kamailio, MakeKamailio

peers = pytest.mark.peers

USERS = {"201": "pw201", "202": "pw202", "203": "pw203"}


def registrar(server: Kamailio) -> Registrar:
    return Registrar(server.sip_port, server.tls_port, server.ca_cert)


@peers
def test_baresip_calls_baresip(kamailio_factory: MakeKamailio) -> None:
    require("baresip")
    server = kamailio_factory(users=USERS)
    reg = registrar(server)
    with Baresip(reg, Account("201", "pw201")) as a, Baresip(reg, Account("202", "pw202"), tone_hz=600) as b:
        a.dial(a.uri("202"))
        a.wait_event("CALL_ESTABLISHED")
        b.wait_event("CALL_ESTABLISHED")
        import time; time.sleep(2)
        a.send_dtmf("#")
        b.wait_event("CALL_DTMF_START")
        a.hangup()
        b.wait_event("CALL_CLOSED")
        print(b.event_types(), b.received_digits())
        print(a.recordings(), b.recordings())
        print(audio.dominant_frequency(b.heard()), audio.dominant_frequency(a.heard()))
        print(a.log_text()[-3000:])


@peers
def test_sipp_calls_baresip(kamailio_factory: MakeKamailio) -> None:
    import time
    from . import sipp as sippmod
    require("baresip", "sipp")
    server = kamailio_factory(users=USERS)
    reg = registrar(server)
    with Baresip(reg, Account("202", "pw202"), tone_hz=600) as b:
        with sippmod.Sipp("uac_wait_bye.xml", ("127.0.0.1", server.sip_port), service="202", timeout=20, tone_hz=1000) as caller:
            b.wait_event("CALL_ESTABLISHED")
            time.sleep(2)
            b.hangup()
            result = caller.wait()
        print(result.report()[-3000:])
        print(audio.dominant_frequency(b.heard()))
        assert result.ok
