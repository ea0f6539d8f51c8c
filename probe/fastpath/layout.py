"""Record layouts shared by the compiled kernels (probe/fastpath/kernels/) and their twins (probe/fastpath/twin/).

One definition, imported by both implementations, so the two can only disagree about values, never
about shape. The compiled module checks at import that its C structs match these numpy dtypes.

Frame records (`FRAME_DTYPE`, one row per frame, from `parse_frames`)
--------------------------------------------------------------------
Addresses are plain integers in network order read as big-endian numbers:
- MAC addresses: uint64 holding the 48-bit address (00:11:22:33:44:55 -> 0x001122334455).
- IPv4 addresses: uint32 (192.168.1.1 -> 0xC0A80101, what `ipaddress.IPv4Address(int)` takes);
  0 when the frame carries no IPv4 header.
- IPv6 addresses: two uint64 halves, `*_ip6_hi` (first 8 bytes) and `*_ip6_lo` (last 8 bytes), exact,
  not hashed; zero when the frame carries no IPv6 header.
Fields a frame does not carry are 0 (vlan: -1). `flags` says which layers were decoded; a frame
flagged MALFORMED has only the fields decoded before the fault and is skipped by aggregation except
for being counted. `payload_off` is the offset of the innermost decoded payload within the frame
(L4 payload for TCP/UDP, LLC/LLDP payload for L2 discovery frames), for the rare-frame decoder.

Aggregate tables (`aggregate_frames`)
-------------------------------------
Each table is a bounded hash table of rows with `N_COUNTERS` uint64 counters (`COUNTERS` names them)
and optionally HyperLogLog sketches (`N_SKETCHES` x `HLL_REGISTERS` uint8 registers). Row
`capacity` is the overflow bucket (every frame whose key did not fit) and row `capacity + 1` the
window totals. Keys are two uint64: MAC table (mac, 0); IP table IPv4 as (0, 0xFFFF00000000 | ip)
(the IPv4-mapped IPv6 form), IPv6 as (hi, lo); ARP binding table (ipv4, mac).
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "FRAME_DTYPE", "FLAG_NAMES", "COUNTERS", "COUNTER_INDEX", "N_COUNTERS", "SKETCHES", "N_SKETCHES",
    "HLL_BITS", "HLL_REGISTERS", "RARE_FLAGS", "DUP_PROTOCOLS", "DUP_NO_VLAN", "dup_max_fields",
    "DUP_SLOTS", "DUP_RUN_GAP_NS", "FLOW_SLOTS", "UDP_SMALL_WIRELEN", "SCORE_PARAM_NAMES", "SCORE_STATE", "SCORE_COLUMN",
    "SCORE_WIDTH", "score_constants", "FLOW_TS_SHIFT", "SPAN_COPY_UNITS",
    "AGG_UNREAD_FIELDS", "agg_input_mask", "TCP_FLAG_NAMES", "DUP_GAP_UNITS", "DUP_TS_SHIFT", "FRAME_HASH_BYTES",
    "SEQ_REUSE_GAP", "HASH_CONSTANTS", "RECORD_WORDS", "pxi_text", "PXI_PATH", "BITMAPS", "BITMAP_SHIFT",
    "NON_ADDITIVE", "DNS_PORT",
]

FRAME_DTYPE = np.dtype([
    ("ts_ns", np.int64),
    ("src_mac", np.uint64), ("dst_mac", np.uint64),
    ("src_ip6_hi", np.uint64), ("src_ip6_lo", np.uint64),
    ("dst_ip6_hi", np.uint64), ("dst_ip6_lo", np.uint64),
    ("arp_sha", np.uint64), ("arp_tha", np.uint64),
    ("dhcp_chaddr", np.uint64),
    ("dhcp_fingerprint", np.uint64),   # FNV-1a 64 of option 55 bytes, 0xff, option 60 bytes; 0 if neither
    ("wirelen", np.uint32), ("caplen", np.uint32),
    ("src_ip", np.uint32), ("dst_ip", np.uint32),
    ("arp_spa", np.uint32), ("arp_tpa", np.uint32),
    ("dhcp_server_id", np.uint32), ("dhcp_requested_ip", np.uint32),
    ("dhcp_yiaddr", np.uint32), ("dhcp_xid", np.uint32),
    ("flags", np.uint32),
    ("payload_off", np.uint32),
    ("vlan", np.int32),                # batch metadata VLAN when set, else the outermost 802.1Q/ad tag
    ("ethertype", np.uint16),          # after VLAN tags; 0 for 802.3 length frames (flag LLC)
    ("sport", np.uint16), ("dport", np.uint16),
    ("ip_len", np.uint16),             # IPv4 total length / IPv6 payload length + 40
    ("arp_op", np.uint16),
    ("dns_id", np.uint16), ("dns_qtype", np.uint16), ("dns_ancount", np.uint16),
    ("ip_proto", np.uint8),            # after IPv6 extension headers and an IPv4 AH header
    ("ip_ttl", np.uint8),
    ("tcp_flags", np.uint8),           # FIN 1, SYN 2, RST 4, PSH 8, ACK 16, URG 32, ECE 64, CWR 128
    ("icmp_type", np.uint8), ("icmp_code", np.uint8),   # ICMP or ICMPv6 (flag IPV6 tells which)
    ("dhcp_msg_type", np.uint8),       # option 53
    ("dns_rcode", np.uint8),
    ("dns_opcode", np.uint8),
    # appended after the first layout (keep the order above: other kernels index it)
    ("frame_hash", np.uint64),         # broadcast/multicast frames only: 64-bit hash of the first
                                       # FRAME_HASH_BYTES (128) captured bytes and the wire length (a loop
                                       # repeats frames byte for byte); never 0, 0 meaning "not hashed"
    ("tcp_seq", np.uint32),            # TCP sequence number
    ("tcp_len", np.uint16),            # TCP payload length (from the IP lengths, not what was captured)
    ("ip_id", np.uint16),              # IPv4 identification, TCP segments only (SPAN copies keep it)
    # the packet an ICMP/ICMPv6 error quotes (destination unreachable, time exceeded, redirect, parameter
    # problem...): what it was about; 0 when the frame is no such error or the quote is cut or no IP header
    ("icmp_quote_dst", np.uint32),     # its IPv4 destination (IPv6: the last 32 bits of it)
    ("icmp_quote_sport", np.uint16),   # its TCP/UDP/SCTP source and destination ports, when it holds them
    ("icmp_quote_dport", np.uint16),
    ("icmp_quote_proto", np.uint8),    # its IP protocol (IPv6: the next header after the fixed header)
], align=True)

# flag bits of FRAME_DTYPE["flags"], in bit order
FLAG_NAMES = (
    "MALFORMED",       # a length or header field contradicts the frame: counted, not aggregated
    "TRUNCATED",       # cut by the capture's snap length (caplen < wirelen) before a header ended
    "BROADCAST", "MULTICAST", "VLAN_TAGGED", "LLC",
    "IPV4", "IPV6", "FRAGMENT",  # FRAGMENT: an IP fragment; the first holds the transport header (what
                                 # of it fits is decoded), the others none
    "ARP", "ARP_GRATUITOUS",
    "TCP", "UDP", "ICMP",
    "DNS", "DNS_RESPONSE",       # DNS: UDP port 53; DNS_RESPONSE: the QR bit (also for mDNS/LLMNR)
    "DHCP", "LLDP", "CDP", "STP", "MDNS", "LLMNR", "NBNS", "SSDP",
    "ESP",             # IPsec ESP: what follows is encrypted (ip_proto 50), no transport header is read
)
for _bit, _name in enumerate(FLAG_NAMES):
    globals()[f"F_{_name}"] = 1 << _bit
    __all__.append(f"F_{_name}")
del _bit, _name

# TCP header flag bits (FRAME_DTYPE["tcp_flags"]), in bit order: TCP_FIN = 1, TCP_SYN = 2, ... TCP_CWR = 128
TCP_FLAG_NAMES = ("FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR")
for _bit, _name in enumerate(TCP_FLAG_NAMES):
    globals()[f"TCP_{_name}"] = 1 << _bit
    __all__.append(f"TCP_{_name}")
del _bit, _name

RARE_FLAGS = F_DHCP | F_LLDP | F_CDP | F_MDNS | F_LLMNR | F_NBNS  # noqa: F821  (set just above)

COUNTERS = (
    "frames", "bytes", "rx_frames", "rx_bytes", "broadcast", "multicast", "malformed", "truncated",
    "tcp_syn", "tcp_synack", "tcp_rst", "tcp_synack_rcvd", "tcp_rst_rcvd",
    "arp_request", "arp_reply", "arp_gratuitous", "arp_reply_rcvd", "arp_sha_mismatch",
    "dhcp_discover", "dhcp_offer", "dhcp_request", "dhcp_ack", "dhcp_nak", "dhcp_inform",
    "dhcp_server_id", "dhcp_fingerprint",
    "dns_query", "dns_response", "dns_nxdomain", "dns_servfail",
    "dns_response_rcvd", "dns_nxdomain_rcvd", "dns_servfail_rcvd",
    "icmp_unreach", "icmp_unreach_rcvd", "icmp_echo_request", "icmp_echo_reply_rcvd", "icmp_time_exceeded",
    "lldp", "cdp", "stp",
    "first_seen_ns", "last_seen_ns",
    "peer",  # MAC table: last IPv4 this MAC sent from; IP table: last MAC this IP sent from
    "peer_changes",  # IP table: times this IP arrived from a different MAC than before (MITM, failover)
    "prev_peer",     # IP table: the MAC it arrived from before the last change
    "udp_probe",     # UDP datagrams to a unicast port at or below the source port (requests, scans)
    "dup_frames",    # broadcast/multicast frames byte-identical to one seen < DUP_RUN_GAP_NS before (loops)
    "dup_max",       # the longest such run of one frame: copies << 32 | ethertype << 16 | protocol << 12 | VLAN
    "tcp_data",      # TCP segments carrying data, SYN-ACK or FIN (bare SYNs and SPAN copies left out)
    "tcp_retrans",   # of those, segments whose sequence end was not beyond what the flow had sent
    "tcp_stealth",   # TCP probes with none of SYN, ACK, RST (FIN, NULL, Xmas scans): no live connection sends one
    "udp_small",     # unicast non-DNS UDP datagrams of at most UDP_SMALL_WIRELEN bytes on the wire (flood material)
    "vlan",          # MAC table: last 802.1Q VLAN the MAC sent on, plus 1 (0: untagged)
    "tcp_rst_bare",  # RSTs sent without ACK: replies to segments of no connection (a SYN-ACK never asked for)
    "dhcp_reply_cut",  # BOOTREPLYs from the server port whose options the snap length cut (message type unknown)
    "icmp_unreach_dns_rcvd",  # port unreachables received that quote a UDP datagram it sent from port 53: a DNS
                              # answer that arrived after the client gave up and closed its port (ordinary)
    # flow bitmaps (BITMAPS): 64-bit linear-counting sketches of distinct flows, merged by OR
    "retrans_flows",     # distinct TCP flows (direction) its retransmitted segments belong to
    "rst_flows",         # distinct connections (peer address and port, own port) it received resets on
    "unreach_dsts",      # distinct destinations (address, protocol, ports) of the ICMP unreachables it received,
                         # the late DNS answers left out
    "dns_query_flows",   # distinct DNS transactions (client, server, client port, query ID) of its queries
    "dns_error_flows",   # distinct DNS transactions answered NXDOMAIN or SERVFAIL that it sent or received
)
COUNTER_INDEX = {name: i for i, name in enumerate(COUNTERS)}
N_COUNTERS = len(COUNTERS)
assert N_COUNTERS <= 64, "the kernels add a frame's counters from one uint64 bit mask"
# counters that are not sums: merged by min/max/last instead of +
NON_ADDITIVE = {"dhcp_server_id": "last", "dhcp_fingerprint": "last", "first_seen_ns": "min",
                "last_seen_ns": "max", "peer": "last", "prev_peer": "last", "dup_max": "max",
                "vlan": "last"}
# Flow bitmaps: each frame sets one bit, picked by a hash of its flow (layout's BITMAP_SHIFT top bits), so a
# row's popcount counts distinct flows exactly until two collide (linear counting estimates past that;
# probe.state.aggregates.bitmap_estimate). Eight bytes where a HyperLogLog sketch takes 64; enough to tell
# "one flow" from "several", which is what they are for: no single flow may raise a finding.
BITMAPS = ("retrans_flows", "rst_flows", "unreach_dsts", "dns_query_flows", "dns_error_flows")
NON_ADDITIVE.update(dict.fromkeys(BITMAPS, "or"))
BITMAP_SHIFT = 58  # 64 - log2(64 bits)
# a UDP datagram this short (Ethernet frame length on the wire) counts as `udp_small`: floods are of small
# datagrams (hping3 -2: 60 bytes), backups and video streams are of large ones; RTP voice (~214) is small
# but answered in kind, which the flood detector checks
UDP_SMALL_WIRELEN = 256
DNS_PORT = 53  # a port unreachable quoting a UDP datagram from this port is a DNS answer that came too late

# Protocol codes in dup_max bits 15..12 (what the repeated frame was), and the dup_max field helpers.
# Code i > 0 is the frame flag F_<DUP_PROTOCOLS[i].upper()>; a frame gets the code of the first of them it
# carries, in this order (innermost layer first: an ARP or DHCP frame before UDP, UDP before IPv4).
DUP_PROTOCOLS = ("other", "arp", "dhcp", "icmp", "mdns", "ssdp", "nbns", "llmnr", "stp", "lldp", "cdp", "udp",
                 "tcp", "ipv4", "ipv6")
for _code, _name in enumerate(DUP_PROTOCOLS):
    globals()[f"DUP_{_name.upper()}"] = _code
    __all__.append(f"DUP_{_name.upper()}")
del _code, _name
assert all(n.upper() in FLAG_NAMES for n in DUP_PROTOCOLS[1:]) and len(DUP_PROTOCOLS) <= 16
DUP_NO_VLAN = 0xFFF  # VLAN field of dup_max for untagged frames (4095 is reserved by 802.1Q)


def dup_max_fields(value: int) -> dict:
    """copies, ethertype, protocol and VLAN (None if untagged) of a dup_max counter."""
    value = int(value)
    proto = (value >> 12) & 0xF
    vlan = value & 0xFFF
    return {"copies": value >> 32, "ethertype": (value >> 16) & 0xFFFF,
            "protocol": DUP_PROTOCOLS[proto] if proto < len(DUP_PROTOCOLS) else "other",
            "vlan": None if vlan == DUP_NO_VLAN else vlan}

# HyperLogLog sketches per row: distinct destination hosts of connection attempts (TCP SYN, UDP
# requests, ICMP echo, ARP who-has targets), distinct destination ports of connection attempts,
# distinct DHCP client hardware addresses in DISCOVER/REQUEST/INFORM; on the receiving side, distinct
# source ports of the TCP resets a device receives from a port at or below its own ("ports that reset
# it": what an ACK, window or Maimon scan gets back; touched only by RST frames).
SKETCHES = ("dst_hosts", "dst_ports", "dhcp_clients", "rst_ports")
N_SKETCHES = len(SKETCHES)
HLL_BITS = 6
HLL_REGISTERS = 1 << HLL_BITS

# Recent-frame state of aggregate_frames (`recent` argument), both direct-mapped and fixed-size:
# - duplicate table uint64[DUP_SLOTS, 2]: (frame hash, copies in the run << 32 | last copy's ts_ns >> 20)
#   of broadcast/multicast frames; a new hash takes the slot (evicting on collision). A copy counts only
#   within DUP_RUN_GAP_NS of the previous one (a loop repeats a frame within microseconds; a host
#   resending it a second later starts a new run). Reset every window.
# - flow table uint64[FLOW_SLOTS, 2] per TCP direction: (tag << 32 | highest sequence end,
#   last seq << 32 | its IPv4 ID << 16 | its ts_ns >> 16 & 0xFFFF), tag = the flow key hash's top 32 bits | 1;
#   a new flow takes the slot. Kept across windows; 16 bytes an entry so the table stays in cache.
DUP_SLOTS = 2048
DUP_TS_SHIFT = 20          # the duplicate table keeps ts_ns >> 20 (~1.05 ms units) in 32 bits
DUP_RUN_GAP_NS = 95 << DUP_TS_SHIFT  # ~99.6 ms
DUP_GAP_UNITS = DUP_RUN_GAP_NS >> DUP_TS_SHIFT  # the same gap in the table's units (95)
FLOW_TS_SHIFT = 16         # the TCP flow table keeps ts_ns >> 16 (~65.5 us units) in 16 bits
SPAN_COPY_UNITS = 15       # a segment seen again within this many units (~1 ms), without an IPv4 ID to tell,
                           # is a SPAN copy of it, not a retransmission
FLOW_SLOTS = 4096
# A TCP segment ending this far (64 MiB) behind its flow's highest sequence end is no retransmission: no
# window allows it, so it is a new connection on a reused 4-tuple
SEQ_REUSE_GAP = 1 << 26

# Loop detection hashes the first FRAME_HASH_BYTES captured bytes of a broadcast/multicast frame (a loop
# repeats a frame byte for byte; 128 bytes hold every header that tells two frames apart)
FRAME_HASH_BYTES = 128

# 64-bit constants of the hashes both implementations compute (they must agree bit for bit: the
# sketches, table slots and frame hashes are compared between them)
HASH_CONSTANTS = {
    "FNV_OFFSET": 0xCBF29CE484222325,  # FNV-1a 64 (DHCP fingerprint, frame hash seed)
    "FNV_PRIME": 0x100000001B3,
    "HASH_MUL": 0x9E3779B97F4A7C15,    # frame hash lanes
    "HASH_MUL2": 0xC2B2AE3D27D4EB4F,
    "MIX_MUL1": 0xBF58476D1CE4E5B9,    # splitmix64 finalizer (mix64)
    "MIX_MUL2": 0x94D049BB133111EB,
    "SALT_PORT": 0x9E3779B97F4A7C15,   # sketch and key hash salts: ports, DHCP client addresses, RST ports
    "SALT_CHADDR": 0xD6E8FEB86659FD93,
    "SALT_RST": 0xA0761D6478BD642F,
    "SALT_FLOW": 0xE7037ED1A0B428DB,   # flow bitmaps: DNS transactions
    "V4_MAPPED": 0xFFFF00000000,       # IP table key of an IPv4 address: (0, V4_MAPPED | ip)
}
globals().update(HASH_CONSTANTS)
__all__.extend(HASH_CONSTANTS)

# a FrameRecord as uint64 words (the compiled kernel compares records a word at a time)
RECORD_WORDS = FRAME_DTYPE.itemsize // 8
assert FRAME_DTYPE.itemsize % 8 == 0

# Anomaly-score kernel parameters (`score_samples`' params, float64[len(SCORE_PARAM_NAMES)]), in order;
# score_default_params() gives the tuned values.
SCORE_PARAM_NAMES = (
    "alpha_level",    # weight of a new sample in the fast level (one-step prediction)
    "alpha_err",      # ... in the usual one-step and hour miss (about 1/1000 samples)
    "alpha_z",        # ... in the long-run mean/variance of each surprise and the repeat rate
    "alpha_short",    # ... in the short-window means of the surprises (about 20 samples)
    "alpha_seas",     # ... in this hour's usual value, per visit of the hour
    "floor_rel",      # smallest usual miss, as a share of the range seen
    "log_scale",      # score = -log10(p) / log_scale
    "warmup",         # samples scored 0 at the start
    "alert",          # score that opens an episode
    "refractory",     # samples an episode silences
    "margin",         # how much stronger a follower must be to be reported
    "use_hour",       # 1: the daily rhythm can explain a jump
    "run_weight",     # share of the repeats in a run of equal values counted as independent (0: off)
    "alpha_shift",    # weight of a new sample in the short-window mean of the value (level shifts)
    "shift_clip",     # ... where a sample counts at most this many usual spreads from the long-run mean
    "tail_lo",        # lowest z level whose frequency is kept (N_TAIL levels in all)
    "tail_step",      # ... and the step between levels
    "tail_min",       # a level's frequency caps the rarity once above this many times ALPHA_Z
    "spatial_tol",    # a value beyond [min, max] seen by more than this share of max - min ...
    "spatial_p",      # ... has at most this probability
    "spatial_after",  # ... once this many samples have shown the range
    "seas_clip",      # the hour's value learns from each sample clipped to this many usual hour misses
    "alpha_tail",     # weight of a new sample in how often each z level is reached (its memory, in samples)
    "tail_decay",     # beyond the highest level the series has reached often, each unit of z is this many
                      # powers of ten rarer at most
)

# Anomaly-score state: one float64 row per series, these columns in order from 0 (name, width): the hot
# ones first (four cache lines), then the daily-rhythm buckets from the fifth line on.
SCORE_STATE = (
    ("n", 1),               # samples learnt
    ("level", 1),           # fast level (one-step prediction)
    ("err", 1),             # usual |x - level|
    ("min", 1), ("max", 1),  # range seen
    ("short", 1),           # short-window mean of the one-step surprise
    ("short_hour", 1),      # short-window mean of the hour surprise
    ("ep_max", 1),          # highest score of the current episode
    ("ep_left", 1),         # samples left in the current episode
    ("seas_err", 1),        # usual |x - this hour's value|
    ("prev_level", 1),      # the fast level before the last sample
    ("last_x", 1),          # last value
    ("run", 1),             # length of the current run of equal values
    ("repeat", 1),          # how often a value equals the one before
    ("z_step", 2),          # running mean and variance of each surprise: one step, against the hour,
    ("z_hour", 2),          # and the two short-window means
    ("z_short", 2),
    ("z_short_hour", 2),
    ("shift_short", 1),     # short-window mean of the value
    ("shift_long", 1),      # long-run mean of the value
    ("shift_dev", 1),       # usual |x - long-run mean|
    ("z_shift", 2),         # running mean and variance of the shift surprise
    ("tail", 5),            # how often the surprise reached each of N_TAIL levels
    ("seas", 24),           # value per hour of the day
)
SCORE_COLUMN = dict(zip((n for n, _ in SCORE_STATE),
                        np.cumsum([0] + [w for _, w in SCORE_STATE[:-1]]).tolist()))  # name -> first column
SCORE_WIDTH = sum(w for _, w in SCORE_STATE)
assert SCORE_WIDTH % 8 == 0 and SCORE_COLUMN["seas"] % 8 == 0  # whole 64-byte lines


def score_constants() -> dict[str, int]:
    """The score kernel's column and parameter indices by the names both implementations use: C_<COLUMN>,
    N_TAIL/N_SEAS (widths), SCORE_WIDTH, P_<PARAM>, N_PARAMS."""
    out = {f"C_{n.upper()}": SCORE_COLUMN[n] for n, _ in SCORE_STATE}
    out.update({"N_TAIL": dict(SCORE_STATE)["tail"], "N_SEAS": dict(SCORE_STATE)["seas"], "SCORE_WIDTH": SCORE_WIDTH})
    out.update({f"P_{n.upper()}": i for i, n in enumerate(SCORE_PARAM_NAMES)})
    out["N_PARAMS"] = len(SCORE_PARAM_NAMES)
    return out


# Record fields aggregate_frames' classification of a frame does not read, or reads only through a
# class the compiled kernel checks apart (wirelen <= UDP_SMALL_WIRELEN, caplen >= 14, dport <= sport;
# frame_hash must be 0 and TCP is excluded there). When a record equals the previous one in every other
# field, the compiled kernel reuses the previous frame's classification. A field the classification
# starts to read must leave this list (tests/unit/test_aggregate.py randomizes these fields within runs
# and holds the kernel to the twin, which classifies every frame).
AGG_UNREAD_FIELDS = ("ts_ns", "wirelen", "caplen", "sport", "arp_tha", "dhcp_requested_ip", "dhcp_yiaddr",
                     "dhcp_xid", "payload_off", "ip_len", "dns_id", "dns_qtype", "dns_ancount", "ip_ttl",
                     "dns_opcode", "frame_hash", "tcp_seq", "tcp_len", "ip_id")
# (DNS frames read sport and dns_id for their transaction's bitmap bit: the compiled kernel classifies every
# DNS frame, like every TCP segment, instead of reusing the previous frame's classification)


def agg_input_mask() -> np.ndarray:
    """uint64 words over one FRAME_DTYPE record: bits set on the fields classification reads (padding and
    AGG_UNREAD_FIELDS clear)."""
    mask = np.zeros(FRAME_DTYPE.itemsize, np.uint8)
    for name, (dt, offset) in FRAME_DTYPE.fields.items():
        if name not in AGG_UNREAD_FIELDS:
            mask[offset:offset + dt.itemsize] = 0xFF
    return mask.view(np.uint64)


# ---------------------------------------------------------------------------------------------------------
# The compiled side of this file: probe/fastpath/kernels/layout.pxi, generated from the definitions above
# (`python -m probe.fastpath.layout --pxi`, and by setup.py before every build), committed, and checked by
# tests/unit/test_fastpath_layout.py. The kernels include it instead of keeping copies of these values.

PXI_PATH = "probe/fastpath/kernels/layout.pxi"  # relative to the repository root

_C_TYPES = {"i1": "int8_t", "u1": "uint8_t", "i2": "int16_t", "u2": "uint16_t", "i4": "int32_t", "u4": "uint32_t",
            "i8": "int64_t", "u8": "uint64_t"}

_PXI_CHECK = '''

def frame_record_fields():
    """(name, offset, size) of every FrameRecord field, in struct order, as the C compiler laid them out."""
    cdef FrameRecord rec
    cdef size_t base = <size_t>&rec
    return (
{fields}
    )


def check_frame_record(dtype):
    """Raise ImportError naming the first FrameRecord field whose offset or size differs from `dtype`'s
    (the kernels write the C struct, numpy reads FRAME_DTYPE: they must describe the same bytes)."""
    regen = ("regenerate probe/fastpath/kernels/layout.pxi (python -m probe.fastpath.layout --pxi) "
             "and rebuild (pip install --no-build-isolation --no-deps -e .)")
    names = set()
    for name, offset, size in frame_record_fields():
        names.add(name)
        if dtype.fields is None or name not in dtype.fields:
            raise ImportError(f"FrameRecord.{{name}} ({{size}} bytes at offset {{offset}}) is not a field of "
                              f"FRAME_DTYPE: {{regen}}")
        field_type, field_offset = dtype.fields[name][:2]
        if field_offset != offset or field_type.itemsize != size:
            raise ImportError(f"FrameRecord.{{name}} is {{size}} bytes at offset {{offset}} in the compiled kernels "
                              f"but {{field_type.itemsize}} bytes at offset {{field_offset}} in FRAME_DTYPE: {{regen}}")
    for name in dtype.names:
        if name not in names:
            raise ImportError(f"FRAME_DTYPE field {{name!r}} is not in the compiled FrameRecord: {{regen}}")
    if sizeof(FrameRecord) != dtype.itemsize:
        raise ImportError(f"FrameRecord is {{sizeof(FrameRecord)}} bytes but FRAME_DTYPE is {{dtype.itemsize}}: {{regen}}")


check_frame_record(_FRAME_DTYPE)
'''


def pxi_text() -> str:
    """The text of probe/fastpath/kernels/layout.pxi for the definitions in this module."""
    out = [
        "# GENERATED by `python -m probe.fastpath.layout --pxi` from probe/fastpath/layout.py: do not edit.",
        "# The record struct and the constants the kernels share with the twin (which imports the same names",
        "# from probe/fastpath/layout.py); tests/unit/test_fastpath_layout.py fails when this file is not what",
        "# the generator gives, and check_frame_record() refuses to load a module whose struct differs.",
        "",
        "from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t",
        "from probe.fastpath.layout import FRAME_DTYPE as _FRAME_DTYPE",
        "",
        "# one parsed frame: FRAME_DTYPE (aligned like the C compiler aligns it)",
        "cdef struct FrameRecord:",
    ]
    for name in FRAME_DTYPE.names:
        dt = FRAME_DTYPE.fields[name][0]
        out.append(f"    {_C_TYPES[dt.kind + str(dt.itemsize)]} {name}")

    def enum(comment, items):
        out.extend(["", f"# {comment}", "cdef enum:"])
        out.extend(f"    {name} = {value}" for name, value in items)

    enum("FrameRecord.flags bits (FLAG_NAMES)", [(f"F_{n}", f"1 << {i}") for i, n in enumerate(FLAG_NAMES)])
    enum("FrameRecord.tcp_flags bits (TCP_FLAG_NAMES)", [(f"TCP_{n}", f"1 << {i}") for i, n in enumerate(TCP_FLAG_NAMES)])
    enum("counter columns of a table row (COUNTERS); C_COUNT = N_COUNTERS",
         [(f"C_{n.upper()}", i) for i, n in enumerate(COUNTERS)] + [("C_COUNT", N_COUNTERS)])
    enum("sketches of a table row (SKETCHES), HLL_REGISTERS registers each",
         [(f"S_{n.upper()}", i) for i, n in enumerate(SKETCHES)]
         + [("N_SKETCHES", N_SKETCHES), ("HLL_BITS", HLL_BITS), ("HLL_REGISTERS", HLL_REGISTERS)])
    enum("protocol codes of dup_max bits 15..12 (DUP_PROTOCOLS)",
         [(f"DUP_{n.upper()}", i) for i, n in enumerate(DUP_PROTOCOLS)])
    enum("sizes and thresholds", [
        ("DUP_TS_SHIFT", DUP_TS_SHIFT), ("DUP_GAP_UNITS", DUP_GAP_UNITS), ("DUP_NO_VLAN", hex(DUP_NO_VLAN)),
        ("SEQ_REUSE_GAP", SEQ_REUSE_GAP), ("FRAME_HASH_BYTES", FRAME_HASH_BYTES),
        ("UDP_SMALL_WIRELEN", UDP_SMALL_WIRELEN), ("RECORD_WORDS", RECORD_WORDS), ("BITMAP_SHIFT", BITMAP_SHIFT),
        ("DNS_PORT", DNS_PORT), ("FLOW_TS_SHIFT", FLOW_TS_SHIFT), ("SPAN_COPY_UNITS", SPAN_COPY_UNITS)])
    enum("anomaly-score state columns (SCORE_STATE) and parameters (SCORE_PARAM_NAMES)", score_constants().items())
    out.extend(["", "# hash constants (HASH_CONSTANTS)"])
    out.extend(f"cdef uint64_t {name} = 0x{value:X}ULL" for name, value in HASH_CONSTANTS.items())
    out.extend(["", "", "cdef inline uint64_t dup_protocol(uint32_t flags) noexcept nogil:",
                "    # the DUP_PROTOCOLS code of a repeated frame: the first of these flags it carries"])
    out.extend(f"    if flags & F_{n.upper()}: return DUP_{n.upper()}" for n in DUP_PROTOCOLS[1:])
    out.append("    return DUP_OTHER")
    fields = "\n".join(f"        ({name!r}, <size_t>&rec.{name} - base, sizeof(rec.{name}))," for name in FRAME_DTYPE.names)
    out.append(_PXI_CHECK.format(fields=fields).rstrip("\n"))
    return "\n".join(out) + "\n"


def write_pxi(root=None) -> bool:
    """Write probe/fastpath/kernels/layout.pxi under `root` (the repository) if it differs; True if it did."""
    import pathlib
    path = pathlib.Path(root if root is not None else pathlib.Path(__file__).resolve().parents[2]) / PXI_PATH
    text = pxi_text()
    if path.exists() and path.read_text() == text:
        return False
    path.write_text(text)
    return True


if __name__ == "__main__":
    import sys
    if sys.argv[1:] == ["--pxi"]:
        print(f"{PXI_PATH}: {'written' if write_pxi() else 'already up to date'}")
    else:
        sys.exit("usage: python -m probe.fastpath.layout --pxi   (writes " + PXI_PATH + " from this module)")
