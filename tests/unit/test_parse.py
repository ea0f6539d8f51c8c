"""The frame parser: fields decoded from frames built with scapy, faults flagged, both implementations equal."""
from __future__ import annotations

import ipaddress

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, ICMPv6EchoRequest
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Dot3, Ether, LLC, SNAP
from scapy.packet import Raw

from probe.fastpath import layout as L
from probe.sources.frames import FrameBatch


def parse(impl, frames, **kw):
    b = FrameBatch.from_frames([bytes(f) for f in frames], **kw)
    return impl.parse_frames(b.data, b.offset, b.caplen, b.wirelen, b.ts_ns, b.vlan)


def mac(s):
    return int(s.replace(":", ""), 16)


def ip(s):
    return int(ipaddress.IPv4Address(s))


def has(rec, *names):
    return all(int(rec["flags"]) & getattr(L, f"F_{n}") for n in names)


A, B = "00:11:22:33:44:55", "66:77:88:99:aa:bb"


def test_tcp_syn_fields(impl):
    f = Ether(src=A, dst=B) / IP(src="10.0.0.1", dst="10.0.0.2", ttl=61) / TCP(sport=40000, dport=443, flags="S")
    recs, bad = parse(impl, [f], ts_ns=[123])
    r = recs[0]
    assert bad == 0
    assert r["src_mac"] == mac(A) and r["dst_mac"] == mac(B)
    assert r["ethertype"] == 0x0800 and r["src_ip"] == ip("10.0.0.1") and r["dst_ip"] == ip("10.0.0.2")
    assert r["ip_proto"] == 6 and r["ip_ttl"] == 61 and r["sport"] == 40000 and r["dport"] == 443
    assert r["tcp_flags"] == 0x02 and r["ts_ns"] == 123 and r["vlan"] == -1
    assert has(r, "IPV4", "TCP") and not has(r, "BROADCAST")
    assert r["payload_off"] == 14 + 20 + 20


def test_vlan_and_qinq(impl):
    inner = IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1234, dport=9999)
    single = Ether(src=A, dst=B) / Dot1Q(vlan=42) / inner
    qinq = Ether(src=A, dst=B) / Dot1AD(vlan=100) / Dot1Q(vlan=7) / inner
    recs, bad = parse(impl, [single, qinq, single], vlan=[-1, -1, 5])
    assert bad == 0
    assert recs["vlan"].tolist() == [42, 100, 5]  # batch metadata wins when set
    assert all(has(r, "VLAN_TAGGED", "IPV4", "UDP") for r in recs)
    assert recs["dport"].tolist() == [9999] * 3


def test_arp_and_gratuitous(impl):
    req = Ether(src=A, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=A, psrc="192.168.1.5", pdst="192.168.1.1")
    grat = Ether(src=A, dst="ff:ff:ff:ff:ff:ff") / ARP(op=2, hwsrc=A, psrc="192.168.1.5", pdst="192.168.1.5")
    probe = Ether(src=A, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=A, psrc="0.0.0.0", pdst="0.0.0.0")
    recs, bad = parse(impl, [req, grat, probe])
    assert bad == 0
    assert recs["arp_op"].tolist() == [1, 2, 1]
    assert recs[0]["arp_spa"] == ip("192.168.1.5") and recs[0]["arp_tpa"] == ip("192.168.1.1")
    assert recs[0]["arp_sha"] == mac(A)
    assert has(recs[0], "ARP", "BROADCAST") and not has(recs[0], "ARP_GRATUITOUS")
    assert has(recs[1], "ARP_GRATUITOUS") and not has(recs[2], "ARP_GRATUITOUS")


def test_arp_lying_lengths_are_malformed(impl):
    good = bytes(Ether(src=A, dst=B) / ARP(op=2, hwsrc=A, psrc="1.2.3.4", pdst="1.2.3.5"))
    plen255 = bytearray(good)
    plen255[14 + 5] = 255           # protocol length 255: claims 518 more bytes than present
    hlen8 = bytearray(good) + bytes(40)
    hlen8[14 + 4] = 8               # fits, but not Ethernet's 6
    recs, bad = parse(impl, [bytes(plen255), bytes(hlen8)])
    assert bad == 2 and all(has(r, "MALFORMED") for r in recs)
    assert recs["arp_spa"].tolist() == [0, 0]  # nothing decoded past the fault


def test_dns_fields(impl):
    q = Ether(src=A, dst=B) / IP(src="10.0.0.1", dst="10.0.0.53") / UDP(sport=5555, dport=53) / DNS(
        id=0x1234, rd=1, qd=DNSQR(qname="example.com", qtype="AAAA"))
    nx = Ether(src=B, dst=A) / IP(src="10.0.0.53", dst="10.0.0.1") / UDP(sport=53, dport=5555) / DNS(
        id=0x1234, qr=1, rcode=3, qd=DNSQR(qname="nope.example", qtype="A"))
    recs, _ = parse(impl, [q, nx])
    assert has(recs[0], "DNS") and not has(recs[0], "DNS_RESPONSE")
    assert recs[0]["dns_id"] == 0x1234 and recs[0]["dns_qtype"] == 28
    assert has(recs[1], "DNS", "DNS_RESPONSE") and recs[1]["dns_rcode"] == 3 and recs[1]["dns_qtype"] == 1


def test_dhcp_fields_and_fingerprint(impl):
    def disc(params, vendor=b"MSFT 5.0"):
        return Ether(src=A, dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255") / UDP(
            sport=68, dport=67) / BOOTP(chaddr=bytes.fromhex("001122334455"), xid=0xabcdef) / DHCP(options=[
                ("message-type", "discover"), ("requested_addr", "192.168.1.77"),
                ("param_req_list", params), ("vendor_class_id", vendor), "end"])
    offer = Ether(src=B, dst=A) / IP(src="192.168.1.1", dst="192.168.1.77") / UDP(sport=67, dport=68) / BOOTP(
        op=2, yiaddr="192.168.1.77", chaddr=bytes.fromhex("001122334455"), xid=0xabcdef) / DHCP(options=[
            ("message-type", "offer"), ("server_id", "192.168.1.1"), "end"])
    recs, bad = parse(impl, [disc([1, 3, 6, 15]), disc([1, 3, 6, 15]), disc([1, 3, 15, 6]), offer])
    assert bad == 0
    d = recs[0]
    assert has(d, "DHCP") and d["dhcp_msg_type"] == 1 and d["dhcp_chaddr"] == mac(A)
    assert d["dhcp_requested_ip"] == ip("192.168.1.77") and d["dhcp_xid"] == 0xabcdef
    assert d["dhcp_fingerprint"] != 0 and d["dhcp_fingerprint"] == recs[1]["dhcp_fingerprint"]
    assert recs[2]["dhcp_fingerprint"] != d["dhcp_fingerprint"]  # option order is part of a fingerprint
    o = recs[3]
    assert o["dhcp_msg_type"] == 2 and o["dhcp_server_id"] == ip("192.168.1.1")
    assert o["dhcp_yiaddr"] == ip("192.168.1.77") and o["dhcp_fingerprint"] == 0


def test_ipv6_icmpv6_and_extension_headers(impl):
    echo = Ether(src=A, dst=B) / IPv6(src="fe80::1", dst="2001:db8::2") / IPv6ExtHdrHopByHop() / ICMPv6EchoRequest()
    frag = Ether(src=A, dst=B) / IPv6(src="fe80::1", dst="2001:db8::2") / IPv6ExtHdrFragment(offset=100, nh=17) / Raw(b"x" * 16)
    recs, bad = parse(impl, [echo, frag])
    assert bad == 0
    e = recs[0]
    assert has(e, "IPV6", "ICMP") and e["ip_proto"] == 58 and e["icmp_type"] == 128
    addr = int(ipaddress.IPv6Address("2001:db8::2"))
    assert (int(e["dst_ip6_hi"]) << 64 | int(e["dst_ip6_lo"])) == addr
    assert has(recs[1], "FRAGMENT") and not has(recs[1], "UDP") and recs[1]["ip_proto"] == 17


def test_l2_discovery_frames(impl):
    cdp = Dot3(src=A, dst="01:00:0c:cc:cc:cc") / LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(OUI=0x0C, code=0x2000) / Raw(b"\x02\xb4\x00\x00")
    stp = Dot3(src=A, dst="01:80:c2:00:00:00") / LLC(dsap=0x42, ssap=0x42, ctrl=3) / Raw(bytes(35))
    lldp = Ether(src=A, dst="01:80:c2:00:00:0e", type=0x88CC) / Raw(bytes(20))
    recs, bad = parse(impl, [cdp, stp, lldp])
    assert bad == 0
    assert has(recs[0], "LLC", "CDP", "MULTICAST") and recs[0]["ethertype"] == 0
    assert has(recs[1], "LLC", "STP") and has(recs[2], "LLDP") and recs[2]["ethertype"] == 0x88CC


def test_ip_length_faults(impl):
    ok = bytes(Ether(src=A, dst=B) / IP(src="1.1.1.1", dst="2.2.2.2") / UDP(sport=1, dport=2) / Raw(b"abcd"))
    too_long = bytearray(ok)
    too_long[16:18] = (200).to_bytes(2, "big")      # IP total length past the frame's end
    bad_ihl = bytearray(ok)
    bad_ihl[14] = 0x43                               # IHL 3 words < 5
    udp_len = bytearray(ok)
    udp_len[14 + 24:14 + 26] = (4).to_bytes(2, "big")  # UDP length < 8
    runt = ok[:10]
    recs, bad = parse(impl, [ok, bytes(too_long), bytes(bad_ihl), bytes(udp_len), runt])
    assert recs["flags"][0] & L.F_MALFORMED == 0
    assert bad == 4 and all(has(r, "MALFORMED") for r in recs[1:])


def test_snaplen_cut_is_truncated_not_malformed(impl):
    full = bytes(Ether(src=A, dst=B) / IP(src="1.1.1.1", dst="2.2.2.2") / TCP(sport=1, dport=2, flags="S") / Raw(b"x" * 100))
    cut = full[:14 + 20 + 10]  # TCP header cut by a snap length
    recs, bad = parse(impl, [cut], wirelen=[len(full)])
    assert bad == 0 and has(recs[0], "TRUNCATED", "IPV4") and not has(recs[0], "TCP")
    assert recs[0]["wirelen"] == len(full) and recs[0]["caplen"] == len(cut)


def test_offsets_outside_data_are_malformed_not_read(impl):
    data = np.frombuffer(bytes(Ether(src=A, dst=B) / IP() / UDP()), np.uint8).copy()
    offset = np.array([0, 5, -1, 1 << 40], np.int64)
    caplen = np.array([len(data), len(data), 4, 1], np.uint32)
    recs, bad = impl.parse_frames(data, offset, caplen, caplen.copy(), np.zeros(4, np.int64), np.full(4, -1, np.int32))
    assert bad == 3 and recs["flags"][0] & L.F_MALFORMED == 0


def test_empty_batch_and_column_mismatch(impl):
    b = FrameBatch.empty()
    recs, bad = impl.parse_frames(b.data, b.offset, b.caplen, b.wirelen, b.ts_ns, b.vlan)
    assert len(recs) == 0 and bad == 0 and recs.dtype == L.FRAME_DTYPE
    with pytest.raises(ValueError, match="column lengths differ"):
        impl.parse_frames(b.data, np.zeros(1, np.int64), b.caplen, b.wirelen, b.ts_ns, b.vlan)


# --- both implementations give identical records --------------------------------------------------

def _templates():
    return [bytes(f) for f in [
        Ether(src=A, dst=B) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=80, flags="SA"),
        Ether(src=A, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="10.0.0.1", pdst="10.0.0.9"),
        Ether(src=A, dst=B) / Dot1Q(vlan=3) / IP() / UDP(sport=53, dport=999) / DNS(qr=1, rcode=2, qd=DNSQR(qname="a.b")),
        Ether(src=A, dst=B) / IP() / UDP(sport=68, dport=67) / BOOTP(chaddr=b"\x01" * 6) / DHCP(options=[("message-type", 3), ("param_req_list", [1, 2]), "end"]),
        Ether(src=A, dst=B) / IPv6() / IPv6ExtHdrHopByHop() / UDP(sport=5353, dport=5353) / DNS(qd=DNSQR(qname="x.local")),
        Ether(src=A, dst=B) / IP() / ICMP(type=3, code=1) / IP() / UDP(),
        Dot3(src=A, dst="01:00:0c:cc:cc:cc") / LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(OUI=0x0C, code=0x2000) / Raw(bytes(8)),
        # a first fragment (its UDP length is the datagram's), a TSO send (total length 0), AH and other
        # IPv6 extension headers, a first IPv6 fragment, ESP
        Ether(src=A, dst=B) / IP(flags="MF") / UDP(sport=53, dport=9, len=900) / DNS(qr=1, qd=DNSQR(qname="a")),
        Ether(src=A, dst=B) / IP(len=0) / TCP(sport=445, dport=5, flags="PA") / Raw(b"x" * 30),
        Ether(src=A, dst=B) / IPv6(nh=51) / Raw(bytes([60, 4, 0, 0]) + bytes(20) + bytes([58, 0, 1, 4]) + bytes(4)) / ICMPv6EchoRequest(),
        Ether(src=A, dst=B) / IPv6(nh=135) / Raw(bytes([140, 0, 1, 4]) + bytes(4) + bytes([6, 0, 1, 4]) + bytes(4)) / TCP(),
        Ether(src=A, dst=B) / IPv6() / IPv6ExtHdrFragment(m=1, nh=17) / UDP(sport=5353, dport=5353, len=2000) / Raw(bytes(12)),
        Ether(src=A, dst=B) / IP(proto=51) / Raw(bytes([17, 4, 0, 0]) + bytes(20)) / UDP(sport=1, dport=1900),
        Ether(src=A, dst=B) / IPv6(nh=0) / Raw(bytes([50, 0, 1, 4]) + bytes(4) + bytes(16)),
    ]]


TEMPLATES = _templates()


@st.composite
def frames(draw):
    kind = draw(st.integers(0, 2))
    if kind == 0:
        return draw(st.binary(min_size=0, max_size=120))
    f = bytearray(draw(st.sampled_from(TEMPLATES)))
    for _ in range(draw(st.integers(0, 6))):
        if f:
            f[draw(st.integers(0, len(f) - 1))] = draw(st.integers(0, 255))
    if kind == 2:
        f = f[:draw(st.integers(0, len(f)))]
    return bytes(f)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(frames(), max_size=12), st.data())
def test_twin_and_compiled_agree(batch_frames, data):
    import probe.fastpath.twin as py
    try:
        import probe._fastpath as c
    except ImportError:
        pytest.skip("compiled fast path not built")
    n = len(batch_frames)
    wirelen = [len(f) + data.draw(st.sampled_from([0, 0, 1, 300])) for f in batch_frames]
    vlan = [data.draw(st.sampled_from([-1, -1, 7, 4095])) for _ in batch_frames]
    b = FrameBatch.from_frames(batch_frames, ts_ns=list(range(n)), wirelen=wirelen, vlan=vlan)
    cols = (b.data, b.offset, b.caplen, b.wirelen, b.ts_ns, b.vlan)
    rc, mc = c.parse_frames(*cols)
    rp, mp = py.parse_frames(*cols)
    assert mc == mp
    assert rc.tobytes() == rp.tobytes()


def test_reused_buffer_gives_the_same_records(impl):
    """The live pipeline parses every batch into one buffer: what an earlier, longer batch left there
    must not leak into the next one's records."""
    frames = [bytes(Ether(src="02:00:00:00:00:01") / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(dport=p, flags="S"))
              for p in range(1, 6)] + [bytes(Ether() / ARP(psrc="10.0.0.9", pdst="10.0.0.9")), b"\x01" * 9]
    from probe.state.aggregates import batch_columns
    buf = np.zeros(16, dtype=L.FRAME_DTYPE)
    first, _ = impl.parse_frames(*batch_columns(FrameBatch.from_frames(frames, ts_ns=list(range(7)))), out=buf)
    assert first.base is buf or first.base is buf.base or np.shares_memory(first, buf)
    later = [bytes(Ether() / IPv6() / UDP(sport=5353, dport=5353)), b"\x02" * 20]
    fresh, bad = impl.parse_frames(*batch_columns(FrameBatch.from_frames(later, ts_ns=[5, 6])))
    reused, bad2 = impl.parse_frames(*batch_columns(FrameBatch.from_frames(later, ts_ns=[5, 6])), out=buf)
    assert len(reused) == 2 and reused.tobytes() == fresh.tobytes() and bad == bad2
    with pytest.raises(ValueError, match="at least 2 records"):
        impl.parse_frames(*batch_columns(FrameBatch.from_frames(later, ts_ns=[5, 6])), out=buf[:1])


def _dhcp_reply(op=2, sport=67, dport=68, yiaddr="10.66.66.100"):
    return bytes(Ether(src=A, dst=B) / IP(src="10.66.66.66", dst="255.255.255.255") / UDP(sport=sport, dport=dport)
                 / BOOTP(op=op, xid=0x1234, yiaddr=yiaddr, chaddr=bytes.fromhex("020000000001") + b"\0" * 10)
                 / DHCP(options=[("message-type", "offer"), ("server_id", "10.66.66.66"), "end"]))


def test_payload_cut_by_snaplen_is_truncated_with_headers_parsed(impl):
    full = bytes(Ether(src=A, dst=B) / IP(src="1.1.1.1", dst="2.2.2.2") / UDP(sport=5000, dport=6000) / Raw(b"x" * 400))
    recs, bad = parse(impl, [full[:256]], wirelen=[len(full)])
    assert bad == 0 and has(recs[0], "TRUNCATED", "IPV4", "UDP") and recs[0]["dport"] == 6000
    recs, _ = parse(impl, [full])  # whole: neither
    assert not has(recs[0], "TRUNCATED") and not has(recs[0], "MALFORMED")


def test_snaplen_cut_dhcp_reply_is_judged_on_its_bootp_header(impl):
    full = _dhcp_reply()
    recs, bad = parse(impl, [full[:256]], wirelen=[len(full)])  # the cookie and every option are cut
    r = recs[0]
    assert bad == 0 and has(r, "TRUNCATED", "DHCP", "UDP") and not has(r, "MALFORMED")
    assert r["dhcp_msg_type"] == 0 and r["dhcp_server_id"] == 0  # cut: unknown, not guessed
    assert r["dhcp_yiaddr"] == ip("10.66.66.100") and r["dhcp_xid"] == 0x1234 and r["dhcp_chaddr"] == mac("02:00:00:00:00:01")
    # not a BOOTREPLY from the server port, or cut before chaddr: not read as DHCP
    other = _dhcp_reply(op=1)
    short = full[:14 + 20 + 8 + 30]
    recs, _ = parse(impl, [other[:256], short], wirelen=[len(other), len(full)])
    assert not has(recs[0], "DHCP") and not has(recs[1], "DHCP") and has(recs[1], "TRUNCATED")


def test_udp_length_beyond_packet_stays_malformed_even_when_cut(impl):
    full = bytearray(_dhcp_reply())
    full[14 + 24:14 + 26] = (len(full) - 14 - 20 + 50).to_bytes(2, "big")  # UDP length past the IP packet: a lie
    recs, bad = parse(impl, [bytes(full[:256]), bytes(full)], wirelen=[len(full), len(full)])
    assert bad == 2 and all(has(r, "MALFORMED") and not has(r, "TRUNCATED") and not has(r, "DHCP") for r in recs)
