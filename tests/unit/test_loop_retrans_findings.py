"""forwarding_loop and tcp_retransmissions (and tcp_reset's baseline) on traffic shaped like the real thing."""
from __future__ import annotations

import dataclasses

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether

from probe.config import DetectionConfig
from probe.state.baselines import RatioBaseline
from tests.helpers import FrameFeed, findings_of

S = 10**9
T0 = 1_700_000_000 * S
A, B, GW = "02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:01"
BCAST = "ff:ff:ff:ff:ff:ff"


def kinds(findings, kind):
    return [f for f in findings if f.kind == kind]


# --- forwarding loops --------------------------------------------------------------------------------
def test_a_loop_circulating_one_arp_request():
    req = Ether(src=A, dst=BCAST) / ARP(hwsrc=A, psrc="10.0.0.10", pdst="10.0.0.99")
    frames = [(T0 + 3 * S + k * (S // 4000), req) for k in range(8000)]  # one frame, 4000 passes a second for 2 s
    # the loop carries every sender's broadcasts: another host's MLD report goes round with it
    mld = Ether(src=B, dst="33:33:00:00:00:16") / IPv6(src="fe80::b", dst="ff02::16") / UDP(sport=1, dport=2)
    frames += [(T0 + 3 * S + k * (S // 1000) + 7, mld) for k in range(2000)]
    frames += [(T0 + k * S // 10, Ether(src=B, dst=GW) / IP(src="10.0.0.11", dst="10.0.0.1") / UDP(sport=5000 + k, dport=53))
               for k in range(50)]
    loop = kinds(findings_of(frames), "forwarding_loop")
    assert len(loop) == 1, loop
    ev = loop[0].evidence
    assert loop[0].device == "lan" and loop[0].severity == "critical"
    assert ev["copies"] == 8000 and ev["src_mac"] == A and ev["protocol"] == "arp" and ev["ethertype"] == "0x0806"
    assert ev["vlan"] is None and ev["sources_repeated"] == 2 and ev["duplicate_frames"] == 7999 + 1999 and ev["src_ip"] == "10.0.0.10"
    assert ev["duplicate_frames_per_second"] >= 100


def test_a_loop_on_a_vlan_is_named_by_it():
    ns = Ether(src=A, dst="33:33:ff:00:00:02") / Dot1Q(vlan=30) / IPv6(src="fe80::a", dst="ff02::1:ff00:2") / UDP()
    other = Ether(src=B, dst=BCAST) / Dot1Q(vlan=30) / ARP(hwsrc=B, psrc="10.0.0.11", pdst="10.0.0.99")
    loop = kinds(findings_of([(T0 + k * (S // 2000), ns) for k in range(4000)] + [(T0 + k * (S // 2000) + 9, other)
                                                                          for k in range(2000)]), "forwarding_loop")
    assert [f.device for f in loop] == ["vlan 30"] and loop[0].evidence["ethertype"] == "0x86dd"


def test_ordinary_repeats_are_no_loop():
    frames = []
    # ARP retries once a second for a minute, seen twice each (a SPAN session mirroring both directions)
    retry = Ether(src=A, dst=BCAST) / ARP(hwsrc=A, psrc="10.0.0.10", pdst="10.0.0.77")
    frames += [(T0 + k * S + d, retry) for k in range(60) for d in (0, 20_000)]
    # mDNS announcements sent three times, one second apart, every ten seconds
    mdns = Ether(src=B, dst="01:00:5e:00:00:fb") / IP(src="10.0.0.11", dst="224.0.0.251") / UDP(sport=5353, dport=5353) / b"announce"
    frames += [(T0 + p * 10 * S + k * S, mdns) for p in range(6) for k in range(3)]
    # a chatty host: 200 different broadcasts a second, each seen twice
    for k in range(6000):
        f = Ether(src=GW, dst=BCAST) / IP(src="10.0.0.1", dst="10.0.0.255") / UDP(sport=138, dport=138) / k.to_bytes(4, "big")
        frames += [(T0 + k * (S // 200), f), (T0 + k * (S // 200) + 30_000, f)]
    assert not kinds(findings_of(frames), "forwarding_loop")


def test_loop_thresholds_from_config():
    req = Ether(src=A, dst=BCAST) / ARP(hwsrc=A, psrc="10.0.0.10", pdst="10.0.0.99")
    frames = [(T0 + k * (S // 50), req) for k in range(100)]  # 50 copies/s for 2 s
    assert not kinds(findings_of(frames), "forwarding_loop")
    strict = dataclasses.replace(DetectionConfig(), forwarding_loop_min_rate=2.0, forwarding_loop_min_sources=1)
    assert kinds(findings_of(frames, strict), "forwarding_loop")


def test_one_host_repeating_one_multicast_frame_is_a_flood_not_a_loop():
    """mausezahn / an application sending one identical frame to a group at 1000/s: the repeats come from
    that sender alone, so it is that host's multicast_flood (fixed at the host), not a loop."""
    f = Ether(src=A, dst="01:00:5e:00:00:fa") / IP(src="10.0.0.10", dst="239.0.0.250", ttl=1, id=1) / UDP(
        sport=4000, dport=5000) / (b"x" * 40)
    frames = [(T0 + k * (S // 1000), f) for k in range(3000)]
    found = findings_of(frames)
    assert not kinds(found, "forwarding_loop")
    flood = kinds(found, "multicast_flood")
    assert [(x.device, x.severity) for x in flood] == [(A, "warning")]
    ev = flood[0].evidence
    assert ev["src_mac"] == A and ev["src_ip"] == "10.0.0.10" and ev["sources_repeated"] == 1
    assert ev["copies"] == 3000 and ev["protocol"] == "udp" and ev["reason"].startswith("only 1 sender")
    # the same flood with the IP ID counting up, as hping3 and the kernel send it: no two frames are the
    # same, so nothing repeats at all
    varied = [(T0 + k * (S // 1000), Ether(src=A, dst="01:00:5e:00:00:fa") / IP(
        src="10.0.0.10", dst="239.0.0.250", ttl=1, id=k) / UDP(sport=4000, dport=5000) / (b"x" * 40)) for k in range(3000)]
    found = findings_of(varied)
    assert not kinds(found, "forwarding_loop") and not kinds(found, "multicast_flood")


# --- TCP retransmissions -----------------------------------------------------------------------------
def transfer(t0, seconds, *, loss=0.0, src="10.0.0.10", mac=A, sport=40000, seed=1, per_second=100, flows=4):
    """Bulk TCP transfers from src over `flows` connections (source ports sport, sport + 1...) taking turns:
    per_second data segments a second in all, `loss` of them sent again 200 ms later."""
    import random
    rnd = random.Random(seed)
    out, seqs, ip_id = [], [1] * flows, 1
    for k in range(int(seconds * per_second)):
        t = t0 + k * (S // per_second)
        conn = k % flows
        seq = seqs[conn]
        f = (Ether(src=mac, dst=B) / IP(src=src, dst="10.0.0.11", id=ip_id)
             / TCP(sport=sport + conn, dport=5001, flags="PA", seq=seq) / (b"d" * 100))
        out.append((t, f))
        if rnd.random() < loss:
            ip_id += 1
            out.append((t + S // 5, Ether(src=mac, dst=B) / IP(src=src, dst="10.0.0.11", id=ip_id)
                        / TCP(sport=sport + conn, dport=5001, flags="PA", seq=seq) / (b"d" * 100)))
        seqs[conn] = seq + 100
        ip_id += 1
    return out


def test_loss_after_a_clean_baseline_is_raised_for_the_sender():
    feed = FrameFeed(window=2)
    assert not feed.add(transfer(T0, 20))                            # ten clean windows: the baseline
    feed.add(transfer(T0 + 20 * S, 6, loss=0.1, seed=3, sport=40010))
    got = kinds(feed.finish(), "tcp_retransmissions")
    assert [f.device for f in got] == ["10.0.0.10"], got
    ev = got[0].evidence
    assert ev["baseline_learned"] and ev["retransmission_ratio"] >= 0.05 and ev["tcp_retransmissions"] >= 10
    assert ev["mac"] == A and ev["retransmitting_connections"] == 4
    assert "sent again, on 4 distinct connections" in ev["reason"]


def test_the_same_loss_on_one_connection_is_no_finding():
    # one lossy transfer is that transfer's path (a far server, a slow peer), not the device's network
    feed = FrameFeed(window=2)
    assert not feed.add(transfer(T0, 20, flows=1))
    feed.add(transfer(T0 + 20 * S, 6, loss=0.1, seed=3, sport=40010, flows=1))
    assert not kinds(feed.finish(), "tcp_retransmissions")
    cfg = dataclasses.replace(DetectionConfig(), tcp_retrans_min_flows=1)  # unless told to
    feed = FrameFeed(cfg, window=2)
    feed.add(transfer(T0, 20, flows=1))
    feed.add(transfer(T0 + 20 * S, 6, loss=0.1, seed=3, sport=40010, flows=1))
    assert [f.evidence["retransmitting_connections"] for f in kinds(feed.finish(), "tcp_retransmissions")] == [1]


def test_a_device_that_always_retransmits_is_not_news_after_warm_up():
    feed = FrameFeed(window=2)
    feed.add(transfer(T0, 40, loss=0.08, seed=4))       # 8% for 20 windows: its usual
    before = {f.first_seen for f in kinds(feed.pipe.findings.all_findings(), "tcp_retransmissions")}
    assert before  # before the baseline was learned, 8% is above the 5% cold limit
    det = next(d for d in feed.pipe.engine.detectors if "tcp_retransmissions" in d.kinds)
    assert det.baseline.warmed("10.0.0.10")
    new = feed.add(transfer(T0 + 400 * S, 10, loss=0.08, seed=5, sport=40010))  # after the episode ended, same as always
    assert not kinds(new, "tcp_retransmissions")
    new = feed.add(transfer(T0 + 410 * S, 10, loss=0.5, seed=6, sport=40020))   # far above its usual
    assert kinds(new, "tcp_retransmissions")


def test_a_span_session_doubling_every_segment_is_no_retransmission():
    frames = []
    for t, f in transfer(T0, 10):
        frames += [(t, f), (t + 15_000, f)]
    assert not kinds(findings_of(frames), "tcp_retransmissions")


def test_cold_limits_and_the_minimum_count():
    few = transfer(T0, 1, per_second=10, flows=1)
    again = Ether(src=A, dst=B) / IP(src="10.0.0.10", dst="10.0.0.11", id=999) / TCP(sport=40000, dport=5001, flags="PA", seq=1) / (b"d" * 100)
    few.append((T0 + 2 * S, again))  # the first segment once more, with a new IP ID: one retransmission
    assert not kinds(findings_of(few), "tcp_retransmissions")
    cfg = dataclasses.replace(DetectionConfig(), tcp_retrans_min=1, tcp_retrans_min_flows=1)
    got = kinds(findings_of(few, cfg), "tcp_retransmissions")
    assert [f.device for f in got] == ["10.0.0.10"] and got[0].severity == "info"


# --- tcp_reset against the device's baseline -------------------------------------------------------
def probes(t0, n, refused, src="10.0.0.20", mac=GW):
    out = []
    for k in range(n):
        t = t0 + k * (S // 10)
        out.append((t, Ether(src=mac, dst=B) / IP(src=src, dst="10.0.0.11") / TCP(sport=20000 + k, dport=22, flags="S")))
        flags = "RA" if k < refused else "SA"
        out.append((t + 1000, Ether(src=B, dst=mac) / IP(src="10.0.0.11", dst=src) / TCP(sport=22, dport=20000 + k, flags=flags)))
    return out


def test_a_monitoring_host_refused_as_usual_is_not_flagged_again():
    cfg = dataclasses.replace(DetectionConfig(), episode_quiet=1.0)
    feed = FrameFeed(cfg, window=10)
    for w in range(8):  # 30 checks every 10 s, 18 refused: its usual
        feed.add(probes(T0 + w * 10 * S, 30, 18))
    det = next(d for d in feed.pipe.engine.detectors if "tcp_reset" in d.kinds)
    assert det.baseline.warmed("10.0.0.20")
    assert not kinds(feed.add(probes(T0 + 100 * S, 30, 18) + probes(T0 + 110 * S, 30, 18)), "tcp_reset")
    assert kinds(feed.add(probes(T0 + 130 * S, 30, 30) + probes(T0 + 140 * S, 1, 0)), "tcp_reset")


def test_ratio_baseline_is_bounded_and_warms_up():
    b = RatioBaseline(alpha=0.5, warmup=3, max_devices=2)
    assert b.limit("x", floor=0.02, cold=0.05, spread_factor=4) == 0.05
    for r in (0.1, 0.1, 0.1):
        b.update("x", r)
    assert b.warmed("x") and abs(b.limit("x", floor=0.02, cold=0.05, spread_factor=4) - 0.1) < 1e-9
    b.update("y", 0.0)
    b.update("z", 0.0)
    assert len(b) == 2 and b.get("x") is None
