"""The capture collector: metric families from a pipeline, bounded labels, values from what was seen."""
from __future__ import annotations

from prometheus_client import CollectorRegistry
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import ARP, Ether

from probe.config import CaptureConfig, DetectionConfig
from probe.exposition.capture_collector import CaptureCollector
from probe.findings.pipeline import CapturePipeline
from probe.sources.frames import FrameBatch


def test_collector_values_and_drops():
    pipe = CapturePipeline(CaptureConfig(window=10, max_devices=16), DetectionConfig())
    frames = [Ether(src=f"02:00:00:00:00:{k:02x}", dst="02:00:00:00:00:ff") / IP(src=f"10.0.0.{k}", dst="10.0.0.254")
              / TCP(dport=80, flags="S") for k in range(1, 31)]
    frames.append(Ether(src="02:00:00:00:00:01", dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="10.0.0.1", pdst="10.0.0.254"))
    pipe.add_batch(FrameBatch.from_frames([bytes(f) for f in frames], ts_ns=[10**9] * len(frames)))
    pipe.finish()
    reg = CollectorRegistry(auto_describe=False)
    reg.register(CaptureCollector(pipe.stats, top_devices=5))
    v = reg.get_sample_value
    assert v("sitevigil_capture_frames_total") == 31
    assert v("sitevigil_capture_protocol_frames_total", {"protocol": "tcp"}) == 30
    assert v("sitevigil_capture_protocol_frames_total", {"protocol": "arp"}) == 1
    assert v("sitevigil_capture_destination_frames_total", {"kind": "broadcast"}) == 1
    assert v("sitevigil_capture_events_total", {"event": "tcp_syn"}) == 30
    assert v("sitevigil_capture_devices", {"table": "mac"}) == 16  # bounded by max_devices
    assert v("sitevigil_capture_table_overflow_frames_total", {"table": "mac"}) == 14
    tops = [s for m in reg.collect() if m.name == "sitevigil_capture_top_device_frames" for s in m.samples]
    assert len(tops) == 5


def test_fragments_and_esp_are_counted_not_malformed():
    from scapy.layers.inet import UDP, fragment
    from scapy.packet import Raw
    pipe = CapturePipeline(CaptureConfig(window=10, max_devices=16), DetectionConfig())
    big = IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=53, dport=4000) / Raw(b"a" * 3000)
    frames = [Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / p for p in fragment(big, fragsize=1400)]
    frames.append(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(proto=50) / Raw(bytes(40)))
    pipe.add_batch(FrameBatch.from_frames([bytes(f) for f in frames], ts_ns=[10**9] * len(frames)))
    pipe.finish()
    reg = CollectorRegistry(auto_describe=False)
    reg.register(CaptureCollector(pipe.stats))
    v = reg.get_sample_value
    assert v("sitevigil_capture_malformed_frames_total") == 0
    assert v("sitevigil_capture_fragment_frames_total") == 3
    assert v("sitevigil_capture_protocol_frames_total", {"protocol": "fragment"}) == 3
    assert v("sitevigil_capture_protocol_frames_total", {"protocol": "udp"}) == 1  # the first fragment's header
    assert v("sitevigil_capture_protocol_frames_total", {"protocol": "esp"}) == 1
