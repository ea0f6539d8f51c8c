"""What the daemon builds from each SNMP poll: findings, anomaly series and inventory sightings.

    feed = SnmpFeed(SnmpRules.from_config(cfg.snmp.findings), ledger=ctx.ledger, anomaly=ctx.anomaly,
                    devices=ctx.devices)
    poller.observers.append(feed.observe)        # called with (device, result) after every poll

- Findings: the rules (probe/findings/snmp_rules.py) see every result, answered or not, and report to
  the ledger every condition that holds at this poll, and each that has cleared (the ledger resolves its
  episode then); the ledger is the one episode tracker.
- Anomaly scores: per interface the in/out bit rates and the error and discard rates (counter deltas
  over the interval the interfaces module measured), keys (target, "if:NAME:in_bps"...), and per
  disk (not memory rows) its growth in bytes per second, keys (target, "storage:DESCR:growth_bytes_per_s"). Series of
  interfaces or storages a device no longer lists are forgotten, and so are all of a device's series
  when it is no longer polled (`prune`).
- Inventory (the daemon's, ctx.devices): what a polled agent says it is (sysName, sysDescr,
  sysObjectID, the UPS model, how many bridge ports learn addresses) onto the device with that
  address, where probe/state/devicetype.py classifies it; the agent's ARP table (ipNetToPhysical /
  ipNetToMedia) and forwarding table as sightings.
"""
from __future__ import annotations

import ipaddress
import logging
import time
from typing import Any, Callable

from probe.findings.model import Cleared
from probe.findings.snmp_rules import SnmpRules, fillable_storage

_log = logging.getLogger(__name__)

# (series suffix, interface counter, factor): rate = delta * factor / interval
INTERFACE_SERIES = (
    ("in_bps", "in_octets", 8.0),
    ("out_bps", "out_octets", 8.0),
    ("in_errors_per_second", "in_errors", 1.0),
    ("out_errors_per_second", "out_errors", 1.0),
    ("in_discards_per_second", "in_discards", 1.0),
    ("out_discards_per_second", "out_discards", 1.0),
)
STORAGE_SERIES = "growth_bytes_per_second"


def _ok_data(result, module: str) -> dict | None:
    m = getattr(result, "modules", {}).get(module)
    return m.data if m is not None and m.ok else None


def interface_labels(rows: list[dict]) -> dict[Any, str]:
    """ifIndex -> the name used in series keys: ifName (or ifDescr), with the index added when two
    interfaces of the device share a name, the index alone when it has none."""
    names = {r["index"]: (r.get("name") or r.get("descr") or "").strip() for r in rows}
    counts: dict[str, int] = {}
    for n in names.values():
        counts[n] = counts.get(n, 0) + 1
    return {i: (n if n and counts[n] == 1 else f"{n}#{i}" if n else f"#{i}") for i, n in names.items()}


class SnmpFeed:
    def __init__(self, rules: SnmpRules, *, ledger, anomaly=None, devices=None,
                 clock: Callable[[], float] = time.time):
        self.rules = rules
        self.ledger = ledger
        self.anomaly = anomaly
        self.devices = devices
        self.clock = clock
        self._series: dict[str, dict[str, set]] = {}        # target -> area -> series keys fed
        self._storage_prev: dict[tuple[str, Any], tuple[float, float]] = {}
        self.findings_emitted = 0
        self.samples_fed = 0

    # -- per poll ---------------------------------------------------------------------------------
    def observe(self, dev, result) -> None:
        now = float(getattr(result, "started_at", 0.0) or self.clock())
        target = result.target
        for step in (self._findings, self._scores, self._inventory):
            try:
                step(dev, result, now)
            except Exception:  # one part's trouble must not hide the others
                _log.exception("SNMP %s: %s failed", target, step.__name__.strip("_"))

    def _findings(self, dev, result, now: float) -> None:
        reports = [r if isinstance(r, Cleared) else r.to_finding() for r in self.rules.observe(result, now)]
        self.ledger.submit(reports)
        self.findings_emitted += sum(1 for r in reports if not isinstance(r, Cleared))

    def _scores(self, dev, result, now: float) -> None:
        if self.anomaly is None:
            return
        target = result.target
        keys: list[tuple[str, str]] = []
        values: list[float] = []
        data = _ok_data(result, "interfaces")
        if data is not None:
            rows = [r for r in data.get("interfaces") or [] if isinstance(r, dict) and "index" in r]
            interval = (data.get("interfaces_poll") or {}).get("interval_seconds")
            labels = interface_labels(rows)
            current = set()
            for r in rows:
                delta = r.get("delta") or {}
                for suffix, counter, factor in INTERFACE_SERIES:
                    key = (target, f"if:{labels[r['index']]}:{suffix}")
                    current.add(key)
                    dv = delta.get(counter)
                    if dv is not None and interval and interval > 0:
                        keys.append(key)
                        values.append(dv * factor / interval)
            self._replace(target, "interfaces", current)
        data = _ok_data(result, "hostresources")
        if data is not None and "storage" in data:
            current = set()
            seen_rows = set()
            for s in data.get("storage") or []:
                if not isinstance(s, dict) or s.get("used_bytes") is None or not fillable_storage(s):
                    continue
                key = (target, f"storage:{s.get('descr') or s.get('index')}:{STORAGE_SERIES}")
                current.add(key)
                row = (target, s.get("index"))
                seen_rows.add(row)
                prev = self._storage_prev.get(row)
                used = float(s["used_bytes"])
                if prev is not None and now > prev[0]:
                    keys.append(key)
                    values.append((used - prev[1]) / (now - prev[0]))
                self._storage_prev[row] = (now, used)
            for row in [r for r in self._storage_prev if r[0] == target and r not in seen_rows]:
                del self._storage_prev[row]
            self._replace(target, "storage", current)
        if keys:
            self.anomaly.update(keys, [now] * len(keys), values)
            self.samples_fed += len(keys)

    def _replace(self, target: str, area: str, current: set) -> None:
        areas = self._series.setdefault(target, {})
        gone = areas.get(area, set()) - current
        if gone:
            self.anomaly.forget(gone)
        areas[area] = current

    def _inventory(self, dev, result, now: float) -> None:
        if self.devices is None:
            return
        sys_data = _ok_data(result, "system")
        if sys_data is not None and _is_ip(dev.address):
            sys = sys_data.get("sys") or {}
            facts = {"credential": dev.credential, "sys_object_id": sys.get("object_id"),
                     "sys_descr": sys.get("descr"), "sys_name": sys.get("name"), "sys_location": sys.get("location")}
            ups = _ok_data(result, "ups")
            if ups and isinstance(ups.get("ups"), dict) and ups["ups"].get("model"):
                facts["ups_model"] = ups["ups"]["model"]
            inv = _ok_data(result, "inventory")
            if inv and isinstance(inv.get("fdb"), list):
                ports = {r.get("port") for r in inv["fdb"] if isinstance(r, dict) and r.get("status") != "self"}
                facts["bridge_ports"] = len(ports - {None, 0})
            self.devices.observe_snmp_agent(dev.address, facts, name=sys.get("name"), ts=now)
        inv = _ok_data(result, "inventory")
        if inv is None:
            return
        arp = [(r.get("mac"), r.get("ip")) for r in inv.get("arp") or [] if isinstance(r, dict) and r.get("mac")]
        if arp:
            self.devices.observe_table(arp, "snmp_arp", now)
        # the switch's own addresses ("self") are the switch itself, not devices behind its ports
        fdb = [(r.get("mac"), None) for r in inv.get("fdb") or []
               if isinstance(r, dict) and r.get("mac") and r.get("status") != "self"]
        if fdb:
            self.devices.observe_table(fdb, "snmp_fdb", now)

    # -- housekeeping -----------------------------------------------------------------------------
    def prune(self, targets: set[str]) -> int:
        """Forget every device not in `targets` (no longer polled); returns how many were dropped."""
        gone = (set(self._series) | self.rules.devices()
                | {t for t, _ in self._storage_prev}) - set(targets)
        for target in gone:
            self.forget(target)
        return len(gone)

    def forget(self, target: str) -> None:
        self.rules.forget(target)
        areas = self._series.pop(target, {})
        if self.anomaly is not None:
            self.anomaly.forget({k for keys in areas.values() for k in keys})
        for row in [r for r in self._storage_prev if r[0] == target]:
            del self._storage_prev[row]


def _is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True
