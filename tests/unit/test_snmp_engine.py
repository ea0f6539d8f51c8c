"""The SNMP session's walk logic against a fake wire: adaptive max-repetitions, retries, the
non-increasing OID guard, the row cap, v1 GETNEXT and GET splitting, and timeout vs auth errors."""
from __future__ import annotations

import asyncio

import pytest

from probe.sources.snmp import ber
from probe.sources.snmp.client import (
    COUNTER32, END_OF_MIB_VIEW, INTEGER, NO_SUCH_OBJECT, OCTETS, SnmpAuthError, SnmpProtocolError, SnmpTimeout,
    Varbind,
)
from probe.sources.snmp.engine import GROW_AFTER, Answer, AttemptTimeout, Session

IF_TABLE = (1, 3, 6, 1, 2, 1, 2, 2)
SYS = (1, 3, 6, 1, 2, 1, 1)


def make_mib(ifaces: int = 30) -> list[Varbind]:
    vbs = [Varbind(SYS + (1, 0), OCTETS, b"fake device"), Varbind(SYS + (5, 0), OCTETS, b"fake")]
    for col, typ in ((1, INTEGER), (2, OCTETS), (10, COUNTER32)):
        for i in range(1, ifaces + 1):
            val = i if typ != OCTETS else f"eth{i}".encode()
            vbs.append(Varbind(IF_TABLE + (1, col, i), typ, val))
    vbs.append(Varbind((1, 3, 6, 1, 2, 1, 4, 1, 0), INTEGER, 2))
    return sorted(vbs, key=lambda v: v.oid)


class FakeTransport:
    """Answers from a sorted list of varbinds, like an agent; misbehaviour is switched on per test."""

    def __init__(self, mib, *, version=ber.V2C, max_varbinds=None, timeouts=(), alive=False):
        self.mib = mib
        self.version = version
        self.max_varbinds = max_varbinds   # tooBig above this many varbinds in one answer
        self.timeouts = set(timeouts)      # request numbers (0-based) that get no answer
        self.is_alive = alive
        self.sent: list[tuple[int, int]] = []  # (pdu type, max-repetitions) of each request

    def _next(self, oid):
        for vb in self.mib:
            if vb.oid > oid:
                return vb
        return None

    async def send(self, pdu_type, oids, *, timeout, non_repeaters=0, max_repetitions=0):
        n = len(self.sent)
        self.sent.append((pdu_type, max_repetitions))
        if n in self.timeouts:
            raise AttemptTimeout()
        if pdu_type == ber.GET:
            table = {vb.oid: vb for vb in self.mib}
            out = []
            for i, o in enumerate(oids):
                if o not in table and self.version == ber.V1:
                    return Answer(ber.NO_SUCH_NAME, i + 1, [])
                out.append(table.get(o, Varbind(o, NO_SUCH_OBJECT, None)))
            if self.max_varbinds and len(out) > self.max_varbinds:
                return Answer(ber.TOO_BIG, 0, [])
            return Answer(0, 0, out)
        if pdu_type == ber.GETNEXT:
            vb = self._next(oids[0])
            if vb is None:
                return Answer(ber.NO_SUCH_NAME, 1, [])
            return Answer(0, 0, [vb])
        assert pdu_type == ber.GETBULK and max_repetitions >= 1
        if self.max_varbinds and max_repetitions > self.max_varbinds:
            return Answer(ber.TOO_BIG, 0, [])
        out, cur = [], oids[0]
        for _ in range(max_repetitions):
            vb = self._next(cur)
            if vb is None:
                out.append(Varbind(cur, END_OF_MIB_VIEW, None))
                break
            out.append(vb)
            cur = vb.oid
        return Answer(0, 0, out)

    async def alive(self, timeout):
        return self.is_alive


def run(coro):
    return asyncio.run(coro)


def session(transport, **kw):
    kw.setdefault("max_repetitions", 16)
    return Session(transport, label="192.0.2.1:161", timeout=0.01, credential_name="site", **kw)


def expected(mib, root):
    return [vb for vb in mib if vb.oid[:len(root)] == root]


def test_walk_returns_the_subtree_in_order_and_stops_at_its_end():
    mib = make_mib(30)
    t = FakeTransport(mib)
    s = session(t, max_repetitions=16)
    rows = run(s.walk(IF_TABLE))
    assert rows == expected(mib, IF_TABLE)
    assert len(rows) == 90
    # 90 rows at 16 per PDU: the 6th answer crosses into ipForwarding and ends the walk.
    assert s.stats.pdus == 6 and s.stats.retries == 0 and s.stats.timeouts == 0
    assert all(kind == ber.GETBULK and reps == 16 for kind, reps in t.sent)


def test_walk_to_the_end_of_the_mib_view():
    mib = make_mib(5)
    rows = run(session(FakeTransport(mib)).walk((1, 3, 6, 1, 2, 1, 4)))
    assert rows == expected(mib, (1, 3, 6, 1, 2, 1, 4))


def test_too_big_shrinks_max_repetitions_and_the_walk_is_complete():
    mib = make_mib(40)
    t = FakeTransport(mib, max_varbinds=5)
    s = session(t, max_repetitions=40)
    rows = run(s.walk(IF_TABLE))
    assert rows == expected(mib, IF_TABLE)
    assert max(r for _, r in t.sent) == 40
    assert s.repetitions <= 5
    # tooBig is the agent answering: neither a retry nor a timeout.
    assert s.stats.retries == 0 and s.stats.timeouts == 0
    # Growing back is tried, and each time the agent's limit sends it down again: bounded waste.
    too_big = sum(1 for _, r in t.sent if r > 5)
    assert too_big <= 3 + len(t.sent) // GROW_AFTER


def test_timeout_shrinks_then_grows_back_to_the_configured_maximum():
    mib = make_mib(100)
    t = FakeTransport(mib, timeouts={0})
    s = session(t, max_repetitions=32, retries=1)
    rows = run(s.walk(IF_TABLE))
    assert rows == expected(mib, IF_TABLE)
    reps = [r for _, r in t.sent]
    assert reps[0] == 32 and reps[1] == 16  # the retry asks for less
    assert s.stats.timeouts == 1 and s.stats.retries == 1
    assert 32 in reps[2:]                    # and it grew back after a run of good answers
    assert s.repetitions == 32


def test_repetitions_learned_on_one_walk_carry_to_the_next():
    mib = make_mib(10)
    t = FakeTransport(mib, max_varbinds=4)
    s = session(t, max_repetitions=64)
    run(s.walk(SYS))
    assert s.repetitions <= 4
    t.sent.clear()
    run(s.walk(SYS))
    assert t.sent[0][1] <= 4


def test_non_increasing_oid_is_a_protocol_error_naming_the_oids():
    mib = make_mib(10)
    # An agent that answers the same row again (a loop): ifDescr.3 after ifDescr.4.
    bad = Varbind(IF_TABLE + (1, 2, 3), OCTETS, b"eth3")

    class Looping(FakeTransport):
        async def send(self, pdu_type, oids, **kw):
            answer = await super().send(pdu_type, oids, **kw)
            if oids[0] >= IF_TABLE + (1, 2, 1):
                return Answer(0, 0, [Varbind(IF_TABLE + (1, 2, 4), OCTETS, b"eth4"), bad])
            return answer

    s = session(Looping(mib), max_repetitions=1)
    with pytest.raises(SnmpProtocolError, match=r"non-increasing OID 1\.3\.6\.1\.2\.1\.2\.2\.1\.2\.3 after "
                                                r"1\.3\.6\.1\.2\.1\.2\.2\.1\.2\.4"):
        run(s.walk(IF_TABLE))


def test_an_answer_repeating_the_request_oid_is_caught():
    class Stuck(FakeTransport):
        async def send(self, pdu_type, oids, **kw):
            self.sent.append((pdu_type, 0))
            return Answer(0, 0, [Varbind(oids[0], INTEGER, 1)])

    with pytest.raises(SnmpProtocolError, match="non-increasing"):
        run(session(Stuck([])).walk(IF_TABLE + (1, 1, 1)))


def test_endless_table_stops_at_the_row_cap_and_names_the_table():
    class Endless(FakeTransport):
        async def send(self, pdu_type, oids, *, timeout, non_repeaters=0, max_repetitions=0):
            self.sent.append((pdu_type, max_repetitions))
            last = oids[0]
            base = last[len(IF_TABLE) + 2:][:1] or (0,)
            start = base[0] + 1
            return Answer(0, 0, [Varbind(IF_TABLE + (1, 1, i), INTEGER, i) for i in range(start, start + max_repetitions)])

    t = Endless([])
    s = session(t, max_repetitions=25)
    with pytest.raises(SnmpProtocolError, match=r"table 1\.3\.6\.1\.2\.1\.2\.2 has more than 1000 rows"):
        run(s.walk(IF_TABLE, max_rows=1000))
    assert len(t.sent) <= 1000 // 25 + 1


def test_silence_after_retries_is_a_timeout():
    t = FakeTransport(make_mib(), timeouts=range(100), alive=False)
    s = session(t, retries=2)
    with pytest.raises(SnmpTimeout, match=r"192\.0\.2\.1:161: no answer to GETBULK 1\.3\.6\.1\.2\.1\.1 after 3 tries"):
        run(s.walk(SYS))
    assert len(t.sent) == 3
    assert s.stats.timeouts == 3 and s.stats.retries == 2
    assert s.stats.pdus == 4  # three tries and the discovery probe


def test_silence_from_an_agent_that_answers_discovery_is_an_auth_error():
    t = FakeTransport(make_mib(), timeouts=range(100), alive=True)
    s = session(t, retries=1)
    with pytest.raises(SnmpAuthError, match="credential 'site'.*wrong community") as exc:
        run(s.get([SYS + (5, 0)]))
    assert exc.value.kind == "auth"


def test_a_credential_that_worked_once_then_goes_silent_is_a_timeout_not_auth():
    mib = make_mib()
    t = FakeTransport(mib, alive=True)
    s = session(t, retries=0)
    run(s.get([SYS + (5, 0)]))
    t.timeouts = set(range(1, 100))
    with pytest.raises(SnmpTimeout):
        run(s.get([SYS + (5, 0)]))


def test_get_returns_values_in_request_order_with_missing_ones_marked():
    mib = make_mib()
    s = session(FakeTransport(mib))
    got = run(s.get([SYS + (5, 0), SYS + (9, 0), SYS + (1, 0)]))
    assert [vb.value for vb in got] == [b"fake", None, b"fake device"]
    assert got[1].type == NO_SUCH_OBJECT


def test_get_splits_on_too_big():
    mib = make_mib(40)
    t = FakeTransport(mib, max_varbinds=3)
    oids = [IF_TABLE + (1, 2, i) for i in range(1, 11)]
    got = run(session(t).get(oids))
    assert [vb.value for vb in got] == [f"eth{i}".encode() for i in range(1, 11)]


def test_v1_walks_by_getnext_and_ends_on_no_such_name():
    mib = make_mib(4)
    t = FakeTransport(mib, version=ber.V1)
    rows = run(session(t).walk((1, 3, 6, 1, 2, 1, 4)))
    assert rows == expected(mib, (1, 3, 6, 1, 2, 1, 4))
    rows = run(session(t).walk(IF_TABLE))
    assert rows == expected(mib, IF_TABLE)
    assert {kind for kind, _ in t.sent} == {ber.GETNEXT}


def test_v1_get_with_a_missing_oid_asks_again_without_it():
    mib = make_mib()
    t = FakeTransport(mib, version=ber.V1)
    got = run(session(t).get([SYS + (1, 0), SYS + (7, 0), SYS + (5, 0)]))
    assert [vb.type for vb in got] == [OCTETS, NO_SUCH_OBJECT, OCTETS]
    assert len(t.sent) == 2


def test_agent_error_status_is_a_protocol_error():
    class GenErr(FakeTransport):
        async def send(self, pdu_type, oids, **kw):
            return Answer(5, 1, [])

    with pytest.raises(SnmpProtocolError, match="genErr"):
        run(session(GenErr([])).walk(SYS))


def test_every_configurable_protocol_is_spoken_by_ours_and_by_the_pysnmp_reference():
    from pysnmp.hlapi.v3arch import asyncio as hl

    from probe.config.snmp import AUTH_PROTOCOLS, PRIV_PROTOCOLS
    from probe.sources.snmp import usm
    from tests import snmp_pysnmp_usm as ref

    assert set(usm.AUTH) == set(ref.AUTH_PROTOCOLS) == set(AUTH_PROTOCOLS)
    assert set(usm.PRIV) == set(ref.PRIV_PROTOCOLS) == set(PRIV_PROTOCOLS)
    for name in (*ref.AUTH_PROTOCOLS.values(), *ref.PRIV_PROTOCOLS.values()):
        assert getattr(hl, name) is not None


def test_access_denied_status_is_an_auth_error():
    class Denied(FakeTransport):
        async def send(self, pdu_type, oids, **kw):
            return Answer(16, 0, [])

    with pytest.raises(SnmpAuthError, match="authorizationError"):
        run(session(Denied([])).get([SYS + (5, 0)]))
    with pytest.raises(SnmpAuthError, match="authorizationError"):
        run(session(Denied([])).walk(SYS))


@pytest.mark.parametrize("alive", [False, True])
def test_selection_probes_liveness_once_and_classifies_every_silent_credential(alive):
    from probe.config import Secret, SnmpCredential
    from probe.sources.snmp import credentials as credmod

    probes = []

    class Silent(FakeTransport):
        async def alive(self, timeout):
            probes.append(timeout)
            return alive

    class Eng:
        async def session(self, address, cred, **kw):
            return Session(Silent([], timeouts=range(100)), label=f"{address}:161", timeout=0.01,
                           retries=kw["retries"], credential_name=cred.name)

    creds = [SnmpCredential(name=n, version="2c", community=Secret(n)) for n in ("a", "b", "c")]
    with pytest.raises(credmod.NoCredentialAnswered) as exc:
        run(credmod.select(Eng(), "192.0.2.1", creds, retries=1))
    assert len(probes) == 1
    assert exc.value.kind == ("auth" if alive else "timeout")
    assert [r.kind for r in exc.value.refusals] == ["auth" if alive else "timeout"] * 3
