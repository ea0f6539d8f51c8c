"""The inventory as the daemon shares it: every subsystem's sightings in, its news out to the ledger.

    capture (ARP bindings, DHCP/mDNS/LLDP/CDP frames) --+
    sweep (ARP/ICMP/SNMP probes)                       --+-> Devices -> state.inventory -> ledger
    snmp (what a polled agent says, its ARP/FDB tables) --+            -> agent listeners (the SNMP poller)

The daemon owns one Devices and hands it to every subsystem in its Context. A sweep that finds an SNMP
agent announces it at once to the listeners (`on_agent`), so the poller adds it without waiting.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from probe.findings.ledger import Ledger
from probe.findings.model import Finding
from probe.sources import sweep as sweeper
from probe.sources.interfaces import local_interfaces
from probe.state.inventory import GONE, DeviceChange, Inventory
from probe.state.passive import Observation, from_decoded

_log = logging.getLogger("sitevigil.devices")


@dataclass(frozen=True)
class DiscoveredHost:
    """A live host whose agent answered the sweep's SNMP probe: for the SNMP poller."""

    ip: str
    mac: str | None
    credential: str
    sys_object_id: str | None
    sys_descr: str | None
    sys_name: str | None


def as_finding(change: DeviceChange) -> Finding:
    return Finding(change.kind, change.severity, change.device, change.evidence, change.first_seen, change.last_seen)


def record_sweep(inventory: Inventory, result: sweeper.SweepResult, ts: float | None = None) -> list[DeviceChange]:
    """Put what a sweep found into the inventory; returns what changed (new, changed, gone)."""
    ts = time.time() if ts is None else ts
    changes: list[DeviceChange] = []
    for h in result.hosts:
        changes += inventory.observe(h.mac, h.ip, source=f"sweep_{h.method}", ts=ts,
                                     facts={"rtt_ms": round(h.rtt * 1000, 3)} if h.rtt is not None else None)
        for m in h.other_macs or ():
            changes += inventory.observe(m, h.ip, source=f"sweep_{h.method}", ts=ts)
        if h.snmp is not None:
            changes += inventory.observe(h.mac, h.ip, name=h.snmp.sys_name, source="snmp", ts=ts,
                                         facts={"snmp": h.snmp.as_dict()})
    changes += inventory.age(ts)
    if result.complete and result.addresses and not inventory.baselined:  # an empty sweep is no baseline
        inventory.mark_baselined()
    inventory.flush()
    return changes


def learn(inventory: Inventory, observations: Iterable[Observation]) -> list[DeviceChange]:
    """Passive observations (probe.state.passive) into the inventory."""
    changes: list[DeviceChange] = []
    for o in observations:
        changes += inventory.observe(o.mac, o.ip, o.name, o.source, o.ts, facts=o.facts)
    return changes


def own_addresses() -> set[str]:
    """The probe's own MACs and IPv4 addresses: its sweeps and polls cross the mirror port too, and a
    polled agent's ARP table lists it; it is no device of the client's LAN."""
    out: set[str] = set()
    try:
        ifaces = local_interfaces()
    except Exception as exc:  # netifaces on an odd system: detection still works, only less quiet
        _log.warning("cannot list the probe's own interfaces: %s", exc)
        return out
    for iface in ifaces:
        if iface.mac:
            out.add(iface.mac.lower())
        out.update(str(a.ip) for a in iface.addresses)
    return out


class Devices:
    def __init__(self, inventory: Inventory, ledger: Ledger, *, own: Iterable[str] = ()):
        self.inventory = inventory
        self.ledger = ledger
        # the probe's own MACs and addresses (own_addresses()): no client device
        self.own = frozenset(a.lower() for a in own)
        self.on_agent: list[Callable[[DiscoveredHost], None]] = []  # called for each SNMP agent a sweep finds

    def _report(self, changes: Iterable[DeviceChange]) -> list[DeviceChange]:
        changes = list(changes)
        for c in changes:
            try:
                self.ledger.record(as_finding(c))
            except Exception:
                _log.exception("recording finding %s failed", c.kind)
        return changes

    def observe(self, mac, ip=None, name=None, source: str = "arp", ts: float | None = None, *,
                facts: Mapping[str, Any] | None = None) -> list[DeviceChange]:
        """A sighting of one device."""
        return self._report(self.inventory.observe(mac, ip, name, source, ts, facts=facts))

    def observe_table(self, rows: Iterable[tuple[Any, Any]], source: str, ts: float | None = None) -> list[DeviceChange]:
        """(mac, ip) rows of a device's ARP table (source "snmp_arp", or the capture's "arp") or (mac, None)
        rows of a switch's forwarding table ("snmp_fdb")."""
        rows = [(m, ip) for m, ip in rows if not (isinstance(m, str) and m.lower() in self.own)]
        return self._report(self.inventory.observe_many(rows, source, ts))

    def observe_snmp_agent(self, ip: str, snmp: Mapping[str, Any], name: str | None = None,
                           ts: float | None = None) -> list[DeviceChange]:
        """What a polled agent says it is (sys_name, sys_descr, sys_object_id...), onto the device that
        has this address, merged with what the sweep's SNMP probe saw."""
        known = self.inventory.find_ip(ip)
        merged = {**(known.snmp or {}), **{k: v for k, v in snmp.items() if v is not None}} if known else dict(snmp)
        return self.observe(known.mac if known else None, ip, name, "snmp", ts, facts={"snmp": merged})

    def learn(self, observations: Iterable[Observation]) -> list[DeviceChange]:
        return self._report(learn(self.inventory, observations))

    def learn_decoded(self, infos: Iterable[dict]) -> list[DeviceChange]:
        """Dicts from the capture's rare-frame decoder (probe.fastpath.rare), with the frame's IPv4 source
        as "src_ip" when it had one."""
        return self.learn(o for info in infos for o in from_decoded(info, info.get("src_ip")))

    def record_sweep(self, result: sweeper.SweepResult, ts: float | None = None) -> list[DeviceChange]:
        changes = self._report(record_sweep(self.inventory, result, ts))
        agents = {h.ip for h in result.hosts if h.snmp is not None}
        for host in self.discovered():
            if host.ip in agents:
                for listener in self.on_agent:
                    try:
                        listener(host)
                    except Exception:
                        _log.exception("announcing SNMP agent %s failed", host.ip)
        return changes

    def age(self, now: float) -> list[DeviceChange]:
        changes = self._report(self.inventory.age(now))
        self.inventory.flush()
        return changes

    def discovered(self) -> list[DiscoveredHost]:
        """Present devices whose agent answered the sweep's SNMP probe, with the credential that worked."""
        out = []
        for dev in self.inventory.snapshot():
            if dev.state == GONE or not dev.snmp or not dev.ip:
                continue
            out.append(DiscoveredHost(dev.ip, dev.mac, dev.snmp.get("credential", ""), dev.snmp.get("sys_object_id"),
                                      dev.snmp.get("sys_descr"), dev.snmp.get("sys_name")))
        return out
