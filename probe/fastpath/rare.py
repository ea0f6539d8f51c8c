"""Decoder for the rare, variable-length frames, off the hot path: DHCP, LLDP, CDP, mDNS, LLMNR, NetBIOS-NS.

The frame parser (fastpath.parse_frames) flags these frames (probe.fastpath.layout.RARE_FLAGS) and records where
their payload starts; this module turns the few of them into dicts of names a technician recognises
(neighbour switch and port, DHCP host names and fingerprints, mDNS service names) for replay and the
inventory. Plain Python, every length checked: a frame that lies about a length gives
{"protocol": ..., "malformed": "what was wrong"} with whatever was decoded before, never an exception.

    for info in decode_batch(batch, records, limit=1000):
        ...
"""
from __future__ import annotations

import ipaddress
import struct

import numpy as np

from probe.fastpath.layout import F_CDP, F_DHCP, F_LLDP, F_LLMNR, F_MALFORMED, F_MDNS, F_NBNS, RARE_FLAGS

__all__ = ["decode_batch", "decode_rare", "Malformed"]

MAX_NAMES = 64       # names kept per mDNS/LLMNR message
MAX_TEXT = 255       # characters kept per text field


class Malformed(Exception):
    pass


def _need(buf: bytes, pos: int, n: int, what: str) -> None:
    if pos < 0 or n < 0 or pos + n > len(buf):
        raise Malformed(f"{what}: needs {n} bytes at offset {pos}, frame has {len(buf)}")


def _text(raw: bytes) -> str:
    return raw[:MAX_TEXT].decode("utf-8", "replace").rstrip("\x00")


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _ip4(raw: bytes) -> str:
    return str(ipaddress.IPv4Address(raw))


# --- DHCP -------------------------------------------------------------------------------------------

_DHCP_TYPES = {1: "discover", 2: "offer", 3: "request", 4: "decline", 5: "ack", 6: "nak", 7: "release", 8: "inform"}


def decode_dhcp(buf: bytes, p: int) -> dict:
    out: dict = {"protocol": "dhcp"}
    _need(buf, p, 240, "BOOTP header")
    if buf[p + 236:p + 240] != b"\x63\x82\x53\x63":
        raise Malformed("BOOTP: no DHCP magic cookie")
    out["op"] = "request" if buf[p] == 1 else "reply"
    out["xid"] = struct.unpack_from(">I", buf, p + 4)[0]
    for name, off in (("ciaddr", 12), ("yiaddr", 16), ("siaddr", 20), ("giaddr", 24)):
        if buf[p + off:p + off + 4] != b"\0\0\0\0":
            out[name] = _ip4(buf[p + off:p + off + 4])
    hlen = buf[p + 2]
    if buf[p + 1] == 1 and hlen == 6:
        out["client_mac"] = _mac(buf[p + 28:p + 34])
    q = p + 240
    while q < len(buf):
        code = buf[q]
        if code == 0:
            q += 1
            continue
        if code == 255:
            break
        _need(buf, q, 2, "DHCP option header")
        ln = buf[q + 1]
        _need(buf, q + 2, ln, f"DHCP option {code}")
        v = buf[q + 2:q + 2 + ln]
        if code == 53 and ln >= 1:
            out["message_type"] = _DHCP_TYPES.get(v[0], v[0])
        elif code == 12:
            out["hostname"] = _text(v)
        elif code == 60:
            out["vendor_class"] = _text(v)
        elif code == 55:
            out["parameter_request_list"] = list(v)
        elif code == 54 and ln == 4:
            out["server_id"] = _ip4(v)
        elif code == 50 and ln == 4:
            out["requested_ip"] = _ip4(v)
        elif code == 61 and ln >= 1:
            out["client_id"] = v.hex()
        elif code == 81 and ln >= 3:
            out["fqdn"] = _text(v[3:])
        elif code == 51 and ln == 4:
            out["lease_seconds"] = struct.unpack(">I", v)[0]
        q += 2 + ln
    return out


# --- LLDP (IEEE 802.1AB) ----------------------------------------------------------------------------

_LLDP_CAPS = ["other", "repeater", "bridge", "wlan_ap", "router", "telephone", "docsis", "station", "c_vlan",
              "s_vlan", "tpmr"]


def _lldp_id(v: bytes) -> str:
    if not v:
        return ""
    sub, val = v[0], v[1:]
    if sub == 4 and len(val) == 6:       # MAC address subtype (chassis 4, port 3 use MACs)
        return _mac(val)
    if sub == 3 and len(val) == 6:
        return _mac(val)
    if sub == 5 and len(val) >= 5 and val[0] == 1:
        return _ip4(val[1:5])
    return _text(val)


def decode_lldp(buf: bytes, p: int) -> dict:
    out: dict = {"protocol": "lldp"}
    for _ in range(512):
        _need(buf, p, 2, "LLDP TLV header")
        head = struct.unpack_from(">H", buf, p)[0]
        t, ln = head >> 9, head & 0x1FF
        _need(buf, p + 2, ln, f"LLDP TLV {t}")
        v = buf[p + 2:p + 2 + ln]
        p += 2 + ln
        if t == 0:
            break
        if t == 1:
            out["chassis_id"] = _lldp_id(v)
        elif t == 2:
            out["port_id"] = _lldp_id(v)
        elif t == 3 and ln == 2:
            out["ttl"] = struct.unpack(">H", v)[0]
        elif t == 4:
            out["port_description"] = _text(v)
        elif t == 5:
            out["system_name"] = _text(v)
        elif t == 6:
            out["system_description"] = _text(v)
        elif t == 7 and ln == 4:
            enabled = struct.unpack(">H", v[2:4])[0]
            out["capabilities"] = [n for i, n in enumerate(_LLDP_CAPS) if enabled & (1 << i)]
        elif t == 8 and ln >= 2:
            alen = v[0]
            if 1 <= alen <= ln - 1 and v[1] == 1 and alen == 5:
                out.setdefault("management_addresses", []).append(_ip4(v[2:6]))
    return out


# --- CDP ------------------------------------------------------------------------------------------------

def decode_cdp(buf: bytes, p: int) -> dict:
    out: dict = {"protocol": "cdp"}
    _need(buf, p, 4, "CDP header")
    out["version"] = buf[p]
    out["ttl"] = buf[p + 1]
    p += 4
    for _ in range(256):
        if p >= len(buf):
            break
        _need(buf, p, 4, "CDP TLV header")
        t, ln = struct.unpack_from(">HH", buf, p)
        if ln < 4:
            raise Malformed(f"CDP TLV {t}: length {ln} shorter than its header")
        _need(buf, p, ln, f"CDP TLV {t}")
        v = buf[p + 4:p + ln]
        p += ln
        if t == 0x0001:
            out["device_id"] = _text(v)
        elif t == 0x0003:
            out["port_id"] = _text(v)
        elif t == 0x0005:
            out["software_version"] = _text(v)
        elif t == 0x0006:
            out["platform"] = _text(v)
        elif t == 0x0004 and len(v) == 4:
            out["capabilities"] = struct.unpack(">I", v)[0]  # bits: router 0x01, bridge 0x04, switch 0x08...
        elif t == 0x000A and len(v) == 2:
            out["native_vlan"] = struct.unpack(">H", v)[0]
        elif t == 0x0002 and len(v) >= 4:
            addrs = []
            n, q = struct.unpack_from(">I", v, 0)[0], 4
            for _ in range(min(n, 16)):
                _need(v, q, 2, "CDP address")
                plen = v[q + 1]
                _need(v, q + 2, plen + 2, "CDP address")
                alen = struct.unpack_from(">H", v, q + 2 + plen)[0]
                _need(v, q + 4 + plen, alen, "CDP address")
                if v[q] == 1 and plen == 1 and v[q + 2] == 0xCC and alen == 4:
                    addrs.append(_ip4(v[q + 4 + plen:q + 8 + plen]))
                q += 4 + plen + alen
            out["addresses"] = addrs
    return out


# --- DNS-format names (mDNS, LLMNR) and NetBIOS -------------------------------------------------------

def _dns_name(msg: bytes, pos: int) -> tuple[str, int]:
    labels, end, jumps = [], None, 0
    while True:
        _need(msg, pos, 1, "DNS name")
        ln = msg[pos]
        if ln == 0:
            pos += 1
            break
        if ln & 0xC0 == 0xC0:
            _need(msg, pos, 2, "DNS compression pointer")
            if end is None:
                end = pos + 2
            pos = struct.unpack_from(">H", msg, pos)[0] & 0x3FFF
            jumps += 1
            if jumps > 32:
                raise Malformed("DNS name: compression loop")
            continue
        if ln & 0xC0:
            raise Malformed(f"DNS name: bad label type 0x{ln:02x}")
        _need(msg, pos + 1, ln, "DNS label")
        labels.append(msg[pos + 1:pos + 1 + ln].decode("utf-8", "replace"))
        pos += 1 + ln
        if len(labels) > 128:
            raise Malformed("DNS name: too many labels")
    return ".".join(labels), (end if end is not None else pos)


_RTYPES = {1: "A", 12: "PTR", 16: "TXT", 28: "AAAA", 33: "SRV", 255: "ANY"}


def decode_dns_names(buf: bytes, p: int, protocol: str) -> dict:
    msg = buf[p:]
    _need(msg, 0, 12, f"{protocol} header")
    flags, qd, an, ns, ar = struct.unpack_from(">HHHHH", msg, 2)
    out: dict = {"protocol": protocol, "response": bool(flags & 0x8000), "questions": [], "records": []}
    pos = 12
    for _ in range(min(qd, MAX_NAMES)):
        name, pos = _dns_name(msg, pos)
        _need(msg, pos, 4, "question")
        qtype = struct.unpack_from(">H", msg, pos)[0]
        out["questions"].append({"name": name, "type": _RTYPES.get(qtype, qtype)})
        pos += 4
    for _ in range(min(an + ns + ar, MAX_NAMES)):
        name, pos = _dns_name(msg, pos)
        _need(msg, pos, 10, "resource record")
        rtype, _cls, _ttl, rdlen = struct.unpack_from(">HHIH", msg, pos)
        pos += 10
        _need(msg, pos, rdlen, "record data")
        rec: dict = {"name": name, "type": _RTYPES.get(rtype, rtype)}
        if rtype == 1 and rdlen == 4:
            rec["address"] = _ip4(msg[pos:pos + 4])
        elif rtype == 28 and rdlen == 16:
            rec["address"] = str(ipaddress.IPv6Address(msg[pos:pos + 16]))
        elif rtype == 12:
            rec["target"] = _dns_name(msg, pos)[0]
        elif rtype == 33 and rdlen >= 7:
            rec["port"] = struct.unpack_from(">H", msg, pos + 4)[0]
            rec["target"] = _dns_name(msg, pos + 6)[0]
        out["records"].append(rec)
        pos += rdlen
    return out


def decode_nbns(buf: bytes, p: int) -> dict:
    msg = buf[p:]
    _need(msg, 0, 12 + 34, "NetBIOS-NS message")
    flags, qd = struct.unpack_from(">HH", msg, 2)
    out: dict = {"protocol": "nbns", "response": bool(flags & 0x8000), "opcode": (flags >> 11) & 0xF}
    if msg[12] != 32:
        raise Malformed(f"NetBIOS name: encoded length {msg[12]} (expected 32)")
    enc = msg[13:45]
    raw = bytes(((a - 0x41) << 4) | (b - 0x41) for a, b in zip(enc[0::2], enc[1::2]) if 0x41 <= a <= 0x50 and 0x41 <= b <= 0x50)
    if len(raw) != 16:
        raise Malformed("NetBIOS name: bad first-level encoding")
    out["name"] = raw[:15].decode("ascii", "replace").rstrip()
    out["suffix"] = raw[15]
    return out


def decode_rare(frame: bytes, record) -> dict | None:
    """Decode one flagged frame given its FRAME_DTYPE record; None when it is not a rare frame."""
    flags = int(record["flags"])
    if not flags & RARE_FLAGS or flags & F_MALFORMED:
        return None
    p = int(record["payload_off"])
    if flags & F_DHCP:
        proto, fn = "dhcp", decode_dhcp
    elif flags & F_LLDP:
        proto, fn = "lldp", decode_lldp
    elif flags & F_CDP:
        proto, fn = "cdp", decode_cdp
    elif flags & F_MDNS:
        proto, fn = "mdns", lambda b, q: decode_dns_names(b, q, "mdns")
    elif flags & F_LLMNR:
        proto, fn = "llmnr", lambda b, q: decode_dns_names(b, q, "llmnr")
    elif flags & F_NBNS:
        proto, fn = "nbns", decode_nbns
    else:
        return None
    # UDP payloads end where the UDP length says, not at the Ethernet padding
    end = len(frame)
    if flags & (F_DHCP | F_MDNS | F_LLMNR | F_NBNS) and p >= 8:
        ulen = struct.unpack_from(">H", frame, p - 4)[0] if p - 4 >= 0 and p - 2 <= len(frame) else 0
        if ulen >= 8:
            end = min(end, p - 8 + ulen)
    buf = frame[:end]
    src = int(record["src_mac"])
    base = {"src_mac": ":".join(f"{(src >> s) & 0xFF:02x}" for s in range(40, -8, -8)), "ts": int(record["ts_ns"]) / 1e9}
    try:
        return {**base, **fn(buf, p)}
    except Malformed as exc:
        return {**base, "protocol": proto, "malformed": str(exc)}


def rare_index(records: np.ndarray) -> np.ndarray:
    """Positions of the records this decoder reads: a RARE_FLAGS protocol, not malformed."""
    flags = records["flags"]
    return np.flatnonzero(((flags & RARE_FLAGS) != 0) & ((flags & F_MALFORMED) == 0))


def decode_batch(batch, records: np.ndarray, limit: int = 1000) -> list[dict]:
    """Decode the rare frames of one parsed batch (at most `limit`, in frame order)."""
    idx = np.flatnonzero((records["flags"] & RARE_FLAGS) != 0)[:limit]  # decode_rare reports malformed ones
    out = []
    for i in idx:
        info = decode_rare(batch.frame(int(i)), records[i])
        if info is not None:
            out.append(info)
    return out
