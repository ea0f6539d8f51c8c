"""The v1/v2c wire path (shared UDP socket, request-id matching, retries) against a small in-process
agent on 127.0.0.1: late answers, answers from the wrong address, garbage and concurrent sessions.
Loopback only; the real-agent tests are in tests/lab/test_snmp_engine_lab.py."""
from __future__ import annotations

import asyncio
import socket

import pytest

from probe.config import Secret, SnmpCredential
from probe.sources.snmp import ber
from probe.sources.snmp.client import SnmpProtocolError, SnmpTimeout
from probe.sources.snmp.engine import Engine

from pysnmp.proto.api import v2c  # noqa: E402
from pyasn1.codec.ber import encoder as pyasn1_encoder  # noqa: E402

ROOT = (1, 3, 6, 1, 2, 1, 2, 2, 1, 2)
MIB = [(ROOT + (i,), f"port{i}".encode()) for i in range(1, 41)]


def response(community: bytes, request_id: int, vbs) -> bytes:
    pdu = v2c.GetResponsePDU()
    v2c.apiPDU.set_defaults(pdu)
    v2c.apiPDU.set_request_id(pdu, request_id)
    v2c.apiPDU.set_varbinds(pdu, vbs)
    msg = v2c.Message()
    v2c.apiMessage.set_defaults(msg)
    v2c.apiMessage.set_community(msg, community)
    v2c.apiMessage.set_pdu(msg, pdu)
    return pyasn1_encoder.encode(msg)


class Agent(asyncio.DatagramProtocol):
    """Answers GET/GETNEXT/GETBULK from MIB for community 'c'; misbehaviour switched per test."""

    def __init__(self):
        self.requests = 0
        self.drop = set()          # request numbers left unanswered
        self.delay: dict[int, float] = {}
        self.garbage = set()
        self.wrong_id = set()      # answer first with another request-id, then correctly
        self.spoof = set()         # answer first from another port, then correctly
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        n = self.requests
        self.requests += 1
        try:
            version, community, ptype, rid, a, b, vbs = ber.decode_response(data)
        except ber.BerError:  # e.g. the engine's SNMPv3 discovery probe: a v2c-only agent ignores it
            return
        if community != b"c" or n in self.drop:
            return
        out = []
        if ptype == ber.GET:
            table = dict(MIB)
            out = [(v2c.ObjectIdentifier(vb.oid), v2c.OctetString(table[vb.oid]) if vb.oid in table
                    else v2c.NoSuchObject("")) for vb in vbs]
        else:
            reps = b if ptype == ber.GETBULK else 1
            cur = vbs[0].oid
            for _ in range(reps):
                nxt = next(((o, v) for o, v in MIB if o > cur), None)
                if nxt is None:
                    out.append((v2c.ObjectIdentifier(cur), v2c.EndOfMibView("")))
                    break
                out.append((v2c.ObjectIdentifier(nxt[0]), v2c.OctetString(nxt[1])))
                cur = nxt[0]
        answer = response(community, rid, out)
        if n in self.garbage:  # right request-id, broken varbind: a varbind name that is not an OID
            oid = ber.encode_oid(vbs[0].oid)
            answer = answer.replace(oid, b"\x07" + oid[1:], 1)
        if n in self.wrong_id:
            self.transport.sendto(response(community, rid ^ 0x5555, out), addr)
        if n in self.spoof:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(answer, addr)
        delay = self.delay.get(n)
        if delay:
            asyncio.get_running_loop().call_later(delay, self.transport.sendto, answer, addr)
        else:
            self.transport.sendto(answer, addr)


async def with_agent(fn, host="127.0.0.1"):
    loop = asyncio.get_running_loop()
    transport, agent = await loop.create_datagram_endpoint(Agent, local_addr=(host, 0))
    port = transport.get_extra_info("sockname")[1]
    engine = Engine.for_running_loop()
    try:
        return await fn(engine, agent, port)
    finally:
        engine.close()
        transport.close()


def cred(community="c"):
    return SnmpCredential(name="t", version="2c", community=Secret(community))


def run(coro):
    return asyncio.run(coro)


def test_walk_over_udp_and_the_socket_is_shared():
    async def go(engine, agent, port):
        a = await engine.session("127.0.0.1", cred(), port=port, max_repetitions=7, timeout=0.5)
        b = await engine.session("127.0.0.1", cred(), port=port, max_repetitions=3, timeout=0.5)
        ra, rb = await asyncio.gather(a.walk(ROOT), b.walk(ROOT))
        assert a.transport.dispatcher is b.transport.dispatcher
        return ra, rb, a.stats

    ra, rb, stats = run(with_agent(go))
    assert [vb.value for vb in ra] == [v for _, v in MIB] == [vb.value for vb in rb]
    assert stats.pdus == 6 and stats.retries == 0


def test_late_answer_to_a_retried_request_is_not_taken_for_the_next_one():
    async def go(engine, agent, port):
        agent.delay[0] = 0.35  # the first answer comes after our 0.2 s timeout, during the retry
        s = await engine.session("127.0.0.1", cred(), port=port, max_repetitions=5, timeout=0.2, retries=2)
        rows = await s.walk(ROOT)
        await asyncio.sleep(0.2)
        return rows, s.stats, s.transport.dispatcher.stray

    rows, stats, stray = run(with_agent(go))
    assert [vb.value for vb in rows] == [v for _, v in MIB]
    assert stats.timeouts == 1 and stats.retries == 1
    assert stray >= 1  # the late answer was dropped as stray, not matched to a newer request


def test_answers_with_a_wrong_request_id_or_from_another_port_are_ignored():
    async def go(engine, agent, port):
        agent.wrong_id = {0}
        agent.spoof = {1}
        s = await engine.session("127.0.0.1", cred(), port=port, max_repetitions=10, timeout=0.5)
        rows = await s.walk(ROOT)
        return rows, s.stats, s.transport.dispatcher.stray

    rows, stats, stray = run(with_agent(go))
    assert [vb.value for vb in rows] == [v for _, v in MIB]
    assert stats.timeouts == 0 and stray == 2


def test_garbage_answer_is_a_protocol_error_and_silence_a_timeout():
    async def go(engine, agent, port):
        agent.garbage = {0}
        s = await engine.session("127.0.0.1", cred(), port=port, timeout=0.2, retries=0)
        with pytest.raises(SnmpProtocolError, match="malformed answer"):
            await s.get([ROOT + (1,)])
        got = await s.get([ROOT + (1,), ROOT + (99,)])
        assert got[0].value == b"port1" and got[1].type == "noSuchObject"
        wrong = await engine.session("127.0.0.1", cred("wrong"), port=port, timeout=0.2, retries=1)
        with pytest.raises(SnmpTimeout):  # no v3 discovery answer either: a plain timeout
            await wrong.get([ROOT + (1,)])
        assert wrong.stats.pdus == 3 and wrong.stats.timeouts == 2
        assert not engine._dispatchers[socket.AF_INET].pending  # nothing left behind

    run(with_agent(go))


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
def test_walk_over_ipv6_loopback():
    async def go(engine, agent, port):
        s = await engine.session("::1", cred(), port=port, max_repetitions=9, timeout=0.5)
        rows = await s.walk(ROOT)
        return rows, s.label

    rows, label = run(with_agent(go, host="::1"))
    assert [vb.value for vb in rows] == [v for _, v in MIB]
    assert label.startswith("[::1]:")
