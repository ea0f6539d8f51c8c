"""Findings from SNMP notifications: what a device says the moment it happens, reported through the same
SnmpFinding -> ledger path as the poll rules (probe/findings/snmp_rules.py), with the same kinds and
subjects where a poll can see the same thing, so a trap and the polls that follow are one episode.

    rules = TrapRules(uplinks=..., clear_polls=2)
    reports = rules.observe(device, trap, view, now)   # a trap from a known device
    reports = rules.confirm(device, view, now)         # after each poll of that device
    finding = rules.unknown_source(address, trap, now) # a device nobody set up is talking

`trap` is what the receiver decoded (probe.sources.snmp.traps.Notification) with its name
(`trap_name`); `view` is what the poller knows of the device (DeviceView: interfaces, LLDP neighbours,
its restart count and uptime reading, credentials it refused).

Kinds:
- uplink_down (critical; subject "ifIndex N (NAME)", as the poll rules name interfaces): IF-MIB linkDown
  on an uplink, closed by linkUp, or by a poll that reads the interface up again. An interface is an
  uplink when it is configured as one (`uplinks`: device -> ifIndexes or names), its ifAlias matches
  `uplink_alias` (e.g. "uplink to core"), or an LLDP neighbour is learnt on it. A linkDown on an
  interface not known yet (a device not polled yet) waits for the confirming poll, which raises it if
  the interface is an uplink and still down. A linkDown on an access port is no finding: ports go up and
  down all day, and the poll rules find the ones that flap.
- ups_on_battery / ups_battery_low / ups_battery_replace (the poll rules' kinds, subject "ups"):
  UPS-MIB upsTrapOnBattery, or upsTrapAlarmEntryAdded with upsAlarmOnBattery / upsAlarmLowBattery /
  upsAlarmDepletedBattery / upsAlarmBatteryBad; upsTrapAlarmEntryRemoved of the same alarm closes it,
  and so do `clear_polls` polls whose UPS data say otherwise. Any other UPS alarm: ups_alarm (warning,
  subject the alarm's name), closed by its removal.
- device_rebooted (warning, subject "restart N" as the poll rules count restarts): coldStart / warmStart.
  The count is the poll's: the next restart the poller will count, unless its last sysUpTime reading
  already saw this boot. So the confirming poll, seeing sysUpTime go back, reports the same episode, and
  the poll rules end it after `clear_polls` quiet polls; unconfirmed, it ends by the ledger's quiet time.
- printer_alert (critical or warning from prtAlertSeverityLevel; subject "GROUP INDEX: CODE"):
  Printer-MIB printerV2Alert (jam, cover open, toner empty...). A closing code (coverClosed,
  interlockClosed, subunitClosed) ends its opening one; the rest end when reported no more (the
  ledger's quiet time): printers trap alerts as they are added, not when they go.
- snmp_auth_failure (warning; info when the probe itself tried a credential the device refused shortly
  before, see `own_try_window`): SNMPv2-MIB authenticationFailure.
- snmp_trap_unknown_source (`unknown_severity`): a notification, with a community we know, from an
  address the probe does not poll.

State is bounded: conditions waiting for a poll (`max_held`, the oldest dropped first).
"""
from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Mapping

from probe.findings.model import Cleared
from probe.findings.snmp_rules import SnmpFinding
from probe.sources.snmp import mibtables as T
from probe.sources.snmp.client import Oid, format_oid

N = T.NOTIFY
COLD_START, WARM_START = N["coldStart"], N["warmStart"]
LINK_DOWN, LINK_UP = N["linkDown"], N["linkUp"]
AUTH_FAILURE = N["authenticationFailure"]
UPS_ON_BATTERY = N["upsTrapOnBattery"]
UPS_ALARM_ADDED, UPS_ALARM_REMOVED = N["upsTrapAlarmEntryAdded"], N["upsTrapAlarmEntryRemoved"]
PRINTER_ALERT = N["printerV2Alert"]
IF_INDEX = T.OID["ifIndex"]
UPS_ALARM_DESCR = T.OID["upsAlarmDescr"]
# well-known UPS alarms (UPS-MIB upsWellKnownAlarms) the poll rules have a kind for
UPS_ALARM_KINDS = {
    "upsAlarmOnBattery": ("ups_on_battery", "critical", "UPS on battery"),
    "upsAlarmLowBattery": ("ups_battery_low", "critical", "UPS battery low"),
    "upsAlarmDepletedBattery": ("ups_battery_low", "critical", "UPS battery depleted"),
    "upsAlarmBatteryBad": ("ups_battery_replace", "warning", "UPS asks for a new battery"),
}
# Printer-MIB alert codes that end an earlier one (binary change events)
PRINTER_CLOSES = {"coverClosed": "coverOpen", "interlockClosed": "interlockOpen", "subunitClosed": "subunitOpened"}

KINDS = ("uplink_down", "ups_on_battery", "ups_battery_low", "ups_battery_replace", "ups_alarm", "device_rebooted",
         "printer_alert", "snmp_auth_failure", "snmp_trap_unknown_source")

_BY_OID: dict[Oid, str] = {}
for _name, _oid in (*T.OID.items(), *T.NOTIFY.items()):
    _BY_OID.setdefault(_oid, _name)


def oid_name(oid: Oid) -> str:
    """An OID as MODULE::name[.index] from the MIB tables (longest known prefix), else numeric. Vendor
    enterprise OIDs not in the tables are named by the vendor MIB that owns the enterprise number."""
    for n in range(len(oid), 0, -1):
        name = _BY_OID.get(oid[:n])
        if name is not None:
            rest = oid[n:]
            return f"{T.ORIGIN.get(name, '')}::{name}" + (f".{format_oid(rest)}" if rest else "")
    if oid[:6] == (1, 3, 6, 1, 4, 1) and len(oid) > 6:
        vendor = _VENDOR_ENTERPRISES.get(oid[6])
        if vendor:
            return f"{vendor}::enterprises.{format_oid(oid[6:])}"
    return format_oid(oid)


# enterprise number -> the vendor MIB we ship objects of (mibs/generate.py VENDOR)
_VENDOR_ENTERPRISES = {}
for _name, _origin in T.ORIGIN.items():
    _o = T.OID.get(_name, ())
    if _o[:6] == (1, 3, 6, 1, 4, 1) and len(_o) > 6:
        _VENDOR_ENTERPRISES.setdefault(_o[6], _origin)


def trap_name(oid: Oid) -> str:
    return oid_name(oid)


@dataclass
class DeviceView:
    """What the poller knows of a device, for the rules (copied from its latest poll data)."""

    interfaces: dict[int, dict] = field(default_factory=dict)   # ifIndex -> row (name, descr, alias, oper_status)
    lldp_ports: dict[int, str] = field(default_factory=dict)    # ifIndex -> neighbour (sysName or chassis id)
    ups: dict | None = None                                     # the ups module's data, when polled
    restarts: int | None = None                                 # restarts the poller counted
    boot_at: float | None = None                                # when the last sysUpTime reading says it booted
    refused_at: float | None = None                             # last credential selection that met a refusal
    polled: bool = False                                        # the poller has data for it

    @classmethod
    def from_data(cls, data: Mapping, *, restarts=None, boot_at=None, refused_at=None) -> "DeviceView":
        rows = {r["index"]: r for r in data.get("interfaces") or [] if isinstance(r, dict) and "index" in r}
        lldp = {}
        for n in data.get("lldp_neighbors") or []:
            if isinstance(n, dict) and n.get("if_index") is not None:
                lldp[n["if_index"]] = n.get("sys_name") or n.get("chassis_id") or "?"
        ups = data.get("ups") if isinstance(data.get("ups"), dict) else None
        return cls(rows, lldp, ups, restarts, boot_at, refused_at, bool(data))


@dataclass
class _Held:
    """A condition a trap raised (or is waiting to raise) that the device's polls confirm or clear."""

    kind: str
    subject: str
    raised: bool
    clear_polls: int = 0
    if_index: int | None = None
    finding: SnmpFinding | None = None


@dataclass
class TrapRules:
    uplinks: Mapping[str, frozenset] = field(default_factory=dict)  # device -> {ifIndex or name}
    uplink_alias: str | None = r"(?i)\b(uplink|trunk|core|wan)\b"
    clear_polls: int = 2
    unknown_severity: str = "warning"
    own_try_window: float = 300.0
    max_held: int = 4096
    _held: OrderedDict = field(default_factory=OrderedDict)   # (device, kind, subject) -> _Held

    def __post_init__(self):
        self._alias = re.compile(self.uplink_alias) if self.uplink_alias else None

    # -- a trap from a known device --------------------------------------------------------------
    def observe(self, device: str, trap, view: DeviceView, now: float) -> list:
        oid = trap.trap_oid
        name = trap_name(oid)
        base = {"trap": name, "trap_oid": format_oid(oid), "snmp_version": trap.version_label,
                "inform": trap.is_inform, "agent_uptime_seconds": _secs(trap.uptime_ticks)}
        if oid in (LINK_DOWN, LINK_UP):
            return self._link(device, trap, view, now, base, down=oid == LINK_DOWN)
        if oid in (COLD_START, WARM_START):
            return self._restart(device, trap, view, now, base)
        if oid == UPS_ON_BATTERY:
            ev = {**base, "minutes_remaining": trap.value(T.OID["upsEstimatedMinutesRemaining"]),
                  "seconds_on_battery": trap.value(T.OID["upsSecondsOnBattery"])}
            return self._raise(device, "ups_on_battery", "critical", "ups", f"{device}: UPS on battery (trap)", ev, now)
        if oid in (UPS_ALARM_ADDED, UPS_ALARM_REMOVED):
            return self._ups_alarm(device, trap, now, base, added=oid == UPS_ALARM_ADDED)
        if oid == PRINTER_ALERT:
            return self._printer(device, trap, now, base)
        if oid == AUTH_FAILURE:
            own = view.refused_at is not None and now - view.refused_at <= self.own_try_window
            ev = {**base, "probe_refused_recently": own}
            summary = (f"{device} saw an SNMP request with a wrong community or user"
                       + (" (likely the probe trying its configured credentials)" if own else ""))
            return [SnmpFinding("snmp_auth_failure", "info" if own else "warning", device, "agent", summary, ev, now)]
        return []

    def _link(self, device, trap, view, now, base, *, down: bool) -> list:
        idx = if_index_of(trap)
        if idx is None:
            return []
        held_key = self._find_link(device, idx)
        row = view.interfaces.get(idx) or {}
        label = row.get("name") or row.get("descr") or _text(trap.value(T.OID["ifName"])) \
            or _text(trap.value(T.OID["ifDescr"])) or "?"
        subject = held_key[2] if held_key else f"ifIndex {idx} ({label})"
        if not down:
            held = self._held.pop(held_key, None) if held_key else None
            if held is not None and held.raised:
                return [Cleared("uplink_down", device, subject, now)]
            return []
        why = self.uplink_reason(device, idx, row, view)
        ev = {**base, "if_index": idx, "if_name": label, "uplink": why,
              "admin_status": _enum("ifAdminStatus", trap.value(T.OID["ifAdminStatus"])),
              "oper_status": _enum("ifOperStatus", trap.value(T.OID["ifOperStatus"]))}
        f = SnmpFinding("uplink_down", "critical", device, subject, f"{device} {subject}: uplink down ({why})", ev, now)
        if why is None:  # not known as an uplink (yet): the confirming poll decides
            self._hold(device, _Held("uplink_down", subject, False, if_index=idx, finding=f))
            return []
        self._hold(device, _Held("uplink_down", subject, True, if_index=idx, finding=f))
        return [f]

    def uplink_reason(self, device: str, idx: int, row: Mapping, view: DeviceView) -> str | None:
        """Why interface `idx` of `device` is an uplink, or None."""
        conf = self.uplinks.get(device) or ()
        if idx in conf or str(idx) in conf or (row.get("name") and row["name"] in conf) \
                or (row.get("descr") and row["descr"] in conf):
            return "configured uplink"
        alias = row.get("alias")
        if alias and self._alias is not None and self._alias.search(alias):
            return f"ifAlias {alias!r}"
        if idx in view.lldp_ports:
            return f"LLDP neighbour {view.lldp_ports[idx]}"
        return None

    def _restart(self, device, trap, view, now, base) -> list:
        restarts = view.restarts or 0
        trap_boot = now - (trap.uptime_ticks or 0) / 100.0
        seen = view.boot_at is not None and view.boot_at >= trap_boot - 60.0  # the poller already counted this boot
        n = restarts if seen and restarts else restarts + 1
        what = "cold start" if trap.trap_oid == COLD_START else "warm start"
        ev = {**base, "restarts": n, "uptime_seconds": _secs(trap.uptime_ticks)}
        # not held: the poll that follows sees sysUpTime go back and its rules own the episode from there
        return [SnmpFinding("device_rebooted", "warning", device, f"restart {n}", f"{device} restarted ({what} trap)",
                            ev, now)]

    def _ups_alarm(self, device, trap, now, base, *, added: bool) -> list:
        descr = trap.value(UPS_ALARM_DESCR)
        alarm = _BY_OID.get(descr) if isinstance(descr, tuple) else None
        alarm = alarm or (format_oid(descr) if isinstance(descr, tuple) else "unknown alarm")
        kind, severity, words = UPS_ALARM_KINDS.get(alarm, ("ups_alarm", "warning", f"UPS alarm {alarm}"))
        subject = "ups" if kind != "ups_alarm" else alarm
        if not added:
            self._held.pop((device, kind, subject), None)
            return [Cleared(kind, device, subject, now)]
        return self._raise(device, kind, severity, subject, f"{device}: {words} (trap)", {**base, "alarm": alarm}, now)

    def _printer(self, device, trap, now, base) -> list:
        def col(name):
            return trap.value(T.OID[name])
        code = _enum("prtAlertCode", col("prtAlertCode")) or "unknown"
        group = _enum("prtAlertGroup", col("prtAlertGroup")) or "printer"
        gidx = col("prtAlertGroupIndex")
        level = _enum("prtAlertSeverityLevel", col("prtAlertSeverityLevel"))
        where = f"{group} {gidx}" if isinstance(gidx, int) and gidx > 0 else group
        opened = PRINTER_CLOSES.get(code)
        if opened is not None:
            return [Cleared("printer_alert", device, f"{where}: {opened}", now)]
        ev = {**base, "alert_code": code, "alert_group": group, "alert_group_index": gidx, "severity_level": level,
              "location": col("prtAlertLocation"), "description": _text(col("prtAlertDescription"))}
        severity = "critical" if level == "critical" else "warning"
        return [SnmpFinding("printer_alert", severity, device, f"{where}: {code}", f"{device}: printer {where}: {code}",
                            ev, now)]

    def _raise(self, device, kind, severity, subject, summary, ev, now) -> list:
        f = SnmpFinding(kind, severity, device, subject, summary, ev, now)
        self._hold(device, _Held(kind, subject, True, finding=f))
        return [f]

    def _hold(self, device: str, held: _Held) -> None:
        key = (device, held.kind, held.subject)
        self._held.pop(key, None)
        self._held[key] = held
        while len(self._held) > self.max_held:
            self._held.popitem(last=False)

    def _find_link(self, device: str, idx: int):
        for key, h in self._held.items():
            if key[0] == device and h.kind == "uplink_down" and h.if_index == idx:
                return key
        return None

    # -- after each poll of the device -----------------------------------------------------------
    def confirm(self, device: str, view: DeviceView, now: float) -> list:
        """What the device's latest poll says of the conditions its traps raised: still there (reported
        again, so the episode goes on), or gone (Cleared, after `clear_polls` polls for conditions the
        polls cannot read directly)."""
        out: list = []
        for key in [k for k in self._held if k[0] == device]:
            h = self._held[key]
            verdict = self._verdict(device, h, view)
            if verdict == "holds":
                h.clear_polls = 0
                if h.kind == "uplink_down" and not h.raised and h.finding is not None:
                    row = view.interfaces.get(h.if_index) or {}
                    why = self.uplink_reason(device, h.if_index, row, view)
                    h.raised = True
                    h.finding = SnmpFinding(h.kind, h.finding.severity, device, h.subject,
                                            f"{device} {h.subject}: uplink down ({why}, confirmed by a poll)",
                                            {**h.finding.evidence, "uplink": why, "confirmed_by_poll": True}, now)
                if h.raised and h.finding is not None:
                    out.append(SnmpFinding(h.finding.kind, h.finding.severity, device, h.subject, h.finding.summary,
                                           {**h.finding.evidence, "confirmed_by_poll": True}, now))
            elif verdict == "drop":
                del self._held[key]
            elif verdict == "clear":
                h.clear_polls += 1
                if h.clear_polls >= (1 if h.kind == "uplink_down" else self.clear_polls):
                    del self._held[key]
                    if h.raised:
                        out.append(Cleared(h.kind, device, h.subject, now))
        return out

    def _verdict(self, device: str, h: _Held, view: DeviceView) -> str | None:
        """holds / clear / drop (forget quietly) / None (this poll cannot tell)."""
        if h.kind == "uplink_down":
            row = view.interfaces.get(h.if_index)
            if row is None:
                return None if not view.polled else ("clear" if h.raised else "drop")
            if row.get("oper_status") == "up":
                return "clear" if h.raised else "drop"
            if h.raised or self.uplink_reason(device, h.if_index, row, view):
                return "holds"
            return "drop"  # down, but an access port
        if h.kind in ("ups_on_battery", "ups_battery_low", "ups_battery_replace"):
            if view.ups is None:
                return None
            u = view.ups
            holds = {"ups_on_battery": bool(u.get("on_battery")),
                     "ups_battery_low": u.get("battery_status") in ("low", "depleted", "fault"),
                     "ups_battery_replace": bool(u.get("replace_battery"))}[h.kind]
            return "holds" if holds else "clear"
        return None

    def forget(self, device: str) -> None:
        for k in [k for k in self._held if k[0] == device]:
            del self._held[k]

    def holds_for(self, device: str) -> bool:
        return any(k[0] == device for k in self._held)

    def held(self) -> list[tuple[str, str, str]]:
        return list(self._held)

    # -- a device nobody set up ------------------------------------------------------------------
    def unknown_source(self, address: str, trap, now: float, *, received: int = 1) -> SnmpFinding:
        name = trap_name(trap.trap_oid)
        ev = {"trap": name, "trap_oid": format_oid(trap.trap_oid), "snmp_version": trap.version_label,
              "inform": trap.is_inform, "agent_addr": trap.agent_addr, "received": received}
        return SnmpFinding("snmp_trap_unknown_source", self.unknown_severity, address, "",
                           f"{address} sends SNMP notifications ({name}) but is not a device the probe polls", ev, now)


_IF_ENTRIES = (T.OID["ifEntry"], T.OID["ifXEntry"])


def if_index_of(trap) -> int | None:
    """The ifIndex a link trap is about: its ifIndex varbind, else the instance of an ifTable/ifXTable
    column it carries (Cisco's v1 linkDown sends ifDescr.N, ifType.N; others only ifOperStatus.N)."""
    idx = trap.value(IF_INDEX)
    if isinstance(idx, int):
        return idx
    for vb in trap.varbinds:
        for entry in _IF_ENTRIES:
            if len(vb.oid) == len(entry) + 2 and vb.oid[:len(entry)] == entry:
                return vb.oid[-1]
    return None


def _secs(ticks) -> float | None:
    return ticks / 100.0 if isinstance(ticks, int) else None


def _text(v) -> str | None:
    if isinstance(v, bytes):
        v = v.rstrip(b"\x00").decode("utf-8", "replace")
    if isinstance(v, str):
        v = "".join(c for c in v if c.isprintable()).strip()
        return v[:255] or None
    return None


def _enum(obj: str, v) -> str | None:
    if not isinstance(v, int):
        return None
    return T.ENUMS.get(obj, {}).get(v, str(v))
