"""ups: UPS-MIB (RFC 1628) and the vendor MIBs APC PowerNet (enterprise 318) and CyberPower CPS-MIB
(3808): battery charge, runtime remaining, on battery, output load, battery status, replace flag.

Units differ by source and are converted to base units here: UPS-MIB upsEstimatedMinutesRemaining
is minutes; APC upsAdvBatteryRunTimeRemaining and CPS upsAdvanceBatteryRunTimeRemaining are TimeTicks
(hundredths of a second); APC's upsHighPrec* values are tenths of a percent. Ratios are 0..1.
UPS-MIB is read first (the standard); a vendor source fills what it lacks. `sources` says which
MIB gave each value.
"""
from __future__ import annotations

from probe.sources.snmp.client import SnmpError, parse_oid
from probe.sources.snmp.modules.base import AgentDataError, Module, PollContext, enterprise

UPS_ENTERPRISES = {318, 3808, 705, 534, 935, 4555, 850, 6574}
RFC1628 = ("upsIdentManufacturer", "upsIdentModel", "upsBatteryStatus", "upsSecondsOnBattery",
           "upsEstimatedMinutesRemaining", "upsEstimatedChargeRemaining", "upsOutputSource", "upsAlarmsPresent")
APC = ("upsBasicIdentModel", "upsAdvIdentSerialNumber", "upsBasicBatteryStatus", "upsBasicBatteryTimeOnBattery",
       "upsAdvBatteryCapacity", "upsHighPrecBatteryCapacity", "upsAdvBatteryRunTimeRemaining",
       "upsAdvBatteryReplaceIndicator", "upsBasicOutputStatus", "upsAdvOutputLoad", "upsHighPrecOutputLoad")
CPS = ("cpsUpsBaseIdentModel", "cpsUpsAdvanceIdentSerialNumber", "cpsUpsBaseBatteryStatus",
       "cpsUpsAdvanceBatteryCapacity", "cpsUpsAdvanceBatteryRunTimeRemaining", "cpsUpsAdvanceBatteryReplaceIndicator",
       "cpsUpsBaseOutputStatus")
BATTERY_STATUS = {"unknown": "unknown", "batteryNormal": "normal", "batteryLow": "low",
                  "batteryDepleted": "depleted", "batteryInFaultCondition": "fault", "noBatteryPresent": "not_present",
                  "batteryNotPresent": "not_present"}


async def _group(ctx: PollContext, names) -> dict:
    try:
        return await ctx.scalars(names)
    except SnmpError as exc:
        if exc.kind in ("timeout", "auth"):
            raise
        ctx.problem(f"ups: {names[0]}...: {exc}")  # e.g. a v1 agent's noSuchName for the whole GET
        return {}


class UpsModule(Module):
    async def applies(self, ctx: PollContext, sys: dict) -> bool:
        oid = parse_oid(sys["object_id"]) if sys.get("object_id") else None
        if enterprise(oid) in UPS_ENTERPRISES:
            return True
        got = await _group(ctx, ["upsBatteryStatus", "upsEstimatedChargeRemaining"])
        return any(v is not None for v in got.values())

    async def poll(self, ctx: PollContext) -> dict:
        r = await _group(ctx, RFC1628)
        ups: dict = {"battery_charge_ratio": None, "runtime_seconds": None, "on_battery": None,
                     "output_load_ratio": None, "battery_status": None, "replace_battery": None,
                     "seconds_on_battery": None, "model": None, "serial": None, "alarms": None}
        src: dict[str, str] = {}

        def put(key, value, source):
            if value is not None and ups[key] is None:
                ups[key], src[key] = value, source

        if any(v is not None for v in r.values()):
            charge = ctx.int(r.get("upsEstimatedChargeRemaining"), "upsEstimatedChargeRemaining", lo=0, hi=100)
            put("battery_charge_ratio", charge / 100.0 if charge is not None else None, "UPS-MIB")
            minutes = ctx.int(r.get("upsEstimatedMinutesRemaining"), "upsEstimatedMinutesRemaining", lo=0)
            put("runtime_seconds", minutes * 60.0 if minutes is not None else None, "UPS-MIB")
            secs = ctx.int(r.get("upsSecondsOnBattery"), "upsSecondsOnBattery", lo=0)
            put("seconds_on_battery", secs, "UPS-MIB")
            source = ctx.enum(r.get("upsOutputSource"), "upsOutputSource")
            if source is not None:
                put("on_battery", source == "battery", "UPS-MIB")
            elif secs is not None:
                put("on_battery", secs > 0, "UPS-MIB")  # RFC 1628: zero when not on battery
            status = ctx.enum(r.get("upsBatteryStatus"), "upsBatteryStatus")
            put("battery_status", BATTERY_STATUS.get(status, status), "UPS-MIB")
            put("alarms", ctx.int(r.get("upsAlarmsPresent"), "upsAlarmsPresent", lo=0), "UPS-MIB")
            put("model", ctx.text(r.get("upsIdentModel"), "upsIdentModel"), "UPS-MIB")
            loads = await ctx.walk_column("upsOutputPercentLoad")
            vals = [ctx.int(vb, "upsOutputPercentLoad", lo=0, hi=1000) for vb in loads.values()]
            vals = [v for v in vals if v is not None]
            put("output_load_ratio", max(vals) / 100.0 if vals else None, "UPS-MIB")

        ent = enterprise(_sys_oid(ctx))
        if ent == 318 or ent is None:
            a = await _group(ctx, APC)
            if any(v is not None for v in a.values()):
                hp = ctx.int(a.get("upsHighPrecBatteryCapacity"), "upsHighPrecBatteryCapacity", lo=0, hi=1000)
                cap = ctx.int(a.get("upsAdvBatteryCapacity"), "upsAdvBatteryCapacity", lo=0, hi=100)
                put("battery_charge_ratio", hp / 1000.0 if hp is not None else (cap / 100.0 if cap is not None else None),
                    "PowerNet-MIB")
                ticks = ctx.int(a.get("upsAdvBatteryRunTimeRemaining"), "upsAdvBatteryRunTimeRemaining", lo=0)
                put("runtime_seconds", ticks / 100.0 if ticks is not None else None, "PowerNet-MIB")
                out = ctx.enum(a.get("upsBasicOutputStatus"), "upsBasicOutputStatus")
                if out is not None:
                    put("on_battery", out in ("onBattery", "onBatteryTest"), "PowerNet-MIB")
                status = ctx.enum(a.get("upsBasicBatteryStatus"), "upsBasicBatteryStatus")
                put("battery_status", BATTERY_STATUS.get(status, status), "PowerNet-MIB")
                rep = ctx.int(a.get("upsAdvBatteryReplaceIndicator"), "upsAdvBatteryReplaceIndicator")
                put("replace_battery", rep == 2 if rep in (1, 2) else None, "PowerNet-MIB")
                hl = ctx.int(a.get("upsHighPrecOutputLoad"), "upsHighPrecOutputLoad", lo=0, hi=10000)
                ld = ctx.int(a.get("upsAdvOutputLoad"), "upsAdvOutputLoad", lo=0, hi=1000)
                put("output_load_ratio", hl / 1000.0 if hl is not None else (ld / 100.0 if ld is not None else None),
                    "PowerNet-MIB")
                tob = ctx.int(a.get("upsBasicBatteryTimeOnBattery"), "upsBasicBatteryTimeOnBattery", lo=0)
                put("seconds_on_battery", tob / 100.0 if tob is not None else None, "PowerNet-MIB")
                put("model", ctx.text(a.get("upsBasicIdentModel"), "upsBasicIdentModel"), "PowerNet-MIB")
                put("serial", ctx.text(a.get("upsAdvIdentSerialNumber"), "upsAdvIdentSerialNumber"), "PowerNet-MIB")
        if ent == 3808 or ent is None:
            c = await _group(ctx, CPS)
            if any(v is not None for v in c.values()):
                cap = ctx.int(c.get("cpsUpsAdvanceBatteryCapacity"), "cpsUpsAdvanceBatteryCapacity", lo=0, hi=100)
                put("battery_charge_ratio", cap / 100.0 if cap is not None else None, "CPS-MIB")
                ticks = ctx.int(c.get("cpsUpsAdvanceBatteryRunTimeRemaining"), "cpsUpsAdvanceBatteryRunTimeRemaining",
                                lo=0)
                put("runtime_seconds", ticks / 100.0 if ticks is not None else None, "CPS-MIB")
                out = ctx.enum(c.get("cpsUpsBaseOutputStatus"), "cpsUpsBaseOutputStatus")
                if out is not None:
                    put("on_battery", out == "onBattery", "CPS-MIB")
                status = ctx.enum(c.get("cpsUpsBaseBatteryStatus"), "cpsUpsBaseBatteryStatus")
                put("battery_status", BATTERY_STATUS.get(status, status), "CPS-MIB")
                rep = ctx.int(c.get("cpsUpsAdvanceBatteryReplaceIndicator"), "cpsUpsAdvanceBatteryReplaceIndicator")
                put("replace_battery", rep == 2 if rep in (1, 2) else None, "CPS-MIB")
                put("model", ctx.text(c.get("cpsUpsBaseIdentModel"), "cpsUpsBaseIdentModel"), "CPS-MIB")
                put("serial", ctx.text(c.get("cpsUpsAdvanceIdentSerialNumber"), "cpsUpsAdvanceIdentSerialNumber"),
                    "CPS-MIB")
        if not src:
            raise AgentDataError("no UPS data: neither UPS-MIB nor a known vendor UPS MIB answered")
        ups["sources"] = src
        return {"ups": ups}


def _sys_oid(ctx: PollContext):
    s = ctx.memory.sys_object_id
    return parse_oid(s) if s else None


MODULE = UpsModule("ups")
