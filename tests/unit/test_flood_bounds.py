"""A long flood of spoofed sources (UDP and ARP from random MACs and IPs) through the whole capture
pipeline on its default configuration: every structure that remembers addresses stays within its bound,
memory stops growing once the bounds are reached, the real hosts keep their rows and their ARP
bindings, and the flood is a finding. (benchmarks/bench_flood.py measures the daemon's RSS under a real
1,000,000-frame flood.)"""
from __future__ import annotations

import ipaddress
import tracemalloc

import numpy as np
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Ether

from probe.config import CaptureConfig, DetectionConfig
from probe.findings.lan import ArpDetector, MacFloodDetector
from probe.findings.pipeline import CapturePipeline
from probe.sources.frames import FrameBatch
from probe.state.aggregates import format_mac

S = 10**9
T0 = 1_700_000_000 * S
GW_MAC, GW_IP = "02:00:00:00:00:fe", "10.0.0.254"
HOSTS = [(f"02:00:00:00:01:{i:02x}", f"10.0.0.{i}") for i in range(1, 6)]
WINDOW_S = 2
PER_WINDOW = 6000  # spoofed frames per window: past the default table (4096 rows)


def _spoofed(rng, n: int) -> list[bytes]:
    udp = bytearray(bytes(Ether(src=GW_MAC, dst=HOSTS[0][0]) / IP(src="1.1.1.1", dst=HOSTS[0][1]) / UDP(dport=5000)))
    arp = bytearray(bytes(Ether(src=GW_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(op=2, hwsrc=GW_MAC, psrc="1.1.1.1",
                                                                           pdst=HOSTS[0][1])))
    out = []
    macs = (rng.integers(1, 1 << 47, n, dtype=np.int64) << 1).tolist()
    ips = rng.integers(1, 1 << 32, n, dtype=np.int64).tolist()
    for i, (m, a) in enumerate(zip(macs, ips)):
        mb, ab = m.to_bytes(6, "big"), a.to_bytes(4, "big")
        if i % 2:
            udp[6:12], udp[26:30] = mb, ab
            out.append(bytes(udp))
        else:
            arp[6:12], arp[22:28], arp[28:32] = mb, mb, ab
            out.append(bytes(arp))
    return out


def _lan() -> list[bytes]:
    """What the real hosts send in every window: DNS to the gateway and an ARP reply for themselves."""
    out = []
    for mac, ip in HOSTS:
        out += [bytes(Ether(src=mac, dst=GW_MAC) / IP(src=ip, dst=GW_IP) / UDP(sport=40000, dport=53))] * 3
        out.append(bytes(Ether(src=mac, dst=GW_MAC) / ARP(op=2, hwsrc=mac, psrc=ip, hwdst=GW_MAC, pdst=GW_IP)))
    return out


def test_a_long_spoofed_flood_stays_bounded_and_the_real_hosts_survive():
    rng = np.random.default_rng(11)
    pipe = CapturePipeline(CaptureConfig(window=WINDOW_S), DetectionConfig())
    arp = next(d for d in pipe.engine.detectors if isinstance(d, ArpDetector))
    macflood = next(d for d in pipe.engine.detectors if isinstance(d, MacFloodDetector))
    real = {m for m, _ in HOSTS}
    seen = []  # per window: (frames in the overflow row, each real host's frames); windows are not kept

    def on_window(w):
        frames = dict(zip((format_mac(k) for k in w.macs.keys[:, 0]), w.macs.col("frames").tolist()))
        seen.append((w.macs.overflow_frames, {m: frames.get(m) for m in real}))
    pipe.on_window = on_window
    traced = []
    tracemalloc.start()
    try:
        for n in range(16):
            t0 = T0 + n * WINDOW_S * S
            frames = _lan() if n < 2 else _spoofed(rng, PER_WINDOW) + _lan()  # the flood speaks first
            stamps = [t0 + 1000 * (i + 1) for i in range(len(frames))]
            for i in range(0, len(frames), 4096):
                pipe.add_batch(FrameBatch.from_frames(frames[i:i + 4096], ts_ns=stamps[i:i + 4096]))
            if n in (7, 15):
                traced.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    pipe.finish()
    cfg = pipe.agg
    # every remembering structure within its bound
    assert len(arp.claims) <= arp.max_ips and len(arp.undecided) <= arp.max_ips
    assert len(arp.switched) <= arp.max_ips and len(arp.gateways) <= arp.max_ips
    assert len(macflood.known) <= macflood.max_known
    for table in (cfg.macs, cfg.ips, cfg.arp):
        assert table.capacity == 4096  # the shipped default
    # past the bounds, memory stops growing: 8 more flood windows (48,000 spoofed sources) add < 2 MiB
    assert traced[1] - traced[0] < 2 * 2**20, f"grew {(traced[1] - traced[0]) / 2**20:.1f} MiB"
    # the real hosts kept their rows through the flood, every window of it after its first
    assert len(seen) == 16
    for n, (overflow, frames) in enumerate(seen[3:], 3):
        assert overflow > 0 and frames == {m: 4 for m in real}, f"window {n}: {frames}"
    # and their ARP bindings: the flood's claims did not evict them
    for _, ip in HOSTS:
        assert int(ipaddress.IPv4Address(ip)) in arp.claims
    kinds = {f.kind for f in pipe.findings.all_findings()}
    assert "mac_flood" in kinds
    assert not kinds & {"arp_spoofing", "duplicate_ip"}, kinds
