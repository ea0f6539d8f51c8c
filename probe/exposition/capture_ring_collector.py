"""Metrics of the live capture itself: frames and bytes seen, and everything it missed.

The snapshot callable (CaptureSubsystem.snapshot) is injected, so tests build their own. Per-device
aggregates from the captured frames are another collector's job (capture_collector.py).
"""
from __future__ import annotations

from typing import Callable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector


class CaptureRingCollector(Collector):
    def __init__(self, snapshot: Callable[[], dict]):
        self._snapshot = snapshot

    def describe(self):
        return []

    def collect(self):
        snap = self._snapshot()
        c = snap["counters"]
        cfg = snap["config"]
        info = InfoMetricFamily("sitevigil_capture", "What the passive capture listens on and how.")
        info.add_metric([], {"interface": cfg.interface or "", "bpf_filter": cfg.bpf_filter,
                             "implementation": snap["implementation"], "fanout": str(cfg.fanout),
                             "promiscuous": str(cfg.promiscuous).lower()})
        yield info
        ring = GaugeMetricFamily("sitevigil_capture_ring_size_bytes",
                                 "Memory of the capture ring(s): block size x block count x fanout.")
        ring.add_metric([], float(int(cfg.block_size) * int(cfg.block_count) * int(cfg.fanout)))
        yield ring
        for name, doc, value in (
            ("sitevigil_capture_frames", "Frames read from the capture ring.", c.frames),
            ("sitevigil_capture_bytes", "Bytes on the wire of the frames read (VLAN tags included).", c.bytes),
            ("sitevigil_capture_malformed_frames", "Captured frames the parser found malformed.", c.malformed),
            ("sitevigil_capture_kernel_packets",
             "Frames the kernel delivered to the capture socket, dropped ones included (PACKET_STATISTICS).",
             c.kernel_packets),
            ("sitevigil_capture_kernel_drops",
             "Frames the kernel dropped because the capture ring was full (PACKET_STATISTICS).", c.kernel_drops),
            ("sitevigil_capture_kernel_freeze_queue",
             "Times the kernel found the ring frozen (tp_freeze_q_cnt).", c.kernel_freeze_queue),
        ):
            fam = CounterMetricFamily(name, doc)
            fam.add_metric([], float(value))
            yield fam
        drops = CounterMetricFamily(
            "sitevigil_capture_interface_drops",
            "The capture interface's own receive losses since it came up (/sys/class/net/IF/statistics).",
            labels=["counter"])
        for counter, value in sorted(snap["interface_drops"].items()):
            drops.add_metric([counter], float(value))
        yield drops
        last = GaugeMetricFamily("sitevigil_capture_last_frame_timestamp_seconds",
                                 "Capture time of the newest frame read (0 before the first).")
        last.add_metric([], c.last_frame_ns / 1e9)
        yield last
