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
- memory: like LibreNMS, used physical memory excludes Net-SNMP's buffers and cached rows; its
  other memory pools are our hrStorage rows (compared by used bytes).
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
        self.notes: list[str] = []  # tolerated, documented differences (bounded)

    def note(self, msg: str) -> None:
        if len(self.notes) < 200:
            self.notes.append(f"{self.name}: {msg}")

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

    def eq_text(self, area: str, what: str, ours, theirs) -> None:
        """Texts compared with whitespace runs collapsed and ends trimmed (we strip agents' padding)."""
        if theirs is None or theirs == PRIVATE:
            return
        self.eq(area, what, _norm(ours) if ours is not None else None, _norm(theirs))


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


_COUNTER32 = {"ifInOctets": "ifInOctets", "ifOutOctets": "ifOutOctets", "ifInUcastPkts": "ifInUcastPkts",
              "ifOutUcastPkts": "ifOutUcastPkts"}


def _norm(v) -> str:
    return " ".join(str(v).split()) if v is not None else ""


def compare(name: str, data: dict, exp: dict, rec=None) -> Comparison:
    """`rec`: the recording (an SnmprecClient: has_subtree(oid), value(oid)), to skip what it does not
    hold: LibreNMS also reads vendor MIBs (a vendor inventory instead of ENTITY-MIB, vendor printer
    or FDB tables); those rows are compared only when the recording holds the standard table we read."""
    recorded = rec.has_subtree if rec is not None else (lambda oid: True)
    value = rec.value if rec is not None else (lambda oid: None)
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
    labels = ("ifName", "ifDescr", "ifAlias")
    for p in _table(exp, "ports", "ports") if recorded(T.OID["ifTable"]) or recorded(T.OID["ifXTable"]) else []:
        idx = p.get("ifIndex")
        i = ours.get(idx)
        if i is None:
            c.mismatches.append(f"{name}: ports: ifIndex {idx} ({p.get('ifName')}) missing from ours")
            continue
        mine_labels = {_norm(i.get(k)) for k in ("name", "descr", "alias")} - {""}
        for theirs, key in (("ifName", "name"), ("ifDescr", "descr"), ("ifAlias", "alias"), ("ifType", "type"),
                            ("ifOperStatus", "oper_status"), ("ifAdminStatus", "admin_status"),
                            ("ifInOctets", "in_octets"), ("ifOutOctets", "out_octets"),
                            ("ifInErrors", "in_errors"), ("ifOutErrors", "out_errors"),
                            ("ifInDiscards", "in_discards"), ("ifOutDiscards", "out_discards"),
                            ("ifInUcastPkts", "in_ucast_pkts"), ("ifOutUcastPkts", "out_ucast_pkts")):
            mine, their = i.get(key), p.get(theirs)
            if their is None or their == PRIVATE:
                continue
            if theirs.startswith(("ifIn", "ifOut")):
                if mine is None and their == 0:
                    continue  # LibreNMS stores 0 for a counter the agent does not have
                low = _COUNTER32.get(theirs)
                if mine != their and low and value(T.OID[low] + (idx,)) == their:
                    c.note(f"ports: ifIndex {idx} {theirs}: LibreNMS used the 32-bit column for this OS")
                    continue
            if theirs in labels:
                if _norm(mine) == _norm(their):
                    c.eq("ports", f"ifIndex {idx} {theirs}", True, True)
                    continue
                if _norm(their) in mine_labels:
                    # LibreNMS's per-OS rules move labels between ifName/ifDescr/ifAlias (and fill an
                    # empty ifAlias with the name): the text is ours, under another label.
                    c.eq("ports", f"ifIndex {idx} {theirs}", True, True)
                    c.note(f"ports: ifIndex {idx} {theirs} {their!r} is our {sorted(mine_labels)}")
                    continue
                c.eq("ports", f"ifIndex {idx} {theirs}", mine, their)
                continue
            c.eq("ports", f"ifIndex {idx} {theirs}", mine, their)
        speed = p.get("ifSpeed")
        if speed is not None and i.get("speed_bps") is not None:
            # LibreNMS takes ifHighSpeed * 1e6 whenever ifHighSpeed > 4000; we only when ifSpeed
            # saturates. Either reading of the agent's own columns is accepted.
            accepted = {i["speed_bps"]}
            if i.get("high_speed_mbps"):
                accepted.add(i["high_speed_mbps"] * 1_000_000)
            c.eq("ports", f"ifIndex {idx} ifSpeed", speed if speed in accepted else i["speed_bps"], speed)

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
        c.eq_text("storage", f"{idx} descr", o["descr"], s.get("storage_descr"))
        c.eq("storage", f"{idx} size_bytes", o["size_bytes"], s.get("storage_size"))
        c.eq("storage", f"{idx} used_bytes", o["used_bytes"], s.get("storage_used"))

    # memory (LibreNMS mempools read from hrStorage)
    mem = data.get("memory") or {}
    for m in _table(exp, "mempools", "mempools"):
        if m.get("mempool_type") != "hrstorage":
            continue
        idx = int(m["mempool_index"])
        if m.get("mempool_class") == "system" and idx == mem.get("storage_index"):
            c.eq("memory", f"{idx} total", mem.get("total_bytes"), m.get("mempool_total"))
            c.eq("memory", f"{idx} used", mem.get("used_bytes"), m.get("mempool_used"))
        elif m.get("mempool_class") != "system":
            o = ours_st.get(idx)
            if o is None:
                c.mismatches.append(f"{name}: memory: hrStorageIndex {idx} ({m.get('mempool_descr')}) missing")
                continue
            c.eq("memory", f"{idx} ({m.get('mempool_class')}) used", o["used_bytes"], m.get("mempool_used"))

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
    levels = ("." + ".".join(map(str, T.OID["prtMarkerSuppliesLevel"])) + ".",
              "." + ".".join(map(str, T.OID["prtInputCurrentLevel"])) + ".")
    for s in _table(exp, "printer-supplies", "printer_supplies"):
        if not (s.get("supply_oid") or "").startswith(levels):
            continue  # a vendor MIB's supply: not what we read
        is_input = (s.get("supply_oid") or "").startswith(levels[1])
        pool = data.get("printer_inputs" if is_input else "printer_supplies") or []
        dev_idx = int((s.get("supply_oid") or "").split(".")[-2]) if s.get("supply_oid") else None
        o = next((x for x in pool if x["index"] == s["supply_index"] and (dev_idx is None or x["device_index"] == dev_idx)),
                 None)
        area = "printer"
        if o is None:
            c.mismatches.append(f"{name}: printer: {'input' if is_input else 'supply'} {s['supply_index']} missing")
            continue
        c.eq_text(area, f"{s['supply_index']} descr", o["name"] if is_input and o.get("name") else o["descr"],
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
    ours_novlan = {(m, i) for m, i, v in ours_fdb if v is None}  # BRIDGE-MIB rows carry no VLAN
    has_fdb = recorded(T.OID["dot1qTpFdbTable"]) or recorded(T.OID["dot1dTpFdbTable"])
    for f in _table(exp, "fdb-table", "ports_fdb") if has_fdb else []:
        key = (f.get("mac_address"), f.get("ifIndex"), f.get("vlan_vlan"))
        c.checked["fdb"] = c.checked.get("fdb", 0) + 1
        if key not in ours_fdb and key[:2] not in ours_novlan:
            c.mismatches.append(f"{name}: fdb: {key} missing from ours")

    # LLDP neighbours
    names = {i["index"]: i for i in data.get("interfaces") or []}
    for link in _table(exp, "discovery-protocols", "links") if recorded(T.OID["lldpRemTable"]) else []:
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
            c.eq_text("entity", f"{e['entPhysicalIndex']} {theirs}", o.get(key), e.get(theirs))
    return c


def required_areas(exp: dict, rec=None) -> set[str]:
    """Areas the comparison must have checked at least once, from what the expected file holds
    (and the recording has the standard tables for)."""
    recorded = rec.has_subtree if rec is not None else (lambda oid: True)
    need = set()
    if _table(exp, "ports", "ports") and recorded(T.OID["ifTable"]):
        need.add("ports")
    if any(s.get("type") == "hrstorage" for s in _table(exp, "storage", "storage")):
        need.add("storage")
    if any(m.get("mempool_type") == "hrstorage" for m in _table(exp, "mempools", "mempools")):
        need.add("memory")
    if any(p.get("processor_type") == "hr" for p in _table(exp, "processors", "processors")):
        need.add("processors")
    if any((s.get("supply_oid") or "").startswith(".1.3.6.1.2.1.43.") for s in
           _table(exp, "printer-supplies", "printer_supplies")):
        need.add("printer")
    if any(s.get("sensor_oid") in UPS_SENSORS for s in _table(exp, "sensors", "sensors")):
        need.add("ups")
    if _table(exp, "fdb-table", "ports_fdb") and (recorded(T.OID["dot1qTpFdbTable"]) or
                                                  recorded(T.OID["dot1dTpFdbTable"])):
        need.add("fdb")
    if any(link.get("protocol") == "lldp" for link in _table(exp, "discovery-protocols", "links")) and \
            recorded(T.OID["lldpRemTable"]):
        need.add("lldp")
    if _table(exp, "entity-physical", "entPhysical") and recorded(T.OID["entPhysicalTable"]):
        need.add("entity")
    return need
