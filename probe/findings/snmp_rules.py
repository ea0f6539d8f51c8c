"""Findings from SNMP polls: what changed between polls that a technician should act on.

`SnmpRules.observe(result, now)` takes each DeviceResult as the poller produces it and returns what
the poll shows: a finding for every condition that holds, each poll it holds (the ledger makes one
episode of them), and a Cleared once a condition has been clear for `clear_polls` polls. Kinds:

- device_rebooted: sysUpTime went back (each restart is its own episode);
- interface_errors_rising: in+out errors grew by at least `errors_min` since the previous poll;
- interface_flapping: at least `flaps_min` oper-status/ifLastChange changes within `flap_window`;
- storage_filling (disks and file systems only, see fillable_storage): a least-squares projection
  of used bytes reaches the size within `full_days` (days_to_full), or usage is above `full_ratio`;
- printer_supply_low: a supply's remaining ratio is below `supply_low_ratio` (a printer's
  "some remaining" (-3) or "unknown" is not low: no numbers are invented);
- ups_on_battery, ups_runtime_short (< `runtime_min_seconds`), ups_battery_replace, ups_battery_low;
- device_unreachable: `unreachable_polls` polls in a row without any answer; the episode ends with
  the first poll that is answered again.

State is bounded: per device a few samples per storage (`history`), flap times per interface
(`flap_window`), the conditions that held, each with the polls it has been clear since (so one good
poll does not end a problem), and a failed-poll count.
`forget(device)` drops a device. `SnmpRules.from_config(cfg.snmp.findings)` takes the thresholds
from the config.
"""
from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from probe.findings.model import Cleared, Finding

SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True)
class SnmpFinding:
    kind: str
    severity: str
    device: str
    subject: str        # what on the device: "ifIndex 3 (Gi0/3)", "storage /var", "supply Black Toner"
    summary: str        # one line a technician reads
    evidence: dict = field(default_factory=dict)
    at: float = 0.0

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.device, self.subject)

    def to_finding(self):
        """As the ledger's Finding (probe.findings.model): one episode per kind, device and subject; the
        subject and summary travel in the evidence too, for the report."""
        return Finding(kind=self.kind, severity=self.severity, device=self.device,
                       evidence={**self.evidence, "subject": self.subject, "summary": self.summary},
                       first_seen=self.at, last_seen=self.at, subject=self.subject)


# Storage that fills up as files are written. Memory rows (RAM, virtual memory, buffers, cache) are
# routinely near full, CD/DVD and floppy media always are: neither is a disk filling.
FILLABLE_STORAGE = ("hrStorageFixedDisk", "hrStorageRemovableDisk", "hrStorageFlashMemory", "hrStorageNetworkDisk",
                    "hrStorageRamDisk")
_DRIVE = re.compile(r"^[A-Za-z]:\\")


def fillable_storage(row: dict) -> bool:
    """Is this hrStorage row a file system that can fill up? Disk types are; rows of type other or
    unknown only when they are named like a mount point ("/srv") or a drive ("D:\\ Label:...")."""
    typ = row.get("type")
    if typ in FILLABLE_STORAGE:
        return True
    if typ in (None, "hrStorageOther"):
        descr = str(row.get("descr") or "")
        return descr.startswith("/") or bool(_DRIVE.match(descr))
    return False


def days_to_full(samples: Sequence[tuple[float, float]], size: float, min_span: float = 600.0) -> float | None:
    """Days until `used` reaches `size` by a least-squares line through (time s, used bytes) samples;
    None when there are fewer than 3 samples, they span under `min_span` seconds, or usage is not
    growing."""
    if size is None or size <= 0 or len(samples) < 3:
        return None
    ts = [t for t, _ in samples]
    if ts[-1] - ts[0] < min_span:
        return None
    n = len(samples)
    mt = sum(ts) / n
    mu = sum(u for _, u in samples) / n
    var = sum((t - mt) ** 2 for t in ts)
    if var == 0:
        return None
    slope = sum((t - mt) * (u - mu) for t, u in samples) / var  # bytes per second
    if slope <= 0:
        return None
    used_now = mu + slope * (ts[-1] - mt)
    return max(0.0, (size - used_now) / slope / 86400.0)


@dataclass
class SnmpRules:
    errors_min: int = 10
    flaps_min: int = 3
    flap_window: float = 900.0
    full_days: float = 7.0
    full_ratio: float = 0.95
    supply_low_ratio: float = 0.10
    runtime_min_seconds: float = 600.0
    clear_polls: int = 2
    history: int = 48
    storage_min_span: float = 600.0
    unreachable_polls: int = 3
    _active: dict = field(default_factory=dict)           # key -> polls the condition has been clear
    _failed: dict = field(default_factory=dict)           # device -> (polls in a row without answer, last error)
    _answered: set = field(default_factory=set)           # devices that answered at least once
    _storage: dict = field(default_factory=dict)          # (device, index) -> deque[(t, used)]
    _flaps: dict = field(default_factory=dict)            # (device, ifindex) -> (last count, deque[times])

    @classmethod
    def from_config(cls, fc) -> "SnmpRules":
        """Thresholds from the config's snmp.findings section (probe.config.snmp.SnmpFindingsConfig)."""
        return cls(errors_min=fc.errors_min, flaps_min=fc.flaps_min, flap_window=float(fc.flap_window),
                   full_days=fc.storage_full_days, full_ratio=fc.storage_full_ratio,
                   supply_low_ratio=fc.supply_low_ratio, runtime_min_seconds=float(fc.ups_runtime_min),
                   clear_polls=fc.clear_polls, storage_min_span=float(fc.storage_min_span),
                   unreachable_polls=fc.unreachable_polls)

    def configure(self, fc) -> None:
        """New thresholds (a config reload); the state learnt so far is kept."""
        new = self.from_config(fc)
        for name in ("errors_min", "flaps_min", "flap_window", "full_days", "full_ratio", "supply_low_ratio",
                     "runtime_min_seconds", "clear_polls", "storage_min_span", "unreachable_polls"):
            setattr(self, name, getattr(new, name))

    def forget(self, device: str) -> None:
        for d in (self._storage, self._flaps):
            for k in [k for k in d if k[0] == device]:
                del d[k]
        for k in [k for k in self._active if k[1] == device]:
            del self._active[k]
        self._failed.pop(device, None)
        self._answered.discard(device)

    def devices(self) -> set[str]:
        """Devices this holds any state for."""
        return ({k[0] for k in self._storage} | {k[0] for k in self._flaps} | {k[1] for k in self._active}
                | set(self._failed) | self._answered)

    def observe(self, result, now: float) -> list:
        """What this poll shows: every condition that holds (an SnmpFinding each, every poll it holds:
        the ledger keeps the episode), then a Cleared for each whose condition has been clear long
        enough to call it over. A restart is news each time: the previous one's episode is cleared first."""
        dev = result.target
        data = result.data()
        seen: list[SnmpFinding] = list(self._conditions(dev, data, now))
        seen += self._reachability(dev, result, data, now)
        out: list = []
        keys = set()
        for f in seen:
            keys.add(f.key)
            if f.kind == "device_rebooted" and f.key in self._active:
                out.append(Cleared(f.kind, f.device, f.subject, now))
            out.append(f)
            self._active[f.key] = 0
        # Episodes of this device's polled areas whose condition did not hold this time.
        polled = {k for m in result.modules.values() if m.ok for k in m.data}
        if result.up:
            polled.add("reachability")
        self._prune(dev, data, polled)
        for k in [k for k in self._active if k[1] == dev and k not in keys]:
            if _area(k[0]) in polled:
                self._active[k] += 1
                # an answer ends "no longer answering" at once; other conditions must stay clear a while
                if self._active[k] >= (1 if k[0] == "device_unreachable" else self.clear_polls):
                    del self._active[k]
                    out.append(Cleared(k[0], k[1], k[2], now))
        return out

    def _reachability(self, dev: str, result, data: dict, now: float) -> list[SnmpFinding]:
        if result.up:
            self._failed.pop(dev, None)
            self._answered.add(dev)
            return []
        n = self._failed.get(dev, (0, None))[0] + 1
        errors = data.get("errors") or {}
        first = next(iter(errors.values()), {}) if isinstance(errors, dict) else {}
        self._failed[dev] = (n, first.get("error"))
        if n < self.unreachable_polls:
            return []
        before = dev in self._answered
        what = "no longer answers" if before else "has never answered"
        return [SnmpFinding("device_unreachable", "critical", dev, "agent",
                            f"{dev} {what} SNMP ({n} polls: {first.get('error') or 'no answer'})",
                            {"failed_polls": n, "answered_before": before, "error_class": first.get("class"),
                             "error": first.get("error")}, now)]

    def _prune(self, dev: str, data: dict, polled: set) -> None:
        """Forget rows the device no longer has (its tables change: mounts, virtual interfaces)."""
        for area, store in (("storage", self._storage), ("interfaces", self._flaps)):
            if area in polled:
                keep = {r.get("index") for r in data.get(area) or []}
                for k in [k for k in store if k[0] == dev and k[1] not in keep]:
                    del store[k]

    def active(self) -> list[tuple[str, str, str]]:
        return sorted(self._active)

    # -- conditions -------------------------------------------------------------------------------
    def _conditions(self, dev: str, data: dict, now: float) -> Iterable[SnmpFinding]:
        sys = data.get("sys") or {}
        if sys.get("rebooted"):
            yield SnmpFinding("device_rebooted", "warning", dev, f"restart {sys.get('restarts')}",
                              f"{dev} restarted (uptime now {sys.get('uptime_seconds')} s)",
                              {"uptime_seconds": sys.get("uptime_seconds"), "restarts": sys.get("restarts")}, now)
        for i in data.get("interfaces") or []:
            subj = f"ifIndex {i['index']} ({i.get('name') or i.get('descr') or '?'})"
            d = i.get("delta") or {}
            errs = [d.get(k) for k in ("in_errors", "out_errors") if d.get(k) is not None]
            if errs and sum(errs) >= self.errors_min:
                yield SnmpFinding("interface_errors_rising", "warning", dev, subj,
                                  f"{dev} {subj}: {int(sum(errs))} new errors since the last poll",
                                  {"in_errors_delta": d.get("in_errors"), "out_errors_delta": d.get("out_errors"),
                                   "in_errors": i.get("in_errors"), "out_errors": i.get("out_errors")}, now)
            key = (dev, i["index"])
            count = int(i.get("status_changes") or 0)
            last, times = self._flaps.get(key, (count, deque(maxlen=max(self.flaps_min * 4, 16))))
            for _ in range(max(0, min(count - last, times.maxlen))):
                times.append(now)
            while times and times[0] < now - self.flap_window:
                times.popleft()
            self._flaps[key] = (count, times)
            if len(times) >= self.flaps_min:
                yield SnmpFinding("interface_flapping", "warning", dev, subj,
                                  f"{dev} {subj}: link changed state {len(times)} times in "
                                  f"{int(self.flap_window / 60)} min", {"changes": len(times),
                                                                        "oper_status": i.get("oper_status")}, now)
        for s in data.get("storage") or []:
            size, used = s.get("size_bytes"), s.get("used_bytes")
            if not size or used is None or not fillable_storage(s):
                continue
            hist = self._storage.setdefault((dev, s["index"]), deque(maxlen=self.history))
            hist.append((now, float(used)))
            days = days_to_full(list(hist), float(size), self.storage_min_span)
            ratio = used / size
            if ratio >= self.full_ratio or (days is not None and days <= self.full_days):
                subj = f"storage {s.get('descr') or s['index']}"
                yield SnmpFinding("storage_filling", "critical" if ratio >= self.full_ratio else "warning", dev, subj,
                                  f"{dev} {subj}: {ratio:.0%} used" + (f", full in {days:.1f} days" if days is not None
                                                                       else ""),
                                  {"used_ratio": ratio, "days_to_full": days, "size_bytes": size,
                                   "used_bytes": used}, now)
        for s in data.get("printer_supplies") or []:
            r = s.get("remaining_ratio")
            if r is not None and r < self.supply_low_ratio:
                subj = f"supply {s.get('descr') or s['index']}"
                yield SnmpFinding("printer_supply_low", "warning", dev, subj,
                                  f"{dev} {subj}: {r:.0%} left", {"remaining_ratio": r, "level": s.get("level"),
                                                                   "max_capacity": s.get("max_capacity"),
                                                                   "type": s.get("type")}, now)
        ups = data.get("ups") or {}
        if ups.get("on_battery"):
            yield SnmpFinding("ups_on_battery", "critical", dev, "ups", f"{dev}: UPS on battery",
                              {"runtime_seconds": ups.get("runtime_seconds"),
                               "battery_charge_ratio": ups.get("battery_charge_ratio")}, now)
        rt = ups.get("runtime_seconds")
        if rt is not None and rt < self.runtime_min_seconds:
            yield SnmpFinding("ups_runtime_short", "critical", dev, "ups",
                              f"{dev}: UPS runtime {rt / 60:.0f} min", {"runtime_seconds": rt}, now)
        if ups.get("replace_battery"):
            yield SnmpFinding("ups_battery_replace", "warning", dev, "ups", f"{dev}: UPS asks for a new battery",
                              {"battery_status": ups.get("battery_status")}, now)
        if ups.get("battery_status") in ("low", "depleted", "fault"):
            yield SnmpFinding("ups_battery_low", "critical", dev, "ups",
                              f"{dev}: UPS battery {ups['battery_status']}", {"battery_status": ups["battery_status"]},
                              now)


_AREAS = {"device_rebooted": "sys", "interface_errors_rising": "interfaces", "interface_flapping": "interfaces",
          "storage_filling": "storage", "printer_supply_low": "printer_supplies",
          "device_unreachable": "reachability"}


def _area(kind: str) -> str:
    return _AREAS.get(kind, "ups")
