"""The DTMF digits: one class, spelled out in RFC 4733's event order for every user."""

from intercom_sip.contract.dialing import DTMF_PATTERN
from intercom_sip.sip.callflow import EVENT_NAMES
from intercom_sip.sip.syntax import DTMF_CHARS, DTMF_DIGITS


def test_the_dtmf_class_spelled_out_is_rfc_4733s_events_in_order() -> None:
    assert (DTMF_CHARS, DTMF_DIGITS) == ("0-9*#A-D", "0123456789*#ABCD")


def test_the_api_pattern_and_the_event_names_come_from_it() -> None:
    assert DTMF_PATTERN == "^[0-9*#A-D]{1,32}(?!\\n)$"
    assert EVENT_NAMES == {"10": "*", "11": "#", "12": "A", "13": "B", "14": "C", "15": "D"}
