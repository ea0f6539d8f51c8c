"""What the SNMP notification receiver heard: received by source and trap (bounded label sets), dropped by
reason, informs acknowledged, notifications from sources the probe does not poll, the queue, and whether
the listener is bound.

Label sets are bounded by `LabelCap`: the first `limit` distinct values of a label are kept, every later
one is counted as "other", so a spoofing flood cannot grow the series count.
"""
from __future__ import annotations

from typing import Callable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

OTHER = "other"


class LabelCap:
    """The first `limit` distinct values pass; any other becomes "other"."""

    def __init__(self, limit: int):
        self.limit = limit
        self._seen: set[str] = set()
        self.overflowed = 0

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if len(self._seen) < self.limit:
            self._seen.add(value)
            return value
        self.overflowed += 1
        return OTHER


class SnmpTrapCollector(Collector):
    """`state()` returns the receiver's counters (probe.subsystems.snmp_traps.SnmpTrapsSubsystem.metrics)."""

    def __init__(self, state: Callable[[], dict]):
        self._state = state

    def collect(self):
        s = self._state()
        received = CounterMetricFamily("sitevigil_snmp_traps_received",
                                       "SNMP notifications (traps and informs) accepted, by source address and "
                                       "notification name (bounded: the rest count as \"other\").",
                                       labels=["source", "trap"])
        for (source, trap), n in sorted(s["received"].items()):
            received.add_metric([source, trap], float(n))
        dropped = CounterMetricFamily("sitevigil_snmp_traps_dropped",
                                      "SNMP datagrams received on the trap port and dropped, by reason.",
                                      labels=["reason"])
        for reason, n in sorted(s["dropped"].items()):
            dropped.add_metric([reason], float(n))
        acked = CounterMetricFamily("sitevigil_snmp_informs_acknowledged",
                                    "InformRequests acknowledged with a Response (retransmissions included).")
        acked.add_metric([], float(s["informs_acknowledged"]))
        unknown = CounterMetricFamily("sitevigil_snmp_traps_unknown_source",
                                      "Notifications with a known community from an address the probe does not poll.")
        unknown.add_metric([], float(s["unknown_source"]))
        confirms = CounterMetricFamily("sitevigil_snmp_trap_confirm_polls",
                                       "Polls of a device started because it sent a notification.")
        confirms.add_metric([], float(s["confirm_polls"]))
        queue = GaugeMetricFamily("sitevigil_snmp_trap_queue_length", "Notifications waiting to be handled.")
        queue.add_metric([], float(s["queue_length"]))
        cap = GaugeMetricFamily("sitevigil_snmp_trap_queue_capacity", "Notifications the queue holds at most.")
        cap.add_metric([], float(s["queue_capacity"]))
        sources = GaugeMetricFamily("sitevigil_snmp_trap_sources_tracked", "Sources whose rate is tracked.")
        sources.add_metric([], float(s["sources_tracked"]))
        families = [received, dropped, acked, unknown, confirms, queue, cap, sources]
        if s.get("enabled", True):  # switched off is not down
            up = GaugeMetricFamily("sitevigil_snmp_trap_listener_up", "Whether the notification listener is bound.")
            up.add_metric([], 1.0 if s["listening"] else 0.0)
            families.append(up)
        return families
