"""hostresources: HOST-RESOURCES-MIB storage (size and used in bytes), processor load, memory.

hrStorageSize/Used count allocation units; bytes = units * count. Some agents overflow the
Integer32 and send a negative count for disks over 2**31 units: read back as count + 2**32 (as
LibreNMS does), since a size cannot be negative.
"""
from __future__ import annotations

from probe.sources.snmp.modules.base import Module, PollContext

STORAGE_COLUMNS = ("hrStorageType", "hrStorageDescr", "hrStorageAllocationUnits", "hrStorageSize",
                   "hrStorageUsed")


def _unsigned(v: int | None) -> int | None:
    if v is None:
        return None
    return v + (1 << 32) if v < 0 else v


class HostResourcesModule(Module):
    async def applies(self, ctx: PollContext, sys: dict) -> bool:
        got = await ctx.scalars(["hrSystemUptime", "hrMemorySize"])
        if any(v is not None for v in got.values()):
            return True
        return await ctx.has_subtree("hrStorageTable") or await ctx.has_subtree("hrProcessorLoad")

    async def poll(self, ctx: PollContext) -> dict:
        storage = []
        for idx, cols in sorted((await ctx.walk_columns(STORAGE_COLUMNS)).items()):
            if len(idx) != 1:
                ctx.problem(f"hrStorageTable: index {idx} is not a single hrStorageIndex")
                continue
            units = ctx.int(cols.get("hrStorageAllocationUnits"), "hrStorageAllocationUnits", lo=1)
            size = _unsigned(ctx.int(cols.get("hrStorageSize"), "hrStorageSize"))
            used = _unsigned(ctx.int(cols.get("hrStorageUsed"), "hrStorageUsed"))
            typ = ctx.oid(cols.get("hrStorageType"), "hrStorageType")
            storage.append({
                "index": idx[0],
                "descr": ctx.text(cols.get("hrStorageDescr"), "hrStorageDescr"),
                "type": _storage_type(typ),
                "allocation_units": units,
                "size_bytes": units * size if units is not None and size is not None else None,
                "used_bytes": units * used if units is not None and used is not None else None,
            })
        processors = []
        for idx, vb in sorted((await ctx.walk_column("hrProcessorLoad")).items()):
            if len(idx) != 1:
                ctx.problem(f"hrProcessorLoad: index {idx} is not a single hrDeviceIndex")
                continue
            processors.append({"index": idx[0], "load_percent": ctx.int(vb, "hrProcessorLoad", lo=0, hi=100)})
        mem = await ctx.scalars(["hrMemorySize"])
        kib = ctx.int(mem["hrMemorySize"], "hrMemorySize", lo=0)
        ram = [s for s in storage if s["type"] == "hrStorageRam" and s["size_bytes"]]
        memory = {"total_bytes": kib * 1024 if kib is not None else (ram[0]["size_bytes"] if ram else None),
                  "used_bytes": ram[0]["used_bytes"] if ram else None}
        return {"storage": storage, "processors": processors, "memory": memory}


def _storage_type(oid) -> str | None:
    from probe.sources.snmp import mibtables as T

    if oid is None:
        return None
    root = T.OID["hrStorageTypes"]
    if oid[:len(root)] == root and len(oid) == len(root) + 1:
        return T.ENUMS["hrStorageType"].get(oid[-1], "hrStorage" + str(oid[-1]))
    return ".".join(map(str, oid))  # a vendor type: keep the OID


MODULE = HostResourcesModule("hostresources")
