"""LAN detectors on traffic shaped like the real tools (arpspoof, dhcpstarv, loops, nmap) and on busy benign LANs."""
from __future__ import annotations

import dataclasses
import random

import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether

from probe.config import CaptureConfig, DetectionConfig
from probe.findings.lan import ATTACK_KINDS
from probe.findings.model import Finding
from probe.findings.pipeline import CapturePipeline
from probe.sources.frames import FrameBatch
from tests.helpers import findings_of

S = 10**9
GW, VICTIM, ATTACKER = "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:66"
BCAST = "ff:ff:ff:ff:ff:ff"


def by_kind(findings: list[Finding], kind: str) -> list[Finding]:
    return [f for f in findings if f.kind == kind]


def attacks(findings):
    return {f.kind for f in findings} & set(ATTACK_KINDS)


def arp(src, op, psrc, pdst, dst=BCAST, hwdst="00:00:00:00:00:00"):
    return Ether(src=src, dst=dst) / ARP(op=op, hwsrc=src, psrc=psrc, pdst=pdst, hwdst=hwdst)


def test_arpspoof_is_arp_spoofing_of_the_attacker():
    t0 = 1_700_000_000 * S
    frames = [
        (t0, arp(GW, 1, "10.0.0.1", "10.0.0.2")),                                   # gateway resolves the victim
        (t0 + 1000, arp(VICTIM, 2, "10.0.0.2", "10.0.0.1", dst=GW, hwdst=GW)),
        (t0 + 5 * S, arp(ATTACKER, 1, "10.0.0.66", "10.0.0.1")),                    # attacker's own address
    ]
    # arpspoof -t victim gateway: "10.0.0.1 is-at ATTACKER" to the victim every 2 s
    frames += [(t0 + 30 * S + k * 2 * S, arp(ATTACKER, 2, "10.0.0.1", "10.0.0.2", dst=VICTIM, hwdst=VICTIM))
               for k in range(15)]
    found = findings_of(frames)
    spoof = by_kind(found, "arp_spoofing")
    assert [f.device for f in spoof] == [ATTACKER]
    assert spoof[0].evidence["previous_mac"] == GW and "10.0.0.1" in spoof[0].evidence["claimed_ips"]
    assert not by_kind(found, "duplicate_ip")
    assert len(spoof) == 1  # one episode, however many windows it lasted


def test_two_hosts_on_one_ip_is_a_duplicate_not_spoofing():
    t0 = 1_700_000_000 * S
    a, b = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
    frames = [(t0, arp(a, 1, "10.0.0.50", "10.0.0.50")),               # a announces its address
              (t0 + 12 * S, arp(b, 1, "10.0.0.50", "10.0.0.1")),       # b configured with the same one
              (t0 + 13 * S, arp(a, 1, "10.0.0.50", "10.0.0.1"))]
    found = findings_of(frames)
    dup = by_kind(found, "duplicate_ip")
    assert [f.device for f in dup] == ["10.0.0.50"] and dup[0].evidence["macs"] == [a, b]
    assert not by_kind(found, "arp_spoofing")


def test_gratuitous_arp_storm_and_a_few_announcements():
    t0 = 1_700_000_000 * S
    storm = [(t0 + k * S // 5, arp(ATTACKER, 2, "10.0.0.66", "10.0.0.66")) for k in range(40)]
    calm = [(t0 + k * S, arp(VICTIM, 1, "10.0.0.2", "10.0.0.2")) for k in range(3)]
    found = findings_of(storm + calm)
    assert [f.device for f in by_kind(found, "gratuitous_arp_storm")] == [ATTACKER]


def test_dhcp_starvation_with_spoofed_client_macs():
    rnd = random.Random(7)
    t0 = 1_700_000_000 * S
    frames = []
    for k in range(200):  # dhcpstarv: a new random MAC per DISCOVER, ~40 per second
        m = bytes([2] + [rnd.randrange(256) for _ in range(5)])
        mac = ":".join(f"{x:02x}" for x in m)
        frames.append((t0 + k * S // 40, Ether(src=mac, dst=BCAST) / IP(src="0.0.0.0", dst="255.255.255.255")
                       / UDP(sport=68, dport=67) / BOOTP(chaddr=m) / DHCP(options=[("message-type", "discover"), "end"])))
    found = findings_of(frames)
    starv = by_kind(found, "dhcp_starvation")
    assert starv and starv[0].device == "lan" and starv[0].evidence["distinct_client_macs"] >= 60
    assert "dhcp_flood" not in {f.kind for f in found}


def test_one_client_renewing_normally_is_quiet():
    t0 = 1_700_000_000 * S
    m = bytes.fromhex("020000000002")
    dora = [("discover", VICTIM), ("offer", GW), ("request", VICTIM), ("ack", GW)]
    frames = [(t0 + i * S // 10, Ether(src=src, dst=BCAST) / IP(src="0.0.0.0", dst="255.255.255.255")
               / UDP(sport=68 if src == VICTIM else 67, dport=67 if src == VICTIM else 68)
               / BOOTP(op=1 if src == VICTIM else 2, chaddr=m)
               / DHCP(options=[("message-type", t), ("server_id", "10.0.0.1"), "end"]))
              for i, (t, src) in enumerate(dora)]
    assert not attacks(findings_of(frames))


def test_broadcast_storm_from_a_loop():
    t0 = 1_700_000_000 * S
    frame = bytes(Ether(src=VICTIM, dst=BCAST) / IP(src="10.0.0.2", dst="10.0.0.255") / UDP(sport=137, dport=137) / (b"x" * 50))
    frames = [(t0 + k * (S // 3000), frame) for k in range(30_000)]  # the same frame, 3000/s for 10 s
    found = findings_of(frames)
    storm = by_kind(found, "broadcast_storm")
    assert [f.device for f in storm] == [VICTIM] and storm[0].evidence["frames_per_second"] >= 1000


def test_icmp_ping_sweep_and_busy_benign_client():
    t0 = 1_700_000_000 * S
    sweep = [(t0 + k * S // 100, Ether(src=ATTACKER, dst=GW) / IP(src="10.0.0.66", dst=f"10.0.1.{k}") / ICMP(type=8))
             for k in range(1, 255)]
    found = findings_of(sweep)
    assert [f.device for f in by_kind(found, "host_sweep")] == ["10.0.0.66"]
    # a browser opening 150 connections to 120 servers, all answered: no scan, no sweep
    busy = []
    for k in range(150):
        dst = f"93.184.{k % 120}.{k % 7 + 1}"
        sport = 50000 + k
        busy.append((t0 + k * S // 20, Ether(src=VICTIM, dst=GW) / IP(src="10.0.0.2", dst=dst) / TCP(sport=sport, dport=443, flags="S")))
        busy.append((t0 + k * S // 20 + 20_000_000, Ether(src=GW, dst=VICTIM) / IP(src=dst, dst="10.0.0.2") / TCP(sport=443, dport=sport, flags="SA")))
    # the gateway refreshing ARP for 100 hosts, all answering
    for k in range(2, 102):
        busy.append((t0 + k * S // 50, arp(GW, 1, "10.0.0.1", f"10.0.0.{k}")))
        mac = f"02:00:00:00:01:{k:02x}"
        busy.append((t0 + k * S // 50 + 1000, arp(mac, 2, f"10.0.0.{k}", "10.0.0.1", dst=GW, hwdst=GW)))
    assert not attacks(findings_of(busy))


def test_scan_episodes_and_thresholds_from_config():
    t0 = 1_700_000_000 * S

    def scan(start):
        return [(start + k * S // 100, Ether(src=ATTACKER, dst=VICTIM) / IP(src="10.0.0.66", dst="10.0.0.2")
                 / TCP(sport=40000, dport=1 + k, flags="S")) for k in range(3000)]
    # 30 s of scanning, then quiet for 20 min, then again: two episodes
    found = by_kind(findings_of(scan(t0) + scan(t0 + 1230 * S)), "port_scan")
    assert len(found) == 2 and found[0].evidence["windows"] >= 3
    assert found[0].last_seen - found[0].first_seen >= 25
    # a higher threshold in the config turns the same traffic into no finding
    strict = dataclasses.replace(DetectionConfig(), port_scan_min_ports=5000)
    assert not by_kind(findings_of(scan(t0), strict), "port_scan")


@pytest.mark.parametrize("rate", [20, 2000])
def test_syn_flood_needs_rate(rate):
    t0 = 1_700_000_000 * S
    frames = [(t0 + k * S // rate, Ether(src=ATTACKER, dst=GW) / IP(src="10.0.0.66", dst="10.0.0.9")
               / TCP(sport=1024 + k, dport=80, flags="S")) for k in range(150)]
    got = [f.device for f in by_kind(findings_of(frames), "syn_flood")]
    assert got == (["10.0.0.66"] if rate >= 100 else [])


def test_scan_straddling_a_window_boundary_is_seen_whole():
    t0 = 1_700_000_000 * S + 8 * S  # 2 s before a window boundary
    frames = [(t0 + k * S // 8, Ether(src=ATTACKER, dst=VICTIM) / IP(src="10.0.0.66", dst="10.0.0.2")
               / TCP(sport=40000, dport=1000 + k, flags="S")) for k in range(32)]  # 16 ports each side
    found = by_kind(findings_of(frames), "port_scan")
    assert [f.device for f in found] == ["10.0.0.66"] and found[0].evidence["tcp_syn"] == 32


def test_next_hop_moving_between_windows_counts_as_a_change():
    from probe.state.aggregates import merge_windows
    from probe.state.aggregates import CaptureAggregator
    from probe import fastpath
    from probe.state.aggregates import batch_columns
    t0 = 1_700_000_000 * S
    f1 = Ether(src=GW, dst=VICTIM) / IP(src="8.8.8.8", dst="10.0.0.2") / TCP(sport=443, dport=5555, flags="A")
    f2 = Ether(src=ATTACKER, dst=VICTIM) / IP(src="8.8.8.8", dst="10.0.0.2") / TCP(sport=443, dport=5555, flags="A")
    agg = CaptureAggregator(max_devices=16, window_s=10)
    b = FrameBatch.from_frames([bytes(f1), bytes(f2)], ts_ns=[t0 + S, t0 + 11 * S])
    w1, = agg.add(fastpath.parse_frames(*batch_columns(b))[0])
    w2 = agg.flush()
    m = merge_windows(w1, w2)
    row = dict(m.ip_rows())["8.8.8.8"]
    assert row["peer_changes"] == 1 and row["frames"] == 2
    assert row["peer"] == int(ATTACKER.replace(":", ""), 16) and row["prev_peer"] == int(GW.replace(":", ""), 16)
    assert row["first_seen_ns"] == t0 + S and row["last_seen_ns"] == t0 + 11 * S


def test_reassigned_address_is_not_a_duplicate():
    t0 = 1_700_000_000 * S
    a, b = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
    frames = [(t0, arp(a, 1, "10.0.0.50", "10.0.0.1")),            # a laptop, then it leaves
              (t0 + 300 * S, arp(b, 1, "10.0.0.50", "10.0.0.1"))]  # five minutes later a phone gets the lease
    assert not findings_of(frames)


def test_scan_from_the_internet_is_blamed_on_the_scanner_not_the_router():
    t0 = 1_700_000_000 * S
    frames = [(t0 + k * S // 100, Ether(src=GW, dst=VICTIM) / IP(src="198.51.100.7", dst="10.0.0.2")
               / TCP(sport=40000, dport=1 + k, flags="S")) for k in range(300)]
    frames += [(t0 + k * S // 100, Ether(src=GW, dst=VICTIM) / IP(src=f"203.0.113.{k % 200}", dst="10.0.0.2")
                / TCP(sport=50000 + k, dport=443, flags="S")) for k in range(300)]  # ordinary inbound visitors
    scans = by_kind(findings_of(frames), "port_scan")
    assert [f.device for f in scans] == ["198.51.100.7"] and scans[0].evidence["mac"] == GW


def test_spoofed_sources_from_one_attacker_blame_its_mac_once():
    rnd = random.Random(3)
    t0 = 1_700_000_000 * S
    frames = [(t0 + k * S // 2000, Ether(src=ATTACKER, dst=GW)  # hping3 -S --rand-source: one MAC, random IPs
               / IP(src=f"{rnd.randrange(1, 224)}.{rnd.randrange(256)}.{rnd.randrange(256)}.{rnd.randrange(1, 255)}",
                    dst="10.0.0.9") / TCP(sport=rnd.randrange(1024, 65535), dport=80, flags="S")) for k in range(600)]
    floods = by_kind(findings_of(frames), "syn_flood")
    assert [f.device for f in floods] == [ATTACKER]


def _ip_traffic(src_mac, src_ip, dst_mac, dst_ip, ts_list, sport=40000):
    return [(t, Ether(src=src_mac, dst=dst_mac) / IP(src=src_ip, dst=dst_ip) / TCP(sport=sport, dport=445, flags="A"))
            for t in ts_list]


def test_second_ip_colliding_by_misconfiguration_is_duplicate_ip_not_spoofing():
    """b has its own 10.0.0.20 and was given 10.0.0.50 by hand, which a holds: both answer who-has for it
    and both send their own traffic from it, over minutes, without unasked replies."""
    t0 = 1_700_000_000 * S
    a, b, asker = "02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:0c"
    frames = [(t0, arp(b, 1, "10.0.0.20", "10.0.0.1"))]                       # b's own address
    for k in range(6):                                                        # a who-has every 20 s
        t = t0 + S + k * 20 * S
        frames.append((t, arp(asker, 1, "10.0.0.30", "10.0.0.50")))
        frames.append((t + 1000, arp(a, 2, "10.0.0.50", "10.0.0.30", dst=asker, hwdst=asker)))
        frames.append((t + 2000, arp(b, 2, "10.0.0.50", "10.0.0.30", dst=asker, hwdst=asker)))
        frames += _ip_traffic(a, "10.0.0.50", asker, "10.0.0.30", [t + 3000])
        frames += _ip_traffic(b, "10.0.0.50", asker, "10.0.0.30", [t + 4000], sport=40001)
    found = findings_of(frames)
    assert not by_kind(found, "arp_spoofing")
    dup = by_kind(found, "duplicate_ip")
    assert [f.device for f in dup] == ["10.0.0.50"] and dup[0].severity == "warning"
    assert dup[0].evidence["macs"] == [a, b] and dup[0].evidence["both_send_from_it"] is True
    assert dup[0].evidence["signs"] == {"unsolicited_replies": False, "claims_gateway_ip": False,
                                        "traffic_redirected": False}
    assert "no unsolicited replies" in dup[0].evidence["reason"]


def test_gratuitous_reply_poisoner_claiming_the_gateway_is_arp_spoofing():
    """The gateway (the MAC off-LAN traffic comes from) holds 10.0.0.1; an attacker announces
    "10.0.0.1 is-at ATTACKER" in gratuitous replies every 2 s, keeping its own address."""
    t0 = 1_700_000_000 * S
    frames = [(t0, arp(GW, 1, "10.0.0.1", "10.0.0.2")),
              (t0 + 1000, arp(VICTIM, 2, "10.0.0.2", "10.0.0.1", dst=GW, hwdst=GW)),
              (t0 + 2 * S, arp(ATTACKER, 1, "10.0.0.66", "10.0.0.2"))]
    frames += _ip_traffic(GW, "8.8.8.8", VICTIM, "10.0.0.2", [t0 + 3 * S])
    frames += _ip_traffic(GW, "1.1.1.1", VICTIM, "10.0.0.2", [t0 + 3 * S + 1000])
    frames += [(t0 + 5 * S + k * 2 * S, arp(ATTACKER, 2, "10.0.0.1", "10.0.0.1")) for k in range(10)]
    found = findings_of(frames)
    spoof = by_kind(found, "arp_spoofing")
    assert [f.device for f in spoof] == [ATTACKER] and spoof[0].severity == "critical"
    ev = spoof[0].evidence
    assert ev["ip"] == "10.0.0.1" and ev["previous_mac"] == GW
    assert ev["signs"]["unsolicited_replies"] and ev["signs"]["claims_gateway_ip"]
    assert "unsolicited replies" in ev["reason"] and "claims gateway ip" in ev["reason"]
    assert not by_kind(found, "duplicate_ip")


def test_dhcp_era_address_move_to_a_new_mac_raises_nothing_above_info():
    """A laptop's 10.0.0.50 moves once to another MAC (a new lease, a dock): the old MAC falls silent."""
    t0 = 1_700_000_000 * S
    old, new = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
    frames = [(t0, arp(old, 1, "10.0.0.50", "10.0.0.1")), (t0 + 1000, arp(GW, 2, "10.0.0.1", "10.0.0.50", dst=old, hwdst=old))]
    frames += _ip_traffic(old, "10.0.0.50", GW, "8.8.8.8", [t0 + k * S for k in range(1, 30)])
    t1 = t0 + 120 * S
    frames += [(t1, arp(new, 1, "10.0.0.50", "10.0.0.50")), (t1 + S, arp(new, 1, "10.0.0.50", "10.0.0.1")),
               (t1 + S + 1000, arp(GW, 2, "10.0.0.1", "10.0.0.50", dst=new, hwdst=new))]
    frames += _ip_traffic(new, "10.0.0.50", GW, "8.8.8.8", [t1 + k * S for k in range(2, 30)])
    found = findings_of(frames)
    assert [f for f in found if f.severity != "info"] == []


def test_host_announcing_a_colliding_address_at_boot_is_still_a_duplicate():
    """b comes up with a's address and announces it three times (arping -U -c 3, as an OS does), then
    both answer a who-has for it (in the next window): not the repeated announcements of a poisoner."""
    t0 = 1_700_000_000 * S
    a, b, asker = "02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:0c"
    frames = [(t0, arp(a, 1, "10.0.0.50", "10.0.0.1"))]
    frames += [(t0 + S + k * S, arp(b, 2, "10.0.0.50", "10.0.0.50")) for k in range(3)]
    frames += [(t0 + 12 * S, arp(asker, 1, "10.0.0.30", "10.0.0.50")),
               (t0 + 12 * S + 1000, arp(a, 2, "10.0.0.50", "10.0.0.30", dst=asker, hwdst=asker)),
               (t0 + 12 * S + 2000, arp(b, 2, "10.0.0.50", "10.0.0.30", dst=asker, hwdst=asker))]
    found = findings_of(frames)
    assert not by_kind(found, "arp_spoofing")
    assert [f.device for f in by_kind(found, "duplicate_ip")] == ["10.0.0.50"]


def test_slow_arpspoof_over_short_windows_is_arp_spoofing_with_no_duplicate_first():
    """arpspoof's reply every 2 s, seen through 2 s windows (as the live probe runs): one reply per
    window, so only totals over the claim's life show the repetition. The first reply alone is
    undecided: no duplicate_ip warning on the way to the spoofing finding."""
    t0 = 1_700_000_000 * S
    frames = [(t0, arp(VICTIM, 1, "10.0.0.2", "10.0.0.1")),
              (t0 + 1000, arp(GW, 2, "10.0.0.1", "10.0.0.2", dst=VICTIM, hwdst=VICTIM))]
    replies = [(t0 + 3 * S + k * 2 * S, arp(ATTACKER, 2, "10.0.0.1", "10.0.0.2", dst=VICTIM, hwdst=VICTIM))
               for k in range(4)]
    early = findings_of(frames + replies[:1], window=2)
    assert [f for f in early if f.kind in ("arp_spoofing", "duplicate_ip")] == []
    found = findings_of(frames + replies, window=2)
    spoof = by_kind(found, "arp_spoofing")
    assert [f.device for f in spoof] == [ATTACKER] and spoof[0].evidence["arp_replies"] == 4
    assert spoof[0].evidence["holder_arp_replies"] == 0
    assert not by_kind(found, "duplicate_ip")


def _both_answer(t, asker, asker_ip, first, second, ip="10.0.0.50"):
    """`asker` asks who has `ip` at t; `first`, then `second`, answer it (1 and 2 us later)."""
    return [(t, arp(asker, 1, asker_ip, ip)),
            (t + 1000, arp(first, 2, ip, asker_ip, dst=asker, hwdst=asker)),
            (t + 2000, arp(second, 2, ip, asker_ip, dst=asker, hwdst=asker))]


def test_both_answering_each_who_has_over_many_windows_stays_a_duplicate():
    """Both MACs answer every who-has for the address for a minute: their replies grow together, so
    however many there are, it is no poisoning."""
    t0 = 1_700_000_000 * S
    a, b, asker = "02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:0c"
    frames = [(t0, arp(a, 1, "10.0.0.50", "10.0.0.1"))]
    for k in range(30):
        t = t0 + S + k * 2 * S
        frames += _both_answer(t, asker, "10.0.0.30", a, b)
    found = findings_of(frames, window=2)
    assert not by_kind(found, "arp_spoofing")
    dup = by_kind(found, "duplicate_ip")
    assert [f.device for f in dup] == ["10.0.0.50"] and dup[0].evidence["macs"] == [a, b]


@pytest.mark.parametrize("quiet_for, expected", [(20, ["10.0.0.50"]), (8, [])])
def test_announcing_a_held_address_then_falling_silent_is_a_duplicate(quiet_for, expected):
    """b announces a's address three times (arping -U -c 3) and says nothing more while a keeps using
    it: a duplicate once b has been quiet arp_announce_quiet (15 s); before that, undecided."""
    t0 = 1_700_000_000 * S
    a, b = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
    frames = [(t0, arp(a, 1, "10.0.0.50", "10.0.0.1"))]
    frames += [(t0 + S + k * S, arp(b, 1, "10.0.0.50", "10.0.0.50")) for k in range(3)]
    frames += [(t0 + 4 * S + k * 2 * S, arp(a, 1, "10.0.0.50", "10.0.0.1")) for k in range(quiet_for // 2)]
    found = findings_of(frames, window=2)
    assert not by_kind(found, "arp_spoofing")
    assert [f.device for f in by_kind(found, "duplicate_ip")] == expected


def test_announced_then_both_answering_with_requests_among_the_announcements():
    """The lab's case (iputils/Habets arping -U sends its announcements as requests): b announces a's
    address three times, then both answer the gateway's who-has for it twice."""
    t0 = 1_700_000_000 * S
    a, b = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
    frames = [(t0, arp(a, 1, "10.0.0.50", "10.0.0.1")), (t0 + 1000, arp(GW, 2, "10.0.0.1", "10.0.0.50", dst=a, hwdst=a))]
    frames += [(t0 + 2 * S + k * S, arp(b, 1, "10.0.0.50", "10.0.0.50")) for k in range(3)]
    for k in range(2):
        t = t0 + 5 * S + k * S
        frames += _both_answer(t, GW, "10.0.0.1", b, a)
    found = findings_of(frames, window=2)
    assert not by_kind(found, "arp_spoofing")
    dup = by_kind(found, "duplicate_ip")
    assert [f.device for f in dup] == ["10.0.0.50"] and dup[0].evidence["macs"] == [a, b]


def test_undecided_contests_are_bounded():
    """A flood of spoofed single replies for many held addresses: each is undecided, none is kept
    beyond max_ips."""
    from probe.findings.lan import ArpDetector
    from probe.findings.base import WindowDetectors
    det = ArpDetector(max_ips=64)
    t0 = 1_700_000_000 * S
    frames = []
    for k in range(200):
        ip = f"10.0.{k // 250}.{k % 250 + 1}"
        mac = f"02:00:00:01:{k // 256:02x}:{k % 256:02x}"
        frames += [(t0 + k * 1000, arp(mac, 1, ip, "10.0.9.9")),
                   (t0 + S + k * 1000, arp(ATTACKER, 2, ip, "10.0.9.9", dst=VICTIM, hwdst=VICTIM))]
    pipe = CapturePipeline(CaptureConfig(window=10), DetectionConfig())
    pipe.engine = WindowDetectors(DetectionConfig(), [det])
    pipe.add_batch(FrameBatch.from_frames([bytes(f) for _, f in frames], ts_ns=[t for t, _ in frames]))
    pipe.finish()
    assert 0 < len(det.undecided) <= 64 and len(det.claims) <= 64
