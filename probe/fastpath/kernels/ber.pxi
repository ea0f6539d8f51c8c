# BER varbind decoder: the hot path of every SNMP walk (v1/v2c and v3 alike). Twin and specification:
# probe/fastpath/twin/ber.py, whose every check it makes in the same order with the same message, so both
# give the same varbinds or the same BerError for any input (tests/unit/test_fastpath_ber.py).
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from cpython.ref cimport Py_INCREF
from cpython.long cimport PyLong_FromUnsignedLongLong, PyLong_FromLongLong
from cpython.object cimport PyObject_GenericSetAttr

from probe.sources.snmp.client import (
    COUNTER32 as _COUNTER32, COUNTER64 as _COUNTER64, END_OF_MIB_VIEW as _END_OF_MIB_VIEW, GAUGE32 as _GAUGE32,
    INTEGER as _INTEGER, IPADDR as _IPADDR, NO_SUCH_INSTANCE as _NO_SUCH_INSTANCE, NO_SUCH_OBJECT as _NO_SUCH_OBJECT,
    NULL as _NULL, OBJECT_ID as _OBJECT_ID, OCTETS as _OCTETS, OPAQUE as _OPAQUE, TIMETICKS as _TIMETICKS,
    BerError as _BerError, Varbind as _Varbind,
)

__all__ += ["ber_varbinds"]

DEF _MAX_INT_BYTES = 9
DEF _MAX_OID_ARCS = 128
DEF _MAX_ARC = 0xFFFFFFFF

# value tag -> kind: 0 signed int, 1 unsigned int, 2 bytes, 3 OID, 4 IpAddress, 5 no value, -1 unknown
cdef signed char _VKIND[256]
cdef object _VNAME = [None] * 256
cdef int _t
for _t in range(256):
    _VKIND[_t] = -1
for _t, _name, _kind in (
        (0x02, _INTEGER, 0), (0x04, _OCTETS, 2), (0x05, _NULL, 5), (0x06, _OBJECT_ID, 3), (0x40, _IPADDR, 4),
        (0x41, _COUNTER32, 1), (0x42, _GAUGE32, 1), (0x43, _TIMETICKS, 1), (0x44, _OPAQUE, 2), (0x45, _OCTETS, 2),
        (0x46, _COUNTER64, 1), (0x47, _GAUGE32, 1), (0x80, _NO_SUCH_OBJECT, 5), (0x81, _NO_SUCH_INSTANCE, 5),
        (0x82, _END_OF_MIB_VIEW, 5), (0x03, _OCTETS, 2)):
    _VKIND[_t] = _kind
    _VNAME[_t] = _name


# Varbind is a frozen dataclass with slots: its generated __init__ (three object.__setattr__ calls in Python)
# costs as much as decoding the varbind. The slots are set here as that __init__ sets them, which holds only
# while Varbind is exactly that: checked at import.
if getattr(_Varbind, "__post_init__", None) is not None or tuple(_Varbind.__slots__) != ("oid", "type", "value"):
    raise ImportError("probe.sources.snmp.client.Varbind is no longer a plain (oid, type, value) slots class: "
                      "ber.pxi must construct it through its __init__")
cdef object _VB_NEW = _Varbind.__new__
cdef str _S_OID = "oid", _S_TYPE = "type", _S_VALUE = "value"


cdef inline object _varbind(object oid, object type_name, object value):
    cdef object vb = _VB_NEW(_Varbind)
    PyObject_GenericSetAttr(vb, _S_OID, oid)
    PyObject_GenericSetAttr(vb, _S_TYPE, type_name)
    PyObject_GenericSetAttr(vb, _S_VALUE, value)
    return vb


cdef inline Py_ssize_t _ber_header(const unsigned char* d, Py_ssize_t pos, Py_ssize_t end,
                                   Py_ssize_t* start, Py_ssize_t* stop) except -1:
    """The tag at pos; start/stop of its contents, checked to fit before end (twin: _header)."""
    cdef Py_ssize_t n, k, i
    cdef int tag
    if pos + 2 > end:
        raise _BerError(f"truncated TLV at byte {pos}")
    tag = d[pos]
    n = d[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 4 or pos + k > end:
            raise _BerError(f"bad length encoding at byte {pos - 1}")
        n = 0
        for i in range(k):
            n = (n << 8) | d[pos + i]
        pos += k
    if pos + n > end:
        raise _BerError(f"length {n} at byte {pos} runs past the end of its container")
    start[0] = pos
    stop[0] = pos + n
    return tag


cdef object _ber_oid(const unsigned char* d, Py_ssize_t s, Py_ssize_t e, Py_ssize_t at):
    """The OID of the contents d[s:e] as a tuple (twin: decode_oid)."""
    cdef Py_ssize_t i, n = 0, small = 0
    cdef unsigned long long value = 0
    cdef unsigned int arcs[_MAX_OID_ARCS + 1]
    cdef unsigned char b
    cdef unsigned long long first, a0, a1
    cdef object t, o
    if e == s:
        raise _BerError(f"empty OBJECT IDENTIFIER at byte {at}")
    if e - s >= _MAX_OID_ARCS:
        for i in range(s, e):
            small += d[i] < 0x80
        if small >= _MAX_OID_ARCS:
            raise _BerError(f"OBJECT IDENTIFIER at byte {at} has more than {_MAX_OID_ARCS} sub-identifiers")
    for i in range(s, e):
        b = d[i]
        value = (value << 7) | (b & 0x7F)
        if value > _MAX_ARC:
            raise _BerError(f"OBJECT IDENTIFIER at byte {at}: sub-identifier {n + 1} exceeds 32 bits")
        if not b & 0x80:
            arcs[n] = <unsigned int>value
            n += 1
            value = 0
    if d[e - 1] & 0x80:
        raise _BerError(f"OBJECT IDENTIFIER at byte {at} ends inside an arc")
    t = PyTuple_New(n + 1)
    first = arcs[0]
    if first < 40:
        a0, a1 = 0, first
    elif first < 80:
        a0, a1 = 1, first - 40
    else:
        a0, a1 = 2, first - 80
    o = PyLong_FromUnsignedLongLong(a0)
    Py_INCREF(o)
    PyTuple_SET_ITEM(t, 0, o)
    o = PyLong_FromUnsignedLongLong(a1)
    Py_INCREF(o)
    PyTuple_SET_ITEM(t, 1, o)
    for i in range(1, n):
        o = PyLong_FromUnsignedLongLong(arcs[i])
        Py_INCREF(o)
        PyTuple_SET_ITEM(t, i + 1, o)
    return t


cdef str _ber_int_size(Py_ssize_t n, Py_ssize_t at):
    return (f"INTEGER with no contents at byte {at}" if n == 0
            else f"integer of {n} bytes at byte {at}: more than {_MAX_INT_BYTES} (64 bits)")


def ber_varbinds(bytes data, Py_ssize_t pos, Py_ssize_t end):
    """The varbinds of the VarBindList contents data[pos:end]: one `Varbind` per SEQUENCE { name,
    value }, BerError (what, at which byte) on anything malformed. The hot path of every walk."""
    cdef const unsigned char* d = data
    cdef Py_ssize_t n, k, i, vb_end, s, e, vpos
    cdef int tag, vtag, kind
    cdef unsigned long long u
    cdef long long v
    cdef list out = []
    if pos < 0 or end > len(data) or pos > end:
        raise ValueError(f"span {pos}:{end} outside the {len(data)} bytes given")
    while pos < end:
        if pos + 2 > end:
            raise _BerError(f"truncated varbind at byte {pos}")
        if d[pos] != 0x30:
            raise _BerError(f"varbind at byte {pos} is not a SEQUENCE")
        n = d[pos + 1]
        pos += 2
        if n & 0x80:
            k = n & 0x7F
            if k == 0 or k > 4:
                raise _BerError(f"bad length encoding at byte {pos - 1}")
            n = 0
            for i in range(min(k, len(data) - pos)):  # the twin's int.from_bytes reads what there is
                n = (n << 8) | d[pos + i]
            pos += k
        vb_end = pos + n
        if vb_end > end:
            raise _BerError(f"varbind at byte {pos} runs past the end of the list")
        tag = _ber_header(d, pos, vb_end, &s, &e)
        if tag != 0x06:
            raise _BerError(f"varbind name at byte {pos} is not an OBJECT IDENTIFIER")
        oid = _ber_oid(d, s, e, pos)
        vpos = e
        vtag = _ber_header(d, vpos, vb_end, &s, &e)
        if e != vb_end:
            raise _BerError(f"trailing bytes in varbind at byte {pos}")
        kind = _VKIND[vtag]
        if kind < 0:
            raise _BerError(f"unknown value tag 0x{vtag:02x} at byte {vpos}")
        if (kind == 1 or kind == 0) and not 0 < e - s <= _MAX_INT_BYTES:
            raise _BerError(_ber_int_size(e - s, vpos))
        if kind == 1:
            if e - s <= 8:
                u = 0
                for i in range(s, e):
                    u = (u << 8) | d[i]
                value = PyLong_FromUnsignedLongLong(u)
            else:
                value = int.from_bytes(data[s:e], "big")
        elif kind == 2:
            value = data[s:e]
        elif kind == 0:
            if e - s <= 8:
                u = 0xFFFFFFFFFFFFFFFF if d[s] & 0x80 else 0
                for i in range(s, e):
                    u = (u << 8) | d[i]
                value = PyLong_FromLongLong(<long long>u)
            else:
                value = int.from_bytes(data[s:e], "big", signed=True)
        elif kind == 5:
            if e != s:
                raise _BerError(f"NULL with {e - s} bytes of contents at byte {vpos}")
            value = None
        elif kind == 3:
            value = _ber_oid(d, s, e, vpos)
        else:
            if e - s != 4:
                raise _BerError(f"IpAddress of {e - s} bytes at byte {s}")
            value = "%d.%d.%d.%d" % (d[s], d[s + 1], d[s + 2], d[s + 3])
        out.append(_varbind(oid, _VNAME[vtag], value))
        pos = vb_end
    return out
