"""Property: whatever an agent answers under the MIBs the modules read (any type, any value, any
index shape), every module either succeeds or reports a classified error - never an internal one."""
from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe.sources.snmp import mibtables as T
from probe.sources.snmp.client import (COUNTER32, COUNTER64, GAUGE32, INTEGER, IPADDR, NULL, OBJECT_ID, OCTETS,
                                       TIMETICKS, Varbind)
from probe.sources.snmp.modules import MODULES, DeviceMemory, poll_device
from probe.sources.snmp.snmprec import SnmprecClient

OBJECTS = sorted(n for n in T.OID if n not in T.INDEX and not n.endswith("Table"))

values = st.one_of(
    st.tuples(st.just(INTEGER), st.integers(-(1 << 31), (1 << 31) - 1)),
    st.tuples(st.sampled_from([COUNTER32, GAUGE32, TIMETICKS]), st.integers(0, (1 << 32) - 1)),
    st.tuples(st.just(COUNTER64), st.integers(0, (1 << 64) - 1)),
    st.tuples(st.just(OCTETS), st.binary(max_size=24)),
    st.tuples(st.just(OBJECT_ID), st.lists(st.integers(0, 300), min_size=2, max_size=12).map(tuple)),
    st.tuples(st.just(IPADDR), st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))),
    st.tuples(st.just(NULL), st.none()),
)
ROWS = sorted(T.COLUMNS)
indexes = st.lists(st.integers(0, 70000), max_size=8).map(tuple)
scattered = st.lists(st.tuples(st.sampled_from(OBJECTS), indexes, values), max_size=40)


@st.composite
def table(draw):
    """Rows of one table sharing indexes, as real agents send them (with random values)."""
    row = draw(st.sampled_from(ROWS))
    idxs = draw(st.lists(indexes, min_size=1, max_size=4))
    cols = T.COLUMNS[row]
    return [(c, i, draw(values)) for i in idxs for c in draw(st.lists(st.sampled_from(cols), max_size=len(cols)))]


entries = st.tuples(scattered, st.lists(table(), max_size=4)).map(lambda t: t[0] + [e for tb in t[1] for e in tb])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries, st.booleans())
def test_no_agent_answer_crashes_a_module(recs, twice):
    records = {}
    for name, idx, (typ, val) in recs:
        oid = T.OID[name] + (idx if idx else (0,))
        records[oid] = Varbind(oid, typ, val)
    client = SnmprecClient(records)
    mem = DeviceMemory()
    for now in ((1000.0, 1060.0) if twice else (1000.0,)):
        r = asyncio.run(poll_device(client, mem, target="fuzz", now=now, modules=list(MODULES)))
        for name, m in r.modules.items():
            assert m.error_class != "internal", (name, m.error)
        r.data()
