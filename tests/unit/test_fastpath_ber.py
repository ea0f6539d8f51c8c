"""The compiled BER varbind decoder (probe/fastpath/kernels/ber.pxi) and its twin (probe/fastpath/twin/ber.py)
give the same varbinds, or the same BerError message, for every input: well-formed lists of every value type
at the edges of their ranges, every truncation of them, random mutations, and random bytes."""
from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe.fastpath.twin import ber as twin
from probe.sources.snmp import ber
from probe.sources.snmp.client import BerError

_tlv = ber._tlv


def _compiled():
    try:
        import probe._fastpath as c
    except ImportError:
        pytest.skip("compiled fast path not built")
    return c


def _vb(oid, value: bytes) -> bytes:
    return _tlv(0x30, ber.encode_oid(oid) + value)


def _uint(n: int, tag: int) -> bytes:
    body = n.to_bytes(max(1, (n.bit_length() + 8) // 8), "big")  # with the leading zero of an unsigned value
    return _tlv(tag, body)


EDGE_VALUES = [
    ber.encode_int(0), ber.encode_int(-1), ber.encode_int(127), ber.encode_int(-128), ber.encode_int(2**31 - 1),
    ber.encode_int(-2**31), ber.encode_int(2**63 - 1), ber.encode_int(-2**63), _tlv(0x02, b"\x00" * 9),
    _tlv(0x02, b"\xff" * 9), _uint(0, 0x41), _uint(2**32 - 1, 0x41), _uint(2**32 - 1, 0x42), _uint(123456, 0x43),
    _uint(2**64 - 1, 0x46), _uint(2**63, 0x46), _tlv(0x46, b"\x01" + b"\x00" * 8), _tlv(0x04, b""),
    _tlv(0x04, bytes(range(256))), _tlv(0x40, b"\xc0\xa8\x01\xfe"), _tlv(0x44, b"\x9f\x78\x04\x00\x00\x00\x00"),
    _tlv(0x05, b""), _tlv(0x80, b""), _tlv(0x81, b""), _tlv(0x82, b""), _tlv(0x03, b"\x00\xff"),
    ber.encode_oid((1, 3, 6, 1, 4, 1, 8072, 3, 2, 10)), ber.encode_oid((2, 999, 2**32 - 1)), _uint(5, 0x47),
    _tlv(0x45, b"\x00"),
]
OIDS = [(1, 3, 6, 1, 2, 1, 1, 5, 0), (1, 3, 6, 1, 2, 1, 4, 20, 1, 1, 192, 168, 1, 200), (0, 39), (1, 0),
        (2, 47, 2**32 - 1, 0), (1, 3) + (1,) * 126]
# Malformed on purpose: what a lying agent sends.
BAD = [
    _tlv(0x30, _tlv(0x06, b"") + _tlv(0x05, b"")), _tlv(0x30, _tlv(0x06, b"\x2b\x86") + _tlv(0x05, b"")),
    _tlv(0x30, _tlv(0x06, b"\x2b\x90\x80\x80\x80\x00") + _tlv(0x05, b"")),
    _tlv(0x30, _tlv(0x06, b"\x2b" + b"\x01" * 130) + _tlv(0x05, b"")),
    _vb(OIDS[0], _tlv(0x02, b"")), _vb(OIDS[0], _tlv(0x02, b"\x01" * 10)), _vb(OIDS[0], _tlv(0x41, b"\x01" * 10)),
    _vb(OIDS[0], _tlv(0x05, b"\x00")), _vb(OIDS[0], _tlv(0x40, b"\x01\x02\x03")), _vb(OIDS[0], _tlv(0x99, b"")),
    _vb(OIDS[0], _tlv(0x05, b"")) + b"\x30", b"\x31\x00", b"\x30\x80", b"\x30\x85\x00\x00\x00\x00\x01",
    b"\x30\x84\x00\x00\x10\x00", _tlv(0x30, _tlv(0x04, b"x") + _tlv(0x05, b"")),
    _tlv(0x30, ber.encode_oid(OIDS[0]) + _tlv(0x05, b"") + b"\x00"), b"\x30\x82\x00",
]


def _outcome(fn, data: bytes, pos: int = 0, end: int | None = None):
    try:
        return "ok", fn(data, pos, len(data) if end is None else end)
    except BerError as exc:
        return "BerError", str(exc)


def test_every_value_type_at_its_edges_decodes_the_same():
    c = _compiled()
    data = b"".join(_vb(OIDS[i % len(OIDS)], v) for i, v in enumerate(EDGE_VALUES))
    got = _outcome(c.ber_varbinds, data)
    assert got == _outcome(twin.ber_varbinds, data)
    assert got[0] == "ok" and len(got[1]) == len(EDGE_VALUES)
    assert got[1][6].value == 2**63 - 1 and got[1][7].value == -2**63 and got[1][9].value == -1
    assert got[1][14].value == 2**64 - 1 and got[1][19].value == "192.168.1.254"
    assert got[1][27].value == (2, 999, 2**32 - 1)


@pytest.mark.parametrize("i", range(len(BAD)))
def test_malformed_lists_fail_with_the_same_message(i):
    c = _compiled()
    got = _outcome(c.ber_varbinds, BAD[i])
    assert got == _outcome(twin.ber_varbinds, BAD[i])
    assert got[0] == "BerError"


def test_every_truncation_and_span_agrees():
    c = _compiled()
    data = b"".join(_vb(o, v) for o, v in zip(OIDS * 5, EDGE_VALUES))
    for n in range(len(data) + 1):
        assert _outcome(c.ber_varbinds, data[:n]) == _outcome(twin.ber_varbinds, data[:n]), n
        # a span that ends early inside the same bytes (as a PDU inside a datagram)
        assert _outcome(c.ber_varbinds, data, 0, n) == _outcome(twin.ber_varbinds, data, 0, n), n


def test_random_mutations_agree():
    c = _compiled()
    rnd = random.Random(15)
    base = bytearray(b"".join(_vb(o, v) for o, v in zip(OIDS * 5, EDGE_VALUES)))
    differ = 0
    for _ in range(20000):
        m = bytearray(base)
        for _ in range(rnd.randint(1, 4)):
            m[rnd.randrange(len(m))] = rnd.choice((0x00, 0x80, 0x81, 0x82, 0x84, 0xff, rnd.randrange(256)))
        m = bytes(m)
        a, b = _outcome(c.ber_varbinds, m), _outcome(twin.ber_varbinds, m)
        assert a == b, m.hex()
        differ += a[0] == "BerError"
    assert differ > 1000  # the mutations do reach the error paths


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes_agree(data):
    c = _compiled()
    assert _outcome(c.ber_varbinds, data) == _outcome(twin.ber_varbinds, data)


def test_a_span_outside_the_bytes_is_refused():
    c = _compiled()
    with pytest.raises(ValueError, match="outside"):
        c.ber_varbinds(b"\x30\x00", 0, 5)
