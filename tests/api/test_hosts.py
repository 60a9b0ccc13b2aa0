"""HostCheck's kept verdicts: the same as judged afresh, and bounded."""

import pytest

from intercom_sip.api.hosts import MAX_KEPT_HEADER, MAX_SEEN, HostCheck

HEADERS = [
    b"127.0.0.1",
    b"127.0.0.1:8080",
    b"LOCALHOST:80",
    b"[::1]:8080",
    b"[::1]x",
    b"intercom.example",
    b"evil.example",
    b"10.0.0.7:80",
    b"127.0.0.1:",
    b"127.0.0.1:123456",
    b"a" * 300,
]


@pytest.mark.parametrize("listen", ["127.0.0.1", "0.0.0.0"])
@pytest.mark.parametrize("header", HEADERS, ids=lambda h: repr(h[:20]))
def test_a_kept_verdict_is_the_fresh_one(listen: str, header: bytes) -> None:
    hosts = HostCheck(listen, ("intercom.example",))
    fresh = HostCheck(listen, ("intercom.example",))._judge(header)
    assert hosts.allows(header) is fresh
    assert hosts.allows(header) is fresh  # from what it kept, where it kept it
    assert len(hosts) == (0 if len(header) > MAX_KEPT_HEADER else 1)


def test_verdicts_kept_are_bounded() -> None:
    hosts = HostCheck("0.0.0.0", ())
    for n in range(5 * MAX_SEEN):
        assert hosts.allows(b"10.0.%d.%d:80" % divmod(n, 256)) is True
        assert hosts.allows(b"host%d.example" % n) is False
        assert len(hosts) <= MAX_SEEN
