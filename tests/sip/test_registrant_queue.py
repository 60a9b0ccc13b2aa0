"""The registrant's task queue is bounded whatever arrives: forged ICMP words about any
address, a burst of settings changes while no flow is ready. Each kind is coalesced
where it is put, so the task reads a few events, and the newest account wins."""

import asyncio
from dataclasses import replace

from intercom_sip.agent.supervisor import account_of
from intercom_sip.sip.registrant import MAX_QUEUED
from tests.test_apply import account_at, register_and_grant, registrar_socket, started_agent, stop


def test_forged_unreachables_and_a_burst_of_accounts_queue_a_few_events() -> None:
    async def scenario() -> tuple[int, int, str]:
        registrar = registrar_socket()
        agent = await started_agent()
        on = account_at(registrar)
        agent.apply(on)
        await register_and_grant(registrar)
        binding = agent._applied.binding  # the queue is the binding's
        assert binding is not None
        for n in range(10_000):  # what a raw socket can forge: any address, any rate
            binding.unreachable((f"198.51.{n % 250}.{n % 200}", 5060 + n % 3))
            binding.unreachable(binding.flow.remote if binding.flow else ("192.0.2.1", 1))
        after_icmp = binding.backlog
        binding._flow = None  # no flow ready: updates go through the task
        for n in range(1_000):
            binding.update(account_of(replace(on, password=f"pass{n}")))
        after_updates = binding.backlog
        request = await register_and_grant(registrar)  # the task opens a flow and sends
        await stop(agent, registrar)
        return after_icmp, after_updates, request.headers.get("CSeq") or ""

    after_icmp, after_updates, cseq = asyncio.run(scenario())
    assert after_icmp <= 1 < MAX_QUEUED
    assert after_updates <= 2
    assert cseq.endswith(" REGISTER")
