"""Prometheus metrics of the passive capture: frames, protocols, LAN events, tables.

Findings are exported once, by the ledger (probe.findings.ledger.LedgerCollector).

    registry.register(CaptureCollector(pipeline.stats))

`stats` returns probe.findings.pipeline.CaptureStats. Kernel and interface drops of the live ring are
exported by probe.exposition.capture_ring_collector. Every label set is bounded:
protocols by the parser's flags, events by the aggregate counters, and
per-device series only for the top `top_devices` talkers of the last window.
"""
from __future__ import annotations

from typing import Callable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from probe.findings.pipeline import CaptureStats
from probe.state.aggregates import format_mac

PROTOCOL_FLAGS = ("ARP", "IPV4", "IPV6", "TCP", "UDP", "ICMP", "DNS", "DHCP", "LLDP", "CDP", "STP", "MDNS", "LLMNR",
                  "NBNS", "SSDP", "VLAN_TAGGED", "LLC", "FRAGMENT", "ESP")
EVENTS = ("tcp_syn", "tcp_synack", "tcp_rst", "arp_request", "arp_reply", "arp_gratuitous", "dhcp_discover",
          "dhcp_offer", "dhcp_request", "dhcp_ack", "dhcp_nak", "dhcp_inform", "dns_query", "dns_response",
          "dns_nxdomain", "dns_servfail", "icmp_unreach", "icmp_echo_request", "icmp_time_exceeded", "udp_probe",
          "dup_frames", "tcp_data", "tcp_retrans", "tcp_stealth")


class CaptureCollector(Collector):
    def __init__(self, stats: Callable[[], CaptureStats], *, top_devices: int = 10):
        self._stats = stats
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
        c = CounterMetricFamily("sitevigil_capture_truncated_frames",
                                "Frames the snap length cut (captured length below the wire length) whose headers "
                                "were not contradicted: parsed as far as they go, not malformed.")
        c.add_metric([], s.flag_frames.get("TRUNCATED", 0))
        yield c
        c = CounterMetricFamily("sitevigil_capture_fragment_frames",
                                "IP fragments seen (the first parsed as far as its transport header); not malformed.")
        c.add_metric([], s.flag_frames.get("FRAGMENT", 0))
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
        c = CounterMetricFamily("sitevigil_capture_clock_jumps",
                                "Times frames came stamped more than a window before the open one (the clock was set "
                                "back): the window was closed and the next begun at their time.")
        c.add_metric([], s.clock_jumps)
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
