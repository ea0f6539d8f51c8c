"""Twin of probe/fastpath/kernels/parse.pxi: the same frame parser, one frame at a time in plain Python."""
from __future__ import annotations

import numpy as np

from probe.fastpath.layout import FRAME_DTYPE

__all__ = ["parse_frames"]

F_MALFORMED = 1 << 0
F_TRUNCATED = 1 << 1
F_BROADCAST = 1 << 2
F_MULTICAST = 1 << 3
F_VLAN_TAGGED = 1 << 4
F_LLC = 1 << 5
F_IPV4 = 1 << 6
F_IPV6 = 1 << 7
F_FRAGMENT = 1 << 8
F_ARP = 1 << 9
F_ARP_GRATUITOUS = 1 << 10
F_TCP = 1 << 11
F_UDP = 1 << 12
F_ICMP = 1 << 13
F_DNS = 1 << 14
F_DNS_RESPONSE = 1 << 15
F_DHCP = 1 << 16
F_LLDP = 1 << 17
F_CDP = 1 << 18
F_STP = 1 << 19
F_MDNS = 1 << 20
F_LLMNR = 1 << 21
F_NBNS = 1 << 22
F_SSDP = 1 << 23

_FIELDS = FRAME_DTYPE.names
_M64 = (1 << 64) - 1
FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3


def _be(f, p, n):
    return int.from_bytes(f[p:p + n], "big")


HASH_MUL = 0x9E3779B97F4A7C15
HASH_MUL2 = 0xC2B2AE3D27D4EB4F
FRAME_HASH_BYTES = 128


def frame_hash(f, wire):
    """64-bit hash of the first FRAME_HASH_BYTES bytes and the wire length, never 0; the compiled
    frame_hash (two little-endian 8-byte lanes)."""
    m = min(len(f), FRAME_HASH_BYTES)
    h1 = FNV_OFFSET ^ ((wire * HASH_MUL) & _M64)
    h2 = HASH_MUL2 ^ m
    i = 0
    while i + 16 <= m:
        h1 = ((h1 ^ int.from_bytes(f[i:i + 8], "little")) * HASH_MUL) & _M64
        h2 = ((h2 ^ int.from_bytes(f[i + 8:i + 16], "little")) * HASH_MUL2) & _M64
        h1 ^= h1 >> 32
        h2 ^= h2 >> 29
        i += 16
    if i + 8 <= m:
        h1 = ((h1 ^ int.from_bytes(f[i:i + 8], "little")) * HASH_MUL) & _M64
        h1 ^= h1 >> 32
        i += 8
    if i < m:
        h2 = ((h2 ^ int.from_bytes(f[i:m], "little")) * HASH_MUL2) & _M64
        h2 ^= h2 >> 29
    h = h1 ^ ((h2 * HASH_MUL) & _M64)
    h ^= h >> 30
    h = (h * 0xBF58476D1CE4E5B9) & _M64
    h ^= h >> 27
    h = (h * 0x94D049BB133111EB) & _M64
    h ^= h >> 31
    return h or 1


def _fault(r, need, limit):
    r["flags"] |= F_MALFORMED if need > limit else F_TRUNCATED


def _fnv1a(h, data):
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & _M64
    return h


def _parse_dns(f, p, pe, r, kind):
    if pe - p < 12:
        return
    r["flags"] |= kind
    r["dns_id"] = _be(f, p, 2)
    fl = _be(f, p + 2, 2)
    if fl & 0x8000:
        r["flags"] |= F_DNS_RESPONSE
    r["dns_opcode"] = (fl >> 11) & 0xF
    r["dns_rcode"] = fl & 0xF
    qd = _be(f, p + 4, 2)
    r["dns_ancount"] = _be(f, p + 6, 2)
    if qd == 0:
        return
    q = p + 12
    for _ in range(128):
        if q >= pe:
            return
        lab = f[q]
        if lab == 0:
            q += 1
            break
        if lab & 0xC0 == 0xC0:
            q += 2
            break
        if lab & 0xC0:
            return
        q += 1 + lab
    else:
        return
    if q + 2 <= pe:
        r["dns_qtype"] = _be(f, q, 2)


def _parse_dhcp(f, p, pe, r):
    if pe - p < 240 or _be(f, p + 236, 4) != 0x63825363:
        return
    r["flags"] |= F_DHCP
    r["dhcp_xid"] = _be(f, p + 4, 4)
    r["dhcp_yiaddr"] = _be(f, p + 16, 4)
    if f[p + 1] == 1 and f[p + 2] == 6:
        r["dhcp_chaddr"] = _be(f, p + 28, 6)
    opt55 = opt60 = None
    q = p + 240
    while q < pe:
        code = f[q]
        if code == 0:
            q += 1
            continue
        if code == 255 or q + 2 > pe:
            break
        ln = f[q + 1]
        if q + 2 + ln > pe:
            break
        if code == 53 and ln >= 1:
            r["dhcp_msg_type"] = f[q + 2]
        elif code == 54 and ln == 4:
            r["dhcp_server_id"] = _be(f, q + 2, 4)
        elif code == 50 and ln == 4:
            r["dhcp_requested_ip"] = _be(f, q + 2, 4)
        elif code == 55:
            opt55 = f[q + 2:q + 2 + ln]
        elif code == 60:
            opt60 = f[q + 2:q + 2 + ln]
        q += 2 + ln
    if opt55 is not None or opt60 is not None:
        h = FNV_OFFSET
        if opt55 is not None:
            h = _fnv1a(h, opt55)
        h = ((h ^ 0xFF) * FNV_PRIME) & _M64
        if opt60 is not None:
            h = _fnv1a(h, opt60)
        r["dhcp_fingerprint"] = h


def _parse_l4(f, l4, end, n, r):
    proto = r["ip_proto"]
    if proto == 6:
        if l4 + 20 > end or l4 + 20 > n:
            _fault(r, l4 + 20, end)
            return
        hl = (f[l4 + 12] >> 4) * 4
        if hl < 20 or l4 + hl > end:
            r["flags"] |= F_MALFORMED
            return
        r["flags"] |= F_TCP
        r["sport"] = _be(f, l4, 2)
        r["dport"] = _be(f, l4 + 2, 2)
        r["tcp_flags"] = f[l4 + 13]
        r["tcp_seq"] = _be(f, l4 + 4, 4)
        r["tcp_len"] = min(end - l4 - hl, 65535)
        r["payload_off"] = l4 + hl
    elif proto == 17:
        if l4 + 8 > end or l4 + 8 > n:
            _fault(r, l4 + 8, end)
            return
        ulen = _be(f, l4 + 4, 2)
        if ulen < 8 or l4 + ulen > end:
            r["flags"] |= F_MALFORMED
            return
        r["flags"] |= F_UDP
        sp = _be(f, l4, 2)
        dp = _be(f, l4 + 2, 2)
        r["sport"] = sp
        r["dport"] = dp
        r["payload_off"] = l4 + 8
        pe = min(l4 + ulen, n)
        if sp == 53 or dp == 53:
            _parse_dns(f, l4 + 8, pe, r, F_DNS)
        elif sp == 5353 or dp == 5353:
            _parse_dns(f, l4 + 8, pe, r, F_MDNS)
        elif sp == 5355 or dp == 5355:
            _parse_dns(f, l4 + 8, pe, r, F_LLMNR)
        elif sp in (67, 68) or dp in (67, 68):
            _parse_dhcp(f, l4 + 8, pe, r)
        elif sp == 137 or dp == 137:
            r["flags"] |= F_NBNS
        elif dp == 1900 or sp == 1900:
            r["flags"] |= F_SSDP
    elif proto in (1, 58):
        if l4 + 4 > end or l4 + 4 > n:
            _fault(r, l4 + 4, end)
            return
        r["flags"] |= F_ICMP
        r["icmp_type"] = f[l4]
        r["icmp_code"] = f[l4 + 1]
        r["payload_off"] = l4 + 4


def _parse_one(f, wire, r):
    n = len(f)
    if n < 14:
        r["flags"] |= F_MALFORMED if n >= wire else F_TRUNCATED
        return
    r["dst_mac"] = dst = _be(f, 0, 6)
    r["src_mac"] = _be(f, 6, 6)
    if f[0] & 1:
        r["frame_hash"] = frame_hash(f, wire)
        r["flags"] |= F_BROADCAST if dst == 0xFFFFFFFFFFFF else F_MULTICAST
    et = _be(f, 12, 2)
    off = 14
    tags = 0
    while et in (0x8100, 0x88A8, 0x9100) and tags < 4:
        if off + 4 > n:
            _fault(r, off + 4, wire)
            return
        if tags == 0 and r["vlan"] < 0:
            r["vlan"] = _be(f, off, 2) & 0xFFF
        r["flags"] |= F_VLAN_TAGGED
        et = _be(f, off + 2, 2)
        off += 4
        tags += 1
    r["payload_off"] = off
    if et <= 1500:
        r["flags"] |= F_LLC
        if off + 3 > n:
            return
        if f[off] == 0x42 and f[off + 1] == 0x42:
            r["flags"] |= F_STP
        elif f[off] == 0xAA and f[off + 1] == 0xAA and off + 8 <= n and f[off + 2] == 3:
            if _be(f, off + 3, 3) == 0x00000C and _be(f, off + 6, 2) == 0x2000:
                r["flags"] |= F_CDP
                r["payload_off"] = off + 8
        return
    r["ethertype"] = et
    if et == 0x0800:
        if off + 20 > n:
            _fault(r, off + 20, wire)
            return
        ihl = (f[off] & 0xF) * 4
        if f[off] >> 4 != 4 or ihl < 20:
            r["flags"] |= F_MALFORMED
            return
        if off + ihl > n:
            _fault(r, off + ihl, wire)
            return
        tot = _be(f, off + 2, 2)
        if tot < ihl or off + tot > wire:
            r["flags"] |= F_MALFORMED
            return
        r["flags"] |= F_IPV4
        r["ip_len"] = tot
        r["ip_ttl"] = f[off + 8]
        r["ip_proto"] = f[off + 9]
        if f[off + 9] == 6:
            r["ip_id"] = _be(f, off + 4, 2)
        r["src_ip"] = _be(f, off + 12, 4)
        r["dst_ip"] = _be(f, off + 16, 4)
        if _be(f, off + 6, 2) & 0x1FFF:
            r["flags"] |= F_FRAGMENT
            return
        _parse_l4(f, off + ihl, off + tot, n, r)
    elif et == 0x86DD:
        if off + 40 > n:
            _fault(r, off + 40, wire)
            return
        if f[off] >> 4 != 6:
            r["flags"] |= F_MALFORMED
            return
        tot = _be(f, off + 4, 2) + 40
        if off + tot > wire:
            r["flags"] |= F_MALFORMED
            return
        r["flags"] |= F_IPV6
        r["ip_len"] = min(tot, 65535)
        r["ip_ttl"] = f[off + 7]
        r["src_ip6_hi"] = _be(f, off + 8, 8)
        r["src_ip6_lo"] = _be(f, off + 16, 8)
        r["dst_ip6_hi"] = _be(f, off + 24, 8)
        r["dst_ip6_lo"] = _be(f, off + 32, 8)
        end = off + tot
        nh = f[off + 6]
        p = off + 40
        for _ in range(8):
            if nh in (0, 43, 60):
                if p + 2 > end or p + 2 > n:
                    _fault(r, p + 2, end)
                    return
                hl = (f[p + 1] + 1) * 8
                nh = f[p]
                p += hl
                if p > end:
                    r["flags"] |= F_MALFORMED
                    return
            elif nh == 44:
                if p + 8 > end or p + 8 > n:
                    _fault(r, p + 8, end)
                    return
                frag = _be(f, p + 2, 2) & 0xFFF8
                nh = f[p]
                p += 8
                if frag:
                    r["ip_proto"] = nh
                    r["flags"] |= F_FRAGMENT
                    return
            else:
                break
        r["ip_proto"] = nh
        _parse_l4(f, p, end, n, r)
    elif et == 0x0806:
        if off + 8 > n:
            _fault(r, off + 8, wire)
            return
        htype = _be(f, off, 2)
        ptype = _be(f, off + 2, 2)
        hlen = f[off + 4]
        plen = f[off + 5]
        r["flags"] |= F_ARP
        r["arp_op"] = _be(f, off + 6, 2)
        if off + 8 + 2 * (hlen + plen) > wire:
            r["flags"] |= F_MALFORMED
            return
        if htype in (1, 6) and ptype == 0x0800:
            if hlen != 6 or plen != 4:
                r["flags"] |= F_MALFORMED
                return
            if off + 28 > n:
                r["flags"] |= F_TRUNCATED
                return
            r["arp_sha"] = _be(f, off + 8, 6)
            r["arp_spa"] = spa = _be(f, off + 14, 4)
            r["arp_tha"] = _be(f, off + 18, 6)
            r["arp_tpa"] = tpa = _be(f, off + 24, 4)
            if spa == tpa and spa != 0:
                r["flags"] |= F_ARP_GRATUITOUS
    elif et == 0x88CC:
        r["flags"] |= F_LLDP


def parse_frames(data, offset, caplen, wirelen, ts_ns, vlan, out=None):
    """Parse a batch of frames (the columns of a FrameBatch) into FRAME_DTYPE records.

    Returns (records, malformed); see the compiled twin in probe/fastpath/kernels/parse.pxi (also for `out`).
    """
    data = np.asarray(data, np.uint8)
    n = len(offset)
    if not (len(caplen) == len(wirelen) == len(ts_ns) == len(vlan) == n):
        raise ValueError(f"parse_frames: column lengths differ (offset {n}, caplen {len(caplen)}, "
                         f"wirelen {len(wirelen)}, ts_ns {len(ts_ns)}, vlan {len(vlan)})")
    if out is not None:
        if out.dtype != FRAME_DTYPE or not out.flags.c_contiguous or out.ndim != 1 or out.shape[0] < n:
            raise ValueError(f"parse_frames: out must be a C-contiguous FRAME_DTYPE array of at least {n} records")
        out = out[:n]
        out[:] = np.zeros(1, dtype=FRAME_DTYPE)
    else:
        out = np.zeros(n, dtype=FRAME_DTYPE)
    raw = data.tobytes()
    dlen = len(raw)
    rows = []
    malformed = 0
    zero = dict.fromkeys(_FIELDS, 0)
    for i in range(n):
        r = dict(zero)
        start, cl, wl, vl = int(offset[i]), int(caplen[i]), int(wirelen[i]), int(vlan[i])
        r["ts_ns"] = int(ts_ns[i])
        r["caplen"] = cl
        r["wirelen"] = wl
        r["vlan"] = vl if vl >= 0 else -1
        if start < 0 or start > dlen or cl > dlen - start:
            r["flags"] = F_MALFORMED
        else:
            _parse_one(raw[start:start + cl], max(wl, cl), r)
        if r["flags"] & F_MALFORMED:
            malformed += 1
        rows.append(tuple(r[k] for k in _FIELDS))
    if n:
        out[:] = rows
    return out, malformed
