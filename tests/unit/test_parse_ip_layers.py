"""IP layers the parser once stopped at (issue 12): fragments, frames captured before segmentation offload
(IPv4 total length 0), IPv6 extension headers beyond hop-by-hop/routing/destination options, AH and ESP.
Each on frames built with scapy, in both implementations, and through a replay of a written capture."""
from __future__ import annotations

import json
import subprocess

import pytest
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import ICMP, IP, TCP, UDP, fragment
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6, IPv6ExtHdrFragment, fragment6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from probe.fastpath import layout as L
from probe.sources.capfile import write_pcap
from probe.sources.frames import FrameBatch

A, B = "00:11:22:33:44:55", "66:77:88:99:aa:bb"


def parse(impl, frames, **kw):
    b = FrameBatch.from_frames([bytes(f) for f in frames], **kw)
    return impl.parse_frames(b.data, b.offset, b.caplen, b.wirelen, b.ts_ns, b.vlan)


def has(rec, *names):
    return all(int(rec["flags"]) & getattr(L, f"F_{n}") for n in names)


def big_dns_answer(l3):
    """An EDNS answer of ~3 kB: more than one Ethernet frame holds, so IP fragments it."""
    answers = [DNSRR(rrname="big.example", type="TXT", rdata=[b"t" * 250]) for _ in range(12)]
    return (Ether(src=A, dst=B) / l3 / UDP(sport=53, dport=40000)
            / DNS(id=0x4242, qr=1, qd=DNSQR(qname="big.example", qtype="TXT"), an=answers))


# -- 1. fragments -------------------------------------------------------------------------------------------

def test_ipv4_fragments_are_fragments_not_malformed(impl):
    packet = big_dns_answer(IP(src="192.0.2.53", dst="10.0.0.2", id=77))
    parts = [Ether(src=A, dst=B) / p for p in fragment(packet[IP], fragsize=1400)]
    assert len(parts) == 3 and parts[0][IP].flags.MF and parts[0][IP].frag == 0
    recs, bad = parse(impl, parts)
    assert bad == 0
    assert all(has(r, "IPV4", "FRAGMENT") and not has(r, "MALFORMED") for r in recs)
    first = recs[0]
    # the first fragment holds the UDP header and the start of the DNS answer: what it holds is read
    assert has(first, "UDP", "DNS", "DNS_RESPONSE")
    assert first["sport"] == 53 and first["dport"] == 40000 and first["dns_id"] == 0x4242
    assert first["dns_ancount"] == 12 and first["dns_qtype"] == 16
    assert first["payload_off"] == 14 + 20 + 8
    # later fragments carry no transport header
    assert not any(has(r, "UDP") for r in recs[1:]) and all(r["sport"] == 0 for r in recs[1:])
    # the whole datagram, unfragmented, still must keep its UDP length inside the IP packet
    whole, bad = parse(impl, [packet])
    assert bad == 0 and has(whole[0], "UDP", "DNS") and not has(whole[0], "FRAGMENT")


def test_a_udp_length_past_an_unfragmented_packet_is_still_malformed(impl):
    ok = bytearray(bytes(Ether(src=A, dst=B) / IP(src="1.1.1.1", dst="2.2.2.2") / UDP(sport=53, dport=9) / Raw(b"x" * 20)))
    ok[14 + 24:14 + 26] = (500).to_bytes(2, "big")  # UDP length past the packet, no MF: a lie
    first = bytearray(ok)
    first[14 + 6] = 0x20  # MF, offset 0: the same length is the whole datagram's
    recs, bad = parse(impl, [bytes(ok), bytes(first)])
    assert bad == 1 and has(recs[0], "MALFORMED")
    assert has(recs[1], "FRAGMENT", "UDP") and not has(recs[1], "MALFORMED") and recs[1]["sport"] == 53


def test_ipv6_fragments_are_fragments_not_malformed(impl):
    packet = big_dns_answer(IPv6(src="2001:db8::53", dst="2001:db8::2") / IPv6ExtHdrFragment(id=9))
    parts = [Ether(src=A, dst=B) / p for p in fragment6(packet[IPv6], 1400)]
    assert len(parts) >= 3
    recs, bad = parse(impl, parts)
    assert bad == 0 and all(has(r, "IPV6", "FRAGMENT") for r in recs)
    assert has(recs[0], "UDP", "DNS") and recs[0]["sport"] == 53 and recs[0]["dns_ancount"] == 12
    assert not any(has(r, "UDP") for r in recs[1:]) and all(r["ip_proto"] == 17 for r in recs)
    # an atomic fragment (offset 0, no M) is a whole datagram, not a fragment
    atomic = (Ether(src=A, dst=B) / IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrFragment(m=0, offset=0)
              / UDP(sport=1000, dport=53) / DNS(qd=DNSQR(qname="a.example")))
    recs, bad = parse(impl, [atomic])
    assert bad == 0 and has(recs[0], "UDP", "DNS") and not has(recs[0], "FRAGMENT")


def test_a_tiny_first_fragment_without_its_header_is_malformed(impl):
    frag = Ether(src=A, dst=B) / IP(src="1.1.1.1", dst="2.2.2.2", flags="MF", proto=6) / Raw(b"\x00\x50\x01\xbb")
    recs, bad = parse(impl, [frag])
    assert bad == 1 and has(recs[0], "FRAGMENT", "MALFORMED") and not has(recs[0], "TCP")


# -- 2. captured before segmentation offload -----------------------------------------------------------------

def tso_frame(payload=9000, **ip):
    # total length 0: what the stack hands the NIC, whose job it is to fill it in per segment
    return bytes(Ether(src=A, dst=B) / IP(src="10.0.0.1", dst="10.0.0.2", id=5, len=0, **ip)
                 / TCP(sport=445, dport=50000, flags="PA", seq=1000) / Raw(b"d" * payload))


def test_ipv4_total_length_zero_takes_the_frame_length(impl):
    f = tso_frame()
    recs, bad = parse(impl, [f])
    r = recs[0]
    assert bad == 0 and has(r, "IPV4", "TCP") and not has(r, "MALFORMED")
    assert r["sport"] == 445 and r["tcp_seq"] == 1000 and r["tcp_len"] == 9000 and r["ip_id"] == 5
    assert r["ip_len"] == len(f) - 14
    # the snap length cut it: the length on the wire is the packet's
    recs, bad = parse(impl, [f[:200]], wirelen=[len(f)])
    assert bad == 0 and has(recs[0], "TCP") and recs[0]["tcp_len"] == 9000
    # larger than an IPv4 length field holds (a 64 kB send): ip_len saturates, tcp_len too, nothing wraps
    recs, bad = parse(impl, [tso_frame(70000)])
    assert bad == 0 and recs[0]["ip_len"] == 65535 and recs[0]["tcp_len"] == 65535


def test_ipv6_payload_length_zero_takes_the_frame_length(impl):
    from scapy.layers.inet6 import IPv6ExtHdrHopByHop, Jumbo
    # a jumbogram (RFC 2675): payload length 0, the real length in a hop-by-hop Jumbo Payload option
    jumbo = bytes(Ether(src=A, dst=B) / IPv6(src="2001:db8::1", dst="2001:db8::2", plen=0)
                  / IPv6ExtHdrHopByHop(options=[Jumbo(jumboplen=8 + 20 + 9000 + 8)])
                  / TCP(sport=445, dport=50000, flags="PA", seq=7) / Raw(b"j" * 9000))
    # a TCP send captured before segmentation offload: payload length 0, no option
    tso = bytes(Ether(src=A, dst=B) / IPv6(src="2001:db8::1", dst="2001:db8::2", plen=0)
                / TCP(sport=445, dport=50000, flags="PA", seq=9) / Raw(b"d" * 5000))
    # payload length 0 and no next header (59): exactly a bare header, padded to Ethernet's minimum
    bare = bytes(Ether(src=A, dst=B) / IPv6(src="2001:db8::1", dst="2001:db8::2", plen=0, nh=59)) + bytes(6)
    recs, bad = parse(impl, [jumbo, tso, bare])
    assert bad == 0 and not any(has(r, "MALFORMED") for r in recs)
    assert has(recs[0], "IPV6", "TCP") and recs[0]["tcp_seq"] == 7 and recs[0]["tcp_len"] == 9000
    assert recs[0]["ip_len"] == len(jumbo) - 14
    assert has(recs[1], "IPV6", "TCP") and recs[1]["tcp_seq"] == 9 and recs[1]["tcp_len"] == 5000
    assert has(recs[2], "IPV6") and recs[2]["ip_len"] == 40 and recs[2]["ip_proto"] == 59
    # the snap length cut the send: judged on the wire length
    recs, bad = parse(impl, [tso[:128]], wirelen=[len(tso)])
    assert bad == 0 and has(recs[0], "TCP") and recs[0]["tcp_len"] == 5000


# -- 4. IPv6 extension headers, AH, ESP ------------------------------------------------------------------------

def ah(nh, payload_words=4):
    """An authentication header: next header, length in 4-octet units minus 2, reserved, SPI, sequence, ICV."""
    body = bytes([nh, payload_words, 0, 0]) + (0x1000).to_bytes(4, "big") + (7).to_bytes(4, "big")
    return body + b"\xaa" * ((payload_words + 2) * 4 - len(body))


def ext8(nh, units=0):
    """An extension header of the (next header, length in 8-octet units minus 1) form, padded with PadN."""
    size = (units + 1) * 8
    return bytes([nh, units, 1, size - 4]) + bytes(size - 4)


def v6(nh, chain, upper):
    return bytes(Ether(src=A, dst=B) / IPv6(src="fe80::1", dst="fe80::2", nh=nh) / Raw(chain + bytes(upper)))


def test_icmpv6_behind_ah_and_other_extension_headers(impl):
    echo = ICMPv6EchoRequest(id=1, seq=1)
    frames = [
        v6(51, ah(58), echo),                                    # AH: 4-octet units
        v6(51, ah(58, payload_words=7), echo),                   # a longer ICV
        v6(60, ext8(51) + ah(58), echo),                         # destination options, then AH
        v6(0, ext8(43) + ext8(60, 1) + ext8(51) + ah(58), echo),  # hop-by-hop, routing, dest. options, AH
        v6(135, ext8(58), echo),                                 # mobility
        v6(139, ext8(58, 2), echo),                              # HIP
        v6(140, ext8(58), echo),                                 # shim6
        v6(51, ah(6), TCP(sport=1, dport=22, flags="S")),         # AH before TCP
    ]
    recs, bad = parse(impl, frames)
    assert bad == 0
    for r in recs[:7]:
        assert has(r, "IPV6", "ICMP") and r["ip_proto"] == 58 and r["icmp_type"] == 128
    assert has(recs[7], "TCP") and recs[7]["dport"] == 22 and recs[7]["tcp_flags"] == 2


def test_esp_ends_the_walk_and_is_counted(impl):
    esp = (0x1234).to_bytes(4, "big") + (1).to_bytes(4, "big") + b"\x17" * 40
    frames = [v6(50, esp, b""), v6(0, ext8(50), Raw(esp)),
              bytes(Ether(src=A, dst=B) / IP(src="10.0.0.1", dst="10.0.0.2", proto=50) / Raw(esp))]
    recs, bad = parse(impl, frames)
    assert bad == 0
    for r in recs:
        assert has(r, "ESP") and r["ip_proto"] == 50 and not (has(r, "TCP") or has(r, "UDP") or has(r, "ICMP"))


def test_extension_header_walk_is_bounded_and_checked(impl):
    echo = ICMPv6EchoRequest()
    endless = v6(60, ext8(60) * 12 + ext8(58), echo)      # more headers than are walked: the transport is not read
    past_end = v6(51, bytes([58, 200, 0, 0]) + bytes(8), b"")  # AH claims 808 bytes in a 12-byte packet
    recs, bad = parse(impl, [endless, past_end])
    assert not has(recs[0], "ICMP") and not has(recs[0], "MALFORMED") and recs[0]["ip_proto"] == 60
    assert bad == 1 and has(recs[1], "MALFORMED")


def test_ipv4_with_ah(impl):
    f = bytes(Ether(src=A, dst=B) / IP(src="10.0.0.1", dst="10.0.0.2", proto=51, id=99) / Raw(ah(6))
              / TCP(sport=4000, dport=443, flags="PA", seq=5) / Raw(b"z" * 30))
    icmp = bytes(Ether(src=A, dst=B) / IP(src="10.0.0.1", dst="10.0.0.2", proto=51) / Raw(ah(1)) / ICMP(type=8))
    recs, bad = parse(impl, [f, icmp])
    assert bad == 0
    assert has(recs[0], "TCP") and recs[0]["ip_proto"] == 6 and recs[0]["dport"] == 443 and recs[0]["tcp_len"] == 30
    assert recs[0]["ip_id"] == 99
    assert has(recs[1], "ICMP") and recs[1]["icmp_type"] == 8


# -- through a replay: the counters reach the output --------------------------------------------------------

def test_replay_counts_fragments_and_flood_behind_ah(tmp_path, sitevigil_cmd, sitevigil_env):
    packet = big_dns_answer(IP(src="192.0.2.53", dst="10.0.0.2", id=77))
    frames = [bytes(Ether(src=A, dst=B) / p) for p in fragment(packet[IP], fragsize=1400)]
    frames += [tso_frame()]
    frames += [v6(51, ah(58), ICMPv6EchoRequest(id=1, seq=i)) for i in range(5)]
    path = tmp_path / "issue12.pcap"
    write_pcap(path, [FrameBatch.from_frames(frames, ts_ns=[1_700_000_000 * 10**9 + i * 10**6 for i in range(len(frames))])])
    out = subprocess.run([*sitevigil_cmd, "replay", str(path)], capture_output=True, text=True, env=sitevigil_env,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["malformed"] == 0 and report["fragments"] == 3
    assert report["protocols"]["tcp"] == 1 and report["protocols"]["icmp"] == 5 and report["protocols"]["dns"] == 1


# --- the packet an ICMP error quotes (tells a late DNS answer from a closed service, one flow from many) ---

def quote(rec):
    return (int(rec["icmp_quote_proto"]), int(rec["icmp_quote_dst"]), int(rec["icmp_quote_sport"]),
            int(rec["icmp_quote_dport"]))


def test_icmp_errors_record_the_packet_they_quote(impl):
    from scapy.layers.inet6 import ICMPv6DestUnreach, ICMPv6TimeExceeded
    late_dns = Ether(src=A, dst=B) / IP(src="10.0.0.9", dst="10.0.0.53") / ICMP(type=3, code=3) \
        / IP(src="10.0.0.53", dst="10.0.0.9") / UDP(sport=53, dport=51000) / DNS(qr=1, qd=DNSQR(qname="a.example"))
    host_down = Ether(src=A, dst=B) / IP(src="10.0.0.1", dst="10.0.0.9") / ICMP(type=3, code=1) \
        / IP(src="10.0.0.9", dst="10.4.88.88", options=b"\x01\x01\x01\x00") / TCP(sport=40000, dport=443)
    ttl = Ether(src=A, dst=B) / IP(src="10.0.0.1", dst="10.0.0.9") / ICMP(type=11) / IP(dst="4.2.2.1") / ICMP(type=8)
    v6 = Ether(src=A, dst=B) / IPv6(src="fe80::1", dst="fe80::9") / ICMPv6DestUnreach(code=4) \
        / IPv6(src="fe80::9", dst="2001:db8::1:2") / UDP(sport=53, dport=4000)
    v6ttl = Ether(src=A, dst=B) / IPv6(src="fe80::1", dst="fe80::9") / ICMPv6TimeExceeded() \
        / IPv6(src="fe80::9", dst="2001:db8::7") / TCP(sport=1, dport=2)
    later_fragment = Ether(src=A, dst=B) / IP(src="10.0.0.1", dst="10.0.0.9") / ICMP(type=3, code=4) \
        / IP(dst="10.0.0.7", frag=10, proto=17) / Raw(b"\x00\x35\x00\x35xxxx")
    echo = Ether(src=A, dst=B) / IP(src="10.0.0.1", dst="10.0.0.9") / ICMP(type=0) / IP(dst="10.0.0.7") / UDP()
    recs, bad = parse(impl, [late_dns, host_down, ttl, v6, v6ttl, later_fragment, echo])
    assert bad == 0
    assert quote(recs[0]) == (17, 0x0A000009, 53, 51000)
    assert quote(recs[1]) == (6, 0x0A045858, 40000, 443)        # past the quoted header's options
    assert quote(recs[2]) == (1, 0x04020201, 0, 0)              # ICMP has no ports
    assert quote(recs[3]) == (17, 0x00010002, 53, 4000)         # IPv6: the last 32 bits of the destination
    assert quote(recs[4]) == (6, 0x00000007, 1, 2)
    assert quote(recs[5]) == (17, 0x0A000007, 0, 0)             # a later fragment holds no ports
    assert quote(recs[6]) == (0, 0, 0, 0)                       # an echo reply quotes nothing
    assert all(has(r, "ICMP") for r in recs)


def test_a_cut_or_lying_quote_is_no_fault_and_gives_only_what_it_holds(impl):
    f = bytes(Ether(src=A, dst=B) / IP(src="10.0.0.9", dst="10.0.0.53") / ICMP(type=3, code=3)
              / IP(src="10.0.0.53", dst="10.0.0.9") / UDP(sport=53, dport=51000))
    icmp = 14 + 20
    # cut by the snap length inside the quoted ports, inside its IP header, right after the ICMP header
    recs, bad = parse(impl, [f[:icmp + 8 + 20 + 3], f[:icmp + 8 + 19], f[:icmp + 8]], wirelen=[len(f)] * 3)
    # cut by the snap length: truncated (counted apart), not malformed
    assert bad == 0 and not any(has(r, "MALFORMED") for r in recs) and all(has(r, "TRUNCATED") for r in recs)
    assert quote(recs[0]) == (17, 0x0A000009, 0, 0) and quote(recs[1]) == quote(recs[2]) == (0, 0, 0, 0)
    # a quote that is no IPv4 header (version 6, header length 4 words too short)
    wrong = bytearray(f)
    wrong[icmp + 8] = 0x65
    short = bytearray(f)
    short[icmp + 8] = 0x44
    recs, bad = parse(impl, [bytes(wrong), bytes(short)])
    assert bad == 0 and quote(recs[0]) == quote(recs[1]) == (0, 0, 0, 0)


def test_icmp_quotes_agree_with_the_twin_at_every_cut():
    import probe.fastpath.twin as py
    try:
        import probe._fastpath as c
    except ImportError:
        pytest.skip("compiled fast path not built")
    from scapy.layers.inet6 import ICMPv6DestUnreach
    frames = [bytes(Ether(src=A, dst=B) / IP(src="10.0.0.1", dst="10.0.0.9") / ICMP(type=3, code=1)
                    / IP(dst="10.4.88.88", options=b"\x01\x01\x01\x00") / TCP(sport=40000, dport=443)),
              bytes(Ether(src=A, dst=B) / IPv6(src="fe80::1", dst="fe80::9") / ICMPv6DestUnreach(code=4)
                    / IPv6(dst="2001:db8::1:2") / UDP(sport=53, dport=4000))]
    cuts = [(f[:n], len(f)) for f in frames for n in range(len(f) + 1)]
    # and the IP/ICMP lengths lying about the quote: every byte of the quoted header's first word
    for f in frames:
        for v in range(256):
            g = bytearray(f)
            g[14 + (20 if f[12:14] == b"\x08\x00" else 40) + 8] = v
            cuts.append((bytes(g), len(g)))
    b = FrameBatch.from_frames([x for x, _ in cuts], wirelen=[w for _, w in cuts])
    cols = (b.data, b.offset, b.caplen, b.wirelen, b.ts_ns, b.vlan)
    r1, m1 = c.parse_frames(*cols)
    r2, m2 = py.parse_frames(*cols)
    assert m1 == m2 and r1.tobytes() == r2.tobytes()
    assert (r1["icmp_quote_proto"] != 0).sum() >= 40  # the whole quoted header is there in that many
