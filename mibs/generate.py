"""Compile the MIB texts in mibs/ into the numeric tables the SNMP modules use at run time.

    python mibs/generate.py            # rewrites probe/sources/snmp/mibtables.py
    python mibs/generate.py --check    # exit 1 if the committed file differs from a fresh build
    python mibs/generate.py --out DIR  # writes DIR/mibtables.py (the tests use this)

pysmi (2.x) parses each MIB into its JSON form in memory; this script keeps only the objects the
modules poll (WANTED: a table or row name brings all its columns), resolves textual conventions to
their SMI base type, and writes plain Python literals: OIDs as int tuples, base types, enumerations,
table indexes, units. The runtime imports that file and never parses a MIB (nor needs pysmi).

Vendor objects whose MIB texts are not in mibs/ (APC PowerNet-MIB, CyberPower CPS-MIB) are written
by hand in VENDOR below, each with the MIB and object it comes from.

Nothing here is written as a pysnmp MIB module, so no compiled SNMPv2-MIB can shadow pysnmp's own.
Output is deterministic (sorted keys, no timestamps), so a regenerate-and-compare test can hold it.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE.parent / "probe" / "sources" / "snmp" / "mibtables.py"

# MIB module -> objects the runtime needs. A table or row brings all of its columns.
WANTED: dict[str, list[str]] = {
    "SNMPv2-MIB": ["sysDescr", "sysObjectID", "sysUpTime", "sysContact", "sysName", "sysLocation",
                   "snmpTrapOID", "snmpTrapEnterprise"],
    "IF-MIB": ["ifNumber", "ifTableLastChange", "ifTable", "ifXTable"],
    "HOST-RESOURCES-MIB": ["hrSystemUptime", "hrMemorySize", "hrStorageTable", "hrDeviceTable",
                           "hrProcessorTable", "hrPrinterTable"],
    "HOST-RESOURCES-TYPES": ["hrStorageTypes", "hrDeviceTypes"],
    "Printer-MIB": ["prtGeneralPrinterName", "prtGeneralSerialNumber", "prtMarkerSuppliesTable",
                    "prtInputTable", "prtAlertTable"],
    "UPS-MIB": ["upsIdentManufacturer", "upsIdentModel", "upsBatteryStatus", "upsSecondsOnBattery",
                "upsEstimatedMinutesRemaining", "upsEstimatedChargeRemaining", "upsBatteryVoltage",
                "upsBatteryTemperature", "upsOutputSource", "upsOutputTable", "upsAlarmsPresent",
                "upsAlarmTable", "upsWellKnownAlarms", "upsConfigLowBattTime"],
    "ENTITY-MIB": ["entPhysicalTable"],
    "LLDP-MIB": ["lldpLocPortTable", "lldpRemTable", "lldpLocChassisId"],
    "BRIDGE-MIB": ["dot1dBasePortTable", "dot1dTpFdbTable"],
    "Q-BRIDGE-MIB": ["dot1qTpFdbTable", "dot1qFdbTable", "dot1qVlanCurrentTable"],
    "IP-MIB": ["ipNetToMediaTable", "ipNetToPhysicalTable"],
}

# MIB modules whose NOTIFICATION-TYPEs (SMIv2) the trap receiver names: NOTIFY (name -> OID) and
# NOTIFY_OBJECTS (name -> the objects its varbinds carry, in order).
NOTIFY_FROM = ("SNMPv2-MIB", "IF-MIB", "UPS-MIB", "Printer-MIB")

# Enumerations that come from a whole registration subtree rather than from a SYNTAX clause:
# OID-valued columns whose values name one of these identities.
IDENTITY_ROOTS = {"hrStorageType": "hrStorageTypes", "hrDeviceType": "hrDeviceTypes"}

# Hand-written vendor objects: (name, oid, base type, units, enumeration or None, source).
VENDOR = [
    # APC PowerNet-MIB (enterprise 318), upsBasic/upsAdv/upsHighPrec groups.
    ("upsBasicIdentModel", "1.3.6.1.4.1.318.1.1.1.1.1.1", "OctetString", None, None, "PowerNet-MIB"),
    ("upsAdvIdentFirmwareRevision", "1.3.6.1.4.1.318.1.1.1.1.2.1", "OctetString", None, None, "PowerNet-MIB"),
    ("upsAdvIdentSerialNumber", "1.3.6.1.4.1.318.1.1.1.1.2.3", "OctetString", None, None, "PowerNet-MIB"),
    ("upsBasicBatteryStatus", "1.3.6.1.4.1.318.1.1.1.2.1.1", "Integer32", None,
     {1: "unknown", 2: "batteryNormal", 3: "batteryLow", 4: "batteryInFaultCondition",
      5: "noBatteryPresent"}, "PowerNet-MIB"),
    ("upsBasicBatteryTimeOnBattery", "1.3.6.1.4.1.318.1.1.1.2.1.2", "TimeTicks", None, None, "PowerNet-MIB"),
    ("upsAdvBatteryCapacity", "1.3.6.1.4.1.318.1.1.1.2.2.1", "Gauge32", "percent", None, "PowerNet-MIB"),
    ("upsAdvBatteryRunTimeRemaining", "1.3.6.1.4.1.318.1.1.1.2.2.3", "TimeTicks", None, None, "PowerNet-MIB"),
    ("upsAdvBatteryReplaceIndicator", "1.3.6.1.4.1.318.1.1.1.2.2.4", "Integer32", None,
     {1: "noBatteryNeedsReplacing", 2: "batteryNeedsReplacing"}, "PowerNet-MIB"),
    ("upsHighPrecBatteryCapacity", "1.3.6.1.4.1.318.1.1.1.2.3.1", "Gauge32", "tenths of percent", None,
     "PowerNet-MIB"),
    ("upsBasicOutputStatus", "1.3.6.1.4.1.318.1.1.1.4.1.1", "Integer32", None,
     {1: "unknown", 2: "onLine", 3: "onBattery", 4: "onSmartBoost", 5: "timedSleeping",
      6: "softwareBypass", 7: "off", 8: "rebooting", 9: "switchedBypass", 10: "hardwareFailureBypass",
      11: "sleepingUntilPowerReturn", 12: "onSmartTrim", 13: "ecoMode", 14: "hotStandby",
      15: "onBatteryTest"}, "PowerNet-MIB"),
    ("upsAdvOutputLoad", "1.3.6.1.4.1.318.1.1.1.4.2.3", "Gauge32", "percent", None, "PowerNet-MIB"),
    ("upsHighPrecOutputLoad", "1.3.6.1.4.1.318.1.1.1.4.3.3", "Gauge32", "tenths of percent", None,
     "PowerNet-MIB"),
    # CyberPower CPS-MIB (enterprise 3808), upsBase/upsAdvance groups.
    ("cpsUpsBaseIdentModel", "1.3.6.1.4.1.3808.1.1.1.1.1.1", "OctetString", None, None, "CPS-MIB upsBaseIdentModel"),
    ("cpsUpsAdvanceIdentSerialNumber", "1.3.6.1.4.1.3808.1.1.1.1.2.3", "OctetString", None, None,
     "CPS-MIB upsAdvanceIdentSerialNumber"),
    ("cpsUpsBaseBatteryStatus", "1.3.6.1.4.1.3808.1.1.1.2.1.1", "Integer32", None,
     {1: "unknown", 2: "batteryNormal", 3: "batteryLow", 4: "batteryNotPresent"}, "CPS-MIB upsBaseBatteryStatus"),
    ("cpsUpsAdvanceBatteryCapacity", "1.3.6.1.4.1.3808.1.1.1.2.2.1", "Gauge32", "percent", None,
     "CPS-MIB upsAdvanceBatteryCapacity"),
    ("cpsUpsAdvanceBatteryRunTimeRemaining", "1.3.6.1.4.1.3808.1.1.1.2.2.4", "TimeTicks", None, None,
     "CPS-MIB upsAdvanceBatteryRunTimeRemaining"),
    ("cpsUpsAdvanceBatteryReplaceIndicator", "1.3.6.1.4.1.3808.1.1.1.2.2.5", "Integer32", None,
     {1: "noBatteryNeedsReplacing", 2: "batteryNeedsReplacing"}, "CPS-MIB upsAdvanceBatteryReplaceIndicator"),
    ("cpsUpsBaseOutputStatus", "1.3.6.1.4.1.3808.1.1.1.4.1.1", "Integer32", None,
     {1: "unknown", 2: "onLine", 3: "onBattery", 4: "onBoost", 5: "onSleep", 6: "off", 7: "rebooting",
      8: "onBuck"}, "CPS-MIB upsBaseOutputStatus"),
]

# SMI base types and the SNMPv2-TC conventions (pysmi treats SNMPv2-TC as built in).
_BASE = {
    "INTEGER": "Integer32", "Integer32": "Integer32", "Unsigned32": "Gauge32", "Gauge32": "Gauge32",
    "Counter32": "Counter32", "Counter64": "Counter64", "TimeTicks": "TimeTicks", "IpAddress": "IpAddress",
    "OCTET STRING": "OctetString", "OBJECT IDENTIFIER": "ObjectIdentifier", "Opaque": "Opaque",
    "Bits": "OctetString", "BITS": "OctetString",
    # SNMPv2-TC
    "DisplayString": "OctetString", "PhysAddress": "OctetString", "MacAddress": "OctetString",
    "DateAndTime": "OctetString", "TimeStamp": "TimeTicks", "TimeInterval": "Integer32",
    "AutonomousType": "ObjectIdentifier", "VariablePointer": "ObjectIdentifier",
    "RowPointer": "ObjectIdentifier", "RowStatus": "Integer32", "StorageType": "Integer32",
    "TestAndIncr": "Integer32", "TDomain": "ObjectIdentifier", "TAddress": "OctetString",
    "InstancePointer": "ObjectIdentifier", "TruthValue": "Integer32",
}
_TC_ENUMS = {
    "TruthValue": {1: "true", 2: "false"},
    "RowStatus": {1: "active", 2: "notInService", 3: "notReady", 4: "createAndGo", 5: "createAndWait", 6: "destroy"},
    "StorageType": {1: "other", 2: "volatile", 3: "nonVolatile", 4: "permanent", 5: "readOnly"},
}


def compile_mibs(mib_dir: Path) -> dict[str, dict]:
    """Every MIB in WANTED (and what they import) as pysmi's JSON, keyed by module name."""
    from pysmi.codegen import JsonCodeGen
    from pysmi.compiler import MibCompiler
    from pysmi.parser import SmiStarParser
    from pysmi.reader import FileReader
    from pysmi.searcher import StubSearcher
    from pysmi.writer import CallbackWriter

    out: dict[str, dict] = {}

    def keep(name, data, ctx):
        out[name] = json.loads(data)

    compiler = MibCompiler(SmiStarParser(), JsonCodeGen(), CallbackWriter(keep))
    compiler.add_sources(FileReader(str(mib_dir)))
    compiler.add_searchers(StubSearcher(*JsonCodeGen.baseMibs))
    status = compiler.compile(*WANTED, rebuild=True, genTexts=False)
    failed = {m: str(s) for m, s in status.items() if s not in ("compiled", "untouched")}
    if failed:
        raise SystemExit(f"mibs/generate.py: pysmi could not compile: {failed}")
    missing = [m for m in WANTED if m not in out]
    if missing:
        raise SystemExit(f"mibs/generate.py: no output for {missing} (are the texts in {mib_dir}?)")
    return out


def _oid(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split("."))


class _Resolver:
    def __init__(self, mibs: dict[str, dict]):
        self.mibs = mibs
        self.tcs = {}
        for mod in sorted(mibs):
            for name, sym in mibs[mod].items():
                if isinstance(sym, dict) and sym.get("class") == "textualconvention":
                    self.tcs.setdefault(name, sym["type"])

    def syntax(self, syn: dict, where: str) -> tuple[str, dict[int, str] | None, str | None]:
        """(base type, enumeration, textual convention name) of a SYNTAX clause."""
        tname = syn["type"]
        enum = (syn.get("constraints") or {}).get("enumeration")
        tc = None
        seen = 0
        while tname not in _BASE or tname in _TC_ENUMS or tname in self.tcs:
            if tname in _TC_ENUMS and enum is None:
                enum = {v: k for k, v in _TC_ENUMS[tname].items()}
            if tname in _BASE and tname not in self.tcs:
                break
            inner = self.tcs.get(tname)
            if inner is None:
                raise SystemExit(f"mibs/generate.py: {where}: unknown type {tname!r}")
            tc = tc or tname
            enum = enum or (inner.get("constraints") or {}).get("enumeration")
            tname = inner["type"]
            seen += 1
            if seen > 10:
                raise SystemExit(f"mibs/generate.py: {where}: textual convention loop at {tname!r}")
        enum_map = {int(v): k for k, v in enum.items()} if enum else None
        return _BASE[tname], enum_map, tc


def build_tables(mibs: dict[str, dict]) -> dict:
    res = _Resolver(mibs)
    oid: dict[str, tuple] = {}
    syntax: dict[str, str] = {}
    enums: dict[str, dict[int, str]] = {}
    index: dict[str, tuple[str, ...]] = {}
    units: dict[str, str] = {}
    columns: dict[str, tuple[str, ...]] = {}
    origin: dict[str, str] = {}

    def add(name, mod, sym):
        if name in oid and oid[name] != _oid(sym["oid"]):
            raise SystemExit(f"mibs/generate.py: {name} defined twice with different OIDs ({origin[name]}, {mod})")
        oid[name] = _oid(sym["oid"])
        origin[name] = mod
        if "syntax" in sym:
            base, enum, _tc = res.syntax(sym["syntax"], f"{mod}::{name}")
            syntax[name] = base
            if enum:
                enums[name] = enum
        if sym.get("units"):
            units[name] = sym["units"]

    for mod, names in WANTED.items():
        syms = mibs[mod]
        for name in names:
            if name not in syms:
                raise SystemExit(f"mibs/generate.py: {mod} has no object {name!r}")
            sym = syms[name]
            add(name, mod, sym)
            prefix = sym["oid"] + "."
            if sym.get("nodetype") in ("table", "row"):
                for child, csym in syms.items():
                    if isinstance(csym, dict) and str(csym.get("oid", "")).startswith(prefix):
                        add(child, mod, csym)
            if sym.get("class") == "objectidentity":  # a registration subtree: bring its identities
                for child, csym in syms.items():
                    if isinstance(csym, dict) and csym.get("class") == "objectidentity" and \
                            str(csym.get("oid", "")).startswith(prefix):
                        add(child, mod, csym)

    # Rows: their index (AUGMENTS resolves to the augmented row's index) and their columns.
    rows = {}
    for mod in WANTED:
        for name, sym in mibs[mod].items():
            if isinstance(sym, dict) and sym.get("nodetype") == "row" and name in oid:
                rows[name] = (mod, sym)
    for name, (mod, sym) in rows.items():
        target, seen = sym, 0
        while "augmention" in target and seen < 5:
            aug = target["augmention"]
            target = mibs[aug["module"]][aug["object"]]
            seen += 1
        index[name] = tuple(i["object"] for i in target.get("indices", []))
        n = len(oid[name])
        columns[name] = tuple(sorted((c for c, o in oid.items() if len(o) == n + 1 and o[:n] == oid[name]),
                                     key=lambda c: oid[c]))
    # Index objects that live in other MIBs (e.g. hrDeviceIndex for Printer-MIB rows).
    for name in sorted({i for idx in index.values() for i in idx}):
        if name not in syntax:
            for mod in sorted(mibs):
                sym = mibs[mod].get(name)
                if isinstance(sym, dict) and "syntax" in sym:
                    add(name, mod, sym)
                    break

    for col, root in IDENTITY_ROOTS.items():
        r = oid[root]
        enums_oid = {c: o for c, o in oid.items() if len(o) > len(r) and o[:len(r)] == r}
        enums[col] = {o[-1]: c for c, o in sorted(enums_oid.items(), key=lambda kv: kv[1])}  # last arc -> name

    for name, o, base, unit, enum, source in VENDOR:
        if name in oid:
            raise SystemExit(f"mibs/generate.py: vendor object {name} collides with a MIB object")
        oid[name] = _oid(o)
        syntax[name] = base
        origin[name] = source.split()[0]
        if unit:
            units[name] = unit
        if enum:
            enums[name] = dict(enum)
    notify: dict[str, tuple] = {}
    notify_objects: dict[str, tuple[str, ...]] = {}
    for mod in NOTIFY_FROM:
        for name, sym in mibs[mod].items():
            if isinstance(sym, dict) and sym.get("class") == "notificationtype":
                if name in oid or name in notify:
                    raise SystemExit(f"mibs/generate.py: notification {name} collides with another name")
                notify[name] = _oid(sym["oid"])
                notify_objects[name] = tuple(o["object"] for o in sym.get("objects", []))
                origin[name] = mod
    return {"OID": oid, "SYNTAX": syntax, "ENUMS": enums, "INDEX": index, "COLUMNS": columns,
            "UNITS": units, "ORIGIN": origin, "NOTIFY": notify, "NOTIFY_OBJECTS": notify_objects}


def _lit(value, indent=0) -> str:
    """A deterministic Python literal: dicts sorted by key, one entry per line at the top level."""
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: (isinstance(kv[0], str), kv[0]))
        return "{" + ", ".join(f"{_lit(k)}: {_lit(v)}" for k, v in items) + "}"
    if isinstance(value, tuple):
        return "(" + ", ".join(_lit(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return repr(value)


def render(tables: dict) -> str:
    lines = [
        '"""Numeric MIB tables for the SNMP modules: GENERATED by mibs/generate.py from the MIB texts in',
        "mibs/ (and its hand-written VENDOR list). Do not edit; change WANTED there and regenerate.",
        "",
        "OID: object name -> OID (int tuple); SYNTAX: -> SMI base type (client.py's type names);",
        "ENUMS: -> {value: label} (for hrStorageType/hrDeviceType: last arc of the identity OID -> name);",
        "INDEX: row -> its index objects (AUGMENTS resolved); COLUMNS: row -> its columns in OID order;",
        "UNITS: -> the MIB's UNITS clause; ORIGIN: -> the MIB module that defines it (objects and notifications);",
        "NOTIFY: notification name -> OID (snmpTrapOID value); NOTIFY_OBJECTS: -> the objects its varbinds carry.",
        '"""',
        "# fmt: off",
    ]
    for key in ("OID", "SYNTAX", "ENUMS", "INDEX", "COLUMNS", "UNITS", "ORIGIN", "NOTIFY", "NOTIFY_OBJECTS"):
        lines.append(f"{key} = {{")
        where = {**tables["NOTIFY"], **tables["OID"]}
        for name in sorted(tables[key], key=lambda n: (where.get(n, ()), n)):
            lines.append(f"    {name!r}: {_lit(tables[key][name])},")
        lines.append("}")
    lines.append("")
    return "\n".join(lines)


def generate(mib_dir: Path = HERE) -> str:
    return render(build_tables(compile_mibs(mib_dir)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="directory to write mibtables.py into (default: the package)")
    ap.add_argument("--check", action="store_true", help="compare with the committed file instead of writing")
    args = ap.parse_args(argv)
    text = generate()
    if args.check:
        same = DEFAULT_OUT.read_text() == text
        print("mibtables.py is up to date" if same else f"{DEFAULT_OUT} differs from a fresh build: run mibs/generate.py")
        return 0 if same else 1
    out = (args.out / "mibtables.py") if args.out else DEFAULT_OUT
    out.write_text(text)
    print(f"wrote {out} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
