"""Aggregation: counters per device from known traffic, bounded tables under floods, twin equality."""
from __future__ import annotations

import ipaddress

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6DestUnreach, IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether

from probe.sources.frames import FrameBatch
from probe.state.aggregates import (AggTable, CaptureAggregator, batch_columns, bitmap_estimate, format_mac,
                                    hll_estimate)

SCANNER, VICTIM, GW = "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:fe"


def records(impl, frames, ts=None):
    b = FrameBatch.from_frames([bytes(f) for f in frames], ts_ns=ts or [10**9 + i for i in range(len(frames))])
    return impl.parse_frames(*batch_columns(b))[0]


def run(impl, frames, max_devices=64, ts=None):
    agg = CaptureAggregator(max_devices=max_devices, window_s=10, kernels=impl)
    assert agg.add(records(impl, frames, ts)) == []
    return agg.flush()


def mac_row(w, mac):
    return dict(w.mac_rows())[mac]


def test_scan_counters_and_sketches(impl):
    syns = [Ether(src=SCANNER, dst=VICTIM) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=40000, dport=p, flags="S")
            for p in range(1, 301)]
    rsts = [Ether(src=VICTIM, dst=SCANNER) / IP(src="10.0.0.2", dst="10.0.0.1") / TCP(sport=p, dport=40000, flags="RA")
            for p in range(1, 291)]
    open_ = [Ether(src=VICTIM, dst=SCANNER) / IP(src="10.0.0.2", dst="10.0.0.1") / TCP(sport=p, dport=40000, flags="SA")
             for p in range(291, 301)]
    w = run(impl, syns + rsts + open_)
    s = mac_row(w, SCANNER)
    assert s["frames"] == 300 and s["tcp_syn"] == 300 and s["tcp_rst_rcvd"] == 290 and s["tcp_synack_rcvd"] == 10
    assert s["rx_frames"] == 300 and s["peer"] == int(ipaddress.IPv4Address("10.0.0.1"))
    assert 240 <= s["distinct_dst_ports"] <= 360  # HLL with 64 registers: ~13% standard error
    assert s["distinct_dst_hosts"] == 1
    v = mac_row(w, VICTIM)
    assert v["tcp_rst"] == 290 and v["tcp_synack"] == 10 and v["distinct_dst_ports"] == 0
    ips = dict(w.ip_rows())
    assert ips["10.0.0.1"]["tcp_syn"] == 300 and ips["10.0.0.1"]["peer"] == int(SCANNER.replace(":", ""), 16)
    assert w.total("frames") == 600 and w.total("tcp_syn") == 300


def test_stealth_probes_and_the_ports_that_reset(impl):
    """FIN/NULL/Xmas probes count as stealth probes with their ports in the port sketch; an ACK probe does
    not (a live connection sends those), but the resets it draws land in the receiver's rst_ports sketch,
    and only resets from a port at or below the receiver's (a server's clients resetting it do not)."""
    probes = [Ether(src=SCANNER, dst=VICTIM) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=40000, dport=p, flags=fl)
              for p in range(1, 201) for fl in ("F", "", "FPU")]
    acks = [Ether(src=SCANNER, dst=VICTIM) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=40001, dport=p, flags=fl)
            for p in range(1, 201) for fl in ("A", "FA", "PA")]
    resets = [Ether(src=VICTIM, dst=SCANNER) / IP(src="10.0.0.2", dst="10.0.0.1") / TCP(sport=p, dport=40001, flags="R")
              for p in range(1, 201)]
    client_resets = [Ether(src=GW, dst=VICTIM) / IP(src="10.0.0.9", dst="10.0.0.2") / TCP(sport=50000 + p, dport=443, flags="RA")
                     for p in range(200)]
    w = run(impl, probes + acks + resets + client_resets)
    s = mac_row(w, SCANNER)
    assert s["tcp_stealth"] == 600 and s["tcp_syn"] == 0 and s["tcp_rst_rcvd"] == 200
    assert 160 <= s["distinct_dst_ports"] <= 240 and s["distinct_dst_hosts"] == 1
    assert 160 <= s["distinct_rst_ports"] <= 240
    ips = dict(w.ip_rows())
    assert ips["10.0.0.1"]["tcp_stealth"] == 600 and 160 <= ips["10.0.0.1"]["distinct_rst_ports"] <= 240
    v = mac_row(w, VICTIM)
    assert v["tcp_rst_rcvd"] == 200 and v["distinct_rst_ports"] == 0 and v["tcp_stealth"] == 0
    assert v["tcp_rst_bare"] == 200 and mac_row(w, GW)["tcp_rst_bare"] == 0  # RST vs RST+ACK


def test_small_udp_and_vlan(impl):
    small = [Ether(src=SCANNER, dst=VICTIM) / Dot1Q(vlan=7) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1024 + i, dport=5000)
             for i in range(50)]
    large = [Ether(src=SCANNER, dst=VICTIM) / Dot1Q(vlan=7) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=9, dport=5000) / (b"x" * 1000)
             for _ in range(20)]
    dns = [Ether(src=SCANNER, dst=VICTIM) / Dot1Q(vlan=7) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=4000, dport=53)
           / DNS(qd=DNSQR(qname="a"))] * 5
    bcast = [Ether(src=SCANNER, dst="ff:ff:ff:ff:ff:ff") / IP(src="10.0.0.1", dst="10.0.0.255") / UDP(sport=9, dport=9)] * 3
    w = run(impl, small + large + dns + bcast)
    s = mac_row(w, SCANNER)
    assert s["udp_small"] == 50 and s["vlan"] == 8  # untagged broadcasts after it keep the last tag
    assert dict(w.ip_rows())["10.0.0.1"]["udp_small"] == 50
    tagged = run(impl, small)
    assert mac_row(tagged, SCANNER)["vlan"] == 8
    assert mac_row(run(impl, bcast), SCANNER)["vlan"] == 0


def test_arp_dhcp_dns_icmp_counters(impl):
    frames = [
        Ether(src=SCANNER, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=SCANNER, psrc="10.0.0.1", pdst=f"10.0.0.{i}")
        for i in range(2, 102)
    ] + [
        Ether(src=GW, dst=SCANNER) / ARP(op=2, hwsrc=GW, psrc="10.0.0.254", pdst="10.0.0.1"),
        Ether(src=SCANNER, dst="ff:ff:ff:ff:ff:ff") / ARP(op=2, hwsrc=SCANNER, psrc="10.0.0.254", pdst="10.0.0.254"),
        Ether(src=GW, dst="ff:ff:ff:ff:ff:ff") / IP(src="10.0.0.254", dst="255.255.255.255") / UDP(sport=67, dport=68)
        / BOOTP(op=2, chaddr=b"\x02" * 6) / DHCP(options=[("message-type", "offer"), ("server_id", "10.0.0.254"), "end"]),
        Ether(src=VICTIM, dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255") / UDP(sport=68, dport=67)
        / BOOTP(chaddr=b"\x02\x00\x00\x00\x00\x02") / DHCP(options=[("message-type", "discover"), "end"]),
        Ether(src=VICTIM, dst=GW) / IP(src="10.0.0.2", dst="10.0.0.254") / UDP(sport=3333, dport=53) / DNS(qd=DNSQR(qname="x.y")),
        Ether(src=GW, dst=VICTIM) / IP(src="10.0.0.254", dst="10.0.0.2") / UDP(sport=53, dport=3333) / DNS(qr=1, rcode=2, qd=DNSQR(qname="x.y")),
        Ether(src=GW, dst=VICTIM) / IP(src="10.0.0.254", dst="10.0.0.2") / ICMP(type=3, code=1) / IP(src="10.0.0.2", dst="10.9.9.9") / UDP(),
    ]
    w = run(impl, frames)
    s = mac_row(w, SCANNER)
    assert s["arp_request"] == 100 and s["broadcast"] == 101 and s["arp_reply_rcvd"] == 1
    assert s["arp_gratuitous"] == 1 and 80 <= s["distinct_dst_hosts"] <= 120
    g = mac_row(w, GW)
    assert g["dhcp_offer"] == 1 and g["dhcp_server_id"] == int(ipaddress.IPv4Address("10.0.0.254"))
    assert g["dns_response"] == 1 and g["dns_servfail"] == 1 and g["icmp_unreach"] == 1
    v = mac_row(w, VICTIM)
    assert v["dhcp_discover"] == 1 and v["distinct_dhcp_clients"] == 1 and v["dns_query"] == 1
    assert v["dns_response_rcvd"] == 1 and v["dns_servfail_rcvd"] == 1 and v["icmp_unreach_rcvd"] == 1
    # the ARP binding table saw 10.0.0.254 claimed by two MACs
    gw_ip = int(ipaddress.IPv4Address("10.0.0.254"))
    claims = {format_mac(k[1]) for k in w.arp.keys if int(k[0]) == gw_ip}
    assert claims == {GW, SCANNER}


def test_spoofed_flood_stays_bounded(impl):
    rng = np.random.default_rng(1)
    n = 200_000 if impl.__name__ == "probe._fastpath" else 20_000
    macs = rng.integers(1, 1 << 47, n, dtype=np.int64) << 1  # unicast source MACs
    ips = rng.integers(1, 1 << 32, n, dtype=np.int64)
    template = bytearray(bytes(Ether(src=SCANNER, dst=VICTIM) / IP(src="1.1.1.1", dst="10.0.0.2") / TCP(dport=80, flags="S")))
    frames = []
    for m, a in zip(macs.tolist(), ips.tolist()):
        template[6:12] = m.to_bytes(6, "big")
        template[26:30] = a.to_bytes(4, "big")
        frames.append(bytes(template))
    agg = CaptureAggregator(max_devices=1000, window_s=10, kernels=impl)
    before = agg.nbytes
    b = FrameBatch.from_frames(frames, ts_ns=[10**9] * n)
    recs = impl.parse_frames(*batch_columns(b))[0]
    import tracemalloc
    tracemalloc.start()
    for i in range(0, n, 8192):
        agg.add(recs[i:i + 8192])
        if i == 0:
            base = tracemalloc.get_traced_memory()[0]
    grown = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert grown < 1 << 20, f"aggregation state grew by {grown} bytes under the flood"
    assert agg.macs.used == 1000 and agg.ips.used == 1000
    assert agg.macs.overflow_frames == n - 1000 and agg.ips.overflow_frames == n - 1000
    assert agg.nbytes == before  # tables never grow
    w = agg.flush()
    assert len(w.macs) == 1000 and int(w.macs.overflow_counts[0]) == n - 1000
    assert w.total("frames") == n and w.total("tcp_syn") == n
    assert w.total_distinct("dst_hosts") == 1  # every SYN went to the one victim


def _spoofed(rng, n, dst=VICTIM):
    template = bytearray(bytes(Ether(src=SCANNER, dst=dst) / IP(src="1.1.1.1", dst="10.0.0.2") / UDP(dport=9)))
    for m, a in zip((rng.integers(1, 1 << 47, n, dtype=np.int64) << 1).tolist(),
                    rng.integers(1, 1 << 32, n, dtype=np.int64).tolist()):
        template[6:12] = m.to_bytes(6, "big")
        template[26:30] = a.to_bytes(4, "big")
        yield bytes(template)


def test_a_flood_cannot_take_the_rows_of_established_devices(impl):
    """While the MAC and IP tables overflow, the devices they held in the window before keep rows in the
    next windows, whatever the flood sent first: their traffic is counted, not lost in the overflow row;
    the flood's sources are not "steady" and get no anomaly series; once the flood stops, nothing is held."""
    from probe.state.aggregates import device_series
    rng = np.random.default_rng(7)
    hosts = [(f"02:00:00:00:01:{i:02x}", f"10.0.0.{i}") for i in range(1, 5)]

    def chat(t0):  # each real host sends 3 frames to the gateway in the window starting at t0 (s)
        fs = [Ether(src=m, dst=GW) / IP(src=a, dst="10.0.0.254") / UDP(sport=5, dport=53)
              for m, a in hosts for _ in range(3)]
        return fs, [t0 * 10**9 + 10**6 * (i + 1) for i in range(len(fs))]

    agg = CaptureAggregator(max_devices=64, window_s=10, kernels=impl)
    windows = []

    def window(t0, flood=0, flood_first=True):
        real, ts_real = chat(t0)
        spoof = list(_spoofed(rng, flood))
        ts_spoof = [t0 * 10**9 + 5 * 10**5 + i for i in range(flood)]
        frames, ts = (spoof + real, ts_spoof + [t + 10**6 for t in ts_real]) if flood_first else (real, ts_real)
        windows.extend(agg.add(records(impl, frames, ts)))

    window(0)                      # ordinary: the hosts are seen
    window(10, flood=500)          # the flood begins: it fills the tables before the hosts speak
    window(20, flood=500)
    window(30, flood=500)
    window(40)                     # the flood is over
    windows.append(agg.flush())
    w0, w1, w2, w3, w4 = windows
    real = {m for m, _ in hosts}
    real_ips = {a for _, a in hosts}
    assert set(dict(w0.mac_rows())) == real and w0.macs.steady is None
    # window 10: the flood's first sources took every row; the hosts' frames went to the overflow row
    assert w1.macs.overflow_frames > 0 and not (set(dict(w1.mac_rows())) & real)
    assert w1.macs.steady is not None and not w1.macs.steady.any()
    # windows 20 and 30: the hosts of the last ordinary window have rows held for them, and count
    for w in (w2, w3):
        rows = dict(w.mac_rows())
        assert real <= set(rows) and all(rows[m]["frames"] == 3 for m in real)
        assert real_ips <= set(dict(w.ip_rows()))
        assert len(w.macs) == 64 and w.macs.reserved == len(real) and w.macs.overflow_frames > 0
        steady = {format_mac(k) for k in w.macs.keys[w.macs.steady, 0]}
        assert steady == real  # the flood's sources are new in every window: never steady
        keys, _, _ = device_series(w)
        assert {m for m, _ in keys} == real  # and they get no anomaly series
    # the flood is over: the held rows are used, then nothing is held any more
    assert set(dict(w4.mac_rows())) == real and w4.macs.overflow_frames == 0 and w4.macs.steady is None
    assert agg.macs.reserved == 0 and agg.macs.used == 0
    # rows held for a host that stays quiet are not in the window
    agg = CaptureAggregator(max_devices=16, window_s=10, kernels=impl)
    agg.add(records(impl, [Ether(src=m, dst=GW) / IP(src=a, dst="10.0.0.254") / UDP() for m, a in hosts],
                    [10**6 * (i + 1) for i in range(len(hosts))]))
    agg.add(records(impl, list(_spoofed(rng, 40)), [10 * 10**9 + i for i in range(40)]))
    assert agg.macs.reserved == 0
    agg.add(records(impl, list(_spoofed(rng, 40)) + [Ether(src=hosts[0][0], dst=GW) / IP(src=hosts[0][1]) / UDP()],
                    [20 * 10**9 + i for i in range(41)]))
    assert agg.macs.reserved == len(hosts)
    w = agg.flush()
    assert w.macs.reserved == 1 and hosts[0][0] in dict(w.mac_rows())
    assert not {m for m, _ in hosts[1:]} & set(dict(w.mac_rows()))


def test_windows_split_on_timestamps(impl):
    f = Ether(src=SCANNER, dst=VICTIM) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5, dport=5)
    ts = [5 * 10**9, 9 * 10**9, 12 * 10**9, 35 * 10**9, 36 * 10**9]
    agg = CaptureAggregator(max_devices=16, window_s=10, kernels=impl)
    closed = agg.add(records(impl, [f] * 5, ts))
    assert [(w.start_ns, w.total("frames")) for w in closed] == [(0, 2), (10 * 10**9, 1)]
    last = agg.flush()
    assert (last.start_ns, last.total("frames")) == (30 * 10**9, 2)
    assert agg.flush() is None


def test_a_clock_set_back_closes_the_window_instead_of_holding_it_open(impl):
    """Frames a few seconds late (a reordered capture) count in the open window; frames from an hour
    before it (the clock was set back) close it, open a window at their own time, and are counted as a
    jump, so detection goes on at once instead of an hour later. The live probe's clock tick does the
    same when the link is quiet."""
    s = 10**9
    f = Ether(src=SCANNER, dst=VICTIM) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5, dport=5)
    t0 = 7200 * s
    ts = [t0 + 1 * s, t0 + 12 * s, t0 + 5 * s,          # 5 s late: counted in the window at t0 + 10 s
          t0 + 13 * s - 3600 * s, t0 + 14 * s - 3600 * s, t0 + 25 * s - 3600 * s]
    agg = CaptureAggregator(max_devices=16, window_s=10, kernels=impl)
    closed = agg.add(records(impl, [f] * len(ts), ts), max_ts_ns=max(ts))
    assert [(w.start_ns, w.total("frames")) for w in closed] == [(t0, 1), (t0 + 10 * s, 2), (t0 - 3590 * s, 2)]
    assert agg.clock_jumps == 1 and agg.frames_total == len(ts)
    assert (agg.flush().start_ns, agg.clock_jumps) == (t0 - 3580 * s, 1)
    # no frames at all: the clock tick closes a window whose start is more than a window ahead of it
    agg.add(records(impl, [f], [t0]))
    assert agg.roll_if_due(t0 - 5 * s) == []            # a little behind: the window stays open
    assert [w.start_ns for w in agg.roll_if_due(t0 - 3600 * s)] == [t0] and agg.clock_jumps == 2


def test_hll_estimate_small_and_large():
    regs = np.zeros((1, 64), np.uint8)
    assert hll_estimate(regs)[0] == 0
    table = AggTable(4)
    assert table.nbytes > 0 and table.slots.shape[0] >= 8


# --- both implementations give identical tables ----------------------------------------------------

TEMPLATES = [bytes(f) for f in [
    Ether(src=SCANNER, dst=VICTIM) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1000, dport=80, flags="S"),
    Ether(src=VICTIM, dst=SCANNER) / IP(src="10.0.0.2", dst="10.0.0.1") / TCP(sport=80, dport=1000, flags="SA"),
    Ether(src=VICTIM, dst=SCANNER) / IP(src="10.0.0.2", dst="10.0.0.1") / TCP(sport=81, dport=1000, flags="RA"),
    Ether(src=SCANNER, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=SCANNER, psrc="10.0.0.1", pdst="10.0.0.7"),
    Ether(src=GW, dst=SCANNER) / ARP(op=2, hwsrc=GW, psrc="10.0.0.7", pdst="10.0.0.1"),
    Ether(src=GW, dst=VICTIM) / IP(src="10.0.0.254", dst="10.0.0.2") / UDP(sport=53, dport=999) / DNS(qr=1, rcode=3, qd=DNSQR(qname="a")),
    Ether(src=VICTIM, dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255") / UDP(sport=68, dport=67)
    / BOOTP(chaddr=b"\x02\x00\x00\x00\x00\x09") / DHCP(options=[("message-type", "discover"), ("param_req_list", [1, 3]), "end"]),
    Ether(src=GW, dst=VICTIM) / IP(src="10.0.0.254", dst="10.0.0.2") / ICMP(type=3, code=3) / IP() / UDP(),
    # stealth probes, an ACK probe and the resets they draw; small and large UDP; a tagged frame
    Ether(src=SCANNER, dst=VICTIM) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=40000, dport=21, flags="FPU"),
    Ether(src=SCANNER, dst=VICTIM) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=40000, dport=22, flags=""),
    Ether(src=SCANNER, dst=VICTIM) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=40000, dport=23, flags="A"),
    Ether(src=VICTIM, dst=SCANNER) / IP(src="10.0.0.2", dst="10.0.0.1") / TCP(sport=23, dport=40000, flags="R"),
    Ether(src=SCANNER, dst=VICTIM) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=3000, dport=5000),
    Ether(src=SCANNER, dst=VICTIM) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=3000, dport=5000) / (b"v" * 400),
    Ether(src=SCANNER, dst=VICTIM) / Dot1Q(vlan=42) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=53, dport=53),
    # what the flow bitmaps read: a DNS query, a data segment (sent twice: a retransmission), the ICMP errors
    # quoting a late DNS answer, a TCP connection attempt, an IPv6 datagram
    Ether(src=VICTIM, dst=GW) / IP(src="10.0.0.2", dst="10.0.0.254") / UDP(sport=999, dport=53) / DNS(id=7, qd=DNSQR(qname="a")),
    Ether(src=SCANNER, dst=VICTIM) / IP(src="10.0.0.1", dst="10.0.0.2", id=5) / TCP(sport=1000, dport=80, flags="PA", seq=9) / b"data",
    Ether(src=VICTIM, dst=GW) / IP(src="10.0.0.2", dst="10.0.0.254") / ICMP(type=3, code=3)
    / IP(src="10.0.0.254", dst="10.0.0.2") / UDP(sport=53, dport=999),
    Ether(src=GW, dst=SCANNER) / IP(src="10.0.0.254", dst="10.0.0.1") / ICMP(type=3, code=1)
    / IP(src="10.0.0.1", dst="10.9.0.7") / TCP(sport=1000, dport=443, flags="S"),
    Ether(src=GW, dst=SCANNER) / IPv6(src="fe80::fe", dst="fe80::1") / ICMPv6DestUnreach(code=4)
    / IPv6(src="fe80::1", dst="2001:db8::7") / UDP(sport=53, dport=4000),
]]


@st.composite
def frame(draw):
    f = bytearray(draw(st.sampled_from(TEMPLATES)))
    if draw(st.booleans()):
        f[draw(st.integers(0, 11))] = draw(st.integers(0, 255))  # new addresses
    for _ in range(draw(st.integers(0, 3))):
        f[draw(st.integers(0, len(f) - 1))] = draw(st.integers(0, 255))
    if draw(st.integers(0, 4)) == 0:
        f = f[:draw(st.integers(0, len(f)))]
    return bytes(f)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(frame(), max_size=25), max_size=3), st.integers(3, 12))
def test_twin_and_compiled_tables_agree(batches, cap):
    import probe.fastpath.twin as py
    try:
        import probe._fastpath as c
    except ImportError:
        pytest.skip("compiled fast path not built")
    aggs = [CaptureAggregator(max_devices=cap, window_s=10, kernels=k) for k in (c, py)]
    for frames in batches:
        ts = [10**9 + 7 * i for i in range(len(frames))]
        for agg, k in zip(aggs, (c, py)):
            agg.add(records(k, frames, ts) if frames else np.zeros(0, dtype=k.parse_frames(*batch_columns(FrameBatch.empty()))[0].dtype))
    for name in ("macs", "ips", "arp"):
        a, b = getattr(aggs[0], name), getattr(aggs[1], name)
        for x, y in zip(a.spec, b.spec):
            assert np.array_equal(x, y), name


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(frame(), st.integers(1, 6), st.booleans()), max_size=20), st.integers(1, 6), st.data())
def test_runs_of_one_flow_agree_with_the_twin(runs, cap, data):
    """Frames in runs of the same flow (what the kernel's per-call key cache and its run-at-once
    counting exploit), copies that differ in a port (so the records differ, and what they do may or may
    not), times out of order and zero, small tables that fill up: rows, overflow counts, first/last seen
    and sketches equal the twin's, which adds frame by frame."""
    import probe.fastpath.twin as py
    try:
        import probe._fastpath as c
    except ImportError:
        pytest.skip("compiled fast path not built")
    frames = []
    for f, k, vary in runs:
        for _ in range(k):
            g = bytearray(f)
            if vary and len(g) >= 36:
                g[34:36] = data.draw(st.binary(min_size=2, max_size=2))  # IPv4 TCP/UDP source port
            frames.append(bytes(g))
    if not frames:
        return
    stamps = data.draw(st.lists(st.sampled_from([0, 1, 10**9, 10**9 + 3, 10**9 - 5, 9 * 10**9]),
                                min_size=len(frames), max_size=len(frames)))
    aggs = [CaptureAggregator(max_devices=cap, window_s=10, kernels=k) for k in (c, py)]
    for agg, k in zip(aggs, (c, py)):
        agg.add(records(k, frames, stamps))
    for name in ("macs", "ips", "arp"):
        for x, y in zip(getattr(aggs[0], name).spec, getattr(aggs[1], name).spec):
            assert np.array_equal(x, y), name


def test_destination_seen_absent_then_inserted_is_counted(impl):
    """A destination looked up before it exists, then inserted as a source in the same batch, then
    sent to again: the last frame is received by its row (a remembered miss must not outlive an insert)."""
    to_victim = Ether(src=SCANNER, dst=VICTIM) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=999, dport=5000)
    # broadcast to 0.0.0.0: no destination row is looked up in between
    from_victim = Ether(src=VICTIM, dst="ff:ff:ff:ff:ff:ff") / IP(src="10.0.0.2", dst="0.0.0.0") / UDP(sport=999, dport=5000)
    w = run(impl, [to_victim, to_victim, from_victim, to_victim, to_victim])
    victim = mac_row(w, VICTIM)
    assert victim["frames"] == 1 and victim["rx_frames"] == 2
    ips = dict(w.ip_rows())
    assert ips["10.0.0.2"]["rx_frames"] == 2


def test_full_table_counts_every_overflowed_frame(impl):
    """With the table full, each frame of a run from a new source lands in the overflow row and is
    counted there, frame by frame."""
    first = Ether(src=SCANNER, dst=VICTIM) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=999, dport=5000)
    late = Ether(src=GW, dst=VICTIM) / IP(src="10.0.0.254", dst="10.0.0.2") / UDP(sport=999, dport=5000)
    agg = CaptureAggregator(max_devices=1, window_s=10, kernels=impl)
    agg.add(records(impl, [first] + [late] * 7))
    assert agg.macs.used == 1 and agg.macs.overflow_frames == 7
    assert agg.ips.used == 1 and agg.ips.overflow_frames == 7
    assert int(agg.macs.counts[1, 0]) == 7  # the overflow row's frames


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(frame(), st.integers(0, 20 * 10**9 - 1)), max_size=40))
def test_merged_windows_equal_one_long_window(items):
    from probe import fastpath
    from probe.fastpath.layout import COUNTERS, NON_ADDITIVE
    from probe.state.aggregates import merge_windows
    t0 = 1_700_000_000 * 10**9  # a multiple of both window lengths
    items = sorted(items, key=lambda x: x[1])
    frames = [f for f, _ in items]
    ts = [t0 + t for _, t in items]
    long_agg = CaptureAggregator(max_devices=256, window_s=20, kernels=fastpath)
    short_agg = CaptureAggregator(max_devices=256, window_s=10, kernels=fastpath)
    if frames:
        recs = records(fastpath, frames, ts)
        assert long_agg.add(recs) == []
        closed = short_agg.add(recs)
    else:
        closed = []
    long_w = long_agg.flush()
    short = closed + [w for w in [short_agg.flush()] if w is not None]
    if long_w is None:
        assert not short
        return
    merged = short[0] if len(short) == 1 else merge_windows(*short)
    # plain received traffic only lands on rows that exist, so rx_frames/rx_bytes (and the last_seen
    # they touch) depend on where the boundary falls; everything else must not
    order_dependent = {"rx_frames", "rx_bytes", "last_seen_ns"}
    additive = [i for i, n in enumerate(COUNTERS)
                if (n not in NON_ADDITIVE or n == "first_seen_ns") and n not in order_dependent]
    for name in ("macs", "ips", "arp"):
        a, b = getattr(long_w, name), getattr(merged, name)
        rows_a = {tuple(k): (a.counts[i, additive].tolist(), a.hll[i].tolist()) for i, k in enumerate(a.keys.tolist())}
        rows_b = {tuple(k): (b.counts[i, additive].tolist(), b.hll[i].tolist()) for i, k in enumerate(b.keys.tolist())}
        assert rows_a == rows_b, name
    assert long_w.totals[additive].tolist() == merged.totals[additive].tolist()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(frame(), max_size=40), st.lists(st.integers(-2**40, 2**62), min_size=40, max_size=40))
def test_record_totals_agree_with_numpy(frames, stamps):
    """The pipeline's running totals (flag bits, wire bytes, first and last timestamp) in one pass."""
    import probe.fastpath.twin as py
    kernels = [py]
    try:
        import probe._fastpath as c
        kernels.append(c)
    except ImportError:
        pass
    recs = py.parse_frames(*batch_columns(FrameBatch.from_frames(frames, ts_ns=stamps[:len(frames)])))[0] \
        if frames else np.zeros(0, dtype=py.parse_frames(*batch_columns(FrameBatch.empty()))[0].dtype)
    recs["flags"][::3] |= np.uint32(1 << 31)  # the top bit too
    want = np.zeros(32, np.int64)
    for f in recs["flags"].tolist():
        for b in range(32):
            want[b] += (f >> b) & 1
    for k in kernels:
        counts = np.full(32, 5, np.int64)  # added to, never reset
        got = k.record_totals(recs, counts)
        assert np.array_equal(counts, want + 5), k.__name__
        if len(recs):
            assert got == (int(recs["wirelen"].sum()), int(recs["ts_ns"].min()), int(recs["ts_ns"].max())), k.__name__
        else:
            assert got == (0, 0, 0)
    with pytest.raises(ValueError, match="32 counters"):
        py.record_totals(recs, np.zeros(8, np.int64))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(frame(), st.integers(0, 3)), max_size=40))
def test_parallel_windows_merge_to_the_whole(items):
    """Fanout workers each aggregate a share of the same time slot; merged, they are the whole slot."""
    from probe import fastpath
    from probe.fastpath.layout import COUNTERS, NON_ADDITIVE
    from probe.state.aggregates import merge_parallel
    t0 = 1_700_000_000 * 10**9
    whole = CaptureAggregator(max_devices=256, window_s=10, kernels=fastpath)
    parts = [CaptureAggregator(max_devices=256, window_s=10, kernels=fastpath) for _ in range(4)]
    for i, (f, member) in enumerate(items):
        rec = records(fastpath, [f], [t0 + i])
        whole.add(rec)
        parts[member].add(rec)
    w = whole.flush()
    windows = [x for x in (p.flush() for p in parts) if x is not None]
    if w is None:
        assert not windows
        return
    merged = merge_parallel(windows)
    assert (merged.start_ns, merged.end_ns) == (w.start_ns, w.end_ns)
    # traffic to an address lands on its row only where that row exists (in the member that saw the
    # address send), so received counts and the moves of an address between MACs depend on the split
    split_dependent = {"rx_frames", "rx_bytes", "last_seen_ns", "peer_changes", "icmp_echo_reply_rcvd",
                       "tcp_synack_rcvd", "tcp_rst_rcvd", "arp_reply_rcvd", "icmp_unreach_rcvd",
                       "dns_response_rcvd", "dns_nxdomain_rcvd", "dns_servfail_rcvd",
                       # repeats and retransmissions are seen by the member that holds the flow (or the
                       # identical frame): the kernel's fanout hash keeps those together, this random split
                       # does not (test_flow_split_merges_repeats_and_retransmissions)
                       "dup_frames", "tcp_data", "tcp_retrans"}
    additive = [i for i, n in enumerate(COUNTERS)
                if (n not in NON_ADDITIVE or n == "first_seen_ns") and n not in split_dependent]
    for name in ("macs", "ips", "arp"):
        a, b = getattr(w, name), getattr(merged, name)
        rows_a = {tuple(k): a.counts[i, additive].tolist() for i, k in enumerate(a.keys.tolist())
                  if a.counts[i, COUNTERS.index("frames")]}
        rows_b = {tuple(k): b.counts[i, additive].tolist() for i, k in enumerate(b.keys.tolist())
                  if b.counts[i, COUNTERS.index("frames")]}
        assert rows_a == rows_b, name
    assert w.totals[additive].tolist() == merged.totals[additive].tolist()
    assert np.array_equal(w.totals_hll, merged.totals_hll)


# unicast frames whose classification reads what the others do not: a DHCP offer's server, a UDP and an
# ICMP probe's destination port and host, a DNS error, an ARP reply's and a unicast request's addresses
UNICAST = TEMPLATES + [bytes(f) for f in [
    Ether(src=GW, dst=VICTIM) / IP(src="10.0.0.254", dst="10.0.0.2") / UDP(sport=67, dport=68)
    / BOOTP(op=2, chaddr=b"\x02\x00\x00\x00\x00\x02") / DHCP(options=[("message-type", "offer"), ("server_id", "10.0.0.254"), "end"]),
    Ether(src=SCANNER, dst=VICTIM) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=40000, dport=161),
    Ether(src=SCANNER, dst=VICTIM) / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(type=8),
    Ether(src=GW, dst=VICTIM) / IP(src="10.0.0.254", dst="10.0.0.2") / UDP(sport=53, dport=999) / DNS(qr=1, rcode=2, qd=DNSQR(qname="b")),
    Ether(src=GW, dst=SCANNER) / ARP(op=2, hwsrc=GW, psrc="10.0.0.254", hwdst=SCANNER, pdst="10.0.0.1"),
    Ether(src=SCANNER, dst=VICTIM) / ARP(op=1, hwsrc=SCANNER, psrc="10.0.0.1", pdst="10.0.0.2"),  # a cache refresh
]]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(UNICAST), st.integers(2, 6)), min_size=1, max_size=12), st.integers(1, 6),
       st.data())
def test_fields_classification_does_not_read_may_change_within_a_run(runs, cap, data):
    """The compiled kernel reuses the previous frame's classification when a record differs from it
    only in AGG_UNREAD_FIELDS (and the classes it checks apart). Here copies within each run get random
    values in every one of those fields; the twin classifies every frame afresh, and the tables agree."""
    import probe.fastpath.twin as py
    from probe.fastpath.layout import AGG_UNREAD_FIELDS
    try:
        import probe._fastpath as c
    except ImportError:
        pytest.skip("compiled fast path not built")
    frames = [f for f, k in runs for _ in range(k)]
    recs = records(py, frames, [10**9 + i for i in range(len(frames))]).copy()
    first = 0
    for _, k in runs:
        for i in range(first + 1, first + k):
            for name in AGG_UNREAD_FIELDS:
                if name == "frame_hash":  # the kernel classifies a frame with a hash afresh: kept 0 (unicast)
                    continue
                info = np.iinfo(recs.dtype[name])
                # nonzero (a zero is often what the copy already holds, or what a kernel ignores), the
                # classes' edges among them
                edges = [v for v in (1, 13, 14, 53, 255, 256, 257, info.max) if v <= info.max]
                value = data.draw(st.sampled_from(edges) | st.integers(1, info.max))
                recs[name][i] = value if name != "ts_ns" else 1 + value % (5 * 10**9)
        first += k
    aggs = [CaptureAggregator(max_devices=cap, window_s=10, kernels=k) for k in (c, py)]
    for agg, k in zip(aggs, (c, py)):
        agg.add(recs.copy())
    for name in ("macs", "ips", "arp"):
        for x, y in zip(getattr(aggs[0], name).spec, getattr(aggs[1], name).spec):
            assert np.array_equal(x, y), name


# --- flow bitmaps: distinct flows, so that no single flow raises a finding ---------------------------------

def ip_row(w, ip):
    return dict(w.ip_rows())[ip]


def test_flow_bitmaps_count_distinct_flows_not_packets(impl):
    client, server = "10.0.0.2", "10.0.0.254"
    ask = lambda port, qid, dst=server: (Ether(src=VICTIM, dst=GW) / IP(src=client, dst=dst)
                                         / UDP(sport=port, dport=53) / DNS(id=qid, qd=DNSQR(qname="x.example")))
    nx = lambda port, qid, src=server: (Ether(src=GW, dst=VICTIM) / IP(src=src, dst=client)
                                        / UDP(sport=53, dport=port) / DNS(id=qid, qr=1, rcode=3, qd=DNSQR(qname="x.example")))
    # one query retried three times to one server, then to a second one; one NXDOMAIN for each of two queries
    frames = [ask(5000, 1)] * 3 + [ask(5000, 1, dst="10.0.0.253"), nx(5001, 2), nx(5001, 2), nx(5002, 3)]
    # a refused connection (its RST seen twice) and two more; a flow retransmitting three segments
    rst = lambda sport, dport: (Ether(src=GW, dst=SCANNER) / IP(src="10.0.0.254", dst="10.0.0.1")
                                / TCP(sport=sport, dport=dport, flags="RA"))
    frames += [rst(80, 40000), rst(80, 40000), rst(80, 40001), rst(443, 40001)]
    seg = lambda seq, ip_id, sport=1000: (Ether(src=SCANNER, dst=VICTIM) / IP(src="10.0.0.1", dst=client, id=ip_id)
                                          / TCP(sport=sport, dport=80, flags="PA", seq=seq) / (b"d" * 10))
    frames += [seg(1, 1), seg(11, 2), seg(1, 3), seg(11, 4), seg(1, 5), seg(1, 6, sport=1001), seg(1, 7, sport=1001)]
    w = run(impl, frames)
    c = ip_row(w, client)
    assert c["dns_query"] == 4 and c["dns_query_flows"] == 2      # a retry to one server is one transaction
    assert c["dns_nxdomain_rcvd"] == 3 and c["dns_error_flows"] == 2
    assert ip_row(w, server)["dns_error_flows"] == 2               # the resolver's row: the same two
    s = ip_row(w, "10.0.0.1")
    assert s["tcp_rst_rcvd"] == 4 and s["rst_flows"] == 3
    assert s["tcp_retrans"] == 4 and s["retrans_flows"] == 2


def test_unreachables_for_late_dns_answers_are_counted_apart(impl):
    """A port unreachable quoting a UDP datagram from port 53 is a DNS answer that reached a client after it
    gave up: counted in icmp_unreach_dns_rcvd and left out of the destinations it could not reach."""
    late = [Ether(src=VICTIM, dst=GW) / IP(src=f"10.0.0.{10 + k}", dst="10.0.0.254") / ICMP(type=3, code=3)
            / IP(src="10.0.0.254", dst=f"10.0.0.{10 + k}") / UDP(sport=53, dport=30000 + k) for k in range(20)]
    router = [Ether(src=GW, dst=SCANNER) / IP(src="10.0.0.254", dst="10.0.0.1") / ICMP(type=3, code=1)
              / IP(src="10.0.0.1", dst=f"10.9.0.{k}") / TCP(sport=40000, dport=443, flags="S") for k in range(5)]
    closed = [Ether(src=VICTIM, dst=SCANNER) / IP(src="10.0.0.2", dst="10.0.0.1") / ICMP(type=3, code=3)
              / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=40000, dport=7000)] * 3
    w = run(impl, late + router + closed)
    dns = ip_row(w, "10.0.0.254")
    assert dns["icmp_unreach_rcvd"] == 20 and dns["icmp_unreach_dns_rcvd"] == 20 and dns.get("unreach_dsts", 0) == 0
    host = ip_row(w, "10.0.0.1")
    assert host["icmp_unreach_rcvd"] == 8 and host.get("icmp_unreach_dns_rcvd", 0) == 0
    # five unreachable hosts and one closed port (told three times): six flows in 64 bits, two of which share
    # a bit here (the birthday odds of six in 64 are one in five), so the estimate says at least five
    assert host["unreach_dsts"] in (5, 6)


def test_bitmap_estimate():
    assert bitmap_estimate(np.array([0, 1, 0b1011], np.uint64)).tolist() == [0, 1, 3]
    full = np.array([2**64 - 1], np.uint64)
    assert bitmap_estimate(full).tolist() == [266]  # 64 ln 64: "at least that many"
    half = np.array([2**32 - 1], np.uint64)
    assert bitmap_estimate(half).tolist() == [44]   # 32 bits set: 64 ln 2 flows expected


def test_merged_windows_or_the_bitmaps(impl):
    rst = lambda dport, t: (Ether(src=GW, dst=SCANNER) / IP(src="10.0.0.254", dst="10.0.0.1")
                            / TCP(sport=80, dport=dport, flags="RA"))
    agg = CaptureAggregator(max_devices=64, window_s=10, kernels=impl)
    frames = [rst(40000 + k, k) for k in range(4)]
    ts = [10**9, 2 * 10**9, 12 * 10**9, 13 * 10**9]
    windows = agg.add(records(impl, frames, ts)) + [agg.flush()]
    from probe.state.aggregates import merge_windows
    assert [ip_row(x, "10.0.0.1")["rst_flows"] for x in windows] == [2, 2]
    assert ip_row(merge_windows(*windows), "10.0.0.1")["rst_flows"] == 4
