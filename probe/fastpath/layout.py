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
    "DUP_SLOTS", "DUP_RUN_GAP_NS", "FLOW_SLOTS", "UDP_SMALL_WIRELEN", "SCORE_PARAM_NAMES",
    "AGG_UNREAD_FIELDS", "agg_input_mask",
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
    ("ip_proto", np.uint8),            # after IPv6 extension headers
    ("ip_ttl", np.uint8),
    ("tcp_flags", np.uint8),           # FIN 1, SYN 2, RST 4, PSH 8, ACK 16, URG 32, ECE 64, CWR 128
    ("icmp_type", np.uint8), ("icmp_code", np.uint8),   # ICMP or ICMPv6 (flag IPV6 tells which)
    ("dhcp_msg_type", np.uint8),       # option 53
    ("dns_rcode", np.uint8),
    ("dns_opcode", np.uint8),
    # appended after the first layout (keep the order above: other kernels index it)
    ("frame_hash", np.uint64),         # broadcast/multicast frames only: 64-bit hash of the first 256 captured
                                       # bytes and the wire length (a loop repeats frames byte for byte)
    ("tcp_seq", np.uint32),            # TCP sequence number
    ("tcp_len", np.uint16),            # TCP payload length (from the IP lengths, not what was captured)
    ("ip_id", np.uint16),              # IPv4 identification, TCP segments only (SPAN copies keep it)
], align=True)

# flag bits of FRAME_DTYPE["flags"], in bit order
FLAG_NAMES = (
    "MALFORMED",       # a length or header field contradicts the frame: counted, not aggregated
    "TRUNCATED",       # cut by the capture's snap length (caplen < wirelen) before a header ended
    "BROADCAST", "MULTICAST", "VLAN_TAGGED", "LLC",
    "IPV4", "IPV6", "FRAGMENT",  # FRAGMENT: a non-first fragment, no L4 header
    "ARP", "ARP_GRATUITOUS",
    "TCP", "UDP", "ICMP",
    "DNS", "DNS_RESPONSE",       # DNS: UDP port 53; DNS_RESPONSE: the QR bit (also for mDNS/LLMNR)
    "DHCP", "LLDP", "CDP", "STP", "MDNS", "LLMNR", "NBNS", "SSDP",
)
for _bit, _name in enumerate(FLAG_NAMES):
    globals()[f"F_{_name}"] = 1 << _bit
    __all__.append(f"F_{_name}")
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
)
COUNTER_INDEX = {name: i for i, name in enumerate(COUNTERS)}
N_COUNTERS = len(COUNTERS)
# counters that are not sums: merged by min/max/last instead of +
NON_ADDITIVE = {"dhcp_server_id": "last", "dhcp_fingerprint": "last", "first_seen_ns": "min",
                "last_seen_ns": "max", "peer": "last", "prev_peer": "last", "dup_max": "max",
                "vlan": "last"}
# a UDP datagram this short (Ethernet frame length on the wire) counts as `udp_small`: floods are of small
# datagrams (hping3 -2: 60 bytes), backups and video streams are of large ones; RTP voice (~214) is small
# but answered in kind, which the flood detector checks
UDP_SMALL_WIRELEN = 256

# Protocol codes in dup_max bits 15..12 (what the repeated frame was), and the dup_max field helpers.
DUP_PROTOCOLS = ("other", "arp", "dhcp", "icmp", "mdns", "ssdp", "nbns", "llmnr", "stp", "lldp", "cdp", "udp",
                 "tcp", "ipv4", "ipv6")
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
DUP_RUN_GAP_NS = 95 << 20  # ~99.6 ms, in the kernels' ts >> 20 units
FLOW_SLOTS = 4096

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
)

# Record fields aggregate_frames' classification of a frame does not read, or reads only through a
# class the compiled kernel checks apart (wirelen <= UDP_SMALL_WIRELEN, caplen >= 14, dport <= sport;
# frame_hash must be 0 and TCP is excluded there). When a record equals the previous one in every other
# field, the compiled kernel reuses the previous frame's classification. A field the classification
# starts to read must leave this list (tests/unit/test_aggregate.py randomizes these fields within runs
# and holds the kernel to the twin, which classifies every frame).
AGG_UNREAD_FIELDS = ("ts_ns", "wirelen", "caplen", "sport", "arp_tha", "dhcp_requested_ip", "dhcp_yiaddr",
                     "dhcp_xid", "payload_off", "ip_len", "dns_id", "dns_qtype", "dns_ancount", "ip_ttl",
                     "icmp_code", "dns_opcode", "frame_hash", "tcp_seq", "tcp_len", "ip_id")


def agg_input_mask() -> np.ndarray:
    """uint64 words over one FRAME_DTYPE record: bits set on the fields classification reads (padding and
    AGG_UNREAD_FIELDS clear)."""
    mask = np.zeros(FRAME_DTYPE.itemsize, np.uint8)
    for name, (dt, offset) in FRAME_DTYPE.fields.items():
        if name not in AGG_UNREAD_FIELDS:
            mask[offset:offset + dt.itemsize] = 0xFF
    return mask.view(np.uint64)
