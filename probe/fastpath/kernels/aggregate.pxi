# aggregate kernels: see probe/fastpath/twin/aggregate.py for the pure-Python twin.
# Parsed frame records -> per-device counters and HyperLogLog sketches in bounded hash tables
# (layout in probe/fastpath/layout.py; the tables are owned by probe/state/aggregates.py).

from probe.fastpath.layout import agg_input_mask as _agg_input_mask

__all__ += ["aggregate_frames"]

cdef extern from *:
    int __builtin_ctzll(unsigned long long) nogil
    int __builtin_clzll(unsigned long long) nogil

# counter columns (C_*), sketches (S_*, HLL_*), salts and V4_MAPPED: layout.pxi, from probe/fastpath/layout.py

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
    x *= MIX_MUL1
    x ^= x >> 27
    x *= MIX_MUL2
    x ^= x >> 31
    return x


cdef inline uint64_t key_hash(uint64_t k1, uint64_t k2) noexcept nogil:
    return mix64(k1 ^ mix64(k2 + SALT_PORT))


cdef inline Py_ssize_t upsert(Table* t, uint64_t k1, uint64_t k2, uint64_t h) noexcept nogil:
    # row of (k1, k2) (h: their key_hash), inserted if absent; the overflow row `cap` when the table is full
    cdef uint64_t i = h & t.mask
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


cdef inline Py_ssize_t lookup(Table* t, uint64_t k1, uint64_t k2, uint64_t h) noexcept nogil:
    cdef uint64_t i = h & t.mask
    cdef int32_t s
    while True:
        s = t.slots[i]
        if s < 0:
            return -1
        if t.keys[2 * s] == k1 and t.keys[2 * s + 1] == k2:
            return s
        i = (i + 1) & t.mask


# One "last key -> row" entry per role (source MAC, destination IP...), local to one aggregate_frames
# call: traffic comes in runs of one flow, so most frames skip the hash and the probe. A row once found
# stays that row for the whole call (rows move only when Python resets the table, between calls); an
# absent key stays absent until the next insert (meta[0] changes); a full table stays full, so the
# overflow row is still right, but each frame that lands there is counted in meta[1] as before.
cdef struct RowCache:
    uint64_t k1
    uint64_t k2
    uint64_t h        # key_hash(k1, k2)
    Py_ssize_t row    # when state == 2: upsert's or lookup's answer (-1: absent)
    int64_t used      # meta[0] when row -1 was found
    int state         # 0 empty, 1 key and hash, 2 key, hash and row


cdef inline uint64_t cached_hash(RowCache* c, uint64_t k1, uint64_t k2) noexcept nogil:
    if c.state == 0 or c.k1 != k1 or c.k2 != k2:
        c.k1 = k1
        c.k2 = k2
        c.h = key_hash(k1, k2)
        c.state = 1
    return c.h


cdef inline Py_ssize_t cached_upsert(Table* t, RowCache* c, uint64_t k1, uint64_t k2) noexcept nogil:
    cdef uint64_t h = cached_hash(c, k1, k2)
    if c.state == 2 and c.row >= 0:
        if c.row == t.cap:
            t.meta[1] += 1
        return c.row
    c.row = upsert(t, k1, k2, h)
    c.state = 2
    return c.row


cdef inline Py_ssize_t cached_lookup(Table* t, RowCache* c, uint64_t k1, uint64_t k2) noexcept nogil:
    cdef uint64_t h = cached_hash(c, k1, k2)
    if c.state == 2:
        if c.row == t.cap:
            return -1  # it did not fit, and the table is still full
        if c.row >= 0 or c.used == t.meta[0]:
            return c.row
    c.row = lookup(t, k1, k2, h)
    c.used = t.meta[0]
    c.state = 2
    return c.row


cdef inline uint64_t bitmap_bit(uint64_t x) noexcept nogil:
    # the one bit a flow sets in a flow bitmap (layout.BITMAPS): the top bits of its hash pick it
    return 1ULL << (mix64(x) >> BITMAP_SHIFT)


cdef inline uint64_t dns_transaction(uint64_t ck1, uint64_t ck2, uint64_t sk1, uint64_t sk2, uint64_t cport,
                                     uint64_t qid) noexcept nogil:
    # client, server, the client's port and the query ID (a retry of one query to one server is one)
    return key_hash(ck1, ck2) ^ mix64(key_hash(sk1, sk2) ^ (((cport << 16) | qid) + SALT_FLOW))


cdef inline uint64_t port_hash(uint32_t dport, uint32_t* last, uint64_t* last_h) noexcept nogil:
    # the port sketch's hash, kept for the last port seen (a scan changes it, a flow does not)
    if dport != last[0]:
        last[0] = dport
        last_h[0] = mix64(dport + SALT_PORT)
    return last_h[0]


cdef inline void hll_add(uint8_t* reg, uint64_t h) noexcept nogil:
    cdef uint64_t w = h << HLL_BITS
    cdef uint8_t rank = <uint8_t>(64 - HLL_BITS + 1) if w == 0 else <uint8_t>(__builtin_clzll(w) + 1)
    cdef uint64_t j = h >> (64 - HLL_BITS)
    if reg[j] < rank:
        reg[j] = rank


cdef inline uint64_t unreach_effect(const FrameRecord* r, uint8_t port_code, uint64_t* rx) noexcept nogil:
    # an unreachable received: a port unreachable quoting a UDP datagram from port 53 is a DNS answer that
    # came after its client gave up (C_ICMP_UNREACH_DNS_RCVD); any other sets its destination's bit
    if r.icmp_code == port_code and r.icmp_quote_proto == 17 and r.icmp_quote_sport == DNS_PORT:
        rx[0] |= 1ULL << C_ICMP_UNREACH_DNS_RCVD
        return 0
    return bitmap_bit(mix64(<uint64_t>r.icmp_quote_dst + SALT_PORT)
                      ^ ((<uint64_t>r.icmp_quote_proto << 32) | (<uint64_t>r.icmp_quote_sport << 16) | r.icmp_quote_dport))


cdef struct Recent:
    uint64_t* dup       # [DUP_SLOTS, 2]: frame hash, copies in the run << 32 | last ts >> 20 (probe/fastpath/layout.py)
    uint64_t dup_mask
    uint64_t* flow      # [FLOW_SLOTS, 2]: flow tag | highest sequence end, last seq | IPv4 ID | ts
    uint64_t flow_mask


cdef inline uint64_t dup_track(Recent* rc, const FrameRecord* r, uint64_t ts) noexcept nogil:
    # 0 for a frame that does not repeat the one in its slot within the run gap, else its dup_max value
    # (copies in the run so far, what it is)
    cdef uint64_t* e = rc.dup + 2 * (r.frame_hash & rc.dup_mask)
    cdef uint64_t now = (ts >> DUP_TS_SHIFT) & 0xFFFFFFFFULL
    if e[0] != r.frame_hash or ((now - e[1]) & 0xFFFFFFFFULL) > DUP_GAP_UNITS:
        e[0] = r.frame_hash  # direct-mapped: a different frame evicts the old one; a late one starts a run
        e[1] = (1ULL << 32) | now
        return 0
    e[1] = (((e[1] >> 32) + 1) << 32) | now
    return ((e[1] >> 32) << 32 | (<uint64_t>r.ethertype << 16) | (dup_protocol(r.flags) << 12)
            | (<uint64_t>(r.vlan & 0xFFF) if r.vlan >= 0 else <uint64_t>DUP_NO_VLAN))


cdef inline uint64_t tcp_track(Recent* rc, const FrameRecord* r, uint64_t ts, uint64_t* flow_bit) noexcept nogil:
    # tx bits of a TCP segment: C_TCP_DATA for one that carries data (or SYN-ACK/FIN), plus C_TCP_RETRANS
    # (and its flow's retrans_flows bit in *flow_bit)
    # when its sequence end is not beyond the highest the flow has sent; a keep-alive, or a SPAN copy of the previous
    # segment (same seq and IPv4 ID, or within ~1 ms without an ID) counts as nothing. 16-byte entries
    # (layout in probe/fastpath/layout.py) keep the table in cache.
    cdef uint32_t tf = r.tcp_flags
    cdef uint32_t seg = <uint32_t>r.tcp_len + ((tf >> 1) & 1) + (tf & 1)
    cdef uint64_t a, key, tag, last, now
    cdef uint64_t* e
    cdef uint32_t seq, end
    cdef int32_t ahead
    cdef bint v4
    if seg == 0 or (tf & (TCP_SYN | TCP_ACK)) == TCP_SYN:
        # pure ACKs carry nothing to resend; bare SYNs are judged by the handshake counters (unanswered,
        # refused): a scan or a SYN flood from spoofed sources then neither churns this table nor pays for it
        return 0
    v4 = (r.flags & F_IPV4) != 0
    if v4:
        a = (<uint64_t>r.src_ip << 32) | r.dst_ip
    else:
        a = r.src_ip6_hi ^ mix64(r.src_ip6_lo) ^ mix64(r.dst_ip6_hi + SALT_PORT) ^ mix64(r.dst_ip6_lo + SALT_CHADDR)
    key = mix64(a ^ (((<uint64_t>r.sport << 16) | r.dport | (<uint64_t>(not v4) << 32)) * SALT_PORT))
    tag = (key >> 32) | 1  # never 0: an empty slot matches no flow
    e = rc.flow + 2 * (key & rc.flow_mask)
    seq = r.tcp_seq
    end = seq + seg
    now = (ts >> FLOW_TS_SHIFT) & 0xFFFF  # ~65.5 us units
    last = (<uint64_t>seq << 32) | (<uint64_t>r.ip_id << 16) | now
    if (e[0] >> 32) != tag or ((tf & TCP_SYN) and (e[1] >> 32) != seq):
        # a new flow, one that evicted another, or a new connection on a reused 4-tuple (a SYN-ACK with
        # another initial sequence number): its first segment is no retransmission
        e[0] = (tag << 32) | end
        e[1] = last
        return 1ULL << C_TCP_DATA
    if r.tcp_len <= 1 and (tf & (TCP_SYN | TCP_FIN | TCP_RST)) == 0 and <uint32_t>(seq + 1) == <uint32_t>e[0]:
        # a keep-alive: 0 or 1 byte one before the next sequence number, probing an idle peer (what
        # Wireshark calls tcp.analysis.keep_alive); neither data nor a retransmission
        return 0
    if (e[1] >> 32) == seq and ((v4 and r.ip_id != 0 and ((e[1] >> 16) & 0xFFFF) == r.ip_id)
                                or ((not v4 or r.ip_id == 0) and ((now - e[1]) & 0xFFFF) <= SPAN_COPY_UNITS)):
        return 0
    e[1] = last
    ahead = <int32_t>(end - <uint32_t>e[0])
    if ahead <= 0 and ahead > -SEQ_REUSE_GAP:
        flow_bit[0] = 1ULL << (key >> BITMAP_SHIFT)
        return (1ULL << C_TCP_DATA) | (1ULL << C_TCP_RETRANS)
    e[0] = (tag << 32) | end  # new data, or far behind: a new connection whose SYN-ACK we did not see
    return 1ULL << C_TCP_DATA


# What one frame does to the tables once classified: its rows, counter bits, sketch hashes and peer
# values. Frames in a row often do the same (a flow's segments, a flood's copies); aggregate_frames adds
# such a run once, with its frame count, bytes and first/last time, instead of once per frame. The result
# is exactly the per-frame one: counters add, first/last seen take the min/max of nonzero times (a run
# holds no zero time), sketch registers and peers end the same whether set once or n times, and a frame
# that repeats another (dupv) is a run of its own.
cdef struct Effect:
    uint64_t tx, rx                         # counter bits: the sources' rows, the destinations' rows
    Py_ssize_t ms, isrc, md, idst, ar       # rows (-1: none): source MAC and IP, destination MAC and IP, ARP
    uint64_t src_mac, peer_ip, dhcp_sid, dhcp_fp
    uint64_t hosth, porth, chh, rsth, dupv
    uint64_t retrb, dnsqb, dnseb, rstfb, unrb  # flow bitmap bits: tx retrans/DNS query/DNS error, rx reset/unreachable/DNS error
    int32_t vlan
    bint ok
    uint64_t n, bytes, ts_lo, ts_hi         # the run: frames, wire bytes, first and last time


cdef inline bint same_effect(const Effect* a, const Effect* b) noexcept nogil:
    return (a.tx == b.tx and a.rx == b.rx and a.ms == b.ms and a.isrc == b.isrc and a.md == b.md
            and a.idst == b.idst and a.ar == b.ar and a.porth == b.porth and a.hosth == b.hosth
            and a.dupv == 0 and b.dupv == 0 and a.src_mac == b.src_mac and a.peer_ip == b.peer_ip
            and a.chh == b.chh and a.rsth == b.rsth and a.dhcp_sid == b.dhcp_sid and a.dhcp_fp == b.dhcp_fp
            and a.vlan == b.vlan and a.ok == b.ok and a.retrb == b.retrb and a.dnsqb == b.dnsqb
            and a.dnseb == b.dnseb and a.rstfb == b.rstfb and a.unrb == b.unrb)


cdef inline void apply_run(uint64_t* c, uint64_t mask, uint64_t n, uint64_t add_bytes, uint64_t add_rx_bytes,
                           uint64_t lo, uint64_t hi) noexcept nogil:
    while mask:
        c[__builtin_ctzll(mask)] += n
        mask &= mask - 1
    c[C_BYTES] += add_bytes
    c[C_RX_BYTES] += add_rx_bytes
    if c[C_FIRST_SEEN_NS] == 0 or lo < c[C_FIRST_SEEN_NS]:
        c[C_FIRST_SEEN_NS] = lo
    if hi > c[C_LAST_SEEN_NS]:
        c[C_LAST_SEEN_NS] = hi


cdef inline void add_run(Table* mt, Table* it, Table* at, const Effect* e) noexcept nogil:
    cdef Py_ssize_t rows[3]
    cdef Py_ssize_t k, row
    cdef Table* t
    cdef uint64_t* c
    cdef uint8_t* sk
    rows[0] = e.ms
    rows[1] = e.isrc
    rows[2] = mt.cap + 1  # the totals row
    for k in range(3):
        row = rows[k]
        if row < 0:
            continue
        t = it if k == 1 else mt
        c = t.counts + row * C_COUNT
        apply_run(c, e.tx, e.n, e.bytes, 0, e.ts_lo, e.ts_hi)
        if e.dupv != 0 and e.dupv > c[C_DUP_MAX]:
            c[C_DUP_MAX] = e.dupv
        if not e.ok:
            continue
        if row != t.cap:
            if k == 0:
                if e.peer_ip != 0:
                    c[C_PEER] = e.peer_ip
            elif k == 1:
                if c[C_PEER] != 0 and c[C_PEER] != e.src_mac:
                    c[C_PEER_CHANGES] += 1
                    c[C_PREV_PEER] = c[C_PEER]
                c[C_PEER] = e.src_mac
            if e.dhcp_sid != 0:
                c[C_DHCP_SERVER_ID] = e.dhcp_sid
            if e.dhcp_fp != 0:
                c[C_DHCP_FINGERPRINT] = e.dhcp_fp
        sk = t.hll + row * t.hll_width
        if e.hosth:
            hll_add(sk + S_DST_HOSTS * HLL_REGISTERS, e.hosth)
        if e.porth:
            hll_add(sk + S_DST_PORTS * HLL_REGISTERS, e.porth)
        if e.chh:
            hll_add(sk + S_DHCP_CLIENTS * HLL_REGISTERS, e.chh)
        c[C_RETRANS_FLOWS] |= e.retrb
        c[C_DNS_QUERY_FLOWS] |= e.dnsqb
        c[C_DNS_ERROR_FLOWS] |= e.dnseb
    if e.ms >= 0 and e.vlan >= 0 and e.ms != mt.cap:
        mt.counts[e.ms * C_COUNT + C_VLAN] = <uint64_t>e.vlan + 1
    if e.md >= 0:
        c = mt.counts + e.md * C_COUNT
        apply_run(c, e.rx, e.n, 0, e.bytes, e.ts_lo, e.ts_hi)
        if e.rsth:
            hll_add(mt.hll + e.md * mt.hll_width + S_RST_PORTS * HLL_REGISTERS, e.rsth)
        c[C_RST_FLOWS] |= e.rstfb
        c[C_UNREACH_DSTS] |= e.unrb
        c[C_DNS_ERROR_FLOWS] |= e.dnseb
    if e.idst >= 0:
        c = it.counts + e.idst * C_COUNT
        apply_run(c, e.rx, e.n, 0, e.bytes, e.ts_lo, e.ts_hi)
        if e.rsth:
            hll_add(it.hll + e.idst * it.hll_width + S_RST_PORTS * HLL_REGISTERS, e.rsth)
        c[C_RST_FLOWS] |= e.rstfb
        c[C_UNREACH_DSTS] |= e.unrb
        c[C_DNS_ERROR_FLOWS] |= e.dnseb
    if e.ar >= 0:
        apply_run(at.counts + e.ar * C_COUNT, e.tx & ARP_MASK, e.n, 0, 0, e.ts_lo, e.ts_hi)


cdef Recent _recent(object spec) except *:
    cdef Recent rc
    dup, flow = spec
    for name, a, width in (("duplicate", dup, 2), ("flow", flow, 2)):
        if a.dtype != np.uint64 or a.ndim != 2 or a.shape[1] != width or not a.flags.c_contiguous \
                or not a.flags.writeable:
            raise ValueError(f"aggregate_frames: the {name} table must be a writeable C-contiguous uint64[N, {width}]")
        if a.shape[0] < 1 or a.shape[0] & (a.shape[0] - 1):
            raise ValueError(f"aggregate_frames: the {name} table's rows must be a power of two, got {a.shape[0]}")
    rc.dup = <uint64_t*>cnp.PyArray_DATA(dup)
    rc.dup_mask = <uint64_t>(dup.shape[0] - 1)
    rc.flow = <uint64_t*>cnp.PyArray_DATA(flow)
    rc.flow_mask = <uint64_t>(flow.shape[0] - 1)
    return rc


cdef Table _table(object spec, bint with_hll) except *:
    cdef Table t
    cdef cnp.ndarray slots, keys, counts, hll, meta
    try:
        slots, keys, counts, hll, meta = spec
    except TypeError:
        raise TypeError("aggregate_frames: a table is a tuple of five numpy arrays") from None
    # C macros, not attribute lookups: this runs three times per batch
    if (cnp.PyArray_TYPE(slots) != cnp.NPY_INT32 or cnp.PyArray_TYPE(keys) != cnp.NPY_UINT64
            or cnp.PyArray_TYPE(counts) != cnp.NPY_UINT64 or cnp.PyArray_TYPE(hll) != cnp.NPY_UINT8
            or cnp.PyArray_TYPE(meta) != cnp.NPY_INT64):
        raise TypeError("aggregate_frames: table arrays have the wrong dtypes")
    if not (cnp.PyArray_IS_C_CONTIGUOUS(slots) and cnp.PyArray_IS_C_CONTIGUOUS(keys)
            and cnp.PyArray_IS_C_CONTIGUOUS(counts) and cnp.PyArray_IS_C_CONTIGUOUS(hll)
            and cnp.PyArray_IS_C_CONTIGUOUS(meta) and cnp.PyArray_ISWRITEABLE(slots)):
        raise ValueError("aggregate_frames: table arrays must be C-contiguous and writeable")
    if cnp.PyArray_NDIM(counts) != 2 or cnp.PyArray_NDIM(keys) != 2 or cnp.PyArray_NDIM(hll) != 2 \
            or cnp.PyArray_NDIM(slots) != 1 or cnp.PyArray_NDIM(meta) != 1:
        raise ValueError("aggregate_frames: table arrays have inconsistent shapes")
    cdef Py_ssize_t rows = cnp.PyArray_DIM(counts, 0)
    if (cnp.PyArray_DIM(counts, 1) != C_COUNT or cnp.PyArray_DIM(keys, 0) != rows or cnp.PyArray_DIM(keys, 1) != 2
            or cnp.PyArray_DIM(hll, 0) != rows or cnp.PyArray_DIM(meta, 0) < 2 or rows < 3):
        raise ValueError("aggregate_frames: table arrays have inconsistent shapes")
    cdef Py_ssize_t nslots = cnp.PyArray_DIM(slots, 0)
    if nslots & (nslots - 1) or nslots < 2 * (rows - 2):
        raise ValueError("aggregate_frames: slot array must be a power of two of at least twice the capacity")
    if with_hll and cnp.PyArray_DIM(hll, 1) != N_SKETCHES * HLL_REGISTERS:
        raise ValueError("aggregate_frames: sketch array has the wrong width")
    t.slots = <int32_t*>cnp.PyArray_DATA(slots)
    t.mask = <uint64_t>(nslots - 1)
    t.keys = <uint64_t*>cnp.PyArray_DATA(keys)
    t.counts = <uint64_t*>cnp.PyArray_DATA(counts)
    t.hll = <uint8_t*>cnp.PyArray_DATA(hll)
    t.hll_width = cnp.PyArray_DIM(hll, 1)
    t.meta = <int64_t*>cnp.PyArray_DATA(meta)
    t.cap = rows - 2
    return t


# What aggregate_frames carries from one frame to the next: the tables, the recent-frame state, the
# per-role row caches and the run being added up. The ring's walk (ring.pxi) keeps one too, so it can
# aggregate each frame right after parsing it.
cdef struct AggState:
    Table mt, it, at
    Recent rc
    bint track
    RowCache src_mac_c, dst_mac_c, src_ip_c, dst_ip_c, arp_c
    uint32_t last_dport
    uint64_t last_porth
    Effect run
    const FrameRecord* prev   # the frame before (its classification is the run's), or NULL


# The words of a FrameRecord that classification reads (probe.fastpath.layout.agg_input_mask), as a C array.
cdef uint64_t AGG_INPUT_MASK[RECORD_WORDS]
if sizeof(FrameRecord) != RECORD_WORDS * 8:
    raise ImportError("aggregate.pxi RECORD_WORDS does not match FrameRecord")
for _i, _w in enumerate(_agg_input_mask().tolist()):
    AGG_INPUT_MASK[_i] = _w


cdef inline bint same_inputs(const FrameRecord* a, const FrameRecord* b) noexcept nogil:
    # every field classification reads is equal (AGG_UNREAD_FIELDS aside)
    cdef const uint64_t* x = <const uint64_t*>a
    cdef const uint64_t* y = <const uint64_t*>b
    cdef uint64_t acc = 0
    cdef int i
    for i in range(RECORD_WORDS):
        acc |= (x[i] ^ y[i]) & AGG_INPUT_MASK[i]
    return acc == 0


cdef inline bint repeats_prev(const AggState* s, const FrameRecord* r) noexcept nogil:
    # r does what the frame before did, without classifying it again: the same inputs and classes; not
    # TCP (its flow tracking runs per segment), no frame hash (duplicate tracking runs per frame), and a
    # run whose rows are not overflow rows (cached_upsert counts each overflowed frame); not DNS either (its
    # transaction bit reads the port and query ID, which same_inputs leaves out)
    cdef const FrameRecord* p = s.prev
    cdef const Effect* e = &s.run
    return (p != NULL and e.n != 0 and r.frame_hash == 0 and p.frame_hash == 0 and (r.flags & (F_TCP | F_DNS)) == 0
            and same_inputs(r, p) and (r.dport <= r.sport) == (p.dport <= p.sport)
            and (r.caplen >= 14) == (p.caplen >= 14) and (r.wirelen <= UDP_SMALL_WIRELEN) == (p.wirelen <= UDP_SMALL_WIRELEN)
            and e.ms != s.mt.cap and e.isrc != s.it.cap and e.md != s.mt.cap and e.idst != s.it.cap
            and e.ar != s.at.cap)


cdef int agg_state_init(AggState* s, object mac_table, object ip_table, object arp_table, object recent) except -1:
    memset(s, 0, sizeof(AggState))
    s.mt = _table(mac_table, True)
    s.it = _table(ip_table, True)
    s.at = _table(arp_table, False)
    s.track = recent is not None
    if s.track:
        s.rc = _recent(recent)
    s.last_porth = mix64(0 + SALT_PORT)
    return 0


cdef inline void agg_finish(AggState* s) noexcept nogil:
    # add the run in progress: call once after the last agg_frame
    if s.run.n != 0:
        add_run(&s.mt, &s.it, &s.at, &s.run)
        s.run.n = 0


cdef inline void agg_frame(AggState* s, const FrameRecord* r) noexcept nogil:
    # one frame into the tables (or into the run in progress, which agg_finish or a different frame adds)
    cdef uint32_t fl
    cdef uint64_t tx, rx, ts, wl, dk1, dk2, sk1, sk2, hosth, porth, chh, dupv, rsth
    cdef uint64_t retrb, dnsqb, dnseb, rstfb, unrb
    cdef bint ok, ip, l2, arp_ok, respond
    cdef uint8_t tf, ty
    cdef Effect e
    ts = <uint64_t>r.ts_ns
    if ts != 0 and s.run.ts_lo != 0 and repeats_prev(s, r):  # one flow's next frame: it joins the run
        s.prev = r
        s.run.n += 1
        s.run.bytes += r.wirelen
        if ts < s.run.ts_lo:
            s.run.ts_lo = ts
        if ts > s.run.ts_hi:
            s.run.ts_hi = ts
        return
    s.prev = r
    fl = r.flags
    wl = r.wirelen
    ok = (fl & F_MALFORMED) == 0
    l2 = r.caplen >= 14
    tx = 1ULL << C_FRAMES
    rx = 1ULL << C_RX_FRAMES
    hosth = porth = chh = rsth = 0
    retrb = dnsqb = dnseb = rstfb = unrb = 0
    dk1 = dk2 = sk1 = sk2 = 0
    if fl & F_BROADCAST:
        tx |= 1ULL << C_BROADCAST
    elif fl & F_MULTICAST:
        tx |= 1ULL << C_MULTICAST
    if not ok:
        tx |= 1ULL << C_MALFORMED
    if fl & F_TRUNCATED:
        tx |= 1ULL << C_TRUNCATED
    dupv = 0
    if s.track and r.frame_hash != 0:  # broadcast/multicast only (parse hashes no unicast)
        dupv = dup_track(&s.rc, r, ts)
        if dupv:
            tx |= 1ULL << C_DUP_FRAMES
    ip = ok and (fl & (F_IPV4 | F_IPV6)) != 0
    if ip:
        if fl & F_IPV4:
            dk1, dk2 = 0, V4_MAPPED | r.dst_ip
            sk1, sk2 = 0, V4_MAPPED | r.src_ip
        else:
            dk1, dk2 = r.dst_ip6_hi, r.dst_ip6_lo
            sk1, sk2 = r.src_ip6_hi, r.src_ip6_lo
    arp_ok = ok and (fl & F_ARP) != 0 and (r.arp_sha != 0 or r.arp_spa != 0)
    if ok:
        if fl & F_TCP:
            tf = r.tcp_flags
            if tf & TCP_SYN:
                if tf & TCP_ACK:
                    tx |= 1ULL << C_TCP_SYNACK
                    rx |= 1ULL << C_TCP_SYNACK_RCVD
                else:
                    tx |= 1ULL << C_TCP_SYN
                    hosth = cached_hash(&s.dst_ip_c, dk1, dk2)
                    porth = port_hash(r.dport, &s.last_dport, &s.last_porth)
            elif (tf & (TCP_ACK | TCP_RST)) == 0:
                # neither ACK nor RST: a FIN/NULL/Xmas probe, which no live connection sends
                tx |= 1ULL << C_TCP_STEALTH
                hosth = cached_hash(&s.dst_ip_c, dk1, dk2)
                porth = port_hash(r.dport, &s.last_dport, &s.last_porth)
            if tf & TCP_RST:
                tx |= 1ULL << C_TCP_RST
                rx |= 1ULL << C_TCP_RST_RCVD
                if (tf & TCP_ACK) == 0:
                    tx |= 1ULL << C_TCP_RST_BARE
                if r.sport <= r.dport:  # a service port resetting a client-side port
                    rsth = mix64(r.sport + SALT_RST)
                # the connection reset, as its receiver knows it: peer address and port, its own port
                rstfb = bitmap_bit(key_hash(sk1, sk2) ^ ((<uint64_t>r.sport << 16) | r.dport))
            if s.track:
                tx |= tcp_track(&s.rc, r, ts, &retrb)
        elif fl & F_UDP:
            if (fl & (F_BROADCAST | F_MULTICAST)) == 0:
                if r.dport <= r.sport:
                    tx |= 1ULL << C_UDP_PROBE
                    hosth = cached_hash(&s.dst_ip_c, dk1, dk2)
                    porth = port_hash(r.dport, &s.last_dport, &s.last_porth)
                if wl <= UDP_SMALL_WIRELEN and (fl & F_DNS) == 0:
                    tx |= 1ULL << C_UDP_SMALL
        elif fl & F_ICMP:
            ty = r.icmp_type
            if r.ip_proto == 1:
                if ty == 3:
                    tx |= 1ULL << C_ICMP_UNREACH
                    rx |= 1ULL << C_ICMP_UNREACH_RCVD
                    unrb = unreach_effect(r, 3, &rx)
                elif ty == 8:
                    tx |= 1ULL << C_ICMP_ECHO_REQUEST
                    hosth = cached_hash(&s.dst_ip_c, dk1, dk2)
                elif ty == 0:
                    rx |= 1ULL << C_ICMP_ECHO_REPLY_RCVD
                elif ty == 11:
                    tx |= 1ULL << C_ICMP_TIME_EXCEEDED
            else:
                if ty == 1:
                    tx |= 1ULL << C_ICMP_UNREACH
                    rx |= 1ULL << C_ICMP_UNREACH_RCVD
                    unrb = unreach_effect(r, 4, &rx)
                elif ty == 128:
                    tx |= 1ULL << C_ICMP_ECHO_REQUEST
                    hosth = cached_hash(&s.dst_ip_c, dk1, dk2)
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
                if r.dns_rcode == 3 or r.dns_rcode == 2:
                    dnseb = bitmap_bit(dns_transaction(dk1, dk2, sk1, sk2, r.dport, r.dns_id))
            else:
                tx |= 1ULL << C_DNS_QUERY
                dnsqb = bitmap_bit(dns_transaction(sk1, sk2, dk1, dk2, r.sport, r.dns_id))
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
            elif ty == 0 and (fl & F_TRUNCATED) != 0 and r.sport == 67:
                tx |= 1ULL << C_DHCP_REPLY_CUT
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
    e.ms = cached_upsert(&s.mt, &s.src_mac_c, r.src_mac, 0) if l2 and r.src_mac != 0 else -1  # 0: no MAC (raw IP captures)
    e.isrc = -1
    if ip:
        if fl & F_IPV4:
            if r.src_ip != 0:
                e.isrc = cached_upsert(&s.it, &s.src_ip_c, 0, V4_MAPPED | r.src_ip)
        elif r.src_ip6_hi != 0 or r.src_ip6_lo != 0:
            e.isrc = cached_upsert(&s.it, &s.src_ip_c, r.src_ip6_hi, r.src_ip6_lo)
    # a response (SYN-ACK, RST, ARP reply, DNS answer, ICMP error/echo reply) may open its
    # destination's row: it can cross a window boundary after the request; plain traffic cannot
    respond = (rx & ~(1ULL << C_RX_FRAMES)) != 0
    e.md = -1
    if l2 and (fl & (F_BROADCAST | F_MULTICAST)) == 0 and r.dst_mac != 0:
        e.md = cached_upsert(&s.mt, &s.dst_mac_c, r.dst_mac, 0) if respond else cached_lookup(&s.mt, &s.dst_mac_c, r.dst_mac, 0)
    e.idst = -1
    if ip and (dk1 != 0 or (dk2 & 0xFFFFFFFFULL) != 0):
        e.idst = cached_upsert(&s.it, &s.dst_ip_c, dk1, dk2) if respond else cached_lookup(&s.it, &s.dst_ip_c, dk1, dk2)
    e.ar = cached_upsert(&s.at, &s.arp_c, r.arp_spa, r.arp_sha) if arp_ok and r.arp_spa != 0 else -1
    e.tx = tx
    e.rx = rx
    e.ok = ok
    e.src_mac = r.src_mac
    e.peer_ip = 0
    e.dhcp_sid = e.dhcp_fp = 0
    if ok:
        if ip and (fl & F_IPV4) and r.src_ip != 0:
            e.peer_ip = r.src_ip
        elif arp_ok and r.arp_spa != 0:
            e.peer_ip = r.arp_spa
        if r.dhcp_server_id != 0 and (r.dhcp_msg_type == 2 or r.dhcp_msg_type == 5 or r.dhcp_msg_type == 6):
            e.dhcp_sid = r.dhcp_server_id
        e.dhcp_fp = r.dhcp_fingerprint
    e.hosth, e.porth, e.chh, e.rsth = hosth, porth, chh, rsth
    e.retrb, e.dnsqb, e.dnseb, e.rstfb, e.unrb = retrb, dnsqb, dnseb, rstfb, unrb
    e.dupv = dupv
    e.vlan = r.vlan
    if s.run.n != 0 and same_effect(&s.run, &e) and ts != 0 and s.run.ts_lo != 0:
        s.run.n += 1
        s.run.bytes += wl
        if ts < s.run.ts_lo:
            s.run.ts_lo = ts
        if ts > s.run.ts_hi:
            s.run.ts_hi = ts
    else:
        if s.run.n != 0:
            add_run(&s.mt, &s.it, &s.at, &s.run)
        s.run = e
        s.run.n = 1
        s.run.bytes = wl
        s.run.ts_lo = s.run.ts_hi = ts


def aggregate_frames(records, mac_table, ip_table, arp_table, recent=None):
    """Add a batch of FRAME_DTYPE records into three tables, in place.

    Each table is a tuple (slots int32[S], keys uint64[R, 2], counts uint64[R, N_COUNTERS],
    hll uint8[R, W], meta int64[2]) with R = capacity + 2 rows (row capacity: overflow bucket, row
    capacity + 1: totals; only the MAC table's totals row is used), S a power of two >= 2 * capacity,
    W = N_SKETCHES * HLL_REGISTERS (0 for the ARP table), meta = [rows used, frames overflowed].
    Source addresses insert rows (or land in the overflow row when full). Destinations only update
    rows that exist, except for responses (SYN-ACK, RST, ARP reply, DNS answer, ICMP unreachable or
    echo reply), which may open the row of the address they answer; either way the table is bounded.
    `recent`, (duplicate table uint64[D, 2], flow table uint64[F, 2]) with D and F powers of two
    (probe/fastpath/layout.py), enables the repeated-frame (dup_frames, dup_max) and TCP retransmission
    (tcp_data, tcp_retrans) counters; without it they stay 0.
    """
    if not is_frame_array(records, False):
        raise TypeError("aggregate_frames: records must be a C-contiguous FRAME_DTYPE array")
    cdef AggState st
    agg_state_init(&st, mac_table, ip_table, arp_table, recent)
    cdef Py_ssize_t n = records.shape[0], i
    cdef const FrameRecord* rec = <FrameRecord*>cnp.PyArray_DATA(records)
    with nogil:
        for i in range(n):
            agg_frame(&st, rec + i)
        agg_finish(&st)


__all__ += ["record_totals"]


def record_totals(records, int64_t[::1] flag_counts):
    """One pass over a batch of FRAME_DTYPE records for the running totals: each record's set flag bits
    are counted into flag_counts (int64[32], in place, so the caller keeps one array), and the batch's
    (wire bytes, first ts_ns, last ts_ns) are returned ((0, 0, 0) for an empty batch)."""
    if not is_frame_array(records, False):
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
