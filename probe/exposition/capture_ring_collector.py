"""Metrics of the live capture itself: what the ring saw and everything it missed.

The snapshot callable (CaptureSubsystem.snapshot) is injected, so tests build their own. Per-device
aggregates, protocols and findings from the captured frames are capture_collector.py's job; when that
collector runs, it also exports frames, bytes and malformed, and this one leaves them out.
"""
from __future__ import annotations

from typing import Callable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector


class CaptureRingCollector(Collector):
    def __init__(self, snapshot: Callable[[], dict], *, frames: bool = True):
        self._snapshot = snapshot
        self._frames = frames  # False when capture_collector.CaptureCollector exports frames/bytes/malformed

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
        frames = (
            ("sitevigil_capture_frames", "Frames read from the capture ring.", c.frames),
            ("sitevigil_capture_bytes", "Bytes on the wire of the frames read (VLAN tags included).", c.bytes),
            ("sitevigil_capture_malformed_frames", "Captured frames the parser found malformed.", c.malformed),
        ) if self._frames else ()
        for name, doc, value in frames + (
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
        for name, doc, key in (
            ("sitevigil_capture_opens", "Captures started on the interface (at start, after an interruption, "
             "after a reload).", "opens"),
            ("sitevigil_capture_interruptions", "Captures that stopped while running: the interface went down or "
             "was removed, or an error (the reason is in sitevigil_subsystem_state and the log); it retries.",
             "interruptions"),
        ):
            fam = CounterMetricFamily(name, doc)
            fam.add_metric([], float(snap[key]))
            yield fam
        last = GaugeMetricFamily("sitevigil_capture_last_frame_timestamp_seconds",
                                 "Capture time of the newest frame read (0 before the first).")
        last.add_metric([], c.last_frame_ns / 1e9)
        yield last
