"""The frame parser, specified in plain Python: what probe/fastpath/kernels/parse.pxi computes.

One frame at a time, one function per protocol layer, each filling the fields of its layer into one
FRAME_DTYPE record (probe/fastpath/layout.py documents the fields and flag bits). The rules every layer
keeps, so that a lying or cut frame never yields a field it does not carry:

- a header is read only once the captured bytes (caplen) hold all of it;
- a length a header claims is trusted only when it fits inside the enclosing one (the wire length for
  the link layer, the IP total length for the transport layer);
- when the bytes run out, the frame is TRUNCATED if the capture's snap length cut it (the claim was
  plausible) and MALFORMED if it claimed more than its enclosing layer holds (`_fault`).

The compiled kernel gives the same records bit for bit (tests/unit/test_parse.py holds the two to it).
"""
from __future__ import annotations

import numpy as np

from probe.fastpath.layout import (F_ARP, F_ARP_GRATUITOUS, F_BROADCAST, F_CDP, F_DHCP, F_DNS, F_DNS_RESPONSE,
                                   F_ESP, F_FRAGMENT, F_ICMP, F_IPV4, F_IPV6, F_LLC, F_LLDP, F_LLMNR, F_MALFORMED, F_MDNS,
                                   F_MULTICAST, F_NBNS, F_SSDP, F_STP, F_TCP, F_TRUNCATED, F_UDP, F_VLAN_TAGGED,
                                   FNV_OFFSET, FNV_PRIME, FRAME_DTYPE, FRAME_HASH_BYTES, HASH_MUL, HASH_MUL2,
                                   MIX_MUL1, MIX_MUL2)

__all__ = ["parse_frames"]

_FIELDS = FRAME_DTYPE.names
_U64 = (1 << 64) - 1

# Link layer
ETHERNET_HEADER_LEN = 14
BROADCAST_MAC = 0xFFFFFFFFFFFF
VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)  # 802.1Q, 802.1ad, the old QinQ tag
MAX_VLAN_TAGS = 4                      # more is no real frame: stop reading tags
MAX_8023_LENGTH = 1500                 # an EtherType field this small is an 802.3 length: LLC follows
LLC_STP_SAP = 0x42                     # spanning tree BPDUs
LLC_SNAP_SAP = 0xAA                    # SNAP: OUI + protocol id follow
LLC_UI = 0x03
CISCO_OUI, CDP_PROTOCOL_ID = 0x00000C, 0x2000
ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_ARP, ETHERTYPE_LLDP = 0x0800, 0x86DD, 0x0806, 0x88CC

# Network layer
IPV4_MIN_HEADER_LEN = 20
IPV4_FRAGMENT_OFFSET_MASK = 0x1FFF     # a non-first fragment carries no transport header
IPV4_MORE_FRAGMENTS = 0x2000           # with offset 0: the first fragment, which holds the transport header
IPV6_HEADER_LEN = 40
# (next header, length) first, the length in 8-octet units not counting the first 8: hop-by-hop, routing,
# destination options, mobility, HIP, shim6
IPV6_EXTENSION_HEADERS = (0, 43, 60, 135, 139, 140)
IPPROTO_AH = 51                        # (next header, length) first, the length in 4-octet units minus 2
IPPROTO_ESP = 50                       # encrypted from the SPI on: the walk ends there
IPV6_FRAGMENT_HEADER = 44
IPV6_NO_NEXT_HEADER = 59  # nothing follows the header: payload length 0 is then exact
IPV6_FRAGMENT_OFFSET_MASK, IPV6_MORE_FRAGMENTS = 0xFFF8, 1
MAX_IPV6_EXTENSION_HEADERS = 8
ARP_HEADER_LEN, ARP_IPV4_OVER_ETHERNET_LEN = 8, 28
ARP_ETHERNET_HTYPES = (1, 6)           # Ethernet, IEEE 802

# Transport layer
IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6 = 1, 6, 17, 58
TCP_MIN_HEADER_LEN, UDP_HEADER_LEN, ICMP_HEADER_LEN = 20, 8, 4
# ICMP errors quote the packet they are about after an 8-byte header: destination unreachable, source
# quench, redirect, time exceeded, parameter problem (ICMPv6: unreachable, too big, time exceeded, parameter)
ICMPV4_ERRORS, ICMPV6_ERRORS = (3, 4, 5, 11, 12), (1, 2, 3, 4)
ICMP_ERROR_HEADER_LEN = 8
QUOTED_PORT_PROTOCOLS = (6, 17, 132)  # TCP, UDP, SCTP: ports first

# Applications on UDP, told apart by port (either direction)
DNS_PORT, MDNS_PORT, LLMNR_PORT, NBNS_PORT, SSDP_PORT = 53, 5353, 5355, 137, 1900
DHCP_PORTS = (67, 68)
DNS_HEADER_LEN = 12
DNS_MAX_LABELS = 128                   # a name of more labels is not read (its qtype stays 0)
DHCP_FIXED_LEN = 240                   # BOOTP header and the magic cookie
DHCP_MAGIC_COOKIE = 0x63825363
BOOTP_CHADDR_END = 44                  # op .. chaddr: what a cut BOOTP header must still hold to be judged
BOOTREQUEST, BOOTREPLY = 1, 2
DHCP_OPT_PAD, DHCP_OPT_END = 0, 255
DHCP_OPT_MESSAGE_TYPE, DHCP_OPT_SERVER_ID, DHCP_OPT_REQUESTED_IP = 53, 54, 50
DHCP_OPT_PARAMETER_LIST, DHCP_OPT_VENDOR_CLASS = 55, 60


def _be(frame, offset, size):
    """The big-endian (network order) number of `size` bytes at `offset`."""
    return int.from_bytes(frame[offset:offset + size], "big")


def _fault(rec, needed, claimed):
    """The frame ended before `needed` bytes: MALFORMED when that is beyond what its enclosing header
    claimed (`claimed`, the header lies), TRUNCATED when within it (the snap length cut the capture)."""
    rec["flags"] |= F_MALFORMED if needed > claimed else F_TRUNCATED


# -- loop detection ----------------------------------------------------------------------------------------

def frame_hash(frame, wirelen):
    """64-bit hash of the first FRAME_HASH_BYTES bytes and the wire length, never 0 (0: "not hashed").

    A forwarding loop repeats a frame byte for byte, so equal hashes within a short gap are copies. Two
    8-byte little-endian lanes at a time, with a splitmix64 finish: the compiled frame_hash exactly.
    """
    size = min(len(frame), FRAME_HASH_BYTES)
    lane1 = FNV_OFFSET ^ ((wirelen * HASH_MUL) & _U64)
    lane2 = HASH_MUL2 ^ size
    i = 0
    while i + 16 <= size:
        lane1 = ((lane1 ^ int.from_bytes(frame[i:i + 8], "little")) * HASH_MUL) & _U64
        lane2 = ((lane2 ^ int.from_bytes(frame[i + 8:i + 16], "little")) * HASH_MUL2) & _U64
        lane1 ^= lane1 >> 32
        lane2 ^= lane2 >> 29
        i += 16
    if i + 8 <= size:
        lane1 = ((lane1 ^ int.from_bytes(frame[i:i + 8], "little")) * HASH_MUL) & _U64
        lane1 ^= lane1 >> 32
        i += 8
    if i < size:  # the last 1..7 bytes
        lane2 = ((lane2 ^ int.from_bytes(frame[i:size], "little")) * HASH_MUL2) & _U64
        lane2 ^= lane2 >> 29
    h = lane1 ^ ((lane2 * HASH_MUL) & _U64)
    h ^= h >> 30
    h = (h * MIX_MUL1) & _U64
    h ^= h >> 27
    h = (h * MIX_MUL2) & _U64
    h ^= h >> 31
    return h or 1


# -- link layer --------------------------------------------------------------------------------------------

def _parse_ethernet(frame, wirelen, rec):
    """Ethernet header and VLAN tags, then the layer the EtherType names (or LLC for an 802.3 frame)."""
    caplen = len(frame)
    if caplen < ETHERNET_HEADER_LEN:
        # not even the addresses: a frame this short on the wire is malformed, else the snap length cut it
        rec["flags"] |= F_MALFORMED if caplen >= wirelen else F_TRUNCATED
        return
    rec["dst_mac"] = dst_mac = _be(frame, 0, 6)
    rec["src_mac"] = _be(frame, 6, 6)
    if frame[0] & 1:  # the group bit: broadcast or multicast, what a loop circulates (unicast is not hashed)
        rec["frame_hash"] = frame_hash(frame, wirelen)
        rec["flags"] |= F_BROADCAST if dst_mac == BROADCAST_MAC else F_MULTICAST
    ethertype, offset = _skip_vlan_tags(frame, wirelen, rec)
    if offset < 0:
        return
    rec["payload_off"] = offset
    if ethertype <= MAX_8023_LENGTH:
        _parse_llc(frame, offset, rec)
        return
    rec["ethertype"] = ethertype
    if ethertype == ETHERTYPE_IPV4:
        _parse_ipv4(frame, offset, wirelen, rec)
    elif ethertype == ETHERTYPE_IPV6:
        _parse_ipv6(frame, offset, wirelen, rec)
    elif ethertype == ETHERTYPE_ARP:
        _parse_arp(frame, offset, wirelen, rec)
    elif ethertype == ETHERTYPE_LLDP:
        rec["flags"] |= F_LLDP  # its TLVs are read by the rare-frame decoder (probe/fastpath/rare.py)


def _skip_vlan_tags(frame, wirelen, rec):
    """(EtherType after the tags, offset of what follows); offset -1 when a tag was cut. The outermost
    tag's VLAN is the frame's, unless the capture's metadata already gave one."""
    ethertype = _be(frame, 12, 2)
    offset = ETHERNET_HEADER_LEN
    tags = 0
    while ethertype in VLAN_TPIDS and tags < MAX_VLAN_TAGS:
        if offset + 4 > len(frame):
            _fault(rec, offset + 4, wirelen)
            return ethertype, -1
        if tags == 0 and rec["vlan"] < 0:
            rec["vlan"] = _be(frame, offset, 2) & 0xFFF
        rec["flags"] |= F_VLAN_TAGGED
        ethertype = _be(frame, offset + 2, 2)
        offset += 4
        tags += 1
    return ethertype, offset


def _parse_llc(frame, offset, rec):
    """An 802.3 frame: LLC header; spanning tree (SAP 0x42) and CDP (SNAP, Cisco OUI, protocol 0x2000)."""
    rec["flags"] |= F_LLC
    if offset + 3 > len(frame):
        return
    dsap, ssap = frame[offset], frame[offset + 1]
    if dsap == LLC_STP_SAP and ssap == LLC_STP_SAP:
        rec["flags"] |= F_STP
    elif (dsap == LLC_SNAP_SAP and ssap == LLC_SNAP_SAP and offset + 8 <= len(frame)
          and frame[offset + 2] == LLC_UI):
        if _be(frame, offset + 3, 3) == CISCO_OUI and _be(frame, offset + 6, 2) == CDP_PROTOCOL_ID:
            rec["flags"] |= F_CDP
            rec["payload_off"] = offset + 8


# -- network layer -----------------------------------------------------------------------------------------

def _parse_ipv4(frame, offset, wirelen, rec):
    """IPv4 header; the transport header follows unless this is a non-first fragment."""
    caplen = len(frame)
    if offset + IPV4_MIN_HEADER_LEN > caplen:
        _fault(rec, offset + IPV4_MIN_HEADER_LEN, wirelen)
        return
    version, header_len = frame[offset] >> 4, (frame[offset] & 0xF) * 4
    if version != 4 or header_len < IPV4_MIN_HEADER_LEN:
        rec["flags"] |= F_MALFORMED
        return
    if offset + header_len > caplen:  # options cut
        _fault(rec, offset + header_len, wirelen)
        return
    total_len = _be(frame, offset + 2, 2)
    if total_len == 0:
        # captured before the NIC's segmentation offload (TSO): the stack left the length to the NIC, so the
        # packet is what the frame holds
        total_len = wirelen - offset
    if total_len < header_len or offset + total_len > wirelen:
        rec["flags"] |= F_MALFORMED
        return
    rec["flags"] |= F_IPV4
    rec["ip_len"] = min(total_len, 65535)
    rec["ip_ttl"] = frame[offset + 8]
    rec["ip_proto"] = protocol = frame[offset + 9]
    if protocol == IPPROTO_TCP:
        rec["ip_id"] = _be(frame, offset + 4, 2)  # tells a SPAN copy (same ID) from a retransmission
    rec["src_ip"] = _be(frame, offset + 12, 4)
    rec["dst_ip"] = _be(frame, offset + 16, 4)
    fragment = _be(frame, offset + 6, 2)
    if fragment & IPV4_FRAGMENT_OFFSET_MASK:
        rec["flags"] |= F_FRAGMENT  # a later fragment: no transport header in it
        return
    first_fragment = bool(fragment & IPV4_MORE_FRAGMENTS)
    if first_fragment:
        rec["flags"] |= F_FRAGMENT
    header, packet_end = offset + header_len, offset + total_len
    if protocol == IPPROTO_AH:
        if header + 2 > packet_end or header + 2 > caplen:
            _fault(rec, header + 2, packet_end)
            return
        rec["ip_proto"] = protocol = frame[header]
        header += (frame[header + 1] + 2) * 4
        if header > packet_end:
            rec["flags"] |= F_MALFORMED
            return
        if protocol == IPPROTO_TCP:
            rec["ip_id"] = _be(frame, offset + 4, 2)
    if protocol == IPPROTO_ESP:
        rec["flags"] |= F_ESP
        return
    _parse_transport(frame, header, packet_end, rec, first_fragment)


def _parse_ipv6(frame, offset, wirelen, rec):
    """IPv6 header and up to MAX_IPV6_EXTENSION_HEADERS extension headers; ip_proto is the protocol after
    them. A fragment header with a nonzero offset ends the frame (no transport header in it); so does ESP
    (encrypted)."""
    caplen = len(frame)
    if offset + IPV6_HEADER_LEN > caplen:
        _fault(rec, offset + IPV6_HEADER_LEN, wirelen)
        return
    if frame[offset] >> 4 != 6:
        rec["flags"] |= F_MALFORMED
        return
    total_len = _be(frame, offset + 4, 2) + IPV6_HEADER_LEN
    if total_len == IPV6_HEADER_LEN and frame[offset + 6] != IPV6_NO_NEXT_HEADER:
        # payload length 0 with something after the header: a jumbogram (RFC 2675, the length is in a
        # hop-by-hop option) or a send captured before segmentation offload: the packet is what the frame holds
        total_len = wirelen - offset
    if offset + total_len > wirelen:
        rec["flags"] |= F_MALFORMED
        return
    rec["flags"] |= F_IPV6
    rec["ip_len"] = min(total_len, 65535)
    rec["ip_ttl"] = frame[offset + 7]  # hop limit
    rec["src_ip6_hi"] = _be(frame, offset + 8, 8)
    rec["src_ip6_lo"] = _be(frame, offset + 16, 8)
    rec["dst_ip6_hi"] = _be(frame, offset + 24, 8)
    rec["dst_ip6_lo"] = _be(frame, offset + 32, 8)
    packet_end = offset + total_len
    next_header = frame[offset + 6]
    header = offset + IPV6_HEADER_LEN
    first_fragment = False
    for _ in range(MAX_IPV6_EXTENSION_HEADERS):
        if next_header in IPV6_EXTENSION_HEADERS or next_header == IPPROTO_AH:
            if header + 2 > packet_end or header + 2 > caplen:
                _fault(rec, header + 2, packet_end)
                return
            length = (frame[header + 1] + 2) * 4 if next_header == IPPROTO_AH else (frame[header + 1] + 1) * 8
            next_header, header = frame[header], header + length
            if header > packet_end:
                rec["flags"] |= F_MALFORMED
                return
        elif next_header == IPV6_FRAGMENT_HEADER:
            if header + 8 > packet_end or header + 8 > caplen:
                _fault(rec, header + 8, packet_end)
                return
            fragment = _be(frame, header + 2, 2)
            next_header, header = frame[header], header + 8
            if fragment & IPV6_FRAGMENT_OFFSET_MASK:  # a later fragment: no transport header in it
                rec["ip_proto"] = next_header
                rec["flags"] |= F_FRAGMENT
                return
            if fragment & IPV6_MORE_FRAGMENTS:  # the first; offset 0 without M is an atomic fragment, whole
                rec["flags"] |= F_FRAGMENT
                first_fragment = True
        else:
            break
    rec["ip_proto"] = next_header
    if next_header == IPPROTO_ESP:
        rec["flags"] |= F_ESP
        return
    _parse_transport(frame, header, packet_end, rec, first_fragment)


def _parse_arp(frame, offset, wirelen, rec):
    """ARP: the operation for any hardware/protocol pair; addresses for IPv4 over Ethernet only. A request
    whose sender and target IPv4 are the same (and not 0.0.0.0, a probe) is gratuitous: an announcement."""
    caplen = len(frame)
    if offset + ARP_HEADER_LEN > caplen:
        _fault(rec, offset + ARP_HEADER_LEN, wirelen)
        return
    hardware_type, protocol_type = _be(frame, offset, 2), _be(frame, offset + 2, 2)
    hardware_len, protocol_len = frame[offset + 4], frame[offset + 5]
    rec["flags"] |= F_ARP
    rec["arp_op"] = _be(frame, offset + 6, 2)
    if offset + ARP_HEADER_LEN + 2 * (hardware_len + protocol_len) > wirelen:
        rec["flags"] |= F_MALFORMED
        return
    if hardware_type in ARP_ETHERNET_HTYPES and protocol_type == ETHERTYPE_IPV4:
        if hardware_len != 6 or protocol_len != 4:
            rec["flags"] |= F_MALFORMED
            return
        if offset + ARP_IPV4_OVER_ETHERNET_LEN > caplen:
            rec["flags"] |= F_TRUNCATED
            return
        rec["arp_sha"] = _be(frame, offset + 8, 6)
        rec["arp_spa"] = sender_ip = _be(frame, offset + 14, 4)
        rec["arp_tha"] = _be(frame, offset + 18, 6)
        rec["arp_tpa"] = target_ip = _be(frame, offset + 24, 4)
        if sender_ip == target_ip and sender_ip != 0:
            rec["flags"] |= F_ARP_GRATUITOUS


# -- transport layer ---------------------------------------------------------------------------------------

def _parse_transport(frame, offset, packet_end, rec, first_fragment=False):
    """The transport header at `offset` of an IP packet ending (as its header claims) at `packet_end`;
    `first_fragment`: the packet is the first fragment of a datagram, which goes on past packet_end."""
    protocol = rec["ip_proto"]
    if protocol == IPPROTO_TCP:
        _parse_tcp(frame, offset, packet_end, rec)
    elif protocol == IPPROTO_UDP:
        _parse_udp(frame, offset, packet_end, rec, first_fragment)
    elif protocol == IPPROTO_ICMP or protocol == IPPROTO_ICMPV6:
        if offset + ICMP_HEADER_LEN > packet_end or offset + ICMP_HEADER_LEN > len(frame):
            _fault(rec, offset + ICMP_HEADER_LEN, packet_end)
            return
        rec["flags"] |= F_ICMP
        rec["icmp_type"] = frame[offset]
        rec["icmp_code"] = frame[offset + 1]
        rec["payload_off"] = offset + ICMP_HEADER_LEN
        if frame[offset] in (ICMPV4_ERRORS if protocol == IPPROTO_ICMP else ICMPV6_ERRORS):
            _parse_icmp_quote(frame, offset + ICMP_ERROR_HEADER_LEN, min(packet_end, len(frame)), rec,
                              protocol == IPPROTO_ICMPV6)


def _parse_icmp_quote(frame, offset, end, rec, ipv6):
    """The packet an ICMP error quotes, from `offset` to `end` (the last byte of the ICMP message we may read):
    its protocol and destination once its whole IP header is there, its ports once their 4 bytes are too.
    A quote cut short is no fault of the frame (RFC 792 asks only for the IP header and 8 bytes; routers
    send what they like): what it does not hold stays 0."""
    if ipv6:
        if offset + IPV6_HEADER_LEN > end or frame[offset] >> 4 != 6:
            return
        protocol, transport = frame[offset + 6], offset + IPV6_HEADER_LEN
        rec["icmp_quote_dst"] = _be(frame, offset + 36, 4)
    else:
        if offset + IPV4_MIN_HEADER_LEN > end or frame[offset] >> 4 != 4:
            return
        header_len = (frame[offset] & 0xF) * 4
        if header_len < IPV4_MIN_HEADER_LEN or offset + header_len > end:
            return
        protocol, transport = frame[offset + 9], offset + header_len
        rec["icmp_quote_dst"] = _be(frame, offset + 16, 4)
        if _be(frame, offset + 6, 2) & IPV4_FRAGMENT_OFFSET_MASK:  # a later fragment: no ports in it
            transport = end
    rec["icmp_quote_proto"] = protocol
    if protocol in QUOTED_PORT_PROTOCOLS and transport + 4 <= end:
        rec["icmp_quote_sport"] = _be(frame, transport, 2)
        rec["icmp_quote_dport"] = _be(frame, transport + 2, 2)


def _parse_tcp(frame, offset, packet_end, rec):
    """TCP header: ports, flags, sequence number; tcp_len is the payload length the IP lengths give (what
    was sent), not what was captured."""
    if offset + TCP_MIN_HEADER_LEN > packet_end or offset + TCP_MIN_HEADER_LEN > len(frame):
        _fault(rec, offset + TCP_MIN_HEADER_LEN, packet_end)
        return
    header_len = (frame[offset + 12] >> 4) * 4
    if header_len < TCP_MIN_HEADER_LEN or offset + header_len > packet_end:
        rec["flags"] |= F_MALFORMED
        return
    rec["flags"] |= F_TCP
    rec["sport"] = _be(frame, offset, 2)
    rec["dport"] = _be(frame, offset + 2, 2)
    rec["tcp_flags"] = frame[offset + 13]
    rec["tcp_seq"] = _be(frame, offset + 4, 4)
    rec["tcp_len"] = min(packet_end - offset - header_len, 65535)
    rec["payload_off"] = offset + header_len


def _parse_udp(frame, offset, packet_end, rec, first_fragment=False):
    """UDP header, then the application its ports name (first match: DNS, mDNS, LLMNR, DHCP, NetBIOS name
    service, SSDP), read only as far as the UDP length, the IP packet and the capture all reach. The UDP
    length of a first fragment covers the whole datagram, so it may reach past the packet."""
    if offset + UDP_HEADER_LEN > packet_end or offset + UDP_HEADER_LEN > len(frame):
        _fault(rec, offset + UDP_HEADER_LEN, packet_end)
        return
    udp_len = _be(frame, offset + 4, 2)
    if udp_len < UDP_HEADER_LEN or (offset + udp_len > packet_end and not first_fragment):
        rec["flags"] |= F_MALFORMED
        return
    rec["flags"] |= F_UDP
    rec["sport"] = sport = _be(frame, offset, 2)
    rec["dport"] = dport = _be(frame, offset + 2, 2)
    payload = offset + UDP_HEADER_LEN
    rec["payload_off"] = payload
    readable_end = min(offset + udp_len, packet_end, len(frame))
    if DNS_PORT in (sport, dport):
        _parse_dns(frame, payload, readable_end, rec, F_DNS)
    elif MDNS_PORT in (sport, dport):
        _parse_dns(frame, payload, readable_end, rec, F_MDNS)
    elif LLMNR_PORT in (sport, dport):
        _parse_dns(frame, payload, readable_end, rec, F_LLMNR)
    elif sport in DHCP_PORTS or dport in DHCP_PORTS:
        _parse_dhcp(frame, payload, readable_end, rec)
    elif NBNS_PORT in (sport, dport):
        rec["flags"] |= F_NBNS
    elif SSDP_PORT in (sport, dport):
        rec["flags"] |= F_SSDP


# -- applications ------------------------------------------------------------------------------------------

def _parse_dns(frame, offset, end, rec, protocol_flag):
    """DNS header (DNS, mDNS and LLMNR share it) and the first question's type. `end`: the last byte we
    may read. The question name is walked label by label; a compression pointer ends it; a reserved label
    type or a name past `end` leaves qtype 0."""
    if end - offset < DNS_HEADER_LEN:
        return
    rec["flags"] |= protocol_flag
    rec["dns_id"] = _be(frame, offset, 2)
    header_flags = _be(frame, offset + 2, 2)
    if header_flags & 0x8000:  # QR: a response
        rec["flags"] |= F_DNS_RESPONSE
    rec["dns_opcode"] = (header_flags >> 11) & 0xF
    rec["dns_rcode"] = header_flags & 0xF
    questions = _be(frame, offset + 4, 2)
    rec["dns_ancount"] = _be(frame, offset + 6, 2)
    if questions == 0:
        return
    position = offset + DNS_HEADER_LEN
    for _ in range(DNS_MAX_LABELS):
        if position >= end:
            return
        label = frame[position]
        if label == 0:  # the root: the name ends
            position += 1
            break
        if label & 0xC0 == 0xC0:  # a compression pointer: two bytes, and the name ends
            position += 2
            break
        if label & 0xC0:  # reserved label types
            return
        position += 1 + label
    else:
        return
    if position + 2 <= end:
        rec["dns_qtype"] = _be(frame, position, 2)


def _parse_dhcp(frame, offset, end, rec):
    """BOOTP header with the DHCP magic cookie, then the options up to END: message type, server
    identifier, requested address, and a fingerprint of the client (FNV-1a 64 of the parameter request
    list, a 0xFF separator, the vendor class), which tells one operating system from another."""
    if end - offset < DHCP_FIXED_LEN or _be(frame, offset + 236, 4) != DHCP_MAGIC_COOKIE:
        # the snap length (`end` is then the capture's end) cut the BOOTP header before the cookie: judge
        # what it holds, a request to the server port or a reply from it with op, xid, yiaddr and chaddr
        held, claimed = end - offset, _be(frame, offset - 4, 2) - UDP_HEADER_LEN
        sport, dport = _be(frame, offset - 8, 2), _be(frame, offset - 6, 2)
        if (BOOTP_CHADDR_END <= held < DHCP_FIXED_LEN and held < claimed
                and ((frame[offset] == BOOTREPLY and sport == 67) or (frame[offset] == BOOTREQUEST and dport == 67))):
            rec["flags"] |= F_DHCP
            rec["dhcp_xid"] = _be(frame, offset + 4, 4)
            rec["dhcp_yiaddr"] = _be(frame, offset + 16, 4)
            if frame[offset + 1] == 1 and frame[offset + 2] == 6:
                rec["dhcp_chaddr"] = _be(frame, offset + 28, 6)
        return
    rec["flags"] |= F_DHCP
    rec["dhcp_xid"] = _be(frame, offset + 4, 4)
    rec["dhcp_yiaddr"] = _be(frame, offset + 16, 4)
    if frame[offset + 1] == 1 and frame[offset + 2] == 6:  # an Ethernet client hardware address
        rec["dhcp_chaddr"] = _be(frame, offset + 28, 6)
    parameter_list = vendor_class = None
    position = offset + DHCP_FIXED_LEN
    while position < end:
        code = frame[position]
        if code == DHCP_OPT_PAD:
            position += 1
            continue
        if code == DHCP_OPT_END or position + 2 > end:
            break
        length = frame[position + 1]
        value = position + 2
        if value + length > end:
            break
        if code == DHCP_OPT_MESSAGE_TYPE and length >= 1:
            rec["dhcp_msg_type"] = frame[value]
        elif code == DHCP_OPT_SERVER_ID and length == 4:
            rec["dhcp_server_id"] = _be(frame, value, 4)
        elif code == DHCP_OPT_REQUESTED_IP and length == 4:
            rec["dhcp_requested_ip"] = _be(frame, value, 4)
        elif code == DHCP_OPT_PARAMETER_LIST:
            parameter_list = frame[value:value + length]
        elif code == DHCP_OPT_VENDOR_CLASS:
            vendor_class = frame[value:value + length]
        position = value + length
    if parameter_list is not None or vendor_class is not None:
        h = _fnv1a(FNV_OFFSET, parameter_list or b"")
        h = ((h ^ 0xFF) * FNV_PRIME) & _U64
        rec["dhcp_fingerprint"] = _fnv1a(h, vendor_class or b"")


def _fnv1a(h, data):
    for byte in data:
        h = ((h ^ byte) * FNV_PRIME) & _U64
    return h


# -- the kernel --------------------------------------------------------------------------------------------

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
    rows = []
    malformed = 0
    zero = dict.fromkeys(_FIELDS, 0)
    for i in range(n):
        start, captured, on_wire, meta_vlan = int(offset[i]), int(caplen[i]), int(wirelen[i]), int(vlan[i])
        rec = dict(zero)
        rec["ts_ns"] = int(ts_ns[i])
        rec["caplen"] = captured
        rec["wirelen"] = on_wire
        rec["vlan"] = meta_vlan if meta_vlan >= 0 else -1
        if start < 0 or start > len(raw) or captured > len(raw) - start:
            rec["flags"] = F_MALFORMED  # the bytes are not in the batch: only the metadata is kept
        else:
            # a capture never holds more than was on the wire: a smaller wirelen is the capture's error
            _parse_ethernet(raw[start:start + captured], max(on_wire, captured), rec)
            if captured < on_wire and not rec["flags"] & F_MALFORMED:
                rec["flags"] |= F_TRUNCATED  # its headers are whole, the snap length cut the rest: not malformed
        if rec["flags"] & F_MALFORMED:
            malformed += 1
        rows.append(tuple(rec[k] for k in _FIELDS))
    if n:
        out[:] = rows
    return out, malformed
