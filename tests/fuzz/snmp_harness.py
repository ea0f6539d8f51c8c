"""Coverage-guided fuzzing of the SNMP decoder (probe/sources/snmp/ber.py) and of what the v1/v2c
client does with an answer (CommunityTransport.send, Session.get/walk in engine.py), with Atheris.

The property, for any datagram an agent (lying, broken or hostile) may send:
- every decoder entry point either returns or raises `ber.BerError`, whose message says what is wrong
  and at which byte; the client turns that into `SnmpProtocolError` and never raises anything else
  than an `SnmpError`;
- nothing hangs (libFuzzer's -timeout) and nothing allocates in proportion to a length field (a
  length of 2**31 is refused before any slice; -rss_limit_mb);
- where pyasn1/pysnmp's decoder also accepts the message (its v2c/v1 Message spec), both give the same
  header fields and varbinds (differential check).

    .venv/bin/python tests/fuzz/snmp_harness.py -max_total_time=3600 -timeout=5 CORPUS_DIR
        (CORPUS_DIR: empty is fine; the seeds below are added to it first; crashes land in
        ./crash-*; keep them in tests/fuzz/regressions/snmp/ and tests/fuzz/test_fuzz_snmp.py replays them)

Seeds: responses built with our codec from every recording in ../shared/data/snmp (snmprec files), and
the UDP payloads of the SNMP captures in ../shared/data/pcap/snmp_*.pcap.
"""
from __future__ import annotations

import asyncio
import os
import re
import struct
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

MAX_SEED_VARBINDS = 12
_WHERE = re.compile(r"\bbyte \d+\b")


def shared_data() -> Path:
    env = os.environ.get("SITEVIGIL_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


# -- seeds ------------------------------------------------------------------------------------------

def encode_value(ber, typ: str, value) -> bytes:
    """The value TLV of one varbind as an agent would send it (our codec's tags, ber._VALUE_TAGS)."""
    from probe.sources.snmp import client as c

    if typ == c.INTEGER:
        return ber.encode_int(value)
    if typ in (c.COUNTER32, c.GAUGE32, c.TIMETICKS, c.COUNTER64):
        tag = {c.COUNTER32: 0x41, c.GAUGE32: 0x42, c.TIMETICKS: 0x43, c.COUNTER64: 0x46}[typ]
        body = value.to_bytes(value.bit_length() // 8 + 1, "big")  # unsigned, with a leading 0 as needed
        return ber._tlv(tag, body)
    if typ == c.OCTETS:
        return ber._tlv(0x04, value)
    if typ == c.OPAQUE:
        return ber._tlv(0x44, value)
    if typ == c.OBJECT_ID:
        return ber.encode_oid(tuple(value))
    if typ == c.IPADDR:
        return ber._tlv(0x40, bytes(int(x) for x in value.split(".")))
    if typ in (c.NO_SUCH_OBJECT, c.NO_SUCH_INSTANCE, c.END_OF_MIB_VIEW):
        return {c.NO_SUCH_OBJECT: b"\x80\x00", c.NO_SUCH_INSTANCE: b"\x81\x00", c.END_OF_MIB_VIEW: b"\x82\x00"}[typ]
    return b"\x05\x00"


def encode_response(ber, version: int, community: bytes, request_id: int, varbinds, *, status: int = 0,
                    index: int = 0, pdu_type: int | None = None) -> bytes:
    vbs = b"".join(ber._tlv(0x30, ber.encode_oid(vb.oid) + encode_value(ber, vb.type, vb.value)) for vb in varbinds)
    pdu = ber._tlv(ber.RESPONSE if pdu_type is None else pdu_type,
                   ber.encode_int(request_id) + ber.encode_int(status) + ber.encode_int(index) + ber._tlv(0x30, vbs))
    return ber._tlv(0x30, ber.encode_int(version) + ber._tlv(0x04, community) + pdu)


def pcap_udp_payloads(path: Path) -> list[bytes]:
    """UDP payloads of a classic pcap of Ethernet/IPv4 frames (the shared SNMP captures are that)."""
    data = path.read_bytes()
    if len(data) < 24:
        return []
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    pos, out = 24, []
    while pos + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + "IIII", data[pos:pos + 16])
        frame = data[pos + 16:pos + 16 + incl]
        pos += 16 + incl
        if len(frame) < 42 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
            continue
        ihl = (frame[14] & 0x0F) * 4
        udp = frame[14 + ihl:]
        if len(udp) >= 8:
            out.append(bytes(udp[8:struct.unpack("!H", udp[4:6])[0]]))
    return out


def seeds() -> list[bytes]:
    """Real answers: every recording's varbinds in GETBULK-sized responses (v1 and v2c), the edge cases
    of a walk (errors, exceptions in place of values), and what the shared SNMP captures carry."""
    from probe.sources.snmp import ber
    from probe.sources.snmp.client import END_OF_MIB_VIEW, NO_SUCH_OBJECT, Varbind
    from probe.sources.snmp.snmprec import SnmprecClient

    out: list[bytes] = []
    base = shared_data()
    for rec in sorted((base / "snmp").rglob("*.snmprec")):
        try:
            client = SnmprecClient.from_file(rec)
            records = [client._records[k] for k in client._keys]
        except Exception:  # a recording our reader refuses is not a seed
            continue
        # A few windows spread over the file: every type the recording holds appears in some window.
        step = max(1, len(records) // 8)
        for i in range(0, len(records), step):
            vbs = records[i:i + MAX_SEED_VARBINDS]
            out.append(encode_response(ber, ber.V2C, rec.stem.encode(), 1000 + i, vbs))
        out.append(encode_response(ber, ber.V1, b"public", 7, records[:3]))
        last = records[-1]
        out.append(encode_response(ber, ber.V2C, b"public", 8, [last, Varbind(last.oid, END_OF_MIB_VIEW, None)]))
        out.append(encode_response(ber, ber.V2C, b"public", 9, [Varbind(last.oid, NO_SUCH_OBJECT, None)]))
        out.append(encode_response(ber, ber.V1, b"public", 10, records[:1], status=2, index=1))
    pcaps = sorted((base / "pcap").glob("snmp_*.pcap"))
    for p in pcaps:
        payloads = pcap_udp_payloads(p)
        out.extend(payloads[:40])  # a walk of 400 is 400 near-identical answers: a sample is enough
    out.append(ber.encode_v3_discovery(5, 5))
    return out


def write_seeds(corpus: Path) -> int:
    corpus.mkdir(parents=True, exist_ok=True)
    n = 0
    for i, s in enumerate(seeds()):
        (corpus / f"seed-{i:04d}").write_bytes(s)
        n += 1
    return n


# -- the property -----------------------------------------------------------------------------------

class PropertyViolation(AssertionError):
    pass


def _clear(ber, exc) -> None:
    if not isinstance(exc, ber.BerError):
        raise PropertyViolation(f"decoder raised {type(exc).__name__}: {exc}") from exc
    if not _WHERE.search(str(exc)):
        raise PropertyViolation(f"BerError without the byte it is about: {exc!r}")


def check_decoders(data: bytes):
    """Every decoder entry point on `data`; returns decode_response's result or None (BerError)."""
    from probe.sources.snmp import ber, engine

    for fn in (ber.request_id_of, engine._message_id, ber.v3_engine_id, ber.is_v3_report):
        fn(data)  # these answer None/False on garbage; any exception is a violation
    try:
        decoded = ber.decode_response(data)
    except Exception as exc:  # noqa: BLE001 - the property is about which exceptions escape
        _clear(ber, exc)
        return None
    version, community, ptype, rid, status, index, vbs = decoded
    for vb in vbs:  # what the rest of the probe does with it: format OIDs and values for messages/metrics
        from probe.sources.snmp.client import format_oid

        format_oid(vb.oid)
        str(vb.value)
    str(status), str(index), str(rid)
    return decoded


class _Wire:
    """A dispatcher that answers every request with the fuzzed datagram."""

    def __init__(self, data: bytes, patch_id: bool):
        self.data = data
        self.patch_id = patch_id
        self.stray = 0

    def next_id(self) -> int:
        return 1

    async def exchange(self, request_id, message, addr, timeout):
        return self.data


def check_client(data: bytes) -> None:
    """CommunityTransport + Session (GET and a walk) fed `data` as every answer: they end with a result
    or an SnmpError, never another exception, and within a bounded number of requests."""
    from probe.sources.snmp import engine
    from probe.sources.snmp.client import SnmpError

    async def go():
        for version in (0, 1):
            t = engine.CommunityTransport(_Wire(data, False), ("192.0.2.1", 161), version, b"public")
            s = engine.Session(t, label="192.0.2.1:161", timeout=0.01, retries=0, max_repetitions=4)
            for call in (lambda: s.get([(1, 3, 6, 1, 2, 1, 1, 3, 0), (1, 3, 6, 1, 2, 1, 1, 5, 0)]),
                         lambda: s.walk((1, 3, 6, 1, 2, 1, 2, 2), max_rows=50)):
                try:
                    await call()
                except SnmpError as exc:
                    str(exc)
                if s.stats.pdus > 200:
                    raise PropertyViolation(f"{s.stats.pdus} requests for one answer: the client loops")

    asyncio.run(go())


def _pyasn1_decode(data: bytes):
    """(version, community, pdu tag, request id, status, index, [(oid, kind, value)]) by pyasn1, or None."""
    try:
        from pyasn1.codec.ber import decoder
        from pysnmp.proto import api
    except ImportError:
        return None
    try:
        ver = int(api.decodeMessageVersion(data))
        mod = api.PROTOCOL_MODULES[ver]
        msg, rest = decoder.decode(data, asn1Spec=mod.Message())
        pdu = mod.apiMessage.get_pdu(msg)
        vbs = []
        for name, val in mod.apiPDU.get_varbinds(pdu):
            vbs.append((tuple(name), _pyasn1_value(val)))
        return (ver, bytes(mod.apiMessage.get_community(msg)), int(mod.apiPDU.get_request_id(pdu)),
                int(mod.apiPDU.get_error_status(pdu)), int(pdu.getComponentByPosition(2)),  # raw: pysnmp's getter clamps it
                vbs, len(rest))
    except Exception:  # noqa: BLE001 - pyasn1 refusing is not ours to judge
        return None


def _pyasn1_value(val):
    name = type(val).__name__
    if name in ("OctetString", "Opaque", "Bits"):
        return bytes(val.asOctets())
    if name == "IpAddress":
        return "%d.%d.%d.%d" % tuple(val.asOctets())
    if name == "ObjectIdentifier":
        return tuple(val)
    if name in ("Null", "NoSuchObject", "NoSuchInstance", "EndOfMibView"):
        return None
    return int(val)


def differential(data: bytes, ours) -> None:
    """Where pyasn1 also decodes the whole datagram as an SNMP v1/v2c message with a GetResponse PDU,
    it must see what we see."""
    if ours is None or ours[2] != 0xA2:
        return
    theirs = _pyasn1_decode(data)
    if theirs is None or theirs[-1]:  # refused, or bytes after the message (we ignore them; pyasn1 too)
        return
    version, community, _, rid, status, index, vbs = ours
    mine = (version, community, rid, status, index, [(vb.oid, vb.value) for vb in vbs])
    if mine != theirs[:-1]:
        raise PropertyViolation(f"differs from pyasn1: ours {mine!r:.400} pyasn1 {theirs[:-1]!r:.400}")


def check(data: bytes, *, with_pyasn1: bool = True) -> None:
    ours = check_decoders(data)
    check_client(data)
    if with_pyasn1:
        differential(data, ours)


# -- Atheris entry point ----------------------------------------------------------------------------

def main(argv: list[str]) -> None:
    import atheris

    with atheris.instrument_imports(include=["probe.sources.snmp"]):
        from probe.sources.snmp import ber, engine  # noqa: F401

    corpus = [a for a in argv[1:] if not a.startswith("-")]
    if corpus:
        write_seeds(Path(corpus[0]))

    def one(data: bytes) -> None:
        check(data)

    atheris.Setup(argv, one)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
