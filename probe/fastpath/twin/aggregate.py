"""Aggregation, specified in plain Python: what probe/fastpath/kernels/aggregate.pxi computes.

Each parsed frame (a FRAME_DTYPE record) adds to the rows of three bounded tables (probe/fastpath/layout.py
describes them; probe/state/aggregates.py owns them):

- the sender's rows (its MAC, its IP, and the window totals) get the counters of what it *sent*;
- the receiver's rows (its MAC, its IP) get the counters of what it *received*; a receiver's row is only
  opened by a response (a SYN-ACK, a reset, an ARP reply, a DNS answer, an ICMP error or echo reply),
  since a response can arrive in the window after its request; plain traffic to an unknown address is
  not counted for it, which keeps a scan from filling the table with the addresses it tries;
- the ARP binding table's (IPv4, MAC) row gets the ARP counters of the frame.

A frame is classified once (`_classify`: which counters, which sketch hashes), then added to its rows
(`_add_frame`). The compiled kernel adds runs of frames with the same effect at once and reuses the
previous frame's classification; the answers are the same (tests/unit/test_aggregate.py,
test_repeats_retrans.py hold the two to it), which this module states frame by frame.
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from probe.fastpath.layout import (BITMAP_SHIFT, COUNTER_INDEX, DNS_PORT, DUP_GAP_UNITS, DUP_NO_VLAN, DUP_OTHER,
                                   DUP_PROTOCOLS, DUP_TS_SHIFT, FLOW_TS_SHIFT, SPAN_COPY_UNITS,
                                   F_ARP, F_ARP_GRATUITOUS, F_BROADCAST, F_CDP, F_DHCP, F_DNS, F_DNS_RESPONSE, F_ICMP,
                                   F_IPV4, F_IPV6, F_LLDP, F_MALFORMED, F_MULTICAST, F_STP, F_TCP, F_TRUNCATED, F_UDP,
                                   FRAME_DTYPE, HLL_BITS, HLL_REGISTERS, MIX_MUL1, MIX_MUL2, N_COUNTERS, N_SKETCHES,
                                   SALT_CHADDR, SALT_FLOW, SALT_PORT, SALT_RST, SEQ_REUSE_GAP, SKETCHES, TCP_ACK, TCP_FIN,
                                   TCP_RST, TCP_SYN, UDP_SMALL_WIRELEN, V4_MAPPED)
from probe.fastpath import layout

__all__ = ["aggregate_frames", "record_totals"]

_U64 = (1 << 64) - 1
_U32 = (1 << 32) - 1
ETHERNET_HEADER_LEN = 14  # a record of fewer captured bytes has no MAC addresses
IPPROTO_ICMP, IPPROTO_UDP = 1, 17

# One FRAME_DTYPE record with its fields by name (rec.flags, rec.src_mac...)
FrameRecord = namedtuple("FrameRecord", FRAME_DTYPE.names)

_SKETCH = {name: i for i, name in enumerate(SKETCHES)}

# the counters a frame adds to its ARP binding's row too
ARP_TABLE_COUNTERS = frozenset(("frames", "arp_request", "arp_reply", "arp_gratuitous"))

# ICMP and ICMPv6 types -> what they are, for the counters
ICMPV4_KINDS = {3: "unreach", 8: "echo_request", 0: "echo_reply", 11: "time_exceeded"}
ICMPV6_KINDS = {1: "unreach", 128: "echo_request", 129: "echo_reply", 3: "time_exceeded"}
ICMPV4_PORT_UNREACHABLE, ICMPV6_PORT_UNREACHABLE = 3, 4  # the unreachable's code

# DHCP message types (option 53) -> their counter
DHCP_MESSAGE_COUNTERS = {1: "dhcp_discover", 2: "dhcp_offer", 3: "dhcp_request", 5: "dhcp_ack", 6: "dhcp_nak",
                         8: "dhcp_inform"}
DHCP_CLIENT_MESSAGES = (1, 3, 8)  # DISCOVER, REQUEST, INFORM: their chaddr is a client
DHCP_SERVER_MESSAGES = (2, 5, 6)  # OFFER, ACK, NAK: their server identifier is a DHCP server

DNS_RCODE_SERVFAIL, DNS_RCODE_NXDOMAIN = 2, 3
ARP_REQUEST, ARP_REPLY = 1, 2

# (code, flag) of layout.DUP_PROTOCOLS: a repeated frame gets the code of the first flag it carries
DUP_PROTOCOL_FLAGS = tuple((code, getattr(layout, f"F_{name.upper()}")) for code, name in enumerate(DUP_PROTOCOLS)
                           if code != DUP_OTHER)

# TCP flow table: times kept in ts_ns >> FLOW_TS_SHIFT units (~65.5 us); a segment with the previous one's
# sequence number within SPAN_COPY_UNITS (~1 ms) and no IPv4 ID to tell is a SPAN copy of it (layout.py)


# -- hashes (bit for bit those of the compiled kernel: slots, rows and sketch registers are compared) -------

def mix64(x):
    """splitmix64's finalizer: every input bit moves every output bit."""
    x &= _U64
    x ^= x >> 30
    x = (x * MIX_MUL1) & _U64
    x ^= x >> 27
    x = (x * MIX_MUL2) & _U64
    x ^= x >> 31
    return x


def key_hash(k1, k2):
    """Hash of a two-word table key (also the destination-host sketch's hash of an IP key)."""
    return mix64(k1 ^ mix64(k2 + SALT_PORT))


def _port_hash(port):
    return mix64(port + SALT_PORT)


def bitmap_bit(x):
    """The one bit a flow sets in a flow bitmap (layout.BITMAPS): picked by the top bits of its hash."""
    return 1 << (mix64(x) >> BITMAP_SHIFT)


def _dns_transaction(client_key, server_key, client_port, dns_id):
    """Hash input of a DNS transaction: client, server, the client's port and the query ID (a retry of one
    query to the same server is the same transaction)."""
    return key_hash(*client_key) ^ mix64(key_hash(*server_key) ^ (((client_port << 16) | dns_id) + SALT_FLOW))


# -- the tables --------------------------------------------------------------------------------------------

class _Table:
    """One aggregate table (slots, keys, counts, sketches, meta), an open-addressing hash table with
    linear probing: the same probe sequence as the compiled kernel, so rows and slots come out identical.
    Row `overflow_row` (= capacity) takes every frame whose key did not fit; `totals_row` the window's."""

    def __init__(self, spec, with_sketches):
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
        n_slots = slots.shape[0]
        if n_slots & (n_slots - 1) or n_slots < 2 * (rows - 2):
            raise ValueError("aggregate_frames: slot array must be a power of two of at least twice the capacity")
        if with_sketches and hll.shape[1] != N_SKETCHES * HLL_REGISTERS:
            raise ValueError("aggregate_frames: sketch array has the wrong width")
        self.slots, self.keys, self.counts, self.hll, self.meta = slots, keys, counts, hll, meta
        self.slot_mask = n_slots - 1
        self.capacity = self.overflow_row = rows - 2
        self.totals_row = rows - 1
        self.used = int(meta[0])
        self.overflowed = int(meta[1])
        self.row_of = {(int(keys[row, 0]), int(keys[row, 1])): row for row in range(self.used)}

    def upsert(self, k1, k2):
        """The row of key (k1, k2), inserted if absent; the overflow row when the table is full."""
        row = self.row_of.get((k1, k2))
        if row is not None:
            return row
        if self.used >= self.capacity:
            self.overflowed += 1
            return self.overflow_row
        slot = key_hash(k1, k2) & self.slot_mask
        while int(self.slots[slot]) >= 0:
            slot = (slot + 1) & self.slot_mask
        row = self.used
        self.slots[slot] = row
        self.keys[row] = (k1, k2)
        self.used += 1
        self.row_of[(k1, k2)] = row
        return row

    def lookup(self, k1, k2):
        """The row of key (k1, k2), or -1 when it has none (never the overflow row)."""
        return self.row_of.get((k1, k2), -1)

    def finish(self):
        self.meta[0] = self.used
        self.meta[1] = self.overflowed


def _count(counts, row, names, add_bytes, add_rx_bytes, ts):
    """+1 on each named counter of a row, the bytes, and the row's first and last time seen."""
    for name in names:
        counts[row, COUNTER_INDEX[name]] += 1
    counts[row, _BYTES] += add_bytes
    counts[row, _RX_BYTES] += add_rx_bytes
    first = int(counts[row, _FIRST_SEEN])
    if first == 0 or ts < first:
        counts[row, _FIRST_SEEN] = ts
    if ts > int(counts[row, _LAST_SEEN]):
        counts[row, _LAST_SEEN] = ts


_BYTES, _RX_BYTES = COUNTER_INDEX["bytes"], COUNTER_INDEX["rx_bytes"]
_FIRST_SEEN, _LAST_SEEN = COUNTER_INDEX["first_seen_ns"], COUNTER_INDEX["last_seen_ns"]


def _sketch_add(hll, row, sketch, h):
    """HyperLogLog: the hash's top HLL_BITS pick the register, which keeps the highest rank (leading zeros
    + 1) of the remaining bits seen."""
    rest = (h << HLL_BITS) & _U64
    rank = 64 - HLL_BITS + 1 if rest == 0 else 64 - rest.bit_length() + 1
    register = _SKETCH[sketch] * HLL_REGISTERS + (h >> (64 - HLL_BITS))
    if hll[row, register] < rank:
        hll[row, register] = rank


# -- recent-frame state: loops (repeated frames) and TCP retransmissions ------------------------------------

def _check_recent(recent):
    dup, flow = recent
    for name, a, width in (("duplicate", dup, 2), ("flow", flow, 2)):
        if a.dtype != np.uint64 or a.ndim != 2 or a.shape[1] != width or not a.flags.c_contiguous \
                or not a.flags.writeable:
            raise ValueError(f"aggregate_frames: the {name} table must be a writeable C-contiguous uint64[N, {width}]")
        if a.shape[0] < 1 or a.shape[0] & (a.shape[0] - 1):
            raise ValueError(f"aggregate_frames: the {name} table's rows must be a power of two, got {a.shape[0]}")
    return dup, flow


def _repeat_value(dup_table, rec, ts):
    """The dup_max value of a broadcast/multicast frame that repeats the frame in its slot within
    DUP_GAP_UNITS of that frame's last copy (copies in the run so far, what it is), else 0.

    The table is direct-mapped by frame hash: another frame takes the slot (a loop repeats one frame
    within microseconds, so it keeps its slot), and a copy later than the gap starts a new run (a host
    resending the same frame a second later is no loop). Entry: (hash, copies << 32 | last copy's time).
    """
    slot = rec.frame_hash & (dup_table.shape[0] - 1)
    now = (ts >> DUP_TS_SHIFT) & _U32
    held_hash, held_run = int(dup_table[slot, 0]), int(dup_table[slot, 1])
    last_copy = held_run & _U32
    if held_hash != rec.frame_hash or (now - last_copy) & _U32 > DUP_GAP_UNITS:
        dup_table[slot, 0] = rec.frame_hash
        dup_table[slot, 1] = (1 << 32) | now
        return 0
    copies = ((held_run >> 32) + 1) & _U32
    dup_table[slot, 1] = (copies << 32) | now
    protocol = next((code for code, flag in DUP_PROTOCOL_FLAGS if rec.flags & flag), DUP_OTHER)
    vlan = rec.vlan & 0xFFF if rec.vlan >= 0 else DUP_NO_VLAN
    return (copies << 32) | (rec.ethertype << 16) | (protocol << 12) | vlan


def _flow_key(rec, is_ipv4):
    """64-bit hash of the TCP direction (addresses, ports, address family)."""
    if is_ipv4:
        addresses = (rec.src_ip << 32) | rec.dst_ip
    else:
        addresses = (rec.src_ip6_hi ^ mix64(rec.src_ip6_lo) ^ mix64(rec.dst_ip6_hi + SALT_PORT)
                     ^ mix64(rec.dst_ip6_lo + SALT_CHADDR))
    ports = (rec.sport << 16) | rec.dport | ((0 if is_ipv4 else 1) << 32)
    return mix64(addresses ^ ((ports * SALT_PORT) & _U64))


def _tcp_segment_counters(flow_table, rec, is_ipv4, ts):
    """(counters, flow bit): ("tcp_data",) for a segment that carries data (or a SYN-ACK or FIN),
    ("tcp_data", "tcp_retrans") with its flow's retrans_flows bit when its sequence end is not beyond the
    highest its flow has sent, () for what is neither (a pure ACK, a bare SYN, a keep-alive, a SPAN copy).

    Entry per direction: (tag << 32 | highest sequence end, last seq << 32 | its IPv4 ID << 16 | its time).
    """
    tcp_flags = rec.tcp_flags
    # SYN and FIN each take one sequence number
    seq_space = rec.tcp_len + (1 if tcp_flags & TCP_SYN else 0) + (1 if tcp_flags & TCP_FIN else 0)
    if seq_space == 0 or tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN:
        # pure ACKs carry nothing to resend; bare SYNs are judged by the handshake counters (a scan or a
        # SYN flood from spoofed sources then neither churns this table nor pays for it)
        return (), 0
    key = _flow_key(rec, is_ipv4)
    tag = (key >> 32) | 1  # never 0: an empty slot matches no flow
    slot = key & (flow_table.shape[0] - 1)
    seq = rec.tcp_seq
    seq_end = (seq + seq_space) & _U32
    now = (ts >> FLOW_TS_SHIFT) & 0xFFFF
    this_segment = (seq << 32) | (rec.ip_id << 16) | now
    highest, last_segment = int(flow_table[slot, 0]), int(flow_table[slot, 1])
    last_seq, last_ip_id, last_time = last_segment >> 32, (last_segment >> 16) & 0xFFFF, last_segment & 0xFFFF
    if highest >> 32 != tag or (tcp_flags & TCP_SYN and last_seq != seq):
        # a new flow, one that evicted another, or a new connection on a reused 4-tuple (a SYN-ACK with
        # another initial sequence number): its first segment is no retransmission
        flow_table[slot, 0] = (tag << 32) | seq_end
        flow_table[slot, 1] = this_segment
        return ("tcp_data",), 0
    if (rec.tcp_len <= 1 and not tcp_flags & (TCP_SYN | TCP_FIN | TCP_RST)
            and (seq + 1) & _U32 == highest & _U32):
        # a keep-alive: 0 or 1 byte one before the next sequence number, probing an idle peer (what
        # Wireshark calls tcp.analysis.keep_alive); neither data nor a retransmission
        return (), 0
    if last_seq == seq:
        # the same segment again: a SPAN copy when the IPv4 ID says so, or without an ID when within ~1 ms
        has_ip_id = is_ipv4 and rec.ip_id != 0
        if (has_ip_id and last_ip_id == rec.ip_id) or (not has_ip_id and (now - last_time) & 0xFFFF <= SPAN_COPY_UNITS):
            return (), 0
    flow_table[slot, 1] = this_segment
    ahead = (seq_end - highest) & _U32  # how far beyond the flow's highest end, in 32-bit sequence space
    if ahead >= 1 << 31:
        ahead -= 1 << 32
    if -SEQ_REUSE_GAP < ahead <= 0:
        return ("tcp_data", "tcp_retrans"), 1 << (key >> BITMAP_SHIFT)
    flow_table[slot, 0] = (tag << 32) | seq_end  # new data, or far behind: a new connection we did not see open
    return ("tcp_data",), 0


# -- classification: what one frame counts -------------------------------------------------------------------

class _Effect:
    """What one frame adds: counters to its sender's rows (`sent`) and its receiver's rows (`received`),
    sketch hashes for the sender's rows (`sketches`: sketch name -> hash, 0 adds nothing), the source
    port hash of a reset for the receiver's `rst_ports`, its dup_max value, and the bits it ORs into flow
    bitmaps (layout.BITMAPS) of the sender's rows (`sent_bits`) and the receiver's (`received_bits`)."""
    __slots__ = ("sent", "received", "sketches", "rst_port_hash", "dup_max", "sent_bits", "received_bits")

    def __init__(self):
        self.sent = ["frames"]
        self.received = ["rx_frames"]
        self.sketches = {}
        self.rst_port_hash = 0
        self.dup_max = 0
        self.sent_bits = {}
        self.received_bits = {}


def _classify(rec, ok, src_ip_key, dst_ip_key, arp_ok, dup_table, flow_table, ts):
    effect = _Effect()
    flags = rec.flags
    if flags & F_BROADCAST:
        effect.sent.append("broadcast")
    elif flags & F_MULTICAST:
        effect.sent.append("multicast")
    if not ok:
        effect.sent.append("malformed")
    if flags & F_TRUNCATED:
        effect.sent.append("truncated")
    if dup_table is not None and rec.frame_hash != 0:  # only broadcast/multicast frames are hashed
        effect.dup_max = _repeat_value(dup_table, rec, ts)
        if effect.dup_max:
            effect.sent.append("dup_frames")
    if not ok:
        return effect  # a malformed frame is counted; nothing it claims is believed
    if flags & F_TCP:
        _classify_tcp(rec, src_ip_key, dst_ip_key, flow_table, ts, effect)
    elif flags & F_UDP:
        _classify_udp(rec, dst_ip_key, effect)
    elif flags & F_ICMP:
        _classify_icmp(rec, dst_ip_key, effect)
    if flags & F_DNS:
        _classify_dns(rec, src_ip_key, dst_ip_key, effect)
    if flags & F_DHCP:
        _classify_dhcp(rec, effect)
    if arp_ok:
        _classify_arp(rec, effect)
    if flags & F_LLDP:
        effect.sent.append("lldp")
    elif flags & F_CDP:
        effect.sent.append("cdp")
    elif flags & F_STP:
        effect.sent.append("stp")
    return effect


def _connection_attempt(rec, dst_ip_key, effect, with_port=True):
    """A frame that tries a host (and a port): the sender's dst_hosts (and dst_ports) sketches count it."""
    effect.sketches["dst_hosts"] = key_hash(*dst_ip_key)
    if with_port:
        effect.sketches["dst_ports"] = _port_hash(rec.dport)


def _classify_tcp(rec, src_ip_key, dst_ip_key, flow_table, ts, effect):
    """Handshakes, resets and scans; data segments and retransmissions when the flow table is kept."""
    tcp_flags = rec.tcp_flags
    if tcp_flags & TCP_SYN:
        if tcp_flags & TCP_ACK:
            effect.sent.append("tcp_synack")
            effect.received.append("tcp_synack_rcvd")
        else:
            effect.sent.append("tcp_syn")
            _connection_attempt(rec, dst_ip_key, effect)
    elif not tcp_flags & (TCP_ACK | TCP_RST):
        # neither ACK nor RST: a FIN, NULL or Xmas probe, which no live connection sends
        effect.sent.append("tcp_stealth")
        _connection_attempt(rec, dst_ip_key, effect)
    if tcp_flags & TCP_RST:
        effect.sent.append("tcp_rst")
        effect.received.append("tcp_rst_rcvd")
        if not tcp_flags & TCP_ACK:
            effect.sent.append("tcp_rst_bare")  # a reply to a segment of no connection
        if rec.sport <= rec.dport:  # a service port resetting a client-side port: what a scan gets back
            effect.rst_port_hash = mix64(rec.sport + SALT_RST)
        # the connection it resets, as its receiver knows it: the peer's address and port, its own port
        effect.received_bits["rst_flows"] = bitmap_bit(key_hash(*src_ip_key) ^ ((rec.sport << 16) | rec.dport))
    if flow_table is not None:
        counters, flow_bit = _tcp_segment_counters(flow_table, rec, bool(rec.flags & F_IPV4), ts)
        effect.sent.extend(counters)
        if flow_bit:
            effect.sent_bits["retrans_flows"] = flow_bit


def _classify_udp(rec, dst_ip_key, effect):
    """Unicast UDP: a datagram to a port at or below its source port is a request (or a probe); a short one
    that is not DNS is flood material."""
    if rec.flags & (F_BROADCAST | F_MULTICAST):
        return
    if rec.dport <= rec.sport:
        effect.sent.append("udp_probe")
        _connection_attempt(rec, dst_ip_key, effect)
    if rec.wirelen <= UDP_SMALL_WIRELEN and not rec.flags & F_DNS:
        effect.sent.append("udp_small")


def _classify_icmp(rec, dst_ip_key, effect):
    kind = (ICMPV4_KINDS if rec.ip_proto == IPPROTO_ICMP else ICMPV6_KINDS).get(rec.icmp_type)
    if kind == "unreach":
        effect.sent.append("icmp_unreach")
        effect.received.append("icmp_unreach_rcvd")
        port_unreachable = ICMPV4_PORT_UNREACHABLE if rec.ip_proto == IPPROTO_ICMP else ICMPV6_PORT_UNREACHABLE
        if (rec.icmp_code == port_unreachable and rec.icmp_quote_proto == IPPROTO_UDP
                and rec.icmp_quote_sport == DNS_PORT):
            # its DNS answer reached a port the client had closed: the client gave up on it, nothing is down
            effect.received.append("icmp_unreach_dns_rcvd")
        else:
            effect.received_bits["unreach_dsts"] = bitmap_bit(
                mix64(rec.icmp_quote_dst + SALT_PORT)
                ^ ((rec.icmp_quote_proto << 32) | (rec.icmp_quote_sport << 16) | rec.icmp_quote_dport))
    elif kind == "echo_request":
        effect.sent.append("icmp_echo_request")
        _connection_attempt(rec, dst_ip_key, effect, with_port=False)
    elif kind == "echo_reply":
        effect.received.append("icmp_echo_reply_rcvd")
    elif kind == "time_exceeded":
        effect.sent.append("icmp_time_exceeded")


def _classify_dns(rec, src_ip_key, dst_ip_key, effect):
    """Queries and answers; each query's transaction for dns_query_flows, each error answer's for
    dns_error_flows (the resolver's row and the client's alike)."""
    if not rec.flags & F_DNS_RESPONSE:
        effect.sent.append("dns_query")
        effect.sent_bits["dns_query_flows"] = bitmap_bit(_dns_transaction(src_ip_key, dst_ip_key, rec.sport, rec.dns_id))
        return
    effect.sent.append("dns_response")
    effect.received.append("dns_response_rcvd")
    if rec.dns_rcode == DNS_RCODE_NXDOMAIN:
        effect.sent.append("dns_nxdomain")
        effect.received.append("dns_nxdomain_rcvd")
    elif rec.dns_rcode == DNS_RCODE_SERVFAIL:
        effect.sent.append("dns_servfail")
        effect.received.append("dns_servfail_rcvd")
    else:
        return
    bit = bitmap_bit(_dns_transaction(dst_ip_key, src_ip_key, rec.dport, rec.dns_id))
    effect.sent_bits["dns_error_flows"] = effect.received_bits["dns_error_flows"] = bit


def _classify_dhcp(rec, effect):
    """The message type's counter; a client message's hardware address counts in dhcp_clients."""
    counter = DHCP_MESSAGE_COUNTERS.get(rec.dhcp_msg_type)
    if counter:
        effect.sent.append(counter)
    elif rec.dhcp_msg_type == 0 and rec.flags & F_TRUNCATED and rec.sport == 67:
        effect.sent.append("dhcp_reply_cut")  # a BOOTREPLY whose options the snap length cut
    if rec.dhcp_msg_type in DHCP_CLIENT_MESSAGES and rec.dhcp_chaddr != 0:
        effect.sketches["dhcp_clients"] = mix64(rec.dhcp_chaddr ^ SALT_CHADDR)


def _classify_arp(rec, effect):
    """Requests (a who-has for another address tries that host), replies, announcements, and a sender
    hardware address other than the frame's source MAC (proxy ARP, or a spoofer)."""
    if rec.arp_op == ARP_REQUEST:
        effect.sent.append("arp_request")
        if not rec.flags & F_ARP_GRATUITOUS and rec.arp_tpa != 0:
            effect.sketches["dst_hosts"] = key_hash(0, V4_MAPPED | rec.arp_tpa)
    elif rec.arp_op == ARP_REPLY:
        effect.sent.append("arp_reply")
        effect.received.append("arp_reply_rcvd")
    if rec.flags & F_ARP_GRATUITOUS:
        effect.sent.append("arp_gratuitous")
    if rec.arp_sha != rec.src_mac:
        effect.sent.append("arp_sha_mismatch")


# -- adding a frame to its rows -----------------------------------------------------------------------------

def _ip_key(is_ipv4, ip4, ip6_hi, ip6_lo):
    """IP table key: IPv4 in its IPv4-mapped IPv6 form, IPv6 as its two halves."""
    return (0, V4_MAPPED | ip4) if is_ipv4 else (ip6_hi, ip6_lo)


def _add_frame(rec, macs, ips, arps, dup_table, flow_table):
    flags = rec.flags
    ts = rec.ts_ns & _U64
    ok = not flags & F_MALFORMED
    has_l2 = rec.caplen >= ETHERNET_HEADER_LEN  # raw IP captures have no MAC addresses
    has_ip = ok and bool(flags & (F_IPV4 | F_IPV6))
    is_ipv4 = bool(flags & F_IPV4)
    dst_ip_key = _ip_key(is_ipv4, rec.dst_ip, rec.dst_ip6_hi, rec.dst_ip6_lo) if has_ip else (0, 0)
    src_ip_key = _ip_key(is_ipv4, rec.src_ip, rec.src_ip6_hi, rec.src_ip6_lo) if has_ip else (0, 0)
    arp_ok = ok and bool(flags & F_ARP) and (rec.arp_sha != 0 or rec.arp_spa != 0)
    effect = _classify(rec, ok, src_ip_key, dst_ip_key, arp_ok, dup_table, flow_table, ts)

    # the sender: its MAC row, its IP row, and the window totals (row totals_row of the MAC table)
    src_mac_row = macs.upsert(rec.src_mac, 0) if has_l2 and rec.src_mac != 0 else -1
    src_ip_row = -1
    if has_ip and (rec.src_ip != 0 if is_ipv4 else (rec.src_ip6_hi != 0 or rec.src_ip6_lo != 0)):  # 0: unspecified
        src_ip_row = ips.upsert(*_ip_key(is_ipv4, rec.src_ip, rec.src_ip6_hi, rec.src_ip6_lo))
    for role, table, row in (("mac", macs, src_mac_row), ("ip", ips, src_ip_row), ("totals", macs, macs.totals_row)):
        if row < 0:
            continue
        counts = table.counts
        _count(counts, row, effect.sent, rec.wirelen, 0, ts)
        if effect.dup_max > int(counts[row, _DUP_MAX]):
            counts[row, _DUP_MAX] = effect.dup_max
        if not ok:
            continue
        if row != table.overflow_row:  # the overflow row mixes devices: no per-device values in it
            if role == "mac":
                # the IPv4 address this MAC last sent from (an ARP sender address counts too)
                if has_ip and is_ipv4 and rec.src_ip != 0:
                    counts[row, _PEER] = rec.src_ip
                elif arp_ok and rec.arp_spa != 0:
                    counts[row, _PEER] = rec.arp_spa
            elif role == "ip":
                # the MAC this IP last sent from; a change is a failover or someone taking the address
                previous_mac = int(counts[row, _PEER])
                if previous_mac != 0 and previous_mac != rec.src_mac:
                    counts[row, _PEER_CHANGES] += 1
                    counts[row, _PREV_PEER] = previous_mac
                counts[row, _PEER] = rec.src_mac
            if rec.dhcp_server_id != 0 and rec.dhcp_msg_type in DHCP_SERVER_MESSAGES:
                counts[row, _DHCP_SERVER_ID] = rec.dhcp_server_id
            if rec.dhcp_fingerprint != 0:
                counts[row, _DHCP_FINGERPRINT] = rec.dhcp_fingerprint
        for sketch, h in effect.sketches.items():
            if h:
                _sketch_add(table.hll, row, sketch, h)
        for name, bit in effect.sent_bits.items():
            counts[row, COUNTER_INDEX[name]] |= bit
    if src_mac_row >= 0 and rec.vlan >= 0 and src_mac_row != macs.overflow_row:
        macs.counts[src_mac_row, _VLAN] = rec.vlan + 1  # 0 stays "untagged"

    # the receiver: only rows that exist, unless the frame is a response (see the module docstring)
    is_response = len(effect.received) > 1  # anything beyond rx_frames
    if has_l2 and not flags & (F_BROADCAST | F_MULTICAST) and rec.dst_mac != 0:
        row = macs.upsert(rec.dst_mac, 0) if is_response else macs.lookup(rec.dst_mac, 0)
        if row >= 0:
            _count(macs.counts, row, effect.received, 0, rec.wirelen, ts)
            if effect.rst_port_hash:
                _sketch_add(macs.hll, row, "rst_ports", effect.rst_port_hash)
            for name, bit in effect.received_bits.items():
                macs.counts[row, COUNTER_INDEX[name]] |= bit
    if has_ip and (dst_ip_key[0] != 0 or dst_ip_key[1] & _U32 != 0):
        row = ips.upsert(*dst_ip_key) if is_response else ips.lookup(*dst_ip_key)
        if row >= 0:
            _count(ips.counts, row, effect.received, 0, rec.wirelen, ts)
            if effect.rst_port_hash:
                _sketch_add(ips.hll, row, "rst_ports", effect.rst_port_hash)
            for name, bit in effect.received_bits.items():
                ips.counts[row, COUNTER_INDEX[name]] |= bit

    # the ARP binding (sender IPv4, sender MAC)
    if arp_ok and rec.arp_spa != 0:
        row = arps.upsert(rec.arp_spa, rec.arp_sha)
        _count(arps.counts, row, [name for name in effect.sent if name in ARP_TABLE_COUNTERS], 0, 0, ts)


_DUP_MAX, _PEER, _PEER_CHANGES, _PREV_PEER, _VLAN = (COUNTER_INDEX[name] for name in
                                                     ("dup_max", "peer", "peer_changes", "prev_peer", "vlan"))
_DHCP_SERVER_ID, _DHCP_FINGERPRINT = COUNTER_INDEX["dhcp_server_id"], COUNTER_INDEX["dhcp_fingerprint"]


# -- the kernels -------------------------------------------------------------------------------------------

def aggregate_frames(records, mac_table, ip_table, arp_table, recent=None):
    """Add a batch of FRAME_DTYPE records into three tables, in place (see the compiled twin's docstring)."""
    if records.dtype != FRAME_DTYPE or not records.flags.c_contiguous:
        raise TypeError("aggregate_frames: records must be a C-contiguous FRAME_DTYPE array")
    macs, ips, arps = _Table(mac_table, True), _Table(ip_table, True), _Table(arp_table, False)
    dup_table, flow_table = _check_recent(recent) if recent is not None else (None, None)
    for rec in map(FrameRecord._make, records.tolist()):
        _add_frame(rec, macs, ips, arps, dup_table, flow_table)
    macs.finish()
    ips.finish()
    arps.finish()


def record_totals(records, flag_counts):
    """Each record's set flag bits counted into flag_counts (in place), and the batch's (wire bytes, first
    ts_ns, last ts_ns); (0, 0, 0) for an empty batch."""
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
