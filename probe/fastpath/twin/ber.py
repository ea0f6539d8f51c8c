"""The pure-Python twin of the compiled BER varbind decoder (probe/fastpath/kernels/ber.pxi), and the BER
primitives the SNMP codec (probe/sources/snmp/ber.py) shares with it: TLV headers, OBJECT IDENTIFIERs and
the bounds of what SNMP carries. Both decoders give the same varbinds, or the same BerError message, for
every input (tests/unit/test_fastpath_ber.py).
"""
from __future__ import annotations

from probe.sources.snmp.client import (
    COUNTER32, COUNTER64, END_OF_MIB_VIEW, GAUGE32, INTEGER, IPADDR, NO_SUCH_INSTANCE, NO_SUCH_OBJECT, NULL,
    OBJECT_ID, OCTETS, OPAQUE, TIMETICKS, BerError, Oid, Varbind,
)

__all__ = ["ber_varbinds"]

# Application/context value tags -> (type name, kind). kind: 0 signed int, 1 unsigned int, 2 bytes,
# 3 OID, 4 IpAddress, 5 no value.
_VALUE_TAGS = {
    0x02: (INTEGER, 0), 0x04: (OCTETS, 2), 0x05: (NULL, 5), 0x06: (OBJECT_ID, 3), 0x40: (IPADDR, 4),
    0x41: (COUNTER32, 1), 0x42: (GAUGE32, 1), 0x43: (TIMETICKS, 1), 0x44: (OPAQUE, 2), 0x45: (OCTETS, 2),
    0x46: (COUNTER64, 1), 0x47: (GAUGE32, 1), 0x80: (NO_SUCH_OBJECT, 5), 0x81: (NO_SUCH_INSTANCE, 5),
    0x82: (END_OF_MIB_VIEW, 5), 0x03: (OCTETS, 2),  # BIT STRING (SMIv1 BITS on old agents)
}


# Bounds of what SNMP carries (RFC 2578 7.1): integers of at most 64 bits (Counter64; 9 bytes with the
# leading zero of an unsigned value), OIDs of at most 128 sub-identifiers of at most 32 bits each.
# Without them a lying agent's 1,800-byte INTEGER decodes to a number that str() refuses (Python's
# 4,300-digit limit: a ValueError far from here, in an error message or a metric), and a 60 KB arc
# costs a quadratic decode.
MAX_INT_BYTES = 9
MAX_OID_ARCS = 128
MAX_ARC = (1 << 32) - 1


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


def ber_varbinds(data: bytes, pos: int, end: int) -> list[Varbind]:
    """The varbinds of the VarBindList contents data[pos:end]: one `Varbind` per SEQUENCE { name,
    value }, BerError (what, at which byte) on anything malformed. The hot path of every walk."""
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
