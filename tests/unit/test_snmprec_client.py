"""The fake SNMP client (snmprec recordings) behaves like an agent plus the real client's guards."""
from __future__ import annotations

import asyncio

import pytest

from probe.sources.snmp.client import (COUNTER64, END_OF_MIB_VIEW, NO_SUCH_INSTANCE, NO_SUCH_OBJECT, OCTETS,
                                       SnmpProtocolError, SnmpTimeout, parse_oid)
from probe.sources.snmp.snmprec import SnmprecClient, SnmprecError, read_snmprec

REC = """\
1.3.6.1.2.1.1.1.0|4|Test device
1.3.6.1.2.1.1.3.0|67|12345
1.3.6.1.2.1.2.2.1.2.1|4|lo
1.3.6.1.2.1.2.2.1.2.2|4x|657468302d
1.3.6.1.2.1.2.2.1.6.2|4x|0011223344AA
1.3.6.1.2.1.31.1.1.1.6.2|70|18446744073709551615
1.3.6.1.2.1.4.22.1.3.2.10.0.0.1|64|10.0.0.1
1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.8072.3.2.10
1.3.6.1.2.1.1.9.1.3.1|4|
"""


def run(coro):
    return asyncio.run(coro)


def test_parses_every_tag_and_sorts():
    recs = read_snmprec(REC)
    assert recs[parse_oid("1.3.6.1.2.1.2.2.1.2.2")].value == b"eth0-"
    assert recs[parse_oid("1.3.6.1.2.1.2.2.1.6.2")].value == bytes.fromhex("0011223344aa")
    assert recs[parse_oid("1.3.6.1.2.1.31.1.1.1.6.2")].type == COUNTER64
    assert recs[parse_oid("1.3.6.1.2.1.1.2.0")].value == (1, 3, 6, 1, 4, 1, 8072, 3, 2, 10)
    assert recs[parse_oid("1.3.6.1.2.1.4.22.1.3.2.10.0.0.1")].value == "10.0.0.1"
    assert recs[parse_oid("1.3.6.1.2.1.1.9.1.3.1")].value == b""


@pytest.mark.parametrize("line,msg", [
    ("1.3.6.1|99|x", "unknown tag 99"),
    ("1.3.6.1|2|abc", "bad Integer32"),
    ("1.3.6.1|4x|zz", "needs hex"),
    ("1.3.6.1|65|-1", "out of range"),
    ("1.3.6.1 2 3", "expected OID|tag|value"),
    ("1.3.x|2|1", "bad OID"),
])
def test_bad_lines_say_where(line, msg):
    with pytest.raises(SnmprecError, match=msg) as exc:
        read_snmprec("1.3.6.1.2.1.1.1.0|4|ok\n" + line, "dev.snmprec")
    assert "dev.snmprec:2" in str(exc.value)


def test_get_and_walk():
    c = SnmprecClient.from_text(REC, max_repetitions=2)
    vbs = run(c.get([parse_oid("1.3.6.1.2.1.1.1.0"), parse_oid("1.3.6.1.2.1.1.1.1"), parse_oid("1.9.9.0")]))
    assert vbs[0].value == b"Test device"
    assert vbs[1].type == NO_SUCH_INSTANCE and vbs[2].type == NO_SUCH_OBJECT
    rows = run(c.walk(parse_oid("1.3.6.1.2.1.2.2.1")))
    assert [r.oid[-1] for r in rows] == [1, 2, 2]
    assert c.stats.walk_pdus == 2  # 3 rows in pages of 2
    assert run(c.walk(parse_oid("1.3.6.1.2.1.99"))) == []
    assert run(c.walk(parse_oid("1.3.6.1.2.1.31"))) [0].value == (1 << 64) - 1


def test_changes_between_polls():
    c = SnmprecClient.from_text(REC)
    c.set("1.3.6.1.2.1.1.3.0", 5)
    c.set("1.3.6.1.2.1.2.2.1.2.3", b"eth1", OCTETS)
    c.delete("1.3.6.1.2.1.2.2.1.2.1")
    assert run(c.get([parse_oid("1.3.6.1.2.1.1.3.0")]))[0].value == 5
    assert [r.value for r in run(c.walk(parse_oid("1.3.6.1.2.1.2.2.1.2")))] == [b"eth0-", b"eth1"]
    c.apply("1.3.6.1.2.1.1.3.0|67|77\n")
    assert c.value("1.3.6.1.2.1.1.3.0") == 77


def test_misbehaving_agents_raise_the_real_clients_errors():
    c = SnmprecClient.from_text(REC, lie_non_increasing="1.3.6.1.2.1.2.2.1")
    with pytest.raises(SnmpProtocolError, match="non-increasing"):
        run(c.walk(parse_oid("1.3.6.1.2.1.2.2.1")))
    c = SnmprecClient.from_text(REC, lie_endless="1.3.6.1.2.1.2.2.1.2")
    with pytest.raises(SnmpProtocolError, match="more than 50 rows"):
        run(c.walk(parse_oid("1.3.6.1.2.1.2.2.1.2"), max_rows=50))
    c = SnmprecClient.from_text(REC, lie_types={"1.3.6.1.2.1.31": OCTETS}, timeout_under=["1.3.6.1.2.1.4"])
    assert run(c.walk(parse_oid("1.3.6.1.2.1.31")))[0].type == OCTETS
    with pytest.raises(SnmpTimeout):
        run(c.walk(parse_oid("1.3.6.1.2.1.4.22")))
    assert run(c.walk(parse_oid("1.3.6.1.2.1.1.9")))[0].type != END_OF_MIB_VIEW


def test_reads_every_shared_recording(shared_data):
    files = sorted((shared_data / "snmp" / "librenms" / "snmprec").glob("*.snmprec"))
    assert files
    for f in files:
        c = SnmprecClient.from_file(f, max_repetitions=200)
        n = len({line.split("|", 1)[0] for line in f.read_text(errors="replace").splitlines() if line.strip()})
        walked = run(c.walk((1,), max_rows=100000)) + run(c.walk((0,), max_rows=100000))
        assert len(walked) == n, f  # every distinct OID read, none lost, in strictly increasing order
        assert all(a.oid < b.oid for a, b in zip(walked, walked[1:]))
