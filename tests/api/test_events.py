"""Live events (contract §8) over our HTTP server: the state on connect, each change,
keep-alive comments, the end with the token, the cap of 32 streams (4 per token), and a
stream's end when its client leaves or the server stops."""

import asyncio
import dataclasses
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from intercom_sip import errors, events
from intercom_sip.agent import status
from intercom_sip.agent.outbox import CallChanged, DtmfSent, Outbox, RegistrationChanged
from intercom_sip.api.calls import status_view
from intercom_sip.calls import IDLE, RtpFigures
from intercom_sip.contract.fields import FACTORY
from intercom_sip.contract.settings import to_view
from intercom_sip.device import Device
from intercom_sip.store import Store
from tests.phones import FakePhone
from tests.sse import EventStream
from tests.web.rig import FakeAgent, InProcessService

SETTINGS = {
    "enable": True,
    "proxy": "sip.example.com",
    "realm": "example.com",
    "user": "101",
    "password": "s3cret-pass",
    "timeout": 120,
    "stun": {"ip": "", "port": 3478},
}
REGISTERED = status.Status(
    state="registered",
    code=200,
    reason="OK",
    expires=60,
    next_refresh=1764441655,
    contact="sip:101@127.0.0.1:5060",
    transport="udp",
    register_last_attempt=1764441600,
    bound=True,
)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[InProcessService]:
    instance = InProcessService(tmp_path / "data").start()
    yield instance
    instance.stop()


def kinds(stream: EventStream, count: int) -> list[tuple[str, object]]:
    return [event for _ in range(count) if (event := stream.event()) is not None]


def next_of(stream: EventStream, kind: str, state: str) -> object:
    """The first `kind` event in `state` (the others before it are right too: states
    the change went through)."""
    while (event := stream.event()) is not None:
        if event[0] == kind and isinstance(event[1], dict) and event[1]["state"] == state:
            return event[1]
    raise AssertionError("the stream ended")


def test_on_connect_the_current_state_of_each_kind(service: InProcessService) -> None:
    token = service.login()
    stream = EventStream(service.port, token)
    assert stream.status == 200
    assert stream.headers["content-type"] == "text/event-stream"
    assert stream.headers["cache-control"] == "no-store"
    _, registration = service.call("GET", "/api/v1/sip/status", token)
    _, call = service.call("GET", "/api/v1/call/status", token)
    assert kinds(stream, 3) == [
        ("registration", registration),
        ("call", call),
        ("settings", to_view(FACTORY)),
    ]
    stream.close()


def test_each_kind_of_change_is_pushed(service: InProcessService) -> None:
    token = service.login()
    stream = EventStream(service.port, token)
    kinds(stream, 3)
    _, saved = service.call("POST", "/api/v1/device/sip/settings", token, SETTINGS)
    assert stream.event() == ("settings", saved)
    service.run(lambda: setattr(service.agent, "current", REGISTERED))
    _, registration = service.call("GET", "/api/v1/sip/status", token)
    assert registration["state"] == "registered"
    assert next_of(stream, "registration", "registered") == registration
    ringing = service.run(service.phone.ring)
    assert stream.event() == ("call", status_view(ringing))
    stream.close()


def test_a_change_of_packet_counters_alone_is_not_pushed_at_each_look() -> None:
    changes = events.Changes(quiet_period=1.0)
    active = {"state": "active", "duration": 1, "rtp": {"sent": 50}}
    assert changes.due("call", active, now=10.0)
    assert not changes.due("call", {**active, "rtp": {"sent": 55}}, now=10.05)
    assert not changes.due("call", {**active, "duration": 2}, now=10.9)
    assert changes.due("call", {**active, "duration": 2}, now=11.0)
    assert changes.due("call", {**active, "state": "idle"}, now=11.05)  # loud: at once


def test_a_slow_reader_keeps_only_the_latest_of_each_kind() -> None:
    ended: list[events.Subscription] = []
    stream = events.Subscription("t", 10.0, ended.append)
    for n in range(1000):
        stream.offer("settings", events.frame("settings", {"n": n}))
    stream.offer("call", events.frame("call", {"state": "idle"}))
    stream.offer("settings", events.frame("settings", {"n": 1000}))
    assert stream.take() == (
        b'event: call\ndata: {"state":"idle"}\n\nevent: settings\ndata: {"n":1000}\n\n'
    )
    assert "t" not in repr(stream).replace("Subscription", "").replace("pending", "")
    stream.end()
    assert ended == [stream]


def test_a_publish_of_the_same_state_is_sent_once() -> None:
    hub = events.Hub({kind: lambda: {} for kind in events.KINDS}, lambda _: True)
    stream = hub.open("t")
    assert stream is not None
    stream.take()
    hub.publish("call", {"state": "idle"})
    hub.publish("call", {"state": "idle"})
    assert stream.take() == b'event: call\ndata: {"state":"idle"}\n\n'
    hub.publish("call", {"state": "idle"})
    assert stream.take() == b""


def test_32_streams_lose_no_state_while_settings_change_100_times(
    service: InProcessService,
) -> None:
    tokens = [service.login() for _ in range(events.MAX_STREAMS // events.MAX_PER_TOKEN + 1)]
    token = tokens.pop()  # the one that finds the 32 taken
    streams = [
        EventStream(service.port, each) for each in tokens for _ in range(events.MAX_PER_TOKEN)
    ]
    for stream in streams:
        assert stream.status == 200
        kinds(stream, 3)
    refused = EventStream(service.port, token)
    assert (refused.status, refused.body) == (
        503,
        b'{"error": "' + errors.TOO_MANY_STREAMS.encode() + b'"}',
    )
    refused.close()
    posted = []
    for n in range(100):
        body = {**SETTINGS, "registration_interval": 30 + n}
        status_code, saved = service.call("POST", "/api/v1/device/sip/settings", token, body)
        assert status_code == 200
        posted.append(saved)
    for stream in streams:
        seen = []
        while not seen or seen[-1] != posted[-1]:
            event = stream.event()
            assert event is not None, "stream cut"
            if event[0] == "settings":
                seen.append(event[1])
        # Coalesced, never reordered, never invented: a rising subsequence of the posts.
        indexes = [posted.index(settings) for settings in seen]
        assert indexes == sorted(set(indexes))
        assert not stream.ended
    streams.pop(0).close()  # a slot frees when its client leaves
    again = None
    for _ in range(200):
        again = EventStream(service.port, token)
        if again.status == 200:
            break
        again.close()
    assert again is not None and again.status == 200
    for stream in [*streams, again]:
        stream.close()


def test_a_fifth_stream_of_one_token_ends_its_oldest(service: InProcessService) -> None:
    token, other = service.login(), service.login()
    kept = EventStream(service.port, other)
    streams = [EventStream(service.port, token) for _ in range(events.MAX_PER_TOKEN)]
    for stream in [kept, *streams]:
        kinds(stream, 3)
    fifth = EventStream(service.port, token)
    assert fifth.status == 200
    kinds(fifth, 3)
    assert service.run(lambda: len(service.hub)) == events.MAX_PER_TOKEN + 1
    assert streams[0].event() is None  # the end of the chunked body, not a cut
    assert streams[0].ended
    service.run(service.phone.ring)
    for stream in [kept, *streams[1:], fifth]:  # the others go on
        assert next_of(stream, "call", "ringing")
    for stream in [kept, *streams, fifth]:
        stream.close()


def test_the_hub_keeps_at_most_4_streams_per_token_and_32_in_all() -> None:
    hub = events.Hub({kind: lambda: {} for kind in events.KINDS}, lambda _: True)
    first = [hub.open(f"t{n}") for n in range(8) for _ in range(4)]
    assert len(hub) == 32
    assert hub.open("new") is None
    again = hub.open("t0")  # its oldest ends first: a slot for it
    assert again is not None and first[0] is not None and first[0].ended
    assert [stream is not None and stream.ended for stream in first[1:]] == [False] * 31
    assert len(hub) == 32


def test_a_quiet_stream_gets_comments(tmp_path: Path) -> None:
    service = InProcessService(tmp_path / "data", keepalive=0.2).start()
    try:
        stream = EventStream(service.port, service.login())
        frames = [stream.frame() for _ in range(5)]
        assert frames[3:] == [": keep-alive", ": keep-alive"]
        stream.close()
    finally:
        service.stop()


def test_the_stream_ends_when_its_token_does(service: InProcessService) -> None:
    token, other = service.login(), service.login()
    stream, kept = EventStream(service.port, token), EventStream(service.port, other)
    kinds(stream, 3)
    assert service.call("GET", "/api/v1/logout", token)[0] == 200
    assert stream.event() is None  # the end of the chunked body, not a cut
    assert stream.ended
    service.run(service.phone.ring)
    assert kinds(kept, 4)[3][0] == "call"  # the other token's stream goes on
    stream.close()
    kept.close()


def test_without_a_token_401(service: InProcessService) -> None:
    stream = EventStream(service.port, None)
    assert (stream.status, stream.body) == (401, b'{"error": "Log In"}')
    stream.close()


def test_a_client_that_half_closes_ends_its_stream(tmp_path: Path) -> None:
    service = InProcessService(tmp_path / "data", keepalive=0.2).start()
    try:
        stream = EventStream(service.port, service.login())
        kinds(stream, 3)
        stream.sock.shutdown(socket.SHUT_WR)
        assert stream.frame() is None  # the end, not a keep-alive comment
        assert stream.ended
        assert service.run(lambda: len(service.hub)) == 0
        stream.close()
    finally:
        service.stop()


def test_a_stop_of_the_server_ends_each_stream_cleanly(tmp_path: Path) -> None:
    service = InProcessService(tmp_path / "data").start()
    stream = EventStream(service.port, service.login())
    kinds(stream, 3)
    service.stop()
    assert stream.event() is None  # the last chunk came: a stop, not a cut
    assert stream.ended
    stream.close()


# --- the feed: the outbox's events to the hub, at once ----------------------------------------


def feed_rig(tmp_path: Path, quiet_period: float) -> tuple[Device, events.Hub, events.Feed]:
    """A device with fakes for its agent and phone, and the hub fed by its outbox."""
    box = Outbox()  # one for the device, as served
    box.subscribe(lambda event: None)  # another subscriber: the hub is not alone
    store = Store.open(tmp_path / "data")
    device = Device(store, FakeAgent(box), phone=FakePhone(outbox=box), outbox=box)
    hub = events.Hub(events.device_sources(device), lambda _: True)
    feed = events.Feed(hub, device, quiet_period=quiet_period)
    device.outbox.subscribe(feed)
    return device, hub, feed


def test_each_change_is_on_the_streams_when_its_emit_returns(tmp_path: Path) -> None:
    async def main() -> None:
        device, hub, feed = feed_rig(tmp_path, quiet_period=1.0)
        stream = hub.open("t")
        assert stream is not None
        stream.take()
        registration = status.to_view(device.settings, REGISTERED)
        device.outbox.emit(RegistrationChanged(REGISTERED))  # what the agent emits
        assert stream.take() == events.frame("registration", registration)
        ringing = FakePhone().ring()
        device.outbox.emit(CallChanged(ringing))
        assert stream.take() == events.frame("call", status_view(ringing))
        device.outbox.emit(DtmfSent("1"))  # no frame of its own: the call's status says it
        device.outbox.emit(CallChanged(IDLE))
        assert stream.take() == events.frame("call", status_view(IDLE))
        feed.close()
        assert stream.ended

    asyncio.run(main())


def test_with_no_call_no_timer_runs_and_in_a_call_one_refreshes_the_counters(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        device, hub, feed = feed_rig(tmp_path, quiet_period=0.05)
        phone = device.phone
        assert isinstance(phone, FakePhone)
        stream = hub.open("t")
        assert stream is not None
        stream.take()
        device.outbox.emit(RegistrationChanged(REGISTERED))
        stream.take()
        assert not feed.refreshing  # no call: nothing runs until the next event
        phone.ring()
        phone.answer()
        assert feed.refreshing
        active = phone.current
        assert stream.take() == events.frame("call", status_view(active))
        counted = dataclasses.replace(active, rtp=RtpFigures(50, 49, 0, 0.1), duration=1)
        phone.current = counted  # a change of the counters alone: not at once ...
        assert stream.take() == b""
        async with asyncio.timeout(5):  # ... but at the refresh, a quiet period later
            while (data := await stream.next()) == events.COMMENT:
                pass  # the wake of the frames taken above
        assert data == events.frame("call", status_view(counted))
        phone.hangup()
        assert stream.take() == events.frame("call", status_view(IDLE))
        assert not feed.refreshing  # the call is over: so is its timer
        feed.close()

    asyncio.run(main())


def test_a_quiet_stream_whose_token_expired_ends_at_its_next_comment() -> None:
    async def main() -> None:
        valid = {"t": True}
        ended: list[events.Subscription] = []
        stream = events.Subscription("t", 0.01, ended.append, lambda token: valid[token])
        assert await stream.next() == events.COMMENT
        valid["t"] = False
        assert await stream.next() is None
        assert ended == [stream]

    asyncio.run(main())
