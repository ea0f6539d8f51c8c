"""The inventory: every device seen on the client's LAN, what it is, and since when.

Every source reports what it saw through one call:

    inventory.observe("aa:bb:cc:dd:ee:ff", ip="192.168.1.20", name="printer-2", source="dhcp", ts=...,
                      facts={"dhcp_vendor_class": "Hewlett-Packard JetDirect", "dhcp_params": [1, 3, 6]})

(sweep: "arp", "icmp", "snmp"; capture: "arp", "dhcp", "mdns", "llmnr", "netbios", "lldp", "cdp"; SNMP
tables: "snmp_arp", "snmp_fdb"). It returns the findings the observation raised: a new device, a
device that changed IP or name, a device that came back. `age(now)` reports devices absent longer
than `gone_after` and forgets those absent longer than `forget_after`.

The inventory lives in memory (bounded by `max_devices`; the least recently seen go first) and in the
probe's SQLite store, so it survives restarts. Changes are written by `flush()`, which the owner calls
after a sweep and periodically; a device's key is its MAC, or "ip:ADDR" for a host only known by an
address beyond the local link (found by ICMP).
"""
from __future__ import annotations

import ipaddress
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from probe.state.devicetype import classify
from probe.state.oui import MacError, OuiTable, default_table, normalise_mac

_log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
DDL = (
    """CREATE TABLE IF NOT EXISTS inventory_device (
        key TEXT PRIMARY KEY, mac TEXT, ip TEXT, state TEXT NOT NULL, type TEXT NOT NULL,
        first_seen REAL NOT NULL, last_seen REAL NOT NULL, doc TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS inventory_device_last_seen ON inventory_device(last_seen)",
    "CREATE TABLE IF NOT EXISTS inventory_meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)",
)

# Which name a device is shown by, best first: what it calls itself on the network.
NAME_SOURCES = ("dhcp", "snmp", "netbios", "mdns", "llmnr", "lldp", "cdp", "dns")
MAX_IPS = 8          # addresses remembered per device (most recent first)
MAX_NAMES = 12       # names remembered per device (one per source)
MAX_FACTS = 24       # other facts per device
MAX_TEXT = 255       # longest name or fact text kept
PRESENT, GONE = "present", "gone"


@dataclass
class DeviceChange:
    """What changed about a device (new, returned, gone, a new address or name): the inventory's news,
    which probe.subsystems.devices reports to the ledger as a finding of the same kind."""

    kind: str
    severity: str
    device: str
    evidence: dict
    first_seen: float
    last_seen: float


@dataclass
class Device:
    key: str
    mac: str | None
    ip: str | None = None
    ips: list[str] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)     # source -> name
    vendor: str | None = None
    mac_kind: str | None = None                              # global, local, multicast
    randomised: bool = False
    type: str = "unknown"
    type_evidence: dict[str, Any] = field(default_factory=dict)
    first_seen: float = 0.0
    last_seen: float = 0.0
    sources: dict[str, float] = field(default_factory=dict)  # source -> last time it reported this device
    snmp: dict[str, Any] | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    state: str = PRESENT

    @property
    def name(self) -> str | None:
        for src in NAME_SOURCES:
            if src in self.names:
                return self.names[src]
        return next(iter(self.names.values()), None)

    @property
    def label(self) -> str:
        return self.name or self.ip or self.mac or self.key

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "mac": self.mac, "ip": self.ip, "ips": list(self.ips), "name": self.name,
                "names": dict(self.names), "vendor": self.vendor, "mac_kind": self.mac_kind,
                "randomised": self.randomised, "type": self.type, "type_evidence": self.type_evidence,
                "first_seen": self.first_seen, "last_seen": self.last_seen, "sources": dict(self.sources),
                "snmp": self.snmp, "facts": dict(self.facts), "state": self.state}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Device":
        return cls(key=d["key"], mac=d.get("mac"), ip=d.get("ip"), ips=list(d.get("ips") or []),
                   names=dict(d.get("names") or {}), vendor=d.get("vendor"), mac_kind=d.get("mac_kind"),
                   randomised=bool(d.get("randomised")), type=d.get("type") or "unknown",
                   type_evidence=dict(d.get("type_evidence") or {}), first_seen=float(d.get("first_seen") or 0),
                   last_seen=float(d.get("last_seen") or 0), sources=dict(d.get("sources") or {}),
                   snmp=d.get("snmp"), facts=dict(d.get("facts") or {}), state=d.get("state") or PRESENT)


@dataclass(frozen=True, slots=True)
class DeviceSummary:
    mac: str | None
    ip: str | None
    vendor: str | None
    type: str
    name: str | None
    state: str
    last_seen: float


def _clip(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value[:MAX_TEXT]
    if isinstance(value, (list, tuple)):
        return [_clip(v) for v in list(value)[:64]]
    if isinstance(value, dict):
        return {str(k)[:64]: _clip(v) for k, v in list(value.items())[:32]}
    if value is None or isinstance(value, (int, float, bool)):
        return value
    return str(value)[:MAX_TEXT]


def _clean_name(name: Any) -> str | None:
    if name is None:
        return None
    if isinstance(name, bytes):
        name = name.decode("utf-8", "replace")
    name = "".join(c for c in str(name) if c.isprintable()).strip().rstrip(".")
    return name[:MAX_TEXT] or None


def _clean_ip(ip: Any) -> str | None:
    if ip is None or ip == "":
        return None
    try:
        addr = ipaddress.ip_address(str(ip))
    except ValueError:
        return None
    if addr.is_unspecified or addr.is_multicast or addr.is_loopback or str(addr) == "255.255.255.255":
        return None
    return str(addr)


class Inventory:
    """Devices by key, kept in memory and in the store; thread-safe (capture threads observe too)."""

    def __init__(self, store=None, *, gone_after: float = 86400.0, forget_after: float = 90 * 86400.0,
                 max_devices: int = 10000, oui: OuiTable | None = None, clock=time.time):
        if max_devices < 1:
            raise ValueError(f"max_devices must be at least 1, got {max_devices}")
        self.store = store
        self.gone_after, self.forget_after, self.max_devices = gone_after, forget_after, max_devices
        self._oui = oui
        self.clock = clock
        self.devices: dict[str, Device] = {}
        self._dirty: set[str] = set()
        self._deleted: set[str] = set()
        self._lock = threading.RLock()
        self.evicted_total = 0
        self.baselined = False  # until the first full sweep, new devices are learnt without a finding
        if store is not None:
            store.ensure_schema("inventory", SCHEMA_VERSION, DDL)
            self._load()

    @property
    def oui(self) -> OuiTable:
        if self._oui is None:
            self._oui = default_table()
        return self._oui

    # -- persistence ------------------------------------------------------------------------------
    def _load(self) -> None:
        rows = self.store.query("SELECT doc FROM inventory_device ORDER BY last_seen DESC LIMIT ?",
                                (self.max_devices,))
        bad = 0
        for (doc,) in rows:
            try:
                dev = Device.from_dict(json.loads(doc))
            except (ValueError, KeyError, TypeError):
                bad += 1
                continue
            self.devices[dev.key] = dev
        if bad:
            _log.warning("inventory: %d unreadable device rows skipped", bad)
        meta = dict(self.store.query("SELECT k, v FROM inventory_meta"))
        self.baselined = meta.get("baselined") == "1"

    def flush(self) -> bool:
        """Write changed devices to the store; True when everything is saved."""
        if self.store is None:
            return True
        with self._lock:
            rows = [(d.key, d.mac, d.ip, d.state, d.type, d.first_seen, d.last_seen,
                     json.dumps(d.as_dict(), separators=(",", ":")))
                    for k in self._dirty if (d := self.devices.get(k)) is not None]
            deleted = [(k,) for k in self._deleted]
            self._dirty.clear()
            self._deleted.clear()
        ok = True
        if rows:
            ok &= self.store.write_many(
                "INSERT OR REPLACE INTO inventory_device(key, mac, ip, state, type, first_seen, last_seen, doc) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        if deleted:
            ok &= self.store.write_many("DELETE FROM inventory_device WHERE key=?", deleted)
        return ok

    def mark_baselined(self) -> None:
        """The first full sweep is done: from now on a device never seen before is news."""
        self.baselined = True
        if self.store is not None:
            self.store.write("INSERT OR REPLACE INTO inventory_meta(k, v) VALUES ('baselined', '1')")

    # -- learning ---------------------------------------------------------------------------------
    def observe(self, mac: str | bytes | None, ip: Any = None, name: Any = None, source: str = "arp",
                ts: float | None = None, *, facts: Mapping[str, Any] | None = None) -> list[DeviceChange]:
        """Record that `source` saw this device (by MAC, or by IP alone). Returns the findings raised."""
        ts = self.clock() if ts is None else float(ts)
        ip = _clean_ip(ip)
        norm_mac = None
        if mac is not None and mac != "":
            try:
                norm_mac = normalise_mac(mac)
            except MacError:
                _log.debug("inventory: ignoring observation from %s with bad MAC %r", source, mac)
                return []
            if int(norm_mac[:2], 16) & 1 or norm_mac == "00:00:00:00:00:00":
                return []  # multicast/broadcast/zero: not a device
        if norm_mac is None and ip is None:
            return []
        name = _clean_name(name)
        key = norm_mac or f"ip:{ip}"
        findings: list[DeviceChange] = []
        with self._lock:
            dev = self.devices.get(key)
            if dev is None and norm_mac and ip and f"ip:{ip}" in self.devices:
                dev = self._adopt(f"ip:{ip}", key, norm_mac)  # first known by IP, now its MAC too
            if dev is None:
                dev = self._new_device(key, norm_mac, ts)
                if self.baselined:
                    findings.append(DeviceChange("device_new", "info", dev.key, {"source": source}, ts, ts))
            elif dev.state == GONE:
                dev.state = PRESENT
                findings.append(DeviceChange("device_returned", "info", dev.key,
                                        {"source": source, "absent_seconds": round(ts - dev.last_seen, 1)}, ts, ts))
            changed_facts = False
            if ts >= dev.last_seen:
                dev.last_seen = ts
            dev.first_seen = min(dev.first_seen, ts)
            dev.sources[source] = max(ts, dev.sources.get(source, 0.0))
            if ip:
                if dev.ip is not None and ip != dev.ip and ip not in dev.ips:
                    findings.append(DeviceChange("device_ip_changed", "info", dev.key,
                                            {"old_ip": dev.ip, "new_ip": ip, "source": source}, ts, ts))
                dev.ip = ip
                if ip in dev.ips:
                    dev.ips.remove(ip)
                dev.ips.insert(0, ip)
                del dev.ips[MAX_IPS:]
            if name:
                old = dev.names.get(source)
                if old is not None and old.lower() != name.lower():
                    findings.append(DeviceChange("device_name_changed", "info", dev.key,
                                            {"old_name": old, "new_name": name, "source": source}, ts, ts))
                if old != name:
                    changed_facts = True
                if source in dev.names or len(dev.names) < MAX_NAMES:
                    dev.names[source] = name
            for k, v in (facts or {}).items():
                if k == "snmp":
                    if v and v != dev.snmp:
                        dev.snmp = _clip(dict(v))
                        changed_facts = True
                    continue
                v = _clip(v)
                if dev.facts.get(k) != v and (k in dev.facts or len(dev.facts) < MAX_FACTS):
                    dev.facts[k] = v
                    changed_facts = True
            if changed_facts or not dev.type_evidence:
                self._classify(dev)
            for f in findings:
                f.evidence.update(self._summary(dev))
            self._dirty.add(key)
        return findings

    def observe_many(self, rows: Iterable[tuple[Any, Any]], source: str, ts: float | None = None) -> list[DeviceChange]:
        """(mac, ip) pairs from a table: an SNMP ARP table (ipNetToMedia) or a forwarding table (ip None)."""
        out: list[DeviceChange] = []
        for mac, ip in rows:
            out += self.observe(mac, ip, source=source, ts=ts)
        return out

    def _new_device(self, key: str, mac: str | None, ts: float) -> Device:
        if len(self.devices) >= self.max_devices:
            self._evict()
        dev = Device(key=key, mac=mac, first_seen=ts, last_seen=ts)
        if mac:
            info = self.oui.lookup(mac)
            dev.vendor, dev.mac_kind, dev.randomised = info.vendor, info.kind, info.randomised
        self.devices[key] = dev
        return dev

    def _adopt(self, old_key: str, key: str, mac: str) -> Device:
        dev = self.devices.pop(old_key)
        self._deleted.add(old_key)
        self._dirty.discard(old_key)
        dev.key, dev.mac = key, mac
        info = self.oui.lookup(mac)
        dev.vendor, dev.mac_kind, dev.randomised = info.vendor, info.kind, info.randomised
        self.devices[key] = dev
        return dev

    def _evict(self) -> None:
        # Gone devices first, then the least recently seen.
        victim = min(self.devices.values(), key=lambda d: (d.state != GONE, d.last_seen))
        del self.devices[victim.key]
        self._dirty.discard(victim.key)
        self._deleted.add(victim.key)
        self.evicted_total += 1

    def _classify(self, dev: Device) -> None:
        neighbor = dev.facts.get("neighbor") or {}
        caps = list(dev.facts.get("capabilities") or []) + list(neighbor.get("capabilities") or [])
        params = dev.facts.get("dhcp_params")
        result = classify(snmp=dev.snmp, vendor=dev.vendor, dhcp_vendor_class=dev.facts.get("dhcp_vendor_class"),
                          dhcp_params=params if isinstance(params, list) else None,
                          names=dev.names.values(), capabilities=caps,
                          neighbor_descr=neighbor.get("description"),
                          services=dev.facts.get("mdns_services") or ())
        dev.type, dev.type_evidence = result.type, result.evidence()

    @staticmethod
    def _summary(dev: Device) -> dict[str, Any]:
        return {"mac": dev.mac, "ip": dev.ip, "name": dev.name, "vendor": dev.vendor, "type": dev.type}

    # -- ageing -----------------------------------------------------------------------------------
    def age(self, now: float | None = None) -> list[DeviceChange]:
        """Mark devices absent longer than gone_after as gone (a finding each); forget the long-absent."""
        now = self.clock() if now is None else now
        findings = []
        with self._lock:
            for dev in list(self.devices.values()):
                absent = now - dev.last_seen
                if absent > self.forget_after:
                    del self.devices[dev.key]
                    self._dirty.discard(dev.key)
                    self._deleted.add(dev.key)
                elif absent > self.gone_after and dev.state == PRESENT:
                    dev.state = GONE
                    self._dirty.add(dev.key)
                    findings.append(DeviceChange("device_gone", "warning", dev.key,
                                            {"absent_seconds": round(absent, 1), "last_seen": dev.last_seen,
                                             **self._summary(dev)}, now, now))
        return findings

    # -- reading ----------------------------------------------------------------------------------
    def get(self, key_or_mac: str) -> Device | None:
        with self._lock:
            if key_or_mac in self.devices:
                return self.devices[key_or_mac]
            try:
                return self.devices.get(normalise_mac(key_or_mac))
            except MacError:
                return self.devices.get(f"ip:{key_or_mac}")

    def find_ip(self, ip: Any) -> Device | None:
        """The device whose current address is `ip` (the most recently seen if several claim it), or None."""
        ip = _clean_ip(ip)
        if ip is None:
            return None
        with self._lock:
            found = [d for d in self.devices.values() if d.ip == ip]
            return max(found, key=lambda d: d.last_seen) if found else None

    def snapshot(self) -> list[Device]:
        """Every device, by IP then key (copies: safe to read while sources keep observing)."""
        with self._lock:
            devs = [Device.from_dict(d.as_dict()) for d in self.devices.values()]

        def order(d: Device):
            try:
                return (0, int(ipaddress.ip_address(d.ip)), d.key) if d.ip else (1, 0, d.key)
            except ValueError:
                return (1, 0, d.key)
        return sorted(devs, key=order)

    def summaries(self) -> list[DeviceSummary]:
        """What metrics need of every device, without copying whole records (cheap on every scrape)."""
        with self._lock:
            return [DeviceSummary(d.mac, d.ip, d.vendor, d.type, d.name, d.state, d.last_seen)
                    for d in self.devices.values()]

    def __len__(self) -> int:
        return len(self.devices)
