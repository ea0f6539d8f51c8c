# aggregate kernels: see probe/_twin/aggregate.py for the pure-Python twin.
# Parsed frame records -> per-device counters and HyperLogLog sketches in bounded hash tables
# (layout in probe/_layout.py; the tables are owned by probe/state/aggregates.py).

from probe._layout import COUNTERS as _COUNTERS, N_COUNTERS as _N_COUNTERS, N_SKETCHES as _N_SKETCHES, \
    HLL_REGISTERS as _HLL_REGISTERS, UDP_SMALL_WIRELEN as _UDP_SMALL_WIRELEN

__all__ += ["aggregate_frames"]

cdef extern from *:
    int __builtin_ctzll(unsigned long long) nogil
    int __builtin_clzll(unsigned long long) nogil

# counter indices: the order of probe._layout.COUNTERS (checked below at import)
cdef enum:
    C_FRAMES, C_BYTES, C_RX_FRAMES, C_RX_BYTES, C_BROADCAST, C_MULTICAST, C_MALFORMED, C_TRUNCATED,
    C_TCP_SYN, C_TCP_SYNACK, C_TCP_RST, C_TCP_SYNACK_RCVD, C_TCP_RST_RCVD,
    C_ARP_REQUEST, C_ARP_REPLY, C_ARP_GRATUITOUS, C_ARP_REPLY_RCVD, C_ARP_SHA_MISMATCH,
    C_DHCP_DISCOVER, C_DHCP_OFFER, C_DHCP_REQUEST, C_DHCP_ACK, C_DHCP_NAK, C_DHCP_INFORM,
    C_DHCP_SERVER_ID, C_DHCP_FINGERPRINT,
    C_DNS_QUERY, C_DNS_RESPONSE, C_DNS_NXDOMAIN, C_DNS_SERVFAIL,
    C_DNS_RESPONSE_RCVD, C_DNS_NXDOMAIN_RCVD, C_DNS_SERVFAIL_RCVD,
    C_ICMP_UNREACH, C_ICMP_UNREACH_RCVD, C_ICMP_ECHO_REQUEST, C_ICMP_ECHO_REPLY_RCVD, C_ICMP_TIME_EXCEEDED,
    C_LLDP, C_CDP, C_STP,
    C_FIRST_SEEN, C_LAST_SEEN, C_PEER, C_PEER_CHANGES, C_PREV_PEER, C_UDP_PROBE,
    C_TCP_STEALTH, C_UDP_SMALL, C_VLAN, C_TCP_RST_BARE,
    C_COUNT

_C_NAMES = ("frames", "bytes", "rx_frames", "rx_bytes", "broadcast", "multicast", "malformed", "truncated",
    "tcp_syn", "tcp_synack", "tcp_rst", "tcp_synack_rcvd", "tcp_rst_rcvd",
    "arp_request", "arp_reply", "arp_gratuitous", "arp_reply_rcvd", "arp_sha_mismatch",
    "dhcp_discover", "dhcp_offer", "dhcp_request", "dhcp_ack", "dhcp_nak", "dhcp_inform",
    "dhcp_server_id", "dhcp_fingerprint",
    "dns_query", "dns_response", "dns_nxdomain", "dns_servfail",
    "dns_response_rcvd", "dns_nxdomain_rcvd", "dns_servfail_rcvd",
    "icmp_unreach", "icmp_unreach_rcvd", "icmp_echo_request", "icmp_echo_reply_rcvd", "icmp_time_exceeded",
    "lldp", "cdp", "stp", "first_seen_ns", "last_seen_ns", "peer", "peer_changes", "prev_peer", "udp_probe",
    "tcp_stealth", "udp_small", "vlan", "tcp_rst_bare")
if _C_NAMES != _COUNTERS or C_COUNT != _N_COUNTERS or C_COUNT > 64:
    raise ImportError("aggregate.pxi counter enum does not match probe._layout.COUNTERS")

cdef enum:
    HLL_BITS_C = 6
    HLL_M = 1 << HLL_BITS_C
    S_HOSTS = 0
    S_PORTS = 1
    S_DHCP_CLIENTS = 2
    S_RST_PORTS = 3
    N_SK = 4
    UDP_SMALL = 256

if HLL_M != _HLL_REGISTERS or N_SK != _N_SKETCHES or UDP_SMALL != _UDP_SMALL_WIRELEN:
    raise ImportError("aggregate.pxi sketch layout does not match probe._layout")

cdef uint64_t SALT_PORT = 0x9E3779B97F4A7C15ULL
cdef uint64_t SALT_CHADDR = 0xD6E8FEB86659FD93ULL
cdef uint64_t SALT_RST = 0xA0761D6478BD642FULL
cdef uint64_t V4_MAPPED = 0xFFFF00000000ULL
# the +1 counters that are also kept in the ARP binding table
cdef uint64_t ARP_MASK = (1ULL << C_FRAMES) | (1ULL << C_ARP_REQUEST) | (1ULL << C_ARP_REPLY) | (1ULL << C_ARP_GRATUITOUS)


cdef struct Table:
    int32_t* slots
    uint64_t mask
    uint64_t* keys
    uint64_t* counts
    uint8_t* hll
    Py_ssize_t hll_width
    int64_t* meta
    Py_ssize_t cap


cdef inline uint64_t mix64(uint64_t x) noexcept nogil:
    x ^= x >> 30
    x *= 0xBF58476D1CE4E5B9ULL
    x ^= x >> 27
    x *= 0x94D049BB133111EBULL
    x ^= x >> 31
    return x


cdef inline uint64_t key_hash(uint64_t k1, uint64_t k2) noexcept nogil:
    return mix64(k1 ^ mix64(k2 + SALT_PORT))


cdef inline Py_ssize_t upsert(Table* t, uint64_t k1, uint64_t k2) noexcept nogil:
    # row of (k1, k2), inserted if absent; the overflow row `cap` when the table is full
    cdef uint64_t i = key_hash(k1, k2) & t.mask
    cdef int32_t s
    cdef Py_ssize_t used
    while True:
        s = t.slots[i]
        if s < 0:
            used = t.meta[0]
            if used >= t.cap:
                t.meta[1] += 1
                return t.cap
            t.slots[i] = <int32_t>used
            t.keys[2 * used] = k1
            t.keys[2 * used + 1] = k2
            t.meta[0] = used + 1
            return used
        if t.keys[2 * s] == k1 and t.keys[2 * s + 1] == k2:
            return s
        i = (i + 1) & t.mask


cdef inline Py_ssize_t lookup(Table* t, uint64_t k1, uint64_t k2) noexcept nogil:
    cdef uint64_t i = key_hash(k1, k2) & t.mask
    cdef int32_t s
    while True:
        s = t.slots[i]
        if s < 0:
            return -1
        if t.keys[2 * s] == k1 and t.keys[2 * s + 1] == k2:
            return s
        i = (i + 1) & t.mask


cdef inline void hll_add(uint8_t* reg, uint64_t h) noexcept nogil:
    cdef uint64_t w = h << HLL_BITS_C
    cdef uint8_t rank = <uint8_t>(64 - HLL_BITS_C + 1) if w == 0 else <uint8_t>(__builtin_clzll(w) + 1)
    cdef uint64_t j = h >> (64 - HLL_BITS_C)
    if reg[j] < rank:
        reg[j] = rank


cdef inline void apply(uint64_t* c, uint64_t mask, uint64_t add_bytes, uint64_t add_rx_bytes, uint64_t ts) noexcept nogil:
    while mask:
        c[__builtin_ctzll(mask)] += 1
        mask &= mask - 1
    c[C_BYTES] += add_bytes
    c[C_RX_BYTES] += add_rx_bytes
    if c[C_FIRST_SEEN] == 0 or ts < c[C_FIRST_SEEN]:
        c[C_FIRST_SEEN] = ts
    if ts > c[C_LAST_SEEN]:
        c[C_LAST_SEEN] = ts


cdef Table _table(object spec, bint with_hll) except *:
    cdef Table t
    slots, keys, counts, hll, meta = spec
    cdef Py_ssize_t rows = counts.shape[0]
    if (slots.dtype != np.int32 or keys.dtype != np.uint64 or counts.dtype != np.uint64 or hll.dtype != np.uint8
            or meta.dtype != np.int64):
        raise TypeError("aggregate_frames: table arrays have the wrong dtypes")
    if not (slots.flags.c_contiguous and keys.flags.c_contiguous and counts.flags.c_contiguous
            and hll.flags.c_contiguous and meta.flags.c_contiguous and slots.flags.writeable):
        raise ValueError("aggregate_frames: table arrays must be C-contiguous and writeable")
    if (counts.ndim != 2 or counts.shape[1] != C_COUNT or keys.shape[0] != rows or keys.shape[1] != 2
            or hll.shape[0] != rows or meta.shape[0] < 2 or rows < 3):
        raise ValueError("aggregate_frames: table arrays have inconsistent shapes")
    cdef Py_ssize_t nslots = slots.shape[0]
    if nslots & (nslots - 1) or nslots < 2 * (rows - 2):
        raise ValueError("aggregate_frames: slot array must be a power of two of at least twice the capacity")
    if with_hll and hll.shape[1] != N_SK * HLL_M:
        raise ValueError("aggregate_frames: sketch array has the wrong width")
    t.slots = <int32_t*>cnp.PyArray_DATA(slots)
    t.mask = <uint64_t>(nslots - 1)
    t.keys = <uint64_t*>cnp.PyArray_DATA(keys)
    t.counts = <uint64_t*>cnp.PyArray_DATA(counts)
    t.hll = <uint8_t*>cnp.PyArray_DATA(hll)
    t.hll_width = hll.shape[1]
    t.meta = <int64_t*>cnp.PyArray_DATA(meta)
    t.cap = rows - 2
    return t


def aggregate_frames(records, mac_table, ip_table, arp_table):
    """Add a batch of FRAME_DTYPE records into three tables, in place.

    Each table is a tuple (slots int32[S], keys uint64[R, 2], counts uint64[R, N_COUNTERS],
    hll uint8[R, W], meta int64[2]) with R = capacity + 2 rows (row capacity: overflow bucket, row
    capacity + 1: totals; only the MAC table's totals row is used), S a power of two >= 2 * capacity,
    W = N_SKETCHES * HLL_REGISTERS (0 for the ARP table), meta = [rows used, frames overflowed].
    Source addresses insert rows (or land in the overflow row when full). Destinations only update
    rows that exist, except for responses (SYN-ACK, RST, ARP reply, DNS answer, ICMP unreachable or
    echo reply), which may open the row of the address they answer; either way the table is bounded.
    """
    if records.dtype != _FRAME_DTYPE or not records.flags.c_contiguous:
        raise TypeError("aggregate_frames: records must be a C-contiguous FRAME_DTYPE array")
    cdef Table mt = _table(mac_table, True)
    cdef Table it = _table(ip_table, True)
    cdef Table at = _table(arp_table, False)
    cdef Py_ssize_t n = records.shape[0], i, ms, isrc, md, idst, ar, k
    if n == 0:
        return
    cdef FrameRecord* rec = <FrameRecord*>cnp.PyArray_DATA(records)
    cdef FrameRecord* r
    cdef uint32_t fl
    cdef uint64_t tx, rx, ts, wl, dk1, dk2, hosth, porth, chh, rsth
    cdef bint ok, ip, l2, arp_ok, respond
    cdef uint8_t tf, ty
    cdef Py_ssize_t rows_tx[3]
    cdef Py_ssize_t total_row = mt.cap + 1
    cdef uint64_t* c
    cdef Table* t_ptr
    with nogil:
        for i in range(n):
            r = rec + i
            fl = r.flags
            ts = <uint64_t>r.ts_ns
            wl = r.wirelen
            ok = (fl & F_MALFORMED) == 0
            l2 = r.caplen >= 14
            tx = 1ULL << C_FRAMES
            rx = 1ULL << C_RX_FRAMES
            hosth = porth = chh = rsth = 0
            dk1 = dk2 = 0
            if fl & F_BROADCAST:
                tx |= 1ULL << C_BROADCAST
            elif fl & F_MULTICAST:
                tx |= 1ULL << C_MULTICAST
            if not ok:
                tx |= 1ULL << C_MALFORMED
            if fl & F_TRUNCATED:
                tx |= 1ULL << C_TRUNCATED
            ip = ok and (fl & (F_IPV4 | F_IPV6)) != 0
            if ip:
                if fl & F_IPV4:
                    dk1, dk2 = 0, V4_MAPPED | r.dst_ip
                else:
                    dk1, dk2 = r.dst_ip6_hi, r.dst_ip6_lo
            arp_ok = ok and (fl & F_ARP) != 0 and (r.arp_sha != 0 or r.arp_spa != 0)
            if ok:
                if fl & F_TCP:
                    tf = r.tcp_flags
                    if tf & 0x02:
                        if tf & 0x10:
                            tx |= 1ULL << C_TCP_SYNACK
                            rx |= 1ULL << C_TCP_SYNACK_RCVD
                        else:
                            tx |= 1ULL << C_TCP_SYN
                            hosth = key_hash(dk1, dk2)
                            porth = mix64(r.dport + SALT_PORT)
                    elif (tf & 0x14) == 0:
                        # neither ACK nor RST: a FIN/NULL/Xmas probe, which no live connection sends
                        tx |= 1ULL << C_TCP_STEALTH
                        hosth = key_hash(dk1, dk2)
                        porth = mix64(r.dport + SALT_PORT)
                    if tf & 0x04:
                        tx |= 1ULL << C_TCP_RST
                        rx |= 1ULL << C_TCP_RST_RCVD
                        if (tf & 0x10) == 0:
                            tx |= 1ULL << C_TCP_RST_BARE
                        if r.sport <= r.dport:  # a service port resetting a client-side port
                            rsth = mix64(r.sport + SALT_RST)
                elif fl & F_UDP:
                    if (fl & (F_BROADCAST | F_MULTICAST)) == 0:
                        if r.dport <= r.sport:
                            tx |= 1ULL << C_UDP_PROBE
                            hosth = key_hash(dk1, dk2)
                            porth = mix64(r.dport + SALT_PORT)
                        if wl <= UDP_SMALL and (fl & F_DNS) == 0:
                            tx |= 1ULL << C_UDP_SMALL
                elif fl & F_ICMP:
                    ty = r.icmp_type
                    if r.ip_proto == 1:
                        if ty == 3:
                            tx |= 1ULL << C_ICMP_UNREACH
                            rx |= 1ULL << C_ICMP_UNREACH_RCVD
                        elif ty == 8:
                            tx |= 1ULL << C_ICMP_ECHO_REQUEST
                            hosth = key_hash(dk1, dk2)
                        elif ty == 0:
                            rx |= 1ULL << C_ICMP_ECHO_REPLY_RCVD
                        elif ty == 11:
                            tx |= 1ULL << C_ICMP_TIME_EXCEEDED
                    else:
                        if ty == 1:
                            tx |= 1ULL << C_ICMP_UNREACH
                            rx |= 1ULL << C_ICMP_UNREACH_RCVD
                        elif ty == 128:
                            tx |= 1ULL << C_ICMP_ECHO_REQUEST
                            hosth = key_hash(dk1, dk2)
                        elif ty == 129:
                            rx |= 1ULL << C_ICMP_ECHO_REPLY_RCVD
                        elif ty == 3:
                            tx |= 1ULL << C_ICMP_TIME_EXCEEDED
                if fl & F_DNS:
                    if fl & F_DNS_RESPONSE:
                        tx |= 1ULL << C_DNS_RESPONSE
                        rx |= 1ULL << C_DNS_RESPONSE_RCVD
                        if r.dns_rcode == 3:
                            tx |= 1ULL << C_DNS_NXDOMAIN
                            rx |= 1ULL << C_DNS_NXDOMAIN_RCVD
                        elif r.dns_rcode == 2:
                            tx |= 1ULL << C_DNS_SERVFAIL
                            rx |= 1ULL << C_DNS_SERVFAIL_RCVD
                    else:
                        tx |= 1ULL << C_DNS_QUERY
                if fl & F_DHCP:
                    ty = r.dhcp_msg_type
                    if ty == 1:
                        tx |= 1ULL << C_DHCP_DISCOVER
                    elif ty == 2:
                        tx |= 1ULL << C_DHCP_OFFER
                    elif ty == 3:
                        tx |= 1ULL << C_DHCP_REQUEST
                    elif ty == 5:
                        tx |= 1ULL << C_DHCP_ACK
                    elif ty == 6:
                        tx |= 1ULL << C_DHCP_NAK
                    elif ty == 8:
                        tx |= 1ULL << C_DHCP_INFORM
                    if (ty == 1 or ty == 3 or ty == 8) and r.dhcp_chaddr != 0:
                        chh = mix64(r.dhcp_chaddr ^ SALT_CHADDR)
                if arp_ok:
                    if r.arp_op == 1:
                        tx |= 1ULL << C_ARP_REQUEST
                        if (fl & F_ARP_GRATUITOUS) == 0 and r.arp_tpa != 0:
                            hosth = key_hash(0, V4_MAPPED | r.arp_tpa)
                    elif r.arp_op == 2:
                        tx |= 1ULL << C_ARP_REPLY
                        rx |= 1ULL << C_ARP_REPLY_RCVD
                    if fl & F_ARP_GRATUITOUS:
                        tx |= 1ULL << C_ARP_GRATUITOUS
                    if r.arp_sha != r.src_mac:
                        tx |= 1ULL << C_ARP_SHA_MISMATCH
                if fl & F_LLDP:
                    tx |= 1ULL << C_LLDP
                elif fl & F_CDP:
                    tx |= 1ULL << C_CDP
                elif fl & F_STP:
                    tx |= 1ULL << C_STP

            # rows: sources insert, destinations only update existing rows
            ms = upsert(&mt, r.src_mac, 0) if l2 and r.src_mac != 0 else -1  # 0: no MAC (raw IP captures)
            isrc = -1
            if ip:
                if fl & F_IPV4:
                    if r.src_ip != 0:
                        isrc = upsert(&it, 0, V4_MAPPED | r.src_ip)
                elif r.src_ip6_hi != 0 or r.src_ip6_lo != 0:
                    isrc = upsert(&it, r.src_ip6_hi, r.src_ip6_lo)
            rows_tx[0] = ms
            rows_tx[1] = isrc
            rows_tx[2] = total_row
            for k in range(3):
                if rows_tx[k] < 0:
                    continue
                if k == 1:
                    t_ptr = &it
                else:
                    t_ptr = &mt
                c = t_ptr.counts + rows_tx[k] * C_COUNT
                apply(c, tx, wl, 0, ts)
                if ok and rows_tx[k] != t_ptr.cap:
                    if k == 0:
                        if ip and (fl & F_IPV4) and r.src_ip != 0:
                            c[C_PEER] = r.src_ip
                        elif arp_ok and r.arp_spa != 0:
                            c[C_PEER] = r.arp_spa
                    elif k == 1:
                        if c[C_PEER] != 0 and c[C_PEER] != r.src_mac:
                            c[C_PEER_CHANGES] += 1
                            c[C_PREV_PEER] = c[C_PEER]
                        c[C_PEER] = r.src_mac
                    if r.dhcp_server_id != 0 and (r.dhcp_msg_type == 2 or r.dhcp_msg_type == 5 or r.dhcp_msg_type == 6):
                        c[C_DHCP_SERVER_ID] = r.dhcp_server_id
                    if r.dhcp_fingerprint != 0:
                        c[C_DHCP_FINGERPRINT] = r.dhcp_fingerprint
                if ok:
                    if hosth:
                        hll_add(t_ptr.hll + rows_tx[k] * t_ptr.hll_width + S_HOSTS * HLL_M, hosth)
                    if porth:
                        hll_add(t_ptr.hll + rows_tx[k] * t_ptr.hll_width + S_PORTS * HLL_M, porth)
                    if chh:
                        hll_add(t_ptr.hll + rows_tx[k] * t_ptr.hll_width + S_DHCP_CLIENTS * HLL_M, chh)
            if ms >= 0 and r.vlan >= 0 and ms != mt.cap:
                mt.counts[ms * C_COUNT + C_VLAN] = <uint64_t>r.vlan + 1
            # a response (SYN-ACK, RST, ARP reply, DNS answer, ICMP error/echo reply) may open its
            # destination's row: it can cross a window boundary after the request; plain traffic cannot
            respond = (rx & ~(1ULL << C_RX_FRAMES)) != 0
            if l2 and (fl & (F_BROADCAST | F_MULTICAST)) == 0 and r.dst_mac != 0:
                md = upsert(&mt, r.dst_mac, 0) if respond else lookup(&mt, r.dst_mac, 0)
                if md >= 0:
                    apply(mt.counts + md * C_COUNT, rx, 0, wl, ts)
                    if rsth:
                        hll_add(mt.hll + md * mt.hll_width + S_RST_PORTS * HLL_M, rsth)
            if ip and (dk1 != 0 or (dk2 & 0xFFFFFFFFULL) != 0):
                idst = upsert(&it, dk1, dk2) if respond else lookup(&it, dk1, dk2)
                if idst >= 0:
                    apply(it.counts + idst * C_COUNT, rx, 0, wl, ts)
                    if rsth:
                        hll_add(it.hll + idst * it.hll_width + S_RST_PORTS * HLL_M, rsth)
            if arp_ok and r.arp_spa != 0:
                ar = upsert(&at, r.arp_spa, r.arp_sha)
                apply(at.counts + ar * C_COUNT, tx & ARP_MASK, 0, 0, ts)


__all__ += ["record_totals"]


def record_totals(records, int64_t[::1] flag_counts):
    """One pass over a batch of FRAME_DTYPE records for the running totals: each record's set flag bits
    are counted into flag_counts (int64[32], in place, so the caller keeps one array), and the batch's
    (wire bytes, first ts_ns, last ts_ns) are returned ((0, 0, 0) for an empty batch)."""
    if records.dtype != _FRAME_DTYPE or not records.flags.c_contiguous:
        raise TypeError("record_totals: records must be a C-contiguous FRAME_DTYPE array")
    if flag_counts.shape[0] < 32:
        raise ValueError(f"record_totals: flag_counts must hold 32 counters, got {flag_counts.shape[0]}")
    cdef Py_ssize_t n = records.shape[0], i
    if n == 0:
        return 0, 0, 0
    cdef FrameRecord* rec = <FrameRecord*>cnp.PyArray_DATA(records)
    cdef uint32_t fl
    cdef uint64_t nbytes = 0
    cdef int64_t lo = rec[0].ts_ns, hi = rec[0].ts_ns, ts
    cdef int64_t* fc = &flag_counts[0]
    with nogil:
        for i in range(n):
            fl = rec[i].flags
            while fl:
                fc[__builtin_ctzll(fl)] += 1
                fl &= fl - 1
            nbytes += rec[i].wirelen
            ts = rec[i].ts_ns
            if ts < lo:
                lo = ts
            if ts > hi:
                hi = ts
    return nbytes, lo, hi
