"""printer: Printer-MIB marker supplies (toner, drums, waste...) and input trays.

The level columns carry special values that are not quantities: -1 other, -2 unknown, -3 "some
remaining" (RFC 3805). They are reported as a `state` with no ratio (None), never as numbers; a max
capacity of -1/-2 or 0 likewise leaves the ratio absent. LibreNMS differs:
it reports percentages and maps -3 to 50% (see tests/unit/test_snmp_recordings.py).
"""
from __future__ import annotations

from probe.sources.snmp.client import parse_oid
from probe.sources.snmp.modules.base import Module, PollContext, enterprise

SUPPLY_COLUMNS = ("prtMarkerSuppliesClass", "prtMarkerSuppliesType", "prtMarkerSuppliesDescription",
                  "prtMarkerSuppliesSupplyUnit", "prtMarkerSuppliesMaxCapacity", "prtMarkerSuppliesLevel")
INPUT_COLUMNS = ("prtInputType", "prtInputMaxCapacity", "prtInputCurrentLevel", "prtInputName",
                 "prtInputDescription")
SPECIAL = {-1: "other", -2: "unknown", -3: "some_remaining"}
# Enterprises that make mostly printers (HP is not one: it also makes switches).
PRINTER_ENTERPRISES = {367, 1602, 2435, 253, 1347, 641, 1248, 18334, 2385, 2001, 674, 236}


def level_state(level: int | None, max_capacity: int | None) -> tuple[str, float | None]:
    """(state, remaining ratio) of a supply or tray; the ratio only when both numbers are quantities."""
    if level is None:
        return "missing", None
    if level in SPECIAL:
        return SPECIAL[level], None
    if level < 0:
        return "invalid", None
    if max_capacity is None or max_capacity in SPECIAL or max_capacity < 0:
        return "capacity_unknown", None
    if max_capacity == 0:
        return "no_capacity", None
    if level > max_capacity:
        return "over_capacity", 1.0
    return "ok", level / max_capacity


class PrinterModule(Module):
    async def applies(self, ctx: PollContext, sys: dict) -> bool:
        oid = parse_oid(sys["object_id"]) if sys.get("object_id") else None
        if enterprise(oid) in PRINTER_ENTERPRISES:
            return True
        return await ctx.has_subtree("prtMarkerSuppliesLevel")

    async def poll(self, ctx: PollContext) -> dict:
        supplies = []
        for idx, cols in sorted((await ctx.walk_columns(SUPPLY_COLUMNS)).items()):
            if len(idx) != 2:
                ctx.problem(f"prtMarkerSuppliesTable: index {idx} is not hrDeviceIndex.prtMarkerSuppliesIndex")
                continue
            level = ctx.int(cols.get("prtMarkerSuppliesLevel"), "prtMarkerSuppliesLevel")
            cap = ctx.int(cols.get("prtMarkerSuppliesMaxCapacity"), "prtMarkerSuppliesMaxCapacity")
            state, ratio = level_state(level, cap)
            supplies.append({
                "index": idx[1], "device_index": idx[0],
                "descr": ctx.text(cols.get("prtMarkerSuppliesDescription"), "prtMarkerSuppliesDescription"),
                "type": ctx.enum(cols.get("prtMarkerSuppliesType"), "prtMarkerSuppliesType"),
                "class": ctx.enum(cols.get("prtMarkerSuppliesClass"), "prtMarkerSuppliesClass"),
                "unit": ctx.enum(cols.get("prtMarkerSuppliesSupplyUnit"), "prtMarkerSuppliesSupplyUnit"),
                "level": level if state not in SPECIAL.values() else None,
                "max_capacity": cap if cap is not None and cap > 0 else None,
                "remaining_ratio": ratio, "state": state,
            })
        inputs = []
        for idx, cols in sorted((await ctx.walk_columns(INPUT_COLUMNS)).items()):
            if len(idx) != 2:
                ctx.problem(f"prtInputTable: index {idx} is not hrDeviceIndex.prtInputIndex")
                continue
            level = ctx.int(cols.get("prtInputCurrentLevel"), "prtInputCurrentLevel")
            cap = ctx.int(cols.get("prtInputMaxCapacity"), "prtInputMaxCapacity")
            state, ratio = level_state(level, cap)
            inputs.append({
                "index": idx[1], "device_index": idx[0],
                "name": ctx.text(cols.get("prtInputName"), "prtInputName"),
                "descr": ctx.text(cols.get("prtInputDescription"), "prtInputDescription"),
                "type": ctx.enum(cols.get("prtInputType"), "prtInputType"),
                "level": level if state not in SPECIAL.values() else None,
                "max_capacity": cap if cap is not None and cap > 0 else None,
                "remaining_ratio": ratio, "state": state,
            })
        return {"printer_supplies": supplies, "printer_inputs": inputs}


MODULE = PrinterModule("printer")
