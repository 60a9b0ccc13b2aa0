"""A new flow for a dialog whose TCP/TLS connection is gone (CONTRACT §6.10).

RFC 3261 §18.1.1: a request over a connection-oriented transport whose connection is
closed opens a new connection to the next hop (the dialog's first Route, else its remote
target: `dialog.next_hop`). The proxy's current registration flow is taken when it goes
there and is open (the registrar restarted, the monitor re-registered: the BYE follows on
the new connection). A new TLS connection is verified as the registration's is: the same
CA and, towards the proxy's addresses, the proxy's name.
"""

from collections.abc import Callable

from intercom_sip.address import Address
from intercom_sip.sip import core
from intercom_sip.sip.dialog import Hop
from intercom_sip.sip.port import core_flow
from intercom_sip.sip.registrant import Registrant, SipEnv
from intercom_sip.sip.resolve import ResolveFailed
from intercom_sip.sip.transport import Flow, FlowError, Receive, StreamFlow


async def open_for_dialog(
    hop: Hop,
    transport: str,
    *,
    env: SipEnv,
    binding: Registrant | None,
    closed: Callable[[StreamFlow], None],
) -> core.Channel:
    """The flow to `hop` over `transport`; raises FlowError (DNS, connect, TLS)."""
    remote = await _address(env, hop.host_port, transport)
    ours = binding.flow if binding is not None else None
    if ours is not None and (ours.remote, ours.transport) == (remote, transport) and _up(ours):
        return core_flow(ours)
    if transport == "udp":
        return core_flow(env.endpoint.flow_to(remote))
    to_proxy = binding is not None and await _is_proxy(env, binding, remote, transport)
    name = binding.identity.server_name if binding is not None and to_proxy else _host(hop)
    flow = await StreamFlow.connect(
        transport,
        remote=remote,
        receive=_receive(env),
        closed=closed,
        tls=env.tls.context() if transport == "tls" else None,
        server_name=name,
    )
    return core_flow(flow)


async def _address(env: SipEnv, host_port: str, transport: str) -> Address:
    located = await env.resolver.locate(host_port, transport)
    if isinstance(located, ResolveFailed):
        raise FlowError("DNS failure")
    target = located.targets[0]
    return target.host, target.port


async def _is_proxy(env: SipEnv, binding: Registrant, remote: Address, transport: str) -> bool:
    ours = binding.flow
    if ours is not None and ours.remote == remote:
        return True
    located = await env.resolver.locate(binding.identity.proxy, transport)
    if isinstance(located, ResolveFailed):
        return False
    return remote in {(target.host, target.port) for target in located.targets}


def _host(hop: Hop) -> str:
    """The name a certificate must carry: the URI's host, without port or brackets."""
    text = hop.host_port
    if text.startswith("["):
        return text[1:].partition("]")[0]
    host, colon, port = text.rpartition(":")
    return host if colon and port.isdigit() else text


def _up(flow: Flow) -> bool:
    return not isinstance(flow, StreamFlow) or flow.open


def _receive(env: SipEnv) -> Receive:
    receive: Receive = env.receive
    return receive
