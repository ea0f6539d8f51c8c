# parse kernels: see probe/fastpath/twin/parse.py for the pure-Python twin.
# Frames -> one FRAME_DTYPE record each (probe/fastpath/layout.py documents the fields).
# Every length is checked against caplen (what we hold) before a byte is read, and against the wire
# length / the enclosing header's claimed length before it is trusted.

from libc.string cimport memset

# FrameRecord, the F_* flag bits, FRAME_HASH_BYTES and the hash constants come from layout.pxi (generated
# from probe/fastpath/layout.py), included before this file.

__all__ += ["parse_frames"]

# Zero one record with plain stores: memset of a record-sized block compiles to `rep stos`, whose
# start-up cost was half the parse time (12 -> 23 ns/frame) when done per record.
cdef extern from *:
    """
    __attribute__((optimize("no-tree-loop-distribute-patterns")))
    static inline void sv_zero_record(void *p, size_t n) {
        unsigned long long *q = (unsigned long long *)p;
        size_t i;
        #pragma GCC unroll 32
        for (i = 0; i < n / 8; i++) q[i] = 0;
    }
    """
    void sv_zero_record(void *p, size_t n) nogil

cdef inline uint32_t rd16(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0] << 8) | p[1]


cdef inline uint32_t rd32(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


cdef inline uint64_t rd48(const uint8_t* p) noexcept nogil:
    return (<uint64_t>rd16(p) << 32) | rd32(p + 2)


cdef inline uint64_t rd64(const uint8_t* p) noexcept nogil:
    return (<uint64_t>rd32(p) << 32) | rd32(p + 4)


cdef inline uint64_t rd64le(const uint8_t* p) noexcept nogil:
    # little-endian by definition (the twin reads the same way); one load on x86
    return ((<uint64_t>p[0]) | (<uint64_t>p[1] << 8) | (<uint64_t>p[2] << 16) | (<uint64_t>p[3] << 24)
            | (<uint64_t>p[4] << 32) | (<uint64_t>p[5] << 40) | (<uint64_t>p[6] << 48) | (<uint64_t>p[7] << 56))


cdef inline uint64_t rd_tail(const uint8_t* p, Py_ssize_t k) noexcept nogil:
    # the first k (< 8) bytes at p as a little-endian word
    cdef uint64_t w = 0
    cdef Py_ssize_t j
    for j in range(k):
        w |= (<uint64_t>p[j]) << (8 * j)
    return w


cdef inline uint64_t frame_hash(const uint8_t* f, Py_ssize_t n, Py_ssize_t wire) noexcept nogil:
    # 64-bit hash of the first FRAME_HASH_BYTES captured bytes and the wire length, two 8-byte lanes
    # at a time (never 0: 0 means "not hashed")
    cdef Py_ssize_t m = n if n < FRAME_HASH_BYTES else FRAME_HASH_BYTES, i = 0
    cdef uint64_t h1 = FNV_OFFSET ^ (<uint64_t>wire * HASH_MUL), h2 = HASH_MUL2 ^ <uint64_t>m
    while i + 16 <= m:
        h1 = (h1 ^ rd64le(f + i)) * HASH_MUL
        h2 = (h2 ^ rd64le(f + i + 8)) * HASH_MUL2
        h1 ^= h1 >> 32
        h2 ^= h2 >> 29
        i += 16
    if i + 8 <= m:
        h1 = (h1 ^ rd64le(f + i)) * HASH_MUL
        h1 ^= h1 >> 32
        i += 8
    if i < m:
        h2 = (h2 ^ rd_tail(f + i, m - i)) * HASH_MUL2
        h2 ^= h2 >> 29
    h1 ^= h2 * HASH_MUL
    h1 ^= h1 >> 30
    h1 *= MIX_MUL1
    h1 ^= h1 >> 27
    h1 *= MIX_MUL2
    h1 ^= h1 >> 31
    return h1 if h1 != 0 else 1


cdef inline void fault(FrameRecord* r, Py_ssize_t need, Py_ssize_t limit) noexcept nogil:
    # `need` bytes were required: beyond the claimed length `limit` is a lie, else the snap length cut it
    if need > limit:
        r.flags |= F_MALFORMED
    else:
        r.flags |= F_TRUNCATED


cdef inline uint64_t fnv1a(uint64_t h, const uint8_t* p, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        h = (h ^ p[i]) * FNV_PRIME
    return h


cdef void parse_dns(const uint8_t* f, Py_ssize_t p, Py_ssize_t pe, FrameRecord* r, uint32_t kind) noexcept nogil:
    # pe: end of what we may read (min of UDP end and caplen)
    cdef Py_ssize_t q
    cdef uint32_t fl, qd, lab
    cdef int i
    if pe - p < 12:
        return
    r.flags |= kind
    r.dns_id = <uint16_t>rd16(f + p)
    fl = rd16(f + p + 2)
    if fl & 0x8000:
        r.flags |= F_DNS_RESPONSE
    r.dns_opcode = (fl >> 11) & 0xF
    r.dns_rcode = fl & 0xF
    qd = rd16(f + p + 4)
    r.dns_ancount = <uint16_t>rd16(f + p + 6)
    if qd == 0:
        return
    q = p + 12
    for i in range(128):
        if q >= pe:
            return
        lab = f[q]
        if lab == 0:
            q += 1
            break
        if (lab & 0xC0) == 0xC0:
            q += 2
            break
        if lab & 0xC0:
            return
        q += 1 + lab
    else:
        return
    if q + 2 <= pe:
        r.dns_qtype = <uint16_t>rd16(f + q)


cdef void parse_dhcp(const uint8_t* f, Py_ssize_t p, Py_ssize_t pe, FrameRecord* r) noexcept nogil:
    cdef Py_ssize_t q, l, o55 = -1, l55 = 0, o60 = -1, l60 = 0
    cdef uint32_t code
    cdef uint64_t h
    if pe - p < 240 or rd32(f + p + 236) != 0x63825363:
        # the snap length (pe is then the capture's end) cut the BOOTP header before the cookie: judge
        # what it holds, a request to the server port or a reply from it with op, xid, yiaddr and chaddr
        if pe - p >= 44 and pe - p < 240 and pe - p < rd16(f + p - 4) - 8 and (
                (f[p] == 2 and rd16(f + p - 8) == 67) or (f[p] == 1 and rd16(f + p - 6) == 67)):
            r.flags |= F_DHCP
            r.dhcp_xid = rd32(f + p + 4)
            r.dhcp_yiaddr = rd32(f + p + 16)
            if f[p + 1] == 1 and f[p + 2] == 6:
                r.dhcp_chaddr = rd48(f + p + 28)
        return
    r.flags |= F_DHCP
    r.dhcp_xid = rd32(f + p + 4)
    r.dhcp_yiaddr = rd32(f + p + 16)
    if f[p + 1] == 1 and f[p + 2] == 6:
        r.dhcp_chaddr = rd48(f + p + 28)
    q = p + 240
    while q < pe:
        code = f[q]
        if code == 0:
            q += 1
            continue
        if code == 255 or q + 2 > pe:
            break
        l = f[q + 1]
        if q + 2 + l > pe:
            break
        if code == 53 and l >= 1:
            r.dhcp_msg_type = f[q + 2]
        elif code == 54 and l == 4:
            r.dhcp_server_id = rd32(f + q + 2)
        elif code == 50 and l == 4:
            r.dhcp_requested_ip = rd32(f + q + 2)
        elif code == 55:
            o55, l55 = q + 2, l
        elif code == 60:
            o60, l60 = q + 2, l
        q += 2 + l
    if o55 >= 0 or o60 >= 0:
        h = FNV_OFFSET
        if o55 >= 0:
            h = fnv1a(h, f + o55, l55)
        h = (h ^ 0xFF) * FNV_PRIME
        if o60 >= 0:
            h = fnv1a(h, f + o60, l60)
        r.dhcp_fingerprint = h

cdef inline void parse_icmp_quote(const uint8_t* f, Py_ssize_t q, Py_ssize_t pe, FrameRecord* r, bint v6) noexcept nogil:
    # the packet an ICMP error quotes, q..pe (pe: min of the ICMP packet's end and caplen): protocol and
    # destination once its whole IP header is there, ports once their 4 bytes are; a short quote is no fault
    cdef Py_ssize_t hl, t
    cdef uint8_t proto
    if v6:
        if q + 40 > pe or (f[q] >> 4) != 6:
            return
        proto = f[q + 6]
        t = q + 40
        r.icmp_quote_dst = rd32(f + q + 36)
    else:
        if q + 20 > pe or (f[q] >> 4) != 4:
            return
        hl = (f[q] & 0xF) * 4
        if hl < 20 or q + hl > pe:
            return
        proto = f[q + 9]
        t = q + hl
        r.icmp_quote_dst = rd32(f + q + 16)
        if rd16(f + q + 6) & 0x1FFF:  # a later fragment: no ports in it
            t = pe
    r.icmp_quote_proto = proto
    if (proto == 6 or proto == 17 or proto == 132) and t + 4 <= pe:
        r.icmp_quote_sport = <uint16_t>rd16(f + t)
        r.icmp_quote_dport = <uint16_t>rd16(f + t + 2)


cdef void parse_l4(const uint8_t* f, Py_ssize_t l4, Py_ssize_t end, Py_ssize_t n, FrameRecord* r,
                   bint first_fragment) noexcept nogil:
    # l4: start of the L4 header; end: end of the IP packet as claimed (<= wire length); n: caplen.
    # first_fragment: the packet is the first fragment of a datagram, so the UDP length may reach past it
    cdef Py_ssize_t hl, ulen, pe
    cdef uint32_t sp, dp
    cdef uint8_t proto = r.ip_proto
    if proto == 6:
        if l4 + 20 > end or l4 + 20 > n:
            fault(r, l4 + 20, end)
            return
        hl = (f[l4 + 12] >> 4) * 4
        if hl < 20 or l4 + hl > end:
            r.flags |= F_MALFORMED
            return
        r.flags |= F_TCP
        r.sport = <uint16_t>rd16(f + l4)
        r.dport = <uint16_t>rd16(f + l4 + 2)
        r.tcp_flags = f[l4 + 13]
        r.tcp_seq = rd32(f + l4 + 4)
        r.tcp_len = <uint16_t>(end - l4 - hl if end - l4 - hl < 65535 else 65535)
        r.payload_off = <uint32_t>(l4 + hl)
    elif proto == 17:
        if l4 + 8 > end or l4 + 8 > n:
            fault(r, l4 + 8, end)
            return
        ulen = rd16(f + l4 + 4)
        if ulen < 8 or (l4 + ulen > end and not first_fragment):
            r.flags |= F_MALFORMED
            return
        r.flags |= F_UDP
        sp = rd16(f + l4)
        dp = rd16(f + l4 + 2)
        r.sport = <uint16_t>sp
        r.dport = <uint16_t>dp
        r.payload_off = <uint32_t>(l4 + 8)
        pe = l4 + ulen
        if pe > end:
            pe = end  # a first fragment holds only the start of the datagram
        if pe > n:
            pe = n
        if sp == 53 or dp == 53:
            parse_dns(f, l4 + 8, pe, r, F_DNS)
        elif sp == 5353 or dp == 5353:
            parse_dns(f, l4 + 8, pe, r, F_MDNS)
        elif sp == 5355 or dp == 5355:
            parse_dns(f, l4 + 8, pe, r, F_LLMNR)
        elif sp == 67 or dp == 67 or sp == 68 or dp == 68:
            parse_dhcp(f, l4 + 8, pe, r)
        elif sp == 137 or dp == 137:
            r.flags |= F_NBNS
        elif dp == 1900 or sp == 1900:
            r.flags |= F_SSDP
    elif proto == 1 or proto == 58:
        if l4 + 4 > end or l4 + 4 > n:
            fault(r, l4 + 4, end)
            return
        r.flags |= F_ICMP
        r.icmp_type = f[l4]
        r.icmp_code = f[l4 + 1]
        r.payload_off = <uint32_t>(l4 + 4)
        if proto == 1:
            if f[l4] == 3 or f[l4] == 4 or f[l4] == 5 or f[l4] == 11 or f[l4] == 12:
                parse_icmp_quote(f, l4 + 8, end if end < n else n, r, False)
        elif f[l4] >= 1 and f[l4] <= 4:
            parse_icmp_quote(f, l4 + 8, end if end < n else n, r, True)



cdef void parse_one(const uint8_t* f, Py_ssize_t n, Py_ssize_t wire, FrameRecord* r) noexcept nogil:
    cdef Py_ssize_t off = 14, ihl, tot, end, hl, p
    cdef uint32_t et, htype, ptype, hlen, plen, nh, frag
    cdef bint first_fragment = False
    cdef int tags = 0, i
    if n < 14:
        r.flags |= F_MALFORMED if n >= wire else F_TRUNCATED
        return
    r.dst_mac = rd48(f)
    r.src_mac = rd48(f + 6)
    if f[0] & 1:
        # a forwarding loop circulates broadcast/multicast frames unchanged: only those are hashed,
        # so unicast frames (nearly all traffic) pay nothing for loop detection
        r.frame_hash = frame_hash(f, n, wire)
        if r.dst_mac == 0xFFFFFFFFFFFFULL:
            r.flags |= F_BROADCAST
        else:
            r.flags |= F_MULTICAST
    et = rd16(f + 12)
    while (et == 0x8100 or et == 0x88A8 or et == 0x9100) and tags < 4:
        if off + 4 > n:
            fault(r, off + 4, wire)
            return
        if tags == 0 and r.vlan < 0:
            r.vlan = rd16(f + off) & 0xFFF
        r.flags |= F_VLAN_TAGGED
        et = rd16(f + off + 2)
        off += 4
        tags += 1
    r.payload_off = <uint32_t>off
    if et <= 1500:  # 802.3 length field: LLC follows
        r.flags |= F_LLC
        if off + 3 > n:
            return
        if f[off] == 0x42 and f[off + 1] == 0x42:
            r.flags |= F_STP
        elif f[off] == 0xAA and f[off + 1] == 0xAA and off + 8 <= n and f[off + 2] == 3:
            if rd16(f + off + 3) == 0 and f[off + 5] == 0x0C and rd16(f + off + 6) == 0x2000:
                r.flags |= F_CDP
                r.payload_off = <uint32_t>(off + 8)
        return
    r.ethertype = <uint16_t>et
    if et == 0x0800:
        if off + 20 > n:
            fault(r, off + 20, wire)
            return
        ihl = (f[off] & 0xF) * 4
        if (f[off] >> 4) != 4 or ihl < 20:
            r.flags |= F_MALFORMED
            return
        if off + ihl > n:
            fault(r, off + ihl, wire)
            return
        tot = rd16(f + off + 2)
        if tot == 0:
            # captured before the NIC's segmentation offload (TSO): the stack left the length to the NIC,
            # so the packet is what the frame holds
            tot = wire - off
        if tot < ihl or off + tot > wire:
            r.flags |= F_MALFORMED
            return
        r.flags |= F_IPV4
        r.ip_len = <uint16_t>(tot if tot < 65535 else 65535)
        r.ip_ttl = f[off + 8]
        r.ip_proto = f[off + 9]
        if r.ip_proto == 6:
            r.ip_id = <uint16_t>rd16(f + off + 4)  # tells a SPAN copy from a retransmission
        r.src_ip = rd32(f + off + 12)
        r.dst_ip = rd32(f + off + 16)
        frag = rd16(f + off + 6)
        if frag & 0x1FFF:
            r.flags |= F_FRAGMENT  # a later fragment: no transport header in it
            return
        if frag & 0x2000:
            r.flags |= F_FRAGMENT  # the first fragment (more follow): its transport header is here
            first_fragment = True
        p = off + ihl
        end = off + tot
        if r.ip_proto == 51:  # an authentication header: its length is in 4-octet units, minus 2
            if p + 2 > end or p + 2 > n:
                fault(r, p + 2, end)
                return
            r.ip_proto = f[p]
            p += (f[p + 1] + 2) * 4
            if p > end:
                r.flags |= F_MALFORMED
                return
            if r.ip_proto == 6:
                r.ip_id = <uint16_t>rd16(f + off + 4)
        if r.ip_proto == 50:
            r.flags |= F_ESP
            return
        parse_l4(f, p, end, n, r, first_fragment)
    elif et == 0x86DD:
        if off + 40 > n:
            fault(r, off + 40, wire)
            return
        if (f[off] >> 4) != 6:
            r.flags |= F_MALFORMED
            return
        tot = rd16(f + off + 4) + 40
        if tot == 40 and f[off + 6] != 59:
            # payload length 0 with something after the header: a jumbogram (RFC 2675, the length is in a
            # hop-by-hop option) or a send captured before segmentation offload: the packet is what the frame holds
            tot = wire - off
        if off + tot > wire:
            r.flags |= F_MALFORMED
            return
        r.flags |= F_IPV6
        r.ip_len = <uint16_t>(tot if tot < 65535 else 65535)
        r.ip_ttl = f[off + 7]
        r.src_ip6_hi = rd64(f + off + 8)
        r.src_ip6_lo = rd64(f + off + 16)
        r.dst_ip6_hi = rd64(f + off + 24)
        r.dst_ip6_lo = rd64(f + off + 32)
        end = off + tot
        nh = f[off + 6]
        p = off + 40
        for i in range(8):  # extension headers, bounded
            if nh == 0 or nh == 43 or nh == 60 or nh == 51 or nh == 135 or nh == 139 or nh == 140:
                if p + 2 > end or p + 2 > n:
                    fault(r, p + 2, end)
                    return
                # AH's length is in 4-octet units minus 2, the others' in 8-octet units minus 1
                hl = (f[p + 1] + 2) * 4 if nh == 51 else (f[p + 1] + 1) * 8
                nh = f[p]
                p += hl
                if p > end:
                    r.flags |= F_MALFORMED
                    return
            elif nh == 44:
                if p + 8 > end or p + 8 > n:
                    fault(r, p + 8, end)
                    return
                frag = rd16(f + p + 2)
                nh = f[p]
                p += 8
                if frag & 0xFFF8:  # a later fragment: no transport header in it
                    r.ip_proto = <uint8_t>nh
                    r.flags |= F_FRAGMENT
                    return
                if frag & 1:  # the first fragment (M set); offset 0 without M is an atomic fragment, whole
                    r.flags |= F_FRAGMENT
                    first_fragment = True
            else:
                break
        r.ip_proto = <uint8_t>nh
        if nh == 50:
            r.flags |= F_ESP
            return
        parse_l4(f, p, end, n, r, first_fragment)
    elif et == 0x0806:
        if off + 8 > n:
            fault(r, off + 8, wire)
            return
        htype = rd16(f + off)
        ptype = rd16(f + off + 2)
        hlen = f[off + 4]
        plen = f[off + 5]
        r.flags |= F_ARP
        r.arp_op = <uint16_t>rd16(f + off + 6)
        if off + 8 + 2 * (hlen + plen) > wire:
            r.flags |= F_MALFORMED
            return
        if (htype == 1 or htype == 6) and ptype == 0x0800:
            if hlen != 6 or plen != 4:
                r.flags |= F_MALFORMED
                return
            if off + 28 > n:
                r.flags |= F_TRUNCATED
                return
            r.arp_sha = rd48(f + off + 8)
            r.arp_spa = rd32(f + off + 14)
            r.arp_tha = rd48(f + off + 18)
            r.arp_tpa = rd32(f + off + 24)
            if r.arp_spa == r.arp_tpa and r.arp_spa != 0:
                r.flags |= F_ARP_GRATUITOUS
    elif et == 0x88CC:
        r.flags |= F_LLDP


cdef inline void parse_frame(const uint8_t* f, Py_ssize_t caplen, Py_ssize_t wirelen, int64_t ts_ns, int32_t vlan,
                             FrameRecord* r) noexcept nogil:
    """One frame (caplen bytes at f, wirelen on the wire) into a zeroed record: the per-frame step of
    parse_frames and of the ring's walk (probe/fastpath/kernels/ring.pxi), so both give the same records."""
    sv_zero_record(r, sizeof(FrameRecord))
    r.ts_ns = ts_ns
    r.caplen = <uint32_t>caplen
    r.wirelen = <uint32_t>wirelen
    r.vlan = vlan if vlan >= 0 else -1
    parse_one(f, caplen, wirelen if wirelen > caplen else caplen, r)
    if caplen < wirelen and (r.flags & F_MALFORMED) == 0:
        r.flags |= F_TRUNCATED  # its headers are whole, the snap length cut the rest: not malformed


cdef inline bint is_frame_array(object a, bint writeable) noexcept:
    """A 1-d C-contiguous FRAME_DTYPE ndarray (writeable if asked): the records kernels' argument
    check, with C macros, as it runs once per batch (thousands of times a second on a busy link)."""
    if not cnp.PyArray_Check(a):
        return False
    cdef cnp.ndarray arr = <cnp.ndarray>a
    if cnp.PyArray_NDIM(arr) != 1 or not cnp.PyArray_IS_C_CONTIGUOUS(arr):
        return False
    if writeable and not cnp.PyArray_ISWRITEABLE(arr):
        return False
    dt = arr.dtype
    return dt is _FRAME_DTYPE or dt == _FRAME_DTYPE


def parse_frames(const uint8_t[::1] data, const int64_t[::1] offset, const uint32_t[::1] caplen,
                 const uint32_t[::1] wirelen, const int64_t[::1] ts_ns, const int32_t[::1] vlan, out=None):
    """Parse a batch of frames (the columns of a FrameBatch) into FRAME_DTYPE records.

    Returns (records, malformed): one record per frame, and how many were flagged MALFORMED
    (including frames whose offset/caplen point outside `data`; those keep only ts/len/vlan).
    `out`, a C-contiguous FRAME_DTYPE array of at least as many records, is reused instead of a new
    array (a live capture parses thousands of batches a second): records are then out[:n], valid until
    the caller parses into it again.
    """
    cdef Py_ssize_t n = offset.shape[0], i, start, cl, dlen = data.shape[0]
    cdef Py_ssize_t malformed = 0
    if caplen.shape[0] != n or wirelen.shape[0] != n or ts_ns.shape[0] != n or vlan.shape[0] != n:
        raise ValueError(f"parse_frames: column lengths differ (offset {n}, caplen {caplen.shape[0]}, "
                         f"wirelen {wirelen.shape[0]}, ts_ns {ts_ns.shape[0]}, vlan {vlan.shape[0]})")
    cdef bint reuse = out is not None
    if reuse:
        if not is_frame_array(out, True) or out.shape[0] < n:
            raise ValueError(f"parse_frames: out must be a C-contiguous FRAME_DTYPE array of at least {n} records")
        out = out[:n]
    else:
        out = np.empty(n, dtype=_FRAME_DTYPE)  # parse_frame zeroes each record as it goes
    if n == 0:
        return out, 0
    cdef FrameRecord* rec = <FrameRecord*>cnp.PyArray_DATA(out)
    cdef FrameRecord* r
    cdef const uint8_t* base = &data[0] if dlen > 0 else NULL
    with nogil:
        for i in range(n):
            r = rec + i
            start = offset[i]
            cl = caplen[i]
            if start < 0 or start > dlen or cl > dlen - start:
                sv_zero_record(r, sizeof(FrameRecord))  # only the metadata: the bytes are not there
                r.ts_ns = ts_ns[i]
                r.caplen = caplen[i]
                r.wirelen = wirelen[i]
                r.vlan = vlan[i] if vlan[i] >= 0 else -1
                r.flags = F_MALFORMED
            else:
                parse_frame(base + start if base != NULL else NULL, cl, wirelen[i], ts_ns[i], vlan[i], r)
            if r.flags & F_MALFORMED:
                malformed += 1
    return out, malformed
