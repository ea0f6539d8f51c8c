"""BER encoding and decoding of SNMP v1/v2c messages, written for speed.

pysnmp's pyasn1 codec builds an object per tag and dominates the cost of a walk (LAB.md: naive pysnmp
walks at a tenth to a quarter of Net-SNMP's rate). SNMP v1/v2c messages use a tiny, fixed subset of BER:
this module encodes requests from cached OID encodings and decodes responses straight into `Varbind`s,
with bounds checks on every length so a malformed or hostile datagram raises `BerError` (never an
IndexError, never an endless loop). v3 messages and their security (USM) are in usm.py, on top of
this module; the engine-ID discovery probe, used to tell "agent alive, credential wrong" from "agent
silent", is built here.
"""
from __future__ import annotations

import functools
from typing import Sequence

from probe.sources.snmp.client import (
    COUNTER32, COUNTER64, END_OF_MIB_VIEW, GAUGE32, INTEGER, IPADDR, NO_SUCH_INSTANCE, NO_SUCH_OBJECT, NULL,
    OBJECT_ID, OCTETS, OPAQUE, TIMETICKS, Oid, Varbind,
)

# PDU tags (context-specific, constructed)
GET = 0xA0
GETNEXT = 0xA1
RESPONSE = 0xA2
SET = 0xA3
TRAP_V1 = 0xA4
GETBULK = 0xA5
INFORM = 0xA6
TRAP_V2 = 0xA7
REPORT = 0xA8

V1, V2C, V3 = 0, 1, 3

ERROR_STATUS = {
    0: "noError", 1: "tooBig", 2: "noSuchName", 3: "badValue", 4: "readOnly", 5: "genErr", 6: "noAccess",
    7: "wrongType", 8: "wrongLength", 9: "wrongEncoding", 10: "wrongValue", 11: "noCreation",
    12: "inconsistentValue", 13: "resourceUnavailable", 14: "commitFailed", 15: "undoFailed",
    16: "authorizationError", 17: "notWritable", 18: "inconsistentName",
}
TOO_BIG = 1
NO_SUCH_NAME = 2
ACCESS_DENIED = (6, 16)  # noAccess, authorizationError

_NULL_VALUE = b"\x05\x00"

# Application/context value tags -> (type name, kind). kind: 0 signed int, 1 unsigned int, 2 bytes,
# 3 OID, 4 IpAddress, 5 no value.
_VALUE_TAGS = {
    0x02: (INTEGER, 0), 0x04: (OCTETS, 2), 0x05: (NULL, 5), 0x06: (OBJECT_ID, 3), 0x40: (IPADDR, 4),
    0x41: (COUNTER32, 1), 0x42: (GAUGE32, 1), 0x43: (TIMETICKS, 1), 0x44: (OPAQUE, 2), 0x45: (OCTETS, 2),
    0x46: (COUNTER64, 1), 0x47: (GAUGE32, 1), 0x80: (NO_SUCH_OBJECT, 5), 0x81: (NO_SUCH_INSTANCE, 5),
    0x82: (END_OF_MIB_VIEW, 5), 0x03: (OCTETS, 2),  # BIT STRING (SMIv1 BITS on old agents)
}


class BerError(ValueError):
    """A datagram that is not a well-formed SNMP message; the message says what and at which byte."""


# Bounds of what SNMP carries (RFC 2578 7.1): integers of at most 64 bits (Counter64; 9 bytes with the
# leading zero of an unsigned value), OIDs of at most 128 sub-identifiers of at most 32 bits each.
# Without them a lying agent's 1,800-byte INTEGER decodes to a number that str() refuses (Python's
# 4,300-digit limit: a ValueError far from here, in an error message or a metric), and a 60 KB arc
# costs a quadratic decode.
MAX_INT_BYTES = 9
MAX_OID_ARCS = 128
MAX_ARC = (1 << 32) - 1


# -- encoding ---------------------------------------------------------------------------------------

def _len(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes((tag,)) + _len(len(body)) + body


def encode_int(value: int, tag: int = 0x02) -> bytes:
    length = max(1, (value + (value < 0)).bit_length() // 8 + 1)
    return _tlv(tag, value.to_bytes(length, "big", signed=True))


@functools.lru_cache(maxsize=4096)
def encode_oid(oid: Oid) -> bytes:
    """The full TLV of an OBJECT IDENTIFIER (cached: walks send the same prefixes again and again)."""
    if len(oid) < 2 or oid[0] > 2 or (oid[0] < 2 and oid[1] >= 40):
        raise ValueError(f"cannot encode OID {'.'.join(map(str, oid))}: needs at least two arcs, first 0-2")
    out = bytearray()
    for arc in (oid[0] * 40 + oid[1], *oid[2:]):
        if arc < 0 or arc >= 1 << 64:
            raise ValueError(f"cannot encode OID {'.'.join(map(str, oid))}: arc {arc} out of range")
        if arc < 0x80:
            out.append(arc)
            continue
        chunk = []
        while arc:
            chunk.append(arc & 0x7F)
            arc >>= 7
        chunk.reverse()
        out.extend(b | 0x80 for b in chunk[:-1])
        out.append(chunk[-1])
    return _tlv(0x06, bytes(out))


def encode_request(version: int, community: bytes, pdu_type: int, request_id: int, oids: Sequence[Oid], *,
                   non_repeaters: int = 0, max_repetitions: int = 0) -> bytes:
    """A v1/v2c GET / GETNEXT / GETBULK message. For GETBULK, the error-status and error-index fields
    carry non-repeaters and max-repetitions (RFC 3416)."""
    pdu = encode_pdu(pdu_type, request_id, oids, non_repeaters=non_repeaters, max_repetitions=max_repetitions)
    return _tlv(0x30, encode_int(version) + _tlv(0x04, community) + pdu)


def encode_pdu(pdu_type: int, request_id: int, oids: Sequence[Oid], *, non_repeaters: int = 0,
               max_repetitions: int = 0) -> bytes:
    """The PDU TLV of a request (the part a v1/v2c message and a v3 ScopedPDU share)."""
    vbs = b"".join(_tlv(0x30, encode_oid(o) + _NULL_VALUE) for o in oids)
    if pdu_type == GETBULK:
        a, b = non_repeaters, max_repetitions
    else:
        a = b = 0
    return _tlv(pdu_type, encode_int(request_id) + encode_int(a) + encode_int(b) + _tlv(0x30, vbs))


def encode_v3_discovery(msg_id: int, request_id: int) -> bytes:
    """An SNMPv3 engine-ID discovery probe (RFC 3414 4): noAuthNoPriv, reportable, empty user and
    engine ID, empty GET. Any v3-capable agent answers it with a Report, whatever its users: proof that
    it is alive even when a credential is refused."""
    header = _tlv(0x30, encode_int(msg_id) + encode_int(65507) + _tlv(0x04, b"\x04") + encode_int(3))
    usm = _tlv(0x04, _tlv(0x30, _tlv(0x04, b"") + encode_int(0) + encode_int(0) + _tlv(0x04, b"")
                      + _tlv(0x04, b"") + _tlv(0x04, b"")))
    pdu = _tlv(GET, encode_int(request_id) + encode_int(0) + encode_int(0) + _tlv(0x30, b""))
    scoped = _tlv(0x30, _tlv(0x04, b"") + _tlv(0x04, b"") + pdu)
    return _tlv(0x30, encode_int(3) + header + usm + scoped)


# -- decoding ---------------------------------------------------------------------------------------

def _header(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, start of contents, end of contents) of the TLV at pos; checks it fits before `end`."""
    if pos + 2 > end:
        raise BerError(f"truncated TLV at byte {pos}")
    tag = data[pos]
    n = data[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 4 or pos + k > end:
            raise BerError(f"bad length encoding at byte {pos - 1}")
        n = int.from_bytes(data[pos:pos + k], "big")
        pos += k
    stop = pos + n
    if stop > end:
        raise BerError(f"length {n} at byte {pos} runs past the end of its container")
    return tag, pos, stop


def _int(data: bytes, pos: int, end: int) -> tuple[int, int]:
    tag, s, e = _header(data, pos, end)
    if tag != 0x02:
        raise BerError(f"expected INTEGER at byte {pos}, got tag 0x{tag:02x}")
    if not 0 < e - s <= MAX_INT_BYTES:
        raise BerError(_int_size(e - s, pos))
    return int.from_bytes(data[s:e], "big", signed=True), e


def _int_size(n: int, at: int) -> str:
    return (f"INTEGER with no contents at byte {at}" if n == 0
            else f"integer of {n} bytes at byte {at}: more than {MAX_INT_BYTES} (64 bits)")


def decode_oid(body: bytes, at: int = 0) -> Oid:
    """The arcs of an OBJECT IDENTIFIER's contents; `at` (where its TLV starts in the datagram) only
    places the error message."""
    if not body:
        raise BerError(f"empty OBJECT IDENTIFIER at byte {at}")
    if len(body) >= MAX_OID_ARCS and sum(b < 0x80 for b in body) >= MAX_OID_ARCS:
        raise BerError(f"OBJECT IDENTIFIER at byte {at} has more than {MAX_OID_ARCS} sub-identifiers")
    if max(body) < 0x80:  # every arc fits in one byte: the common case
        first = body[0]
        head = (0, first) if first < 40 else ((1, first - 40) if first < 80 else (2, first - 80))
        return head + tuple(body[1:])
    arcs = []
    value = 0
    for b in body:
        value = (value << 7) | (b & 0x7F)
        if value > MAX_ARC:
            raise BerError(f"OBJECT IDENTIFIER at byte {at}: sub-identifier {len(arcs) + 1} exceeds 32 bits")
        if not b & 0x80:
            arcs.append(value)
            value = 0
    if body[-1] & 0x80:
        raise BerError(f"OBJECT IDENTIFIER at byte {at} ends inside an arc")
    first = arcs[0]
    head = (0, first) if first < 40 else ((1, first - 40) if first < 80 else (2, first - 80))
    return head + tuple(arcs[1:])


def request_id_of(data: bytes) -> int | None:
    """The request-id of a v1/v2c message without decoding the rest; None if it is not one."""
    try:
        tag, s, e = _header(data, 0, len(data))
        if tag != 0x30:
            return None
        _, s = _int(data, s, e)       # version
        _, _, s = _header(data, s, e)  # community
        _, ps, pe = _header(data, s, e)
        return _int(data, ps, pe)[0]
    except BerError:
        return None


def decode_response(data: bytes) -> tuple[int, bytes, int, int, int, int, list[Varbind]]:
    """(version, community, pdu type, request id, error status, error index, varbinds) of a v1/v2c
    message. Raises BerError on anything malformed."""
    end = len(data)
    tag, s, e = _header(data, 0, end)
    if tag != 0x30:
        raise BerError(f"not an SNMP message (tag 0x{tag:02x} at byte 0)")
    version, s = _int(data, s, e)
    tag, cs, ce = _header(data, s, e)
    if tag != 0x04:
        raise BerError(f"community at byte {s} is not an OCTET STRING (tag 0x{tag:02x})")
    community = data[cs:ce]
    pdu_type, ps, pe = _header(data, ce, e)
    request_id, error_status, error_index, _, vs, ve = decode_pdu_body(data, ps, pe)
    return version, community, pdu_type, request_id, error_status, error_index, decode_varbinds(data, vs, ve)


def decode_pdu_body(data: bytes, pos: int, end: int) -> tuple[int, int, int, int, int, int]:
    """(request id, error status, error index, where the varbind list's header starts, where its contents
    start, where they end) of the PDU body data[pos:end]
    of a v2-shaped PDU (responses, requests, v2 traps and informs). The varbind list must end the PDU:
    bytes after it are refused, as pyasn1 and Net-SNMP do."""
    request_id, pos = _int(data, pos, end)
    error_status, pos = _int(data, pos, end)
    error_index, pos = _int(data, pos, end)
    tag, vs, ve = _header(data, pos, end)
    if tag != 0x30:
        raise BerError(f"varbind list at byte {pos} is not a SEQUENCE (tag 0x{tag:02x})")
    if ve != end:
        raise BerError(f"{end - ve} bytes after the varbind list (byte {ve})")
    return request_id, error_status, error_index, pos, vs, ve


def decode_varbinds(data: bytes, pos: int, end: int) -> list[Varbind]:
    out = []
    append = out.append
    tags = _VALUE_TAGS
    while pos < end:
        # Inlined _header for the three TLVs of each varbind: this loop is the hot path of a walk.
        if pos + 2 > end:
            raise BerError(f"truncated varbind at byte {pos}")
        if data[pos] != 0x30:
            raise BerError(f"varbind at byte {pos} is not a SEQUENCE")
        n = data[pos + 1]
        pos += 2
        if n & 0x80:
            k = n & 0x7F
            if k == 0 or k > 4:
                raise BerError(f"bad length encoding at byte {pos - 1}")
            n = int.from_bytes(data[pos:pos + k], "big")
            pos += k
        vb_end = pos + n
        if vb_end > end:
            raise BerError(f"varbind at byte {pos} runs past the end of the list")
        tag, s, e = _header(data, pos, vb_end)
        if tag != 0x06:
            raise BerError(f"varbind name at byte {pos} is not an OBJECT IDENTIFIER")
        oid = decode_oid(data[s:e], pos)
        vpos = e
        vtag, s, e = _header(data, vpos, vb_end)
        if e != vb_end:
            raise BerError(f"trailing bytes in varbind at byte {pos}")
        try:
            type_name, kind = tags[vtag]
        except KeyError:
            raise BerError(f"unknown value tag 0x{vtag:02x} at byte {vpos}") from None
        if (kind == 1 or kind == 0) and not 0 < e - s <= MAX_INT_BYTES:
            raise BerError(_int_size(e - s, vpos))
        if kind == 1:
            value = int.from_bytes(data[s:e], "big")
        elif kind == 2:
            value = data[s:e]
        elif kind == 0:
            value = int.from_bytes(data[s:e], "big", signed=True)
        elif kind == 5:
            if e != s:
                raise BerError(f"NULL with {e - s} bytes of contents at byte {vpos}")
            value = None
        elif kind == 3:
            value = decode_oid(data[s:e], vpos)
        else:
            if e - s != 4:
                raise BerError(f"IpAddress of {e - s} bytes at byte {s}")
            value = "%d.%d.%d.%d" % tuple(data[s:e])
        append(Varbind(oid, type_name, value))
        pos = vb_end
    return out


# -- v3 reports ------------------------------------------------------------------------------------

USM_STATS = (1, 3, 6, 1, 6, 3, 15, 1, 1)
USM_REPORTS = {
    USM_STATS + (1, 0): "unsupportedSecLevels",
    USM_STATS + (2, 0): "notInTimeWindows",
    USM_STATS + (3, 0): "unknownUserNames",
    USM_STATS + (4, 0): "unknownEngineIDs",
    USM_STATS + (5, 0): "wrongDigests",
    USM_STATS + (6, 0): "decryptionErrors",
}


def v3_engine_id(data: bytes) -> bytes | None:
    """The authoritative engine ID in an SNMPv3 message's USM parameters (a discovery report)."""
    try:
        tag, s, e = _header(data, 0, len(data))
        version, s = _int(data, s, e)
        if tag != 0x30 or version != V3:
            return None
        _, _, s = _header(data, s, e)            # msgGlobalData
        tag, ps, pe = _header(data, s, e)        # msgSecurityParameters
        if tag != 0x04:
            return None
        tag, us, ue = _header(data, ps, pe)      # UsmSecurityParameters
        tag, es, ee = _header(data, us, ue)      # msgAuthoritativeEngineID
        return data[es:ee] if tag == 0x04 and ee > es else None
    except BerError:
        return None


def is_v3_report(data: bytes) -> bool:
    """True if `data` is an SNMPv3 message (the answer to `encode_v3_discovery`)."""
    try:
        tag, s, e = _header(data, 0, len(data))
        return tag == 0x30 and _int(data, s, e)[0] == V3
    except BerError:
        return False
