"""Scans that carry no SYN (FIN/NULL/Xmas, ACK/window/Maimon), MAC flooding and packet floods from one
source, each beside the benign traffic that looks most like it (servers reset by their clients, a busy LAN,
voice calls, video streams, monitoring pings)."""
from __future__ import annotations

import random

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import ARP, Dot1Q, Ether

from probe.config import DetectionConfig
from probe.findings.lan import ATTACK_KINDS
from tests.helpers import findings_of

S = 10**9
T0 = 1_700_000_000 * S
GW, VICTIM, ATTACKER = "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:66"
A_IP, V_IP = "10.0.0.66", "10.0.0.2"


def kinds(findings):
    return {f.kind for f in findings} & set(ATTACK_KINDS)


def one(findings, kind):
    got = [f for f in findings if f.kind == kind]
    assert len(got) == 1, findings
    return got[0]


def probe(flags, port, sport=41234):
    return Ether(src=ATTACKER, dst=VICTIM) / IP(src=A_IP, dst=V_IP) / TCP(sport=sport, dport=port, flags=flags)


def answer(flags, port, dport=41234):
    return Ether(src=VICTIM, dst=ATTACKER) / IP(src=V_IP, dst=A_IP) / TCP(sport=port, dport=dport, flags=flags)


@pytest.mark.parametrize("flags", ["F", "", "FPU", "FU"])
def test_stealth_scans_are_port_scans(flags):
    """nmap -sF/-sN/-sX: closed ports answer RST+ACK, open ones stay silent; counted like SYN probes."""
    frames = []
    for k, port in enumerate(range(1, 401)):
        frames.append((T0 + k * 2_000_000, probe(flags, port)))
        if port not in (22, 80, 443):
            frames.append((T0 + k * 2_000_000 + 50_000, answer("RA", port)))
    f = one(findings_of(frames), "port_scan")
    assert f.device == A_IP and f.evidence["scan_type"] == "stealth" and f.evidence["tcp_stealth"] == 400
    assert f.evidence["mac"] == ATTACKER and f.evidence["distinct_dst_ports"] >= 300


@pytest.mark.parametrize("flags", ["A", "FA"])  # nmap -sA / -sW, -sM (Maimon)
def test_probes_with_ack_are_seen_by_the_resets_they_draw(flags):
    frames = []
    for k, port in enumerate(range(1, 301)):
        frames.append((T0 + k * 3_000_000, probe(flags, port)))
        frames.append((T0 + k * 3_000_000 + 40_000, answer("R", port)))
    f = one(findings_of(frames), "port_scan")
    assert f.device == A_IP and f.evidence["scan_type"] == "ack"
    assert f.evidence["distinct_resetting_ports"] >= 200 and f.evidence["tcp_rst_received"] == 300


def test_syn_scan_keeps_its_type():
    frames = []
    for k, port in enumerate(range(1, 301)):
        frames.append((T0 + k * 3_000_000, probe("S", port)))
        frames.append((T0 + k * 3_000_000 + 40_000, answer("RA", port)))
    assert one(findings_of(frames), "port_scan").evidence["scan_type"] == "syn"


def test_a_server_reset_by_its_clients_and_a_client_reset_by_one_server_are_not_scans():
    frames = []
    for k in range(600):  # 600 clients abort their HTTPS connections to the server: RST from their ephemeral ports
        c_ip, c_mac = f"10.0.{1 + k // 250}.{1 + k % 250}", f"02:00:00:01:{k >> 8:02x}:{k & 255:02x}"
        sport = 32768 + random.Random(k).randrange(28000)
        t = T0 + k * 10_000_000
        frames += [(t, Ether(src=c_mac, dst=VICTIM) / IP(src=c_ip, dst=V_IP) / TCP(sport=sport, dport=443, flags="S")),
                   (t + 1000, Ether(src=VICTIM, dst=c_mac) / IP(src=V_IP, dst=c_ip) / TCP(sport=443, dport=sport, flags="SA")),
                   (t + 2000, Ether(src=c_mac, dst=VICTIM) / IP(src=c_ip, dst=V_IP) / TCP(sport=sport, dport=443, flags="A")),
                   (t + 5_000_000, Ether(src=c_mac, dst=VICTIM) / IP(src=c_ip, dst=V_IP) / TCP(sport=sport, dport=443, flags="RA"))]
    for k in range(300):  # one client whose connections to a dead service get reset
        t = T0 + k * 20_000_000
        frames += [(t, Ether(src=ATTACKER, dst=GW) / IP(src=A_IP, dst="10.0.0.1") / TCP(sport=50000 + k, dport=8080, flags="PA")),
                   (t + 1000, Ether(src=GW, dst=ATTACKER) / IP(src="10.0.0.1", dst=A_IP) / TCP(sport=8080, dport=50000 + k, flags="R"))]
    assert not kinds(findings_of(frames))


def _macof(n, t0, vlan=None, seed=1):
    """macof-style frames: a random source and destination MAC each, one small IPv4/TCP frame."""
    rnd = random.Random(seed)
    tmpl = bytearray(bytes(Ether(src=GW, dst=VICTIM) / (Dot1Q(vlan=vlan) if vlan is not None else b"")
                           / IP(src="1.2.3.4", dst="5.6.7.8") / TCP(sport=1, dport=2, flags="S")))
    out = []
    for k in range(n):
        f = bytearray(tmpl)
        f[0:12] = rnd.randbytes(12)
        out.append((t0 + k * 200_000, bytes(f)))
    return out


def _chatty_lan(n, t0, seconds, one_frame=False):
    """n devices that each talk to the gateway and hear back (or, one_frame, send one ARP each)."""
    out = []
    for k in range(n):
        mac, ip = f"02:00:00:02:{k >> 8:02x}:{k & 255:02x}", f"10.1.{k >> 8}.{k & 255}"
        if one_frame:
            out.append((t0 + k * 1_000_000, bytes(Ether(src=mac, dst="ff:ff:ff:ff:ff:ff")
                                                  / ARP(op=1, hwsrc=mac, psrc=ip, pdst="10.1.255.254"))))
            continue
        ask = bytes(Ether(src=mac, dst=GW) / IP(src=ip, dst="10.0.0.1") / UDP(sport=40000, dport=123))
        hear = bytes(Ether(src=GW, dst=mac) / IP(src="10.0.0.1", dst=ip) / UDP(sport=123, dport=40000))
        for s in range(0, seconds, 4):
            t = t0 + s * S + k * 1_000_000
            out += [(t, ask), (t + 500_000, hear)]
    return out


def test_macof_is_a_mac_flood_with_its_vlan():
    lan = _chatty_lan(20, T0, 20)
    f = one(findings_of(lan + _macof(3000, T0 + 12 * S, vlan=30)), "mac_flood")
    assert f.severity == "critical" and f.device == "vlan30" and f.evidence["vlan"] == 30
    assert f.evidence["new_one_shot_macs"] >= 2900
    assert 0.4 <= f.evidence["locally_administered_share"] <= 0.6 and 0.4 <= f.evidence["group_bit_share"] <= 0.6
    assert T0 + 12 * S <= f.first_seen * S < T0 + 13 * S


def test_mac_flood_past_the_table_counts_the_overflow():
    f = one(findings_of(_macof(3000, T0), max_devices=1024), "mac_flood")
    assert f.device == "lan" and f.evidence["table_overflow_frames"] >= 1900 and f.evidence["vlan"] is None


def test_busy_lan_is_not_a_mac_flood():
    """1500 devices that talked before go quiet and send one ARP each later; 600 new ones send one frame."""
    frames = _chatty_lan(1500, T0, 20) + _chatty_lan(1500, T0 + 40 * S, 1, one_frame=True)
    frames += [(t + 60 * S, f) for t, f in _chatty_lan(600, T0, 1, one_frame=True)]
    assert "mac_flood" not in kinds(findings_of(frames))
    assert "mac_flood" in kinds(findings_of(frames + _macof(1500, T0 + 70 * S)))  # the real thing on top is still seen


def test_syn_flood_at_an_open_port_is_a_syn_flood():
    """hping3 -S -p 80 at a listening port: every SYN answered by SYN-ACK, reset bare by the attacker's kernel."""
    frames = []
    for k in range(3000):
        t = T0 + k * 250_000
        frames += [(t, probe("S", 80, sport=1024 + k % 60000)), (t + 20_000, answer("SA", 80, dport=1024 + k % 60000)),
                   (t + 30_000, probe("R", 80, sport=1024 + k % 60000))]
    f = one(findings_of(frames), "syn_flood")
    assert f.device == A_IP and f.evidence["synack_reset_by_initiator"] == 3000


def test_busy_client_closing_by_reset_is_not_a_syn_flood():
    """200 connections per second that are used and then closed abortively (RST+ACK)."""
    frames = []
    for k in range(1200):
        t, sp = T0 + k * 5_000_000, 20000 + k
        frames += [(t, probe("S", 80, sport=sp)), (t + 20_000, answer("SA", 80, dport=sp)), (t + 30_000, probe("A", 80, sport=sp)),
                   (t + 40_000, probe("PA", 80, sport=sp) / (b"GET / HTTP/1.1\r\n\r\n")),
                   (t + 90_000, answer("PA", 80, dport=sp) / (b"x" * 300)), (t + 100_000, probe("RA", 80, sport=sp))]
    assert not kinds(findings_of(frames))


def _repeat(frame, n, pps, t0=T0):
    step, raw = S // pps, bytes(frame)
    return [(t0 + k * step, raw) for k in range(n)]


def test_icmp_echo_flood_and_ordinary_pings():
    req = Ether(src=ATTACKER, dst=VICTIM) / IP(src=A_IP, dst=V_IP) / ICMP(type=8)
    rep = Ether(src=VICTIM, dst=ATTACKER) / IP(src=V_IP, dst=A_IP) / ICMP(type=0)
    frames = _repeat(req, 8000, 4000) + [(t + 30_000, rep) for t, _ in _repeat(req, 8000, 4000)]
    f = one(findings_of(frames), "icmp_flood")
    assert f.device == A_IP and f.evidence["packets_per_second"] >= 3000 and f.evidence["protocol"] == "icmp"
    # ping at 1/s to one host; a monitor pinging 300 hosts at 100/s in all
    calm = _repeat(req, 20, 1)
    for k in range(2000):
        dst = f"10.0.1.{k % 250}" if k % 300 < 250 else f"10.0.2.{k % 300 - 250}"
        calm.append((T0 + k * 10_000_000, Ether(src=GW, dst=VICTIM) / IP(src="10.0.0.1", dst=dst) / ICMP(type=8)))
    assert "icmp_flood" not in kinds(findings_of(calm))  # (the monitor's unanswered pings are a host sweep)


def test_icmp_flood_with_spoofed_sources_is_blamed_on_the_mac():
    rnd = random.Random(3)
    tmpl = bytes(Ether(src=ATTACKER, dst=VICTIM) / IP(src="172.16.0.1", dst=V_IP, chksum=0) / ICMP(type=8))
    frames = [(T0 + k * 250_000, tmpl[:26] + rnd.randbytes(4) + tmpl[30:]) for k in range(6000)]  # random source IPs
    f = one(findings_of(frames), "icmp_flood")
    assert f.device == ATTACKER


def test_udp_flood_against_voice_and_video():
    flood = Ether(src=ATTACKER, dst=VICTIM) / IP(src=A_IP, dst=V_IP) / UDP(sport=2000, dport=5000)
    unreach = Ether(src=VICTIM, dst=ATTACKER) / IP(src=V_IP, dst=A_IP) / ICMP(type=3, code=3) / IP(src=A_IP, dst=V_IP) / UDP()
    frames = _repeat(flood, 10000, 4000) + _repeat(unreach, 3, 1)
    found = findings_of(frames)
    f = one(found, "udp_flood")
    assert f.device == A_IP and f.evidence["protocol"] == "udp" and "icmp_unreachable" not in {x.kind for x in found}
    # a SIP trunk: 50 calls of RTP each way (2500 small datagrams/s each way); a camera streaming 1400-byte frames
    rtp_out = Ether(src=GW, dst=VICTIM) / IP(src="10.0.0.1", dst=V_IP) / UDP(sport=10000, dport=20000) / (b"r" * 172)
    rtp_in = Ether(src=VICTIM, dst=GW) / IP(src=V_IP, dst="10.0.0.1") / UDP(sport=20000, dport=10000) / (b"r" * 172)
    video = Ether(src=ATTACKER, dst=VICTIM) / IP(src=A_IP, dst=V_IP) / UDP(sport=6000, dport=7000) / (b"v" * 1372)
    calm = _repeat(rtp_out, 12500, 2500) + _repeat(rtp_in, 12500, 2500, T0 + 100_000) + _repeat(video, 15000, 3000)
    assert not kinds(findings_of(calm))


def test_flood_thresholds_come_from_config():
    req = Ether(src=ATTACKER, dst=VICTIM) / IP(src=A_IP, dst=V_IP) / ICMP(type=8)
    frames = _repeat(req, 1500, 150)
    assert not kinds(findings_of(frames))
    assert "icmp_flood" in kinds(findings_of(frames, DetectionConfig(icmp_flood_pps=100.0)))
    assert not kinds(findings_of(frames, DetectionConfig(icmp_flood_pps=100.0, flood_min_packets=2000)))


def test_quiet_devices_seen_once_are_known_afterwards():
    """800 servers that only answer a poll now and then look one-shot in every window; remembered from the
    first, they do not add up to a flood with 700 new MACs later (1500 would without the memory)."""
    frames = []
    for k in range(800):
        mac, ip = f"02:00:00:03:{k >> 8:02x}:{k & 255:02x}", f"10.3.{k >> 8}.{k & 255}"
        raw = bytes(Ether(src=mac, dst=GW) / IP(src=ip, dst="10.0.0.1") / UDP(sport=161, dport=40000))
        frames += [(T0 + w * 30 * S + k * 1_000_000, raw) for w in range(5)]
    assert "mac_flood" not in kinds(findings_of(frames + _macof(700, T0 + 120 * S + 500_000_000)))
    f = one(findings_of(frames + _macof(1500, T0 + 120 * S + 500_000_000)), "mac_flood")
    assert 1400 <= f.evidence["new_one_shot_macs"] <= 1500
