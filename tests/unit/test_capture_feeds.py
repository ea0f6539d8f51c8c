"""What the live capture hands the rest of the daemon: per-device anomaly scores at each closed window,
devices learnt passively for the inventory, and no findings about the probe's own traffic.

The capture subsystem runs with a scripted ring (tests/unit/test_capture_subsystem.FakeRing), so whole
minutes of frames pass in a moment; the sweep subsystem and the anomaly scores are the real ones.
"""
from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import CollectorRegistry
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether

from probe.config import CaptureConfig, DetectionConfig, load_text
from probe.subsystems.sweep import SweepSubsystem
from probe.exposition.anomaly_collector import AnomalyCollector
from probe.findings.pipeline import CapturePipeline
from probe.sources import capfile
from probe.subsystems.capture import CaptureSubsystem, PassiveFeed
from probe.sources.frames import FrameBatch
from probe.state.aggregates import DEVICE_SERIES, device_series
from probe.state.anomaly import AnomalyScores
from probe.subsystems.base import Context
from tests.unit.test_capture_subsystem import FakeRing, sysfs, wait_for

S = 10**9
A, B, GW = "02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:01"


@pytest.fixture(autouse=True)
def _reset():
    FakeRing.script, FakeRing.opened, FakeRing.fail_open = [], [], []


def _config():
    return load_text('{"capture": {"interface": "mirror0", "window": "1s"}, "sweep": {"enabled": false}}')


def _daemon_parts(tmp_path, cfg, stats_seconds=0.01):
    """The capture and sweep subsystems wired as the daemon wires them (one Context, shared services)."""
    ctx = Context(store=None, anomaly=AnomalyScores(1000))
    cap = CaptureSubsystem(cfg, ctx, ring_class=FakeRing, sysfs=sysfs(tmp_path), stats_seconds=stats_seconds,
                           retry_seconds=0.05)
    sweep = SweepSubsystem(cfg, ctx)
    return ctx, cap, sweep


def _batches(frames_ts, size=4096):
    frames_ts = sorted(frames_ts, key=lambda x: x[0])
    for i in range(0, len(frames_ts), size):
        chunk = frames_ts[i:i + size]
        yield FrameBatch.from_frames([f for _, f in chunk], ts_ns=[t for t, _ in chunk])


def _udp(src, sip, dip, sport=40000):
    return bytes(Ether(src=src, dst=GW) / IP(src=sip, dst=dip) / UDP(sport=sport, dport=53) / (b"x" * 20))


def test_device_series_are_rates_of_each_mac_in_the_window():
    pipe = CapturePipeline(CaptureConfig(window=2, max_devices=64), DetectionConfig())
    t0 = 1_000 * S
    syn = bytes(Ether(src=A, dst=GW) / IP(src="10.0.0.10", dst="10.0.0.1") / TCP(sport=40000, dport=80, flags="S"))
    frames = [(t0 + i * 1000, syn) for i in range(10)] + [(t0 + 5000 + i, _udp(B, "10.0.0.11", "10.0.0.1"))
                                                         for i in range(4)]
    closed = []
    pipe.on_window = closed.append
    for b in _batches(frames):
        pipe.add_batch(b)
    pipe.finish()
    assert len(closed) == 1
    keys, ts, values = device_series(closed[0])
    got = dict(zip(keys, values))
    assert len(keys) == 2 * len(DEVICE_SERIES) and set(ts) == {closed[0].end_ns / S}
    assert got[(A, "frames")] == pytest.approx(10 / 2) and got[(A, "tcp_syn")] == pytest.approx(10 / 2)
    assert got[(A, "unanswered_syn")] == pytest.approx(10 / 2)
    assert got[(A, "bytes")] == pytest.approx(10 * len(syn) / 2)
    assert got[(B, "frames")] == pytest.approx(4 / 2) and got[(B, "tcp_syn")] == 0


def test_a_device_whose_rate_jumps_gets_a_high_anomaly_score(tmp_path):
    """Two devices send steadily for two minutes of 1 s windows; then one sends a hundred times more."""
    t0 = (time.time_ns() // S - 200) * S  # recent: the exporter hides series not updated lately
    frames = []
    for sec in range(150):
        base = t0 + sec * S
        n_a = 20 if sec < 130 else 2000
        frames += [(base + i * (S // (n_a + 1)), _udp(A, "10.0.0.10", "10.0.0.1", 40000 + i % 7)) for i in range(n_a)]
        frames += [(base + i * (S // 21), _udp(B, "10.0.0.11", "10.0.0.1", 40000 + i % 7)) for i in range(20)]

    async def go():
        # The stream is replayed faster than its clock: the daemon's once-a-second tick (which closes a
        # quiet window by the wall clock) would cut windows short, so it runs once, after one frame.
        ctx, cap, sweep = _daemon_parts(tmp_path, _config(), stats_seconds=3600)
        FakeRing.script = [next(_batches(frames[:1]))] + list(_batches(frames[1:]))
        await cap.start()
        await sweep.start()
        assert await wait_for(lambda: not FakeRing.script, timeout=20)
        # windows are scored on the event loop: wait until every window the stream closed is in
        assert await wait_for(lambda: ctx.anomaly.samples_total >= 149 * 2 * len(DEVICE_SERIES), timeout=20)
        await cap.stop()
        await sweep.stop()
        return ctx.anomaly

    scores = asyncio.run(go())
    assert scores.score_of((A, "frames")) >= 0.5, scores.top(5)
    assert scores.score_of((B, "frames")) < 0.2, scores.top(5)
    reg = CollectorRegistry(auto_describe=False)
    reg.register(AnomalyCollector(scores, top_n=10, threshold=0.35))
    assert reg.get_sample_value("sitevigil_anomaly_device_score_max", {"device": A}) >= 0.5
    assert reg.get_sample_value("sitevigil_anomaly_device_score_max", {"device": B}) < 0.2
    assert reg.get_sample_value("sitevigil_anomaly_score", {"device": A, "series": "frames"}) >= 0.5


def test_devices_seen_only_passively_reach_the_inventory_with_names(tmp_path, shared_data):
    pcaps = shared_data / "pcap"
    batches = [b for name in ("lldp.pcap", "cdp_v1.pcap", "mdns.pcap", "dhcp_dora_lan_192-168-1.pcapng")
               for b in capfile.read_batches(str(pcaps / name))]
    arp = bytes(Ether(src=A, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=A, psrc="10.0.0.10", pdst="10.0.0.1"))
    batches.append(FrameBatch.from_frames([arp], ts_ns=[time.time_ns() - 5 * S]))

    async def go():
        ctx, cap, sweep = _daemon_parts(tmp_path, _config())
        FakeRing.script = list(batches)
        await cap.start()
        await sweep.start()
        assert await wait_for(lambda: sweep.inventory.get(A) is not None)  # the last window closed too
        await cap.stop()
        await sweep.stop()
        return sweep.inventory, cap.passive

    inv, feed = asyncio.run(go())
    sw = inv.get("00:22:2d:81:db:10")
    assert sw.name == "SMCGS8P-Smart" and sw.type == "switch" and "lldp" in sw.sources
    r1 = inv.get("00:e0:1e:d5:d5:15")
    assert r1.name == "R1" and r1.type == "router"
    vm = inv.get("8a:3c:d6:e1:4d:c4")
    assert vm.names["mdns"] == "johanna-QEMU-Virtual-Machine" and vm.ip == "10.0.2.7"
    client = inv.get("00:0c:29:59:fd:21")
    assert client.name == "ubuntu2" and client.facts["dhcp_params"][:3] == [1, 28, 2]
    assert inv.get(A).ip == "10.0.0.10" and "arp" in inv.get(A).sources  # the window's ARP binding
    assert feed.decoded_total > 0 and feed.skipped_total == 0


def test_passive_decoding_is_bounded_per_second():
    class Target:
        infos: list = []

        def learn_decoded(self, infos):
            Target.infos += infos

    clock = [100.0]
    feed = PassiveFeed(Target(), max_per_second=3, clock=lambda: clock[0])
    frame = bytes(Ether(src=A, dst="01:00:5e:00:00:fb") / IP(src="10.0.0.10", dst="224.0.0.251")
                  / UDP(sport=5353, dport=5353) / bytes.fromhex("000084000000000100000000"
                                                                 "04686f7374056c6f63616c0000010001000000780004"
                                                                 "0a00000a"))
    pipe = CapturePipeline(CaptureConfig(window=10, max_devices=64), DetectionConfig())
    pipe.on_records = feed.frames
    pipe.add_batch(FrameBatch.from_frames([frame] * 5, ts_ns=[S * 100 + i for i in range(5)]))
    assert len(Target.infos) == 3 and feed.skipped_total == 2
    assert Target.infos[0]["src_ip"] == "10.0.0.10" and Target.infos[0]["protocol"] == "mdns"
    clock[0] += 1
    pipe.add_batch(FrameBatch.from_frames([frame] * 2, ts_ns=[S * 101 + i for i in range(2)]))
    assert len(Target.infos) == 5


def test_the_probes_own_scan_is_not_a_finding_but_a_scan_of_the_probe_is(shared_data):
    path = str(shared_data / "pcap" / "portscan_nmap_syn_1000ports.pcapng")

    def findings(own=()):
        pipe = CapturePipeline(CaptureConfig(window=10, max_devices=4096), DetectionConfig(), own_devices=own)
        for b in capfile.read_batches(path):
            pipe.add_batch(b)
        pipe.finish()
        return pipe.findings.all_findings()

    scans = [f for f in findings() if f.kind == "port_scan"]
    assert scans, "the capture shows a port scan"
    scanner, mac = scans[0].device, scans[0].evidence.get("mac")
    victims = {str(v) for f in findings() for v in f.evidence.values() if isinstance(v, str)} - {scanner, mac}
    # the scanner is the probe (its own sweep or poll): nothing about it, and nothing else instead
    quiet = findings(own={scanner, mac})
    assert [f for f in quiet if f.device in (scanner, mac)] == []
    assert not [f for f in quiet if f.kind in ("port_scan", "host_sweep", "syn_flood")], quiet
    # the probe is the one scanned: the scanner is still reported
    target = next(iter(victims), "10.255.255.254")
    assert any(f.kind == "port_scan" and f.device == scanner for f in findings(own={target}))


def test_device_series_keep_the_busiest_devices_when_bounded():
    pipe = CapturePipeline(CaptureConfig(window=2, max_devices=64), DetectionConfig())
    closed = []
    pipe.on_window = closed.append
    frames = []
    for d in range(10):  # device d sends d + 1 frames
        mac = f"02:00:00:00:01:{d:02x}"
        frames += [(1_000 * S + d * 1000 + i, _udp(mac, f"10.0.1.{d + 1}", "10.0.0.1")) for i in range(d + 1)]
    for b in _batches(frames):
        pipe.add_batch(b)
    pipe.finish()
    keys, _, values = device_series(closed[0], max_devices=3)
    assert {k[0] for k in keys} == {f"02:00:00:00:01:{d:02x}" for d in (7, 8, 9)}
    assert dict(zip(keys, values))[("02:00:00:00:01:09", "frames")] == pytest.approx(10 / 2)
    assert len(device_series(closed[0])[0]) == 10 * len(DEVICE_SERIES)


def test_arp_bindings_reach_the_inventory_bounded():
    class Target:
        rows: list = []

        def observe_table(self, rows, source, ts=None):
            Target.rows += rows

    pipe = CapturePipeline(CaptureConfig(window=2, max_devices=256), DetectionConfig())
    feed = PassiveFeed(Target(), max_per_second=10, own={"02:00:00:00:02:00"})  # the probe: not learnt
    pipe.on_window = feed.window
    frames = []
    for d in range(50):  # a spoofed ARP flood: 50 bindings in one 2 s window
        mac = f"02:00:00:00:02:{d:02x}"
        frames.append((1_000 * S + d, bytes(Ether(src=mac, dst="ff:ff:ff:ff:ff:ff")
                                            / ARP(op=1, hwsrc=mac, psrc=f"10.0.2.{d + 1}", pdst="10.0.0.1"))))
    for b in _batches(frames):
        pipe.add_batch(b)
    pipe.finish()
    assert len(Target.rows) == 19 and feed.skipped_total == 30
    assert "02:00:00:00:02:00" not in {mac for mac, _ in Target.rows}
    assert all(ip.startswith("10.0.2.") and mac.startswith("02:00:00:00:02:") for mac, ip in Target.rows)
