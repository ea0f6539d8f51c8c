"""Prometheus metrics of the passive capture: frames, protocols, LAN events, tables, findings.

    registry.register(CaptureCollector(pipeline.stats, drops=ring.drop_stats))

`stats` returns probe.findings.pipeline.CaptureStats; `drops` (live capture only) returns a dict with
any of kernel_drops, kernel_freezes, interface_drops (running totals). Every label set is bounded:
protocols by the parser's flags, events by the aggregate counters, findings by their kinds, and
per-device series only for the top `top_devices` talkers of the last window.
"""
from __future__ import annotations

from typing import Callable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from probe.findings.lan import KINDS
from probe.findings.pipeline import CaptureStats
from probe.state.aggregates import format_mac

PROTOCOL_FLAGS = ("ARP", "IPV4", "IPV6", "TCP", "UDP", "ICMP", "DNS", "DHCP", "LLDP", "CDP", "STP", "MDNS", "LLMNR",
                  "NBNS", "SSDP", "VLAN_TAGGED", "LLC", "FRAGMENT")
EVENTS = ("tcp_syn", "tcp_synack", "tcp_rst", "arp_request", "arp_reply", "arp_gratuitous", "dhcp_discover",
          "dhcp_offer", "dhcp_request", "dhcp_ack", "dhcp_nak", "dhcp_inform", "dns_query", "dns_response",
          "dns_nxdomain", "dns_servfail", "icmp_unreach", "icmp_echo_request", "icmp_time_exceeded", "udp_probe")


class CaptureCollector(Collector):
    def __init__(self, stats: Callable[[], CaptureStats], *, drops: Callable[[], dict] | None = None,
                 top_devices: int = 10):
        self._stats = stats
        self._drops = drops
        self._top = top_devices

    def describe(self):
        return []

    def collect(self):
        s = self._stats()
        c = CounterMetricFamily("sitevigil_capture_frames", "Frames seen on the capture port.")
        c.add_metric([], s.frames)
        yield c
        c = CounterMetricFamily("sitevigil_capture_bytes", "Bytes on the wire of the frames seen on the capture port.")
        c.add_metric([], s.bytes)
        yield c
        c = CounterMetricFamily("sitevigil_capture_malformed_frames",
                                "Frames whose length or header fields contradict the frame; counted, not aggregated.")
        c.add_metric([], s.malformed)
        yield c
        c = CounterMetricFamily("sitevigil_capture_truncated_frames", "Frames cut by the snap length before a header ended.")
        c.add_metric([], s.flag_frames.get("TRUNCATED", 0))
        yield c
        c = CounterMetricFamily("sitevigil_capture_protocol_frames", "Frames carrying a protocol, by protocol.",
                                labels=["protocol"])
        for flag in PROTOCOL_FLAGS:
            c.add_metric([flag.lower()], s.flag_frames.get(flag, 0))
        yield c
        c = CounterMetricFamily("sitevigil_capture_destination_frames",
                                "Frames by destination kind (broadcast, multicast).", labels=["kind"])
        c.add_metric(["broadcast"], s.flag_frames.get("BROADCAST", 0))
        c.add_metric(["multicast"], s.flag_frames.get("MULTICAST", 0))
        yield c
        c = CounterMetricFamily("sitevigil_capture_events", "LAN events seen in closed capture windows, by event.",
                                labels=["event"])
        for e in EVENTS:
            c.add_metric([e], s.events.get(e, 0))
        yield c
        c = CounterMetricFamily("sitevigil_capture_windows", "Capture windows closed and handed to the detectors.")
        c.add_metric([], s.windows)
        yield c
        c = CounterMetricFamily("sitevigil_capture_table_overflow_frames",
                                "Frames whose source address did not fit the bounded device table.", labels=["table"])
        for table, n in sorted(s.table_overflow_frames.items()):
            c.add_metric([table], n)
        yield c
        if s.last_window is not None:
            g = GaugeMetricFamily("sitevigil_capture_devices", "Source addresses seen in the last capture window.",
                                  labels=["table"])
            g.add_metric(["mac"], len(s.last_window.macs))
            g.add_metric(["ip"], len(s.last_window.ips))
            yield g
            g = GaugeMetricFamily("sitevigil_capture_top_device_frames",
                                  f"Frames sent in the last window by its top {self._top} talkers.", labels=["mac"])
            snap = s.last_window.macs
            if len(snap):
                frames = snap.col("frames")
                for i in frames.argsort()[::-1][:self._top]:
                    g.add_metric([format_mac(snap.keys[i, 0])], float(frames[i]))
            yield g
        c = CounterMetricFamily("sitevigil_findings_raised",
                                "LAN finding episodes started, by kind and the severity they started with.",
                                labels=["kind", "severity"])
        for (kind, sev), n in sorted(s.findings_by_severity.items()):
            c.add_metric([kind, sev], n)
        yield c
        g = GaugeMetricFamily("sitevigil_findings_active", "LAN finding episodes open now, by kind.", labels=["kind"])
        for kind in KINDS:
            g.add_metric([kind], s.findings_active.get(kind, 0))
        yield g
        if self._drops is not None:
            d = self._drops()
            for key, name, doc in (
                    ("kernel_drops", "sitevigil_capture_kernel_dropped_frames", "Frames the kernel dropped (ring full)."),
                    ("kernel_freezes", "sitevigil_capture_kernel_queue_freezes", "Times the kernel froze the ring queue."),
                    ("interface_drops", "sitevigil_capture_interface_dropped_frames", "Frames the interface dropped.")):
                if key in d:
                    c = CounterMetricFamily(name, doc)
                    c.add_metric([], d[key])
                    yield c
