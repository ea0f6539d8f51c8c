"""Metrics about the device inventory and the sweeps that fill it."""
from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from probe.state.devicetype import TYPES

STATES = ("present", "gone")


@dataclass
class SweepStats:
    """What the last sweeps did; written by the sweep subsystem, read by the collector."""

    last_duration: float = 0.0
    last_success: float = 0.0
    hosts_found: int = 0
    hosts_snmp: int = 0
    addresses: int = 0
    packets_sent_total: int = 0
    results: dict[str, int] = field(default_factory=lambda: {"ok": 0, "partial": 0, "failed": 0})
    last_error: str = ""

    def succeeded(self, result, now: float | None = None) -> None:
        self.last_duration = result.duration
        self.hosts_found = len(result.hosts)
        self.hosts_snmp = sum(1 for h in result.hosts if h.snmp)
        self.addresses = result.addresses
        self.packets_sent_total += result.sent
        self.results["ok" if result.complete else "partial"] += 1
        if result.complete:
            self.last_success = time.time() if now is None else now

    def failed(self, error: str) -> None:
        self.results["failed"] += 1
        self.last_error = error

    def as_dict(self) -> dict:
        return {"duration_seconds": self.last_duration, "last_success": self.last_success,
                "hosts_found": self.hosts_found, "hosts_snmp": self.hosts_snmp, "addresses": self.addresses,
                "results": dict(self.results), "last_error": self.last_error}


class InventoryCollector(Collector):
    def __init__(self, devices: Callable[[], Iterable], stats: SweepStats, *,
                 info_limit: Callable[[], int] = lambda: 1000, evicted: Callable[[], int] = lambda: 0):
        self._devices, self._stats, self._info_limit, self._evicted = devices, stats, info_limit, evicted

    def collect(self):
        devs = list(self._devices())
        counts = collections.Counter((d.type, d.state) for d in devs)
        g = GaugeMetricFamily("sitevigil_devices", "Devices in the inventory by type and state.",
                              labels=["type", "state"])
        for t in TYPES:
            for s in STATES:
                g.add_metric([t, s], counts.get((t, s), 0))
        yield g

        limit = max(0, self._info_limit())
        recent = sorted(devs, key=lambda d: d.last_seen, reverse=True)
        info = GaugeMetricFamily("sitevigil_device_info",
                                 "A device in the inventory (1), with what is known about it; the most recently "
                                 "seen ones up to sweep.device_info_limit.",
                                 labels=["mac", "ip", "vendor", "type", "name"])
        for d in recent[:limit]:
            info.add_metric([d.mac or "", d.ip or "", (d.vendor or "")[:64], d.type, (d.name or "")[:64]], 1.0)
        yield info
        om = GaugeMetricFamily("sitevigil_device_info_omitted",
                               "Devices left out of sitevigil_device_info by sweep.device_info_limit.")
        om.add_metric([], max(0, len(devs) - limit))
        yield om
        ev = CounterMetricFamily("sitevigil_inventory_evicted", "Devices dropped because the inventory was full "
                                 "(sweep.max_devices).")
        ev.add_metric([], self._evicted())
        yield ev

        s = self._stats
        dur = GaugeMetricFamily("sitevigil_sweep_duration_seconds", "How long the last sweep took.")
        dur.add_metric([], s.last_duration)
        yield dur
        ok = GaugeMetricFamily("sitevigil_sweep_last_success_timestamp_seconds",
                               "When the last complete sweep finished (0: none yet).")
        ok.add_metric([], s.last_success)
        yield ok
        found = GaugeMetricFamily("sitevigil_sweep_hosts_found", "Live hosts found by the last sweep.")
        found.add_metric([], s.hosts_found)
        yield found
        snmp = GaugeMetricFamily("sitevigil_sweep_hosts_snmp", "Hosts whose SNMP agent answered in the last sweep.")
        snmp.add_metric([], s.hosts_snmp)
        yield snmp
        addrs = GaugeMetricFamily("sitevigil_sweep_addresses", "Addresses the last sweep probed.")
        addrs.add_metric([], s.addresses)
        yield addrs
        runs = CounterMetricFamily("sitevigil_sweeps", "Sweeps run, by result (ok, partial: cut short, failed).",
                                   labels=["result"])
        for r, n in s.results.items():
            runs.add_metric([r], n)
        yield runs
        sent = CounterMetricFamily("sitevigil_sweep_packets_sent", "ARP and ICMP probes sent by sweeps.")
        sent.add_metric([], s.packets_sent_total)
        yield sent
