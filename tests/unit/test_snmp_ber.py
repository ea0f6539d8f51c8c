"""Our v1/v2c BER codec against pysnmp's (pyasn1) encoder and decoder, and against garbage."""
from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.sources.snmp import ber
from probe.sources.snmp.client import Varbind

from pysnmp.proto.api import v2c  # noqa: E402
from pyasn1.codec.ber import decoder as pyasn1_decoder  # noqa: E402
from pyasn1.codec.ber import encoder as pyasn1_encoder  # noqa: E402
from pysnmp.proto import api  # noqa: E402

arcs = st.integers(min_value=0, max_value=2**32 - 1)
oids = st.tuples(st.sampled_from([1, 2]), st.integers(0, 39)).flatmap(
    lambda head: st.lists(arcs, min_size=0, max_size=14).map(lambda rest: head + tuple(rest)))

values = st.one_of(
    st.integers(-2**31, 2**31 - 1).map(lambda v: ("Integer32", v, v2c.Integer(v))),
    st.binary(max_size=300).map(lambda v: ("OctetString", v, v2c.OctetString(v))),
    st.integers(0, 2**32 - 1).map(lambda v: ("Counter32", v, v2c.Counter32(v))),
    st.integers(0, 2**32 - 1).map(lambda v: ("Gauge32", v, v2c.Gauge32(v))),
    st.integers(0, 2**32 - 1).map(lambda v: ("TimeTicks", v, v2c.TimeTicks(v))),
    st.integers(0, 2**64 - 1).map(lambda v: ("Counter64", v, v2c.Counter64(v))),
    st.tuples(*[st.integers(0, 255)] * 4).map(
        lambda t: ("IpAddress", "%d.%d.%d.%d" % t, v2c.IpAddress(bytes(t)))),
    oids.map(lambda o: ("ObjectIdentifier", o, v2c.ObjectIdentifier(o))),
    st.just(("noSuchObject", None, v2c.NoSuchObject(""))),
    st.just(("noSuchInstance", None, v2c.NoSuchInstance(""))),
    st.just(("endOfMibView", None, v2c.EndOfMibView(""))),
    st.just(("Null", None, v2c.null)),
)


def pysnmp_response(version: int, community: bytes, request_id: int, varbinds) -> bytes:
    pmod = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C if version else api.SNMP_VERSION_1]
    pdu = pmod.GetResponsePDU()
    pmod.apiPDU.set_defaults(pdu)
    pmod.apiPDU.set_request_id(pdu, request_id)
    pmod.apiPDU.set_varbinds(pdu, varbinds)
    msg = pmod.Message()
    pmod.apiMessage.set_defaults(msg)
    pmod.apiMessage.set_community(msg, community)
    pmod.apiMessage.set_pdu(msg, pdu)
    return pyasn1_encoder.encode(msg)


@settings(max_examples=150, deadline=None)
@given(rid=st.integers(0, 2**31 - 1), community=st.binary(max_size=40),
       vbs=st.lists(st.tuples(oids, values), max_size=30))
def test_decodes_what_pysnmp_encodes(rid, community, vbs):
    data = pysnmp_response(1, community, rid, [(v2c.ObjectIdentifier(o), asn) for o, (_, _, asn) in vbs])
    version, comm, ptype, rid2, status, index, got = ber.decode_response(data)
    assert (version, comm, ptype, rid2, status, index) == (1, community, ber.RESPONSE, rid, 0, 0)
    assert got == [Varbind(o, t, v) for o, (t, v, _) in vbs]


@settings(max_examples=100, deadline=None)
@given(rid=st.integers(0, 2**31 - 1), reps=st.integers(0, 200), kind=st.sampled_from([ber.GET, ber.GETNEXT, ber.GETBULK]),
       request_oids=st.lists(oids, min_size=1, max_size=10))
def test_pysnmp_decodes_what_we_encode(rid, reps, kind, request_oids):
    data = ber.encode_request(ber.V2C, b"c0mm", kind, rid, request_oids, max_repetitions=reps)
    msg, rest = pyasn1_decoder.decode(data, asn1Spec=v2c.Message())
    assert rest == b""
    assert bytes(msg["community"]) == b"c0mm"
    pdu = v2c.apiMessage.get_pdu(msg)
    assert int(v2c.apiPDU.get_request_id(pdu)) == rid
    if kind == ber.GETBULK:
        assert int(v2c.apiBulkPDU.get_max_repetitions(pdu)) == reps
    assert [tuple(name) for name, _ in v2c.apiPDU.get_varbinds(pdu)] == request_oids


def test_negative_and_edge_integers_round_trip():
    for v in (0, 1, 127, 128, 255, 256, -1, -128, -129, 2**31 - 1, -2**31):
        tlv = ber.encode_int(v)
        assert pyasn1_decoder.decode(tlv, asn1Spec=v2c.Integer())[0] == v


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_raises_ber_error_only(data):
    try:
        ber.decode_response(data)
    except ber.BerError:
        pass


@settings(max_examples=200, deadline=None)
@given(cut=st.integers(0, 200))
def test_truncated_answer_is_a_ber_error(cut):
    data = pysnmp_response(1, b"public", 7, [(v2c.ObjectIdentifier((1, 3, 6, 1, 2, 1, 1, 1, 0)),
                                              v2c.OctetString(b"x" * 150))])
    if cut >= len(data):
        return
    with pytest.raises(ber.BerError):
        ber.decode_response(data[:cut])


def test_v3_discovery_probe_is_a_valid_v3_message():
    data = ber.encode_v3_discovery(1234, 1234)
    from pysnmp.proto.mpmod.rfc3412 import SNMPv3Message

    msg, rest = pyasn1_decoder.decode(data, asn1Spec=SNMPv3Message())
    assert rest == b""
    assert int(msg["msgVersion"]) == 3
    assert int(msg["msgGlobalData"]["msgID"]) == 1234
    assert bytes(msg["msgGlobalData"]["msgFlags"]) == b"\x04"  # reportable, noAuthNoPriv


def test_engine_id_is_read_from_a_v3_report():
    from pysnmp.proto.mpmod.rfc3412 import SNMPv3Message
    from pysnmp.proto.secmod.rfc3414.service import UsmSecurityParameters

    usm = UsmSecurityParameters()
    usm["msgAuthoritativeEngineId"] = b"\x80\x00\x1f\x88\x80\x13\xbd\xf8"
    usm["msgAuthoritativeEngineBoots"] = 3
    usm["msgAuthoritativeEngineTime"] = 1234
    usm["msgUserName"] = b""
    usm["msgAuthenticationParameters"] = b""
    usm["msgPrivacyParameters"] = b""
    msg = SNMPv3Message()
    msg["msgVersion"] = 3
    msg["msgGlobalData"]["msgID"] = 77
    msg["msgGlobalData"]["msgMaxSize"] = 65507
    msg["msgGlobalData"]["msgFlags"] = b"\x00"
    msg["msgGlobalData"]["msgSecurityModel"] = 3
    msg["msgSecurityParameters"] = pyasn1_encoder.encode(usm)
    msg["msgData"]["plaintext"]["contextEngineId"] = b"\x80\x00\x1f\x88\x80\x13\xbd\xf8"
    msg["msgData"]["plaintext"]["contextName"] = b""
    pdu = v2c.ReportPDU()
    v2c.apiPDU.set_defaults(pdu)
    v2c.apiPDU.set_varbinds(pdu, [(v2c.ObjectIdentifier(ber.USM_STATS + (4, 0)), v2c.Counter32(1))])
    msg["msgData"]["plaintext"]["data"]["report"] = pdu
    data = pyasn1_encoder.encode(msg)
    assert ber.v3_engine_id(data) == b"\x80\x00\x1f\x88\x80\x13\xbd\xf8"
    assert ber.is_v3_report(data)
    assert ber.v3_engine_id(ber.encode_v3_discovery(1, 1)) is None  # our probe carries no engine ID
    assert ber.v3_engine_id(b"\x30\x03\x02\x01\x01") is None


def _answer(vbs: list[bytes], *, status: bytes = b"\x02\x01\x00", index: bytes = b"\x02\x01\x00") -> bytes:
    """A v2c GetResponse from raw varbind contents (name TLV + value TLV), header fields as given."""
    vbl = b"".join(ber._tlv(0x30, v) for v in vbs)
    pdu = ber._tlv(ber.RESPONSE, ber.encode_int(1) + status + index + ber._tlv(0x30, vbl))
    return ber._tlv(0x30, ber.encode_int(1) + ber._tlv(0x04, b"public") + pdu)


IF_IN = ber.encode_oid((1, 3, 6, 1, 2, 1, 2, 2, 1, 10, 1))


@pytest.mark.parametrize("what, message, error, tag", [
    # 1,800 bytes of Counter32: decoded, it was a 4,300-digit number that str() refuses (ValueError in
    # whatever formats it: an error message, a metric), so one lying agent broke its own poll's report.
    ("counter", _answer([IF_IN + ber._tlv(0x41, b"\x7f" * 1800)]), "integer of 1800 bytes at byte N", 0x41),
    ("error-status", _answer([IF_IN + b"\x05\x00"], status=ber._tlv(0x02, b"\x7f" * 1800)),
     "integer of 1800 bytes at byte N", 0x02),
    ("integer", _answer([IF_IN + ber._tlv(0x02, b"\x01" * 10)]), "integer of 10 bytes at byte N", 0x02),
    ("empty", _answer([IF_IN + b"\x02\x00"]), "INTEGER with no contents at byte N", 0x02),
    # An arc of 14,700 bits: the same str() failure in format_oid, and a quadratic decode.
    ("arc", _answer([ber._tlv(0x06, b"\x2b" + b"\xff" * 2100 + b"\x7f") + b"\x05\x00"]),
     "OBJECT IDENTIFIER at byte N: sub-identifier 2 exceeds 32 bits", 0x06),
    ("arcs", _answer([ber._tlv(0x06, b"\x2b" + b"\x01" * 128) + b"\x05\x00"]),
     "OBJECT IDENTIFIER at byte N has more than 128 sub-identifiers", 0x06),
])
def test_oversized_numbers_from_a_lying_agent_are_ber_errors(what, message, error, tag):
    with pytest.raises(ber.BerError) as exc:
        ber.decode_response(message)
    text = str(exc.value)
    assert re.sub(r"at byte \d+", "at byte N", text, count=1).startswith(error), text
    at = int(re.search(r"at byte (\d+)", text).group(1))
    assert message[at] == tag  # the byte named is the TLV at fault


def test_the_largest_legal_numbers_still_decode():
    top = (2**64 - 1).to_bytes(9, "big")  # Counter64 with its leading zero: 9 bytes
    oid = (1, 3) + (2**32 - 1,) * 126     # 128 sub-identifiers, each the largest
    vbs = ber.decode_response(_answer([IF_IN + ber._tlv(0x46, top), ber.encode_oid(oid) + b"\x05\x00"]))[-1]
    assert vbs[0].value == 2**64 - 1 and vbs[1].oid == oid


def test_a_length_of_2_31_is_refused_without_allocating_it():
    import tracemalloc

    bad = [b"\x30\x84\x7f\xff\xff\xff" + b"\x00" * 32,
           _answer([IF_IN + b"\x04\x84\x7f\xff\xff\xff"]),
           _answer([ber._tlv(0x06, b"\x2b\x06") + b"\x04\x84\x7f\xff\xff\xff"])]
    tracemalloc.start()
    try:
        for data in bad:
            with pytest.raises(ber.BerError, match=r"length 2147483647 at byte \d+ runs past the end"):
                ber.decode_response(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024


def test_a_huge_error_status_is_a_protocol_error_of_the_session_not_a_crash():
    import asyncio

    from probe.sources.snmp.client import SnmpProtocolError
    from probe.sources.snmp.engine import CommunityTransport, Session

    class Wire:
        stray = 0

        def next_id(self):
            return 1

        async def exchange(self, rid, message, addr, timeout):
            return _answer([IF_IN + b"\x05\x00"], status=ber._tlv(0x02, b"\x7f" * 1800))

    async def go():
        s = Session(CommunityTransport(Wire(), ("192.0.2.1", 161), ber.V2C, b"public"), label="192.0.2.1:161")
        return await s.walk((1, 3, 6, 1, 2, 1, 2, 2))

    with pytest.raises(SnmpProtocolError, match=r"192.0.2.1:161: malformed answer: integer of 1800 bytes at byte 22:"):
        asyncio.run(go())


def _pyasn1_refuses(data: bytes) -> bool:
    pmod = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
    try:
        _, rest = pyasn1_decoder.decode(data, asn1Spec=pmod.Message())
    except Exception:
        return True
    return bool(rest)


def _with_extra_in_pdu(extra: bytes, pdu_type: int = ber.RESPONSE) -> bytes:
    vbl = ber._tlv(0x30, IF_IN + b"\x05\x00")
    pdu = ber._tlv(pdu_type, ber.encode_int(1) + b"\x02\x01\x00\x02\x01\x00" + ber._tlv(0x30, vbl) + extra)
    return ber._tlv(0x30, ber.encode_int(1) + ber._tlv(0x04, b"public") + pdu)


@pytest.mark.parametrize("message, error", [
    (_with_extra_in_pdu(b"\x04\x02hi"), "4 bytes after the varbind list"),
    (_answer([IF_IN + b"\x05\x02\xde\xad"]), "NULL with 2 bytes of contents"),
], ids=["bytes after the varbind list", "NULL with contents"])
def test_what_pyasn1_refuses_our_decoder_refuses_too(message, error):
    assert _pyasn1_refuses(message)
    with pytest.raises(ber.BerError, match=error):
        ber.decode_response(message)


def test_the_trap_decoder_refuses_bytes_after_the_varbind_list_as_polls_do():
    """One PDU-body decoder (ber.decode_pdu_body) for responses and v2 notifications."""
    from probe.sources.snmp import traps
    message = _with_extra_in_pdu(b"\x04\x02hi", ber.TRAP_V2)
    got = traps.decode_notification(message)
    assert isinstance(got, traps.TrapDropped) and got.reason == "malformed", got
    assert got.detail == f"4 bytes after the varbind list (byte {len(message) - 4})", got  # the extra TLV
