"""Twin of probe/fastpath/kernels/aggregate.pxi: the same tables, updated one record at a time in plain Python."""
from __future__ import annotations

import numpy as np

from probe.fastpath.layout import (COUNTER_INDEX as CI, FRAME_DTYPE, HLL_BITS, HLL_REGISTERS, N_COUNTERS, N_SKETCHES,
                           UDP_SMALL_WIRELEN)
from probe.fastpath.twin.parse import (F_ARP, F_ARP_GRATUITOUS, F_BROADCAST, F_CDP, F_DHCP, F_DNS, F_DNS_RESPONSE, F_ICMP,
                               F_IPV4, F_IPV6, F_LLDP, F_LLMNR, F_MALFORMED, F_MDNS, F_MULTICAST, F_NBNS, F_SSDP,
                               F_STP, F_TCP, F_TRUNCATED, F_UDP)

__all__ = ["aggregate_frames", "record_totals"]

M64 = (1 << 64) - 1
SALT_PORT = 0x9E3779B97F4A7C15
SALT_CHADDR = 0xD6E8FEB86659FD93
SALT_RST = 0xA0761D6478BD642F
V4_MAPPED = 0xFFFF00000000
ARP_MASK = (1 << CI["frames"]) | (1 << CI["arp_request"]) | (1 << CI["arp_reply"]) | (1 << CI["arp_gratuitous"])
_FI = {name: i for i, name in enumerate(FRAME_DTYPE.names)}
B = {name: 1 << i for name, i in CI.items()}
C_BYTES, C_RX_BYTES = CI["bytes"], CI["rx_bytes"]
C_FIRST, C_LAST, C_PEER, C_PEER_CHANGES = CI["first_seen_ns"], CI["last_seen_ns"], CI["peer"], CI["peer_changes"]
C_SERVER, C_FP, C_VLAN = CI["dhcp_server_id"], CI["dhcp_fingerprint"], CI["vlan"]
C_DUP_MAX = CI["dup_max"]
DUP_GAP_UNITS = 95  # probe.fastpath.layout.DUP_RUN_GAP_NS in ts >> 20 units (~1.05 ms)
S_HOSTS, S_PORTS, S_CHADDR, S_RST_PORTS = 0, 1, 2, 3
# flag -> probe.fastpath.layout.DUP_PROTOCOLS code, first match wins (the compiled dup_protocol)
_DUP_PROTO = ((F_ARP, 1), (F_DHCP, 2), (F_ICMP, 3), (F_MDNS, 4), (F_SSDP, 5), (F_NBNS, 6), (F_LLMNR, 7), (F_STP, 8),
              (F_LLDP, 9), (F_CDP, 10), (F_UDP, 11), (F_TCP, 12), (F_IPV4, 13), (F_IPV6, 14))


def mix64(x):
    x &= M64
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & M64
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & M64
    x ^= x >> 31
    return x


def key_hash(k1, k2):
    return mix64(k1 ^ mix64(k2 + SALT_PORT))


class _Table:
    def __init__(self, spec, with_hll):
        slots, keys, counts, hll, meta = spec
        if (slots.dtype != np.int32 or keys.dtype != np.uint64 or counts.dtype != np.uint64 or hll.dtype != np.uint8
                or meta.dtype != np.int64):
            raise TypeError("aggregate_frames: table arrays have the wrong dtypes")
        if not (slots.flags.c_contiguous and keys.flags.c_contiguous and counts.flags.c_contiguous
                and hll.flags.c_contiguous and meta.flags.c_contiguous and slots.flags.writeable):
            raise ValueError("aggregate_frames: table arrays must be C-contiguous and writeable")
        rows = counts.shape[0]
        if (counts.ndim != 2 or counts.shape[1] != N_COUNTERS or keys.shape[0] != rows or keys.shape[1] != 2
                or hll.shape[0] != rows or meta.shape[0] < 2 or rows < 3):
            raise ValueError("aggregate_frames: table arrays have inconsistent shapes")
        nslots = slots.shape[0]
        if nslots & (nslots - 1) or nslots < 2 * (rows - 2):
            raise ValueError("aggregate_frames: slot array must be a power of two of at least twice the capacity")
        if with_hll and hll.shape[1] != N_SKETCHES * HLL_REGISTERS:
            raise ValueError("aggregate_frames: sketch array has the wrong width")
        self.slots, self.keys, self.counts, self.hll, self.meta = slots, keys, counts, hll, meta
        self.mask = nslots - 1
        self.cap = rows - 2
        # working copies as Python ints; written back at the end
        self.index = {}
        used = int(meta[0])
        for row in range(used):
            self.index[(int(keys[row, 0]), int(keys[row, 1]))] = row
        self.used = used
        self.overflow = int(meta[1])

    def upsert(self, k1, k2):
        # same probe sequence as the compiled kernel, so rows and slots come out identical
        i = key_hash(k1, k2) & self.mask
        slots, keys = self.slots, self.keys
        while True:
            s = int(slots[i])
            if s < 0:
                if self.used >= self.cap:
                    self.overflow += 1
                    return self.cap
                row = self.used
                slots[i] = row
                keys[row, 0] = k1
                keys[row, 1] = k2
                self.used += 1
                self.index[(k1, k2)] = row
                return row
            if int(keys[s, 0]) == k1 and int(keys[s, 1]) == k2:
                return s
            i = (i + 1) & self.mask

    def lookup(self, k1, k2):
        return self.index.get((k1, k2), -1)

    def finish(self):
        self.meta[0] = self.used
        self.meta[1] = self.overflow


def _apply(c, row, mask, add_bytes, add_rx, ts):
    bit = 0
    while mask:
        if mask & 1:
            c[row, bit] += 1
        mask >>= 1
        bit += 1
    c[row, C_BYTES] += add_bytes
    c[row, C_RX_BYTES] += add_rx
    first = int(c[row, C_FIRST])
    if first == 0 or ts < first:
        c[row, C_FIRST] = ts
    if ts > int(c[row, C_LAST]):
        c[row, C_LAST] = ts


def _hll_add(hll, row, sketch, h):
    w = (h << HLL_BITS) & M64
    rank = 64 - HLL_BITS + 1 if w == 0 else 64 - w.bit_length() + 1
    j = sketch * HLL_REGISTERS + (h >> (64 - HLL_BITS))
    if hll[row, j] < rank:
        hll[row, j] = rank


def _check_recent(recent):
    dup, flow = recent
    for name, a, width in (("duplicate", dup, 2), ("flow", flow, 2)):
        if a.dtype != np.uint64 or a.ndim != 2 or a.shape[1] != width or not a.flags.c_contiguous \
                or not a.flags.writeable:
            raise ValueError(f"aggregate_frames: the {name} table must be a writeable C-contiguous uint64[N, {width}]")
        if a.shape[0] < 1 or a.shape[0] & (a.shape[0] - 1):
            raise ValueError(f"aggregate_frames: the {name} table's rows must be a power of two, got {a.shape[0]}")
    return dup, flow


def _dup_track(dup, rec, g, fl, ts):
    """The compiled dup_track: 0 for a frame that does not repeat its slot's within the run gap, else its
    dup_max value."""
    h = rec[g["frame_hash"]]
    slot = h & (dup.shape[0] - 1)
    now = (ts >> 20) & 0xFFFFFFFF
    e1 = int(dup[slot, 1])
    if int(dup[slot, 0]) != h or ((now - e1) & 0xFFFFFFFF) > DUP_GAP_UNITS:
        dup[slot, 0] = h
        dup[slot, 1] = (1 << 32) | now
        return 0
    copies = ((e1 >> 32) + 1) & 0xFFFFFFFF
    dup[slot, 1] = (copies << 32) | now
    proto = next((code for flag, code in _DUP_PROTO if fl & flag), 0)
    vlan = rec[g["vlan"]]
    return (copies << 32) | (rec[g["ethertype"]] << 16) | (proto << 12) | ((vlan & 0xFFF) if vlan >= 0 else 0xFFF)


SEQ_REUSE_GAP = 1 << 26  # the compiled SEQ_REUSE_GAP


def _tcp_track(flow, rec, g, fl, ts):
    """The compiled tcp_track: tx bits for data segments and retransmissions (SPAN copies and bare SYNs: none)."""
    tf = rec[g["tcp_flags"]]
    seg = rec[g["tcp_len"]] + ((tf >> 1) & 1) + (tf & 1)
    if seg == 0 or tf & 0x12 == 0x02:
        return 0
    v4 = bool(fl & F_IPV4)
    if v4:
        a = (rec[g["src_ip"]] << 32) | rec[g["dst_ip"]]
    else:
        a = (rec[g["src_ip6_hi"]] ^ mix64(rec[g["src_ip6_lo"]]) ^ mix64(rec[g["dst_ip6_hi"]] + SALT_PORT)
             ^ mix64(rec[g["dst_ip6_lo"]] + SALT_CHADDR))
    key = mix64(a ^ ((((rec[g["sport"]] << 16) | rec[g["dport"]] | (int(not v4) << 32)) * SALT_PORT) & M64))
    tag = (key >> 32) | 1
    e = key & (flow.shape[0] - 1)
    seq = rec[g["tcp_seq"]]
    end = (seq + seg) & 0xFFFFFFFF
    ip_id = rec[g["ip_id"]]
    now = (ts >> 16) & 0xFFFF
    last = (seq << 32) | (ip_id << 16) | now
    e0, e1 = int(flow[e, 0]), int(flow[e, 1])
    if e0 >> 32 != tag or (tf & 0x02 and e1 >> 32 != seq):
        flow[e, 0] = (tag << 32) | end
        flow[e, 1] = last
        return B["tcp_data"]
    if e1 >> 32 == seq and ((v4 and ip_id != 0 and (e1 >> 16) & 0xFFFF == ip_id)
                            or ((not v4 or ip_id == 0) and (now - e1) & 0xFFFF <= 15)):
        return 0
    flow[e, 1] = last
    ahead = (end - e0) & 0xFFFFFFFF
    if ahead >= 0x80000000:
        ahead -= 1 << 32
    if -SEQ_REUSE_GAP < ahead <= 0:
        return B["tcp_data"] | B["tcp_retrans"]
    flow[e, 0] = (tag << 32) | end
    return B["tcp_data"]


def aggregate_frames(records, mac_table, ip_table, arp_table, recent=None):
    """Add a batch of FRAME_DTYPE records into three tables, in place (see the compiled twin's docstring)."""
    if records.dtype != FRAME_DTYPE or not records.flags.c_contiguous:
        raise TypeError("aggregate_frames: records must be a C-contiguous FRAME_DTYPE array")
    mt, it, at = _Table(mac_table, True), _Table(ip_table, True), _Table(arp_table, False)
    dup = flow = None
    if recent is not None:
        dup, flow = _check_recent(recent)
    total_row = mt.cap + 1
    g = _FI
    for rec in records.tolist():
        fl = rec[g["flags"]]
        ts = rec[g["ts_ns"]] & M64
        wl = rec[g["wirelen"]]
        ok = not fl & F_MALFORMED
        l2 = rec[g["caplen"]] >= 14
        src_mac = rec[g["src_mac"]]
        tx, rx = B["frames"], B["rx_frames"]
        hosth = porth = chh = rsth = 0
        dk1 = dk2 = 0
        if fl & F_BROADCAST:
            tx |= B["broadcast"]
        elif fl & F_MULTICAST:
            tx |= B["multicast"]
        if not ok:
            tx |= B["malformed"]
        if fl & F_TRUNCATED:
            tx |= B["truncated"]
        dupv = 0
        if dup is not None and rec[g["frame_hash"]] != 0:
            dupv = _dup_track(dup, rec, g, fl, ts)
            if dupv:
                tx |= B["dup_frames"]
        ip = ok and bool(fl & (F_IPV4 | F_IPV6))
        if ip:
            if fl & F_IPV4:
                dk1, dk2 = 0, V4_MAPPED | rec[g["dst_ip"]]
            else:
                dk1, dk2 = rec[g["dst_ip6_hi"]], rec[g["dst_ip6_lo"]]
        arp_sha, arp_spa, arp_tpa = rec[g["arp_sha"]], rec[g["arp_spa"]], rec[g["arp_tpa"]]
        arp_ok = ok and bool(fl & F_ARP) and (arp_sha != 0 or arp_spa != 0)
        dhcp_type = rec[g["dhcp_msg_type"]]
        if ok:
            if fl & F_TCP:
                tf = rec[g["tcp_flags"]]
                if tf & 0x02:
                    if tf & 0x10:
                        tx |= B["tcp_synack"]
                        rx |= B["tcp_synack_rcvd"]
                    else:
                        tx |= B["tcp_syn"]
                        hosth = key_hash(dk1, dk2)
                        porth = mix64(rec[g["dport"]] + SALT_PORT)
                elif not tf & 0x14:  # FIN/NULL/Xmas probe
                    tx |= B["tcp_stealth"]
                    hosth = key_hash(dk1, dk2)
                    porth = mix64(rec[g["dport"]] + SALT_PORT)
                if tf & 0x04:
                    tx |= B["tcp_rst"]
                    rx |= B["tcp_rst_rcvd"]
                    if not tf & 0x10:
                        tx |= B["tcp_rst_bare"]
                    if rec[g["sport"]] <= rec[g["dport"]]:
                        rsth = mix64(rec[g["sport"]] + SALT_RST)
                if flow is not None:
                    tx |= _tcp_track(flow, rec, g, fl, ts)
            elif fl & F_UDP:
                if not fl & (F_BROADCAST | F_MULTICAST):
                    if rec[g["dport"]] <= rec[g["sport"]]:
                        tx |= B["udp_probe"]
                        hosth = key_hash(dk1, dk2)
                        porth = mix64(rec[g["dport"]] + SALT_PORT)
                    if wl <= UDP_SMALL_WIRELEN and not fl & F_DNS:
                        tx |= B["udp_small"]
            elif fl & F_ICMP:
                ty = rec[g["icmp_type"]]
                v4 = rec[g["ip_proto"]] == 1
                if ty == (3 if v4 else 1):
                    tx |= B["icmp_unreach"]
                    rx |= B["icmp_unreach_rcvd"]
                elif ty == (8 if v4 else 128):
                    tx |= B["icmp_echo_request"]
                    hosth = key_hash(dk1, dk2)
                elif ty == (0 if v4 else 129):
                    rx |= B["icmp_echo_reply_rcvd"]
                elif ty == (11 if v4 else 3):
                    tx |= B["icmp_time_exceeded"]
            if fl & F_DNS:
                if fl & F_DNS_RESPONSE:
                    tx |= B["dns_response"]
                    rx |= B["dns_response_rcvd"]
                    rcode = rec[g["dns_rcode"]]
                    if rcode == 3:
                        tx |= B["dns_nxdomain"]
                        rx |= B["dns_nxdomain_rcvd"]
                    elif rcode == 2:
                        tx |= B["dns_servfail"]
                        rx |= B["dns_servfail_rcvd"]
                else:
                    tx |= B["dns_query"]
            if fl & F_DHCP:
                name = {1: "dhcp_discover", 2: "dhcp_offer", 3: "dhcp_request", 5: "dhcp_ack", 6: "dhcp_nak",
                        8: "dhcp_inform"}.get(dhcp_type)
                if name:
                    tx |= B[name]
                chaddr = rec[g["dhcp_chaddr"]]
                if dhcp_type in (1, 3, 8) and chaddr != 0:
                    chh = mix64(chaddr ^ SALT_CHADDR)
            if arp_ok:
                op = rec[g["arp_op"]]
                if op == 1:
                    tx |= B["arp_request"]
                    if not fl & F_ARP_GRATUITOUS and arp_tpa != 0:
                        hosth = key_hash(0, V4_MAPPED | arp_tpa)
                elif op == 2:
                    tx |= B["arp_reply"]
                    rx |= B["arp_reply_rcvd"]
                if fl & F_ARP_GRATUITOUS:
                    tx |= B["arp_gratuitous"]
                if arp_sha != src_mac:
                    tx |= B["arp_sha_mismatch"]
            if fl & F_LLDP:
                tx |= B["lldp"]
            elif fl & F_CDP:
                tx |= B["cdp"]
            elif fl & F_STP:
                tx |= B["stp"]

        ms = mt.upsert(src_mac, 0) if l2 and src_mac != 0 else -1
        isrc = -1
        src_ip = rec[g["src_ip"]]
        if ip:
            if fl & F_IPV4:
                if src_ip != 0:
                    isrc = it.upsert(0, V4_MAPPED | src_ip)
            else:
                hi, lo = rec[g["src_ip6_hi"]], rec[g["src_ip6_lo"]]
                if hi or lo:
                    isrc = it.upsert(hi, lo)
        server_id, fp = rec[g["dhcp_server_id"]], rec[g["dhcp_fingerprint"]]
        for k, row in enumerate((ms, isrc, total_row)):
            if row < 0:
                continue
            t = it if k == 1 else mt
            c = t.counts
            _apply(c, row, tx, wl, 0, ts)
            if dupv > int(c[row, C_DUP_MAX]):
                c[row, C_DUP_MAX] = dupv
            if ok and row != t.cap:
                if k == 0:
                    if ip and fl & F_IPV4 and src_ip != 0:
                        c[row, C_PEER] = src_ip
                    elif arp_ok and arp_spa != 0:
                        c[row, C_PEER] = arp_spa
                elif k == 1:
                    old = int(c[row, C_PEER])
                    if old != 0 and old != src_mac:
                        c[row, C_PEER_CHANGES] += 1
                        c[row, C_PEER_CHANGES + 1] = old  # prev_peer
                    c[row, C_PEER] = src_mac
                if server_id != 0 and dhcp_type in (2, 5, 6):
                    c[row, C_SERVER] = server_id
                if fp != 0:
                    c[row, C_FP] = fp
            if ok:
                if hosth:
                    _hll_add(t.hll, row, S_HOSTS, hosth)
                if porth:
                    _hll_add(t.hll, row, S_PORTS, porth)
                if chh:
                    _hll_add(t.hll, row, S_CHADDR, chh)
        vlan = rec[g["vlan"]]
        if ms >= 0 and vlan >= 0 and ms != mt.cap:
            mt.counts[ms, C_VLAN] = vlan + 1
        respond = (rx & ~B["rx_frames"]) != 0
        dst_mac = rec[g["dst_mac"]]
        if l2 and not fl & (F_BROADCAST | F_MULTICAST) and dst_mac != 0:
            md = mt.upsert(dst_mac, 0) if respond else mt.lookup(dst_mac, 0)
            if md >= 0:
                _apply(mt.counts, md, rx, 0, wl, ts)
                if rsth:
                    _hll_add(mt.hll, md, S_RST_PORTS, rsth)
        if ip and (dk1 != 0 or (dk2 & 0xFFFFFFFF) != 0):
            idst = it.upsert(dk1, dk2) if respond else it.lookup(dk1, dk2)
            if idst >= 0:
                _apply(it.counts, idst, rx, 0, wl, ts)
                if rsth:
                    _hll_add(it.hll, idst, S_RST_PORTS, rsth)
        if arp_ok and arp_spa != 0:
            ar = at.upsert(arp_spa, arp_sha)
            _apply(at.counts, ar, tx & ARP_MASK, 0, 0, ts)
    mt.finish()
    it.finish()
    at.finish()


def record_totals(records, flag_counts):
    if records.dtype != FRAME_DTYPE or not records.flags.c_contiguous:
        raise TypeError("record_totals: records must be a C-contiguous FRAME_DTYPE array")
    if flag_counts.shape[0] < 32:
        raise ValueError(f"record_totals: flag_counts must hold 32 counters, got {flag_counts.shape[0]}")
    if not len(records):
        return 0, 0, 0
    bits = np.unpackbits(records["flags"].astype("<u4").view(np.uint8).reshape(-1, 4), axis=1, bitorder="little")
    flag_counts[:32] += bits.sum(axis=0, dtype=np.int64)
    ts = records["ts_ns"]
    return int(records["wirelen"].sum(dtype=np.uint64)), int(ts.min()), int(ts.max())
