"""Compare what the SNMP modules report for a device with what LibreNMS discovered from the same
recording (../shared/data/snmp/librenms/expected/NAME.json). Shared by the unit test (fake client)
and the snmpsim integration test (real pysnmp client), so both hold the same bar.

Generic: every comparison is driven by what the expected file holds (tables and columns), never by
the device's name. Values LibreNMS anonymised as "<private>" are compared only where both sides
have them (the recordings are anonymised the same way).

Systematic differences with LibreNMS, converted here and documented:
- printer supplies: LibreNMS reports a percentage (round(level / max * 100)) and shows "some
  remaining" (-3) as 50; we report level, max and a 0..1 ratio, and -3 as state "some_remaining"
  with no ratio. A level of -2 (unknown) LibreNMS drops; we keep the row with state "unknown".
- UPS runtime: LibreNMS's runtime sensors are minutes (UPS-MIB minutes as is; APC/CPS TimeTicks /
  6000); ours are seconds. Charge: LibreNMS percent, ours a 0..1 ratio.
- ports: LibreNMS's ifSpeed is ifHighSpeed * 1e6 whenever ifHighSpeed > 4000 (Mbit/s); ours takes
  ifHighSpeed only when ifSpeed saturates at 2**32-1 or is missing: the same whenever a link is
  above 4.29 Gbit/s, which is when ifSpeed saturates.
- ports: LibreNMS fills an empty ifAlias with ifName/ifDescr and stores 0 for counters the agent
  lacks; we keep the alias empty and the counter absent (None). Both are skipped in the comparison.
  Our `name` falls back to ifDescr when the agent has no ifName, as LibreNMS's does.
- ports LibreNMS filters out (by its per-OS ignore rules) are simply not compared; we report all.
- FDB: LibreNMS's vlan_vlan is the VLAN id; ours is mapped from the FDB id the same way.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from probe.sources.snmp import mibtables as T

PRIVATE = "<private>"


def load_expected(path: Path) -> dict:
    return json.loads(path.read_text())


def _table(exp: dict, module: str, table: str) -> list[dict]:
    m = exp.get(module) or {}
    for phase in ("poller", "discovery"):
        t = m.get(phase)
        if isinstance(t, dict) and isinstance(t.get(table), list) and t[table]:
            return t[table]
    return []


class Comparison:
    def __init__(self, name: str):
        self.name = name
        self.checked: dict[str, int] = {}
        self.mismatches: list[str] = []

    def eq(self, area: str, what: str, ours, theirs, *, tol: float = 0.0) -> None:
        if theirs is None or theirs == PRIVATE:
            return
        self.checked[area] = self.checked.get(area, 0) + 1
        if isinstance(theirs, (int, float)) and isinstance(ours, (int, float)):
            if math.isclose(float(ours), float(theirs), rel_tol=tol, abs_tol=tol):
                return
        elif ours == theirs:
            return
        self.mismatches.append(f"{self.name}: {area}: {what}: ours {ours!r} != LibreNMS {theirs!r}")


def _oid_text(name: str) -> str:
    return "." + ".".join(map(str, T.OID[name])) + ".0"


# expected sensor OID -> (our ups key, source MIB, convert LibreNMS's value to our unit, tolerance)
UPS_SENSORS = {
    _oid_text("upsEstimatedChargeRemaining"): ("battery_charge_ratio", "UPS-MIB", lambda v: v / 100.0, 0.006),
    _oid_text("upsAdvBatteryCapacity"): ("battery_charge_ratio", "PowerNet-MIB", lambda v: v / 100.0, 0.006),
    _oid_text("upsHighPrecBatteryCapacity"): ("battery_charge_ratio", "PowerNet-MIB", lambda v: v / 100.0, 0.006),
    _oid_text("cpsUpsAdvanceBatteryCapacity"): ("battery_charge_ratio", "CPS-MIB", lambda v: v / 100.0, 0.006),
    _oid_text("upsEstimatedMinutesRemaining"): ("runtime_seconds", "UPS-MIB", lambda v: v * 60.0, 1.0),
    _oid_text("upsAdvBatteryRunTimeRemaining"): ("runtime_seconds", "PowerNet-MIB", lambda v: v * 60.0, 1.0),
    _oid_text("cpsUpsAdvanceBatteryRunTimeRemaining"): ("runtime_seconds", "CPS-MIB", lambda v: v * 60.0, 1.0),
    # state sensors: LibreNMS keeps the raw enumeration value
    _oid_text("upsOutputSource"): ("on_battery", "UPS-MIB", lambda v: v == 5, 0),
    _oid_text("upsBasicOutputStatus"): ("on_battery", "PowerNet-MIB", lambda v: v in (3, 15), 0),
    _oid_text("cpsUpsBaseOutputStatus"): ("on_battery", "CPS-MIB", lambda v: v == 3, 0),
    _oid_text("upsAdvBatteryReplaceIndicator"): ("replace_battery", "PowerNet-MIB", lambda v: v == 2, 0),
    _oid_text("cpsUpsAdvanceBatteryReplaceIndicator"): ("replace_battery", "CPS-MIB", lambda v: v == 2, 0),
}


def compare(name: str, data: dict, exp: dict, recorded=lambda oid: True) -> Comparison:
    """`recorded(oid)`: does the recording hold anything under this OID? LibreNMS also reads vendor
    MIBs (e.g. a vendor inventory instead of ENTITY-MIB); those rows are compared only when the
    recording holds the standard table we read."""
    c = Comparison(name)

    # os
    for dev in _table(exp, "os", "devices")[:1]:
        sys = data.get("sys") or {}
        c.eq("os", "sysObjectID", "." + sys["object_id"] if sys.get("object_id") else None, dev.get("sysObjectID"))
        c.eq("os", "sysName", sys.get("name"), dev.get("sysName"))
        if dev.get("sysDescr") and sys.get("descr") is not None:
            # LibreNMS keeps a shortened sysDescr (first line, trimmed): ours must start with it.
            want = " ".join(dev["sysDescr"].split())
            have = " ".join(sys["descr"].split())
            c.eq("os", "sysDescr", have[:len(want)], want)

    # ports
    ours = {i["index"]: i for i in data.get("interfaces") or []}
    for p in _table(exp, "ports", "ports"):
        idx = p.get("ifIndex")
        i = ours.get(idx)
        if i is None:
            c.mismatches.append(f"{name}: ports: ifIndex {idx} ({p.get('ifName')}) missing from ours")
            continue
        for theirs, key in (("ifName", "name"), ("ifDescr", "descr"), ("ifAlias", "alias"), ("ifType", "type"),
                            ("ifOperStatus", "oper_status"), ("ifAdminStatus", "admin_status"),
                            ("ifInOctets", "in_octets"), ("ifOutOctets", "out_octets"),
                            ("ifInErrors", "in_errors"), ("ifOutErrors", "out_errors"),
                            ("ifInDiscards", "in_discards"), ("ifOutDiscards", "out_discards"),
                            ("ifInUcastPkts", "in_ucast_pkts"), ("ifOutUcastPkts", "out_ucast_pkts")):
            mine, their = i.get(key), p.get(theirs)
            if mine is None and their == 0 and theirs.startswith(("ifIn", "ifOut")):
                continue  # LibreNMS stores 0 for a counter the agent does not have
            if theirs == "ifAlias" and not mine and their in (p.get("ifName"), p.get("ifDescr")):
                continue  # LibreNMS fills an empty ifAlias with the port's name
            c.eq("ports", f"ifIndex {idx} {theirs}", mine, their)
        speed = p.get("ifSpeed")
        if speed is not None and i.get("speed_bps") is not None and not (i["speed_bps"] < 4_294_967_295 < speed):
            c.eq("ports", f"ifIndex {idx} ifSpeed", i["speed_bps"], speed)

    # storage
    ours_st = {s["index"]: s for s in data.get("storage") or []}
    for s in _table(exp, "storage", "storage"):
        if s.get("type") != "hrstorage":
            continue
        idx = int(s["storage_index"])
        o = ours_st.get(idx)
        if o is None:
            c.mismatches.append(f"{name}: storage: hrStorageIndex {idx} ({s.get('storage_descr')}) missing from ours")
            continue
        c.eq("storage", f"{idx} descr", o["descr"], s.get("storage_descr"))
        c.eq("storage", f"{idx} size_bytes", o["size_bytes"], s.get("storage_size"))
        c.eq("storage", f"{idx} used_bytes", o["used_bytes"], s.get("storage_used"))

    # processors
    ours_cpu = {p["index"]: p for p in data.get("processors") or []}
    for p in _table(exp, "processors", "processors"):
        if p.get("processor_type") != "hr":
            continue
        idx = int(p["processor_index"])
        o = ours_cpu.get(idx)
        if o is None:
            c.mismatches.append(f"{name}: processors: hrDeviceIndex {idx} missing from ours")
            continue
        c.eq("processors", f"{idx} load", o["load_percent"], p.get("processor_usage"))

    # printer supplies and trays
    for s in _table(exp, "printer-supplies", "printer_supplies"):
        is_input = s.get("supply_type") == "input" or ".43.8.2.1." in (s.get("supply_oid") or "")
        pool = data.get("printer_inputs" if is_input else "printer_supplies") or []
        dev_idx = int((s.get("supply_oid") or "").split(".")[-2]) if s.get("supply_oid") else None
        o = next((x for x in pool if x["index"] == s["supply_index"] and (dev_idx is None or x["device_index"] == dev_idx)),
                 None)
        area = "printer"
        if o is None:
            c.mismatches.append(f"{name}: printer: {'input' if is_input else 'supply'} {s['supply_index']} missing")
            continue
        c.eq(area, f"{s['supply_index']} descr", o["name"] if is_input and o.get("name") else o["descr"],
             s.get("supply_descr"))
        c.eq(area, f"{s['supply_index']} max_capacity", o["max_capacity"], s.get("supply_capacity"))
        if not is_input and o.get("type") is not None:
            c.eq(area, f"{s['supply_index']} type", o["type"], s.get("supply_type"))
        if o["state"] == "some_remaining":
            c.eq(area, f"{s['supply_index']} level(-3)", 50, s.get("supply_current"))
        elif o["remaining_ratio"] is not None:
            c.eq(area, f"{s['supply_index']} percent", round(o["remaining_ratio"] * 100), s.get("supply_current"),
                 tol=1)

    # UPS sensors (charge, runtime, on battery, replace battery)
    ups = data.get("ups") or {}
    for s in _table(exp, "sensors", "sensors"):
        spec = UPS_SENSORS.get(s.get("sensor_oid"))
        if spec is None or s.get("sensor_current") is None:
            continue
        key, source, conv, tol = spec
        if (ups.get("sources") or {}).get(key) != source:
            if not ups:
                c.mismatches.append(f"{name}: ups: no UPS data but LibreNMS has {s.get('sensor_descr')}")
            continue
        c.eq("ups", f"{key} ({s.get('sensor_descr')})", ups.get(key), conv(s["sensor_current"]), tol=tol)

    # FDB
    ours_fdb = {(f["mac"].replace(":", ""), f["if_index"], f["vlan"]) for f in data.get("fdb") or []}
    for f in _table(exp, "fdb-table", "ports_fdb"):
        key = (f.get("mac_address"), f.get("ifIndex"), f.get("vlan_vlan"))
        c.checked["fdb"] = c.checked.get("fdb", 0) + 1
        if key not in ours_fdb:
            c.mismatches.append(f"{name}: fdb: {key} missing from ours")

    # LLDP neighbours
    names = {i["index"]: i for i in data.get("interfaces") or []}
    for link in _table(exp, "discovery-protocols", "links"):
        if link.get("protocol") != "lldp":
            continue
        cands = [n for n in data.get("lldp_neighbors") or []
                 if n["if_index"] in names and names[n["if_index"]]["name"] == link.get("ifName")]
        if link.get("remote_hostname") not in (None, PRIVATE):
            cands = [n for n in cands if n["sys_name"] == link["remote_hostname"]]
        rport = (link.get("remote_port") or "").split(" (")[0]
        if rport and rport != PRIVATE:
            cands = [n for n in cands if rport in (n["port_id"], n["port_descr"])]
        c.checked["lldp"] = c.checked.get("lldp", 0) + 1
        if not cands:
            c.mismatches.append(f"{name}: lldp: no neighbour on {link.get('ifName')} matching "
                                f"{link.get('remote_hostname')!r} port {rport!r}")

    # ENTITY-MIB
    ours_ent = {e["index"]: e for e in data.get("entity") or []}
    for e in _table(exp, "entity-physical", "entPhysical") if recorded(T.OID["entPhysicalTable"]) else []:
        o = ours_ent.get(e.get("entPhysicalIndex"))
        if o is None:
            c.mismatches.append(f"{name}: entity: entPhysicalIndex {e.get('entPhysicalIndex')} missing")
            continue
        for theirs, key in (("entPhysicalDescr", "descr"), ("entPhysicalName", "name"),
                            ("entPhysicalSerialNum", "serial"), ("entPhysicalModelName", "model")):
            if e.get(theirs) == "":
                continue
            c.eq("entity", f"{e['entPhysicalIndex']} {theirs}", o.get(key), e.get(theirs))
    return c


def required_areas(exp: dict, recorded=lambda oid: True) -> set[str]:
    """Areas the comparison must have checked at least once, from what the expected file holds."""
    need = set()
    if _table(exp, "ports", "ports") and recorded(T.OID["ifTable"]):
        need.add("ports")
    if any(s.get("type") == "hrstorage" for s in _table(exp, "storage", "storage")):
        need.add("storage")
    if any(p.get("processor_type") == "hr" for p in _table(exp, "processors", "processors")):
        need.add("processors")
    if _table(exp, "printer-supplies", "printer_supplies"):
        need.add("printer")
    if any(s.get("sensor_oid") in UPS_SENSORS for s in _table(exp, "sensors", "sensors")):
        need.add("ups")
    if _table(exp, "fdb-table", "ports_fdb"):
        need.add("fdb")
    if any(link.get("protocol") == "lldp" for link in _table(exp, "discovery-protocols", "links")):
        need.add("lldp")
    if _table(exp, "entity-physical", "entPhysical") and recorded(T.OID["entPhysicalTable"]):
        need.add("entity")
    return need
