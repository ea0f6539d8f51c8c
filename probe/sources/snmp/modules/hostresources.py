"""hostresources: HOST-RESOURCES-MIB storage (size and used in bytes), processor load, memory.

hrStorageSize/Used count allocation units; bytes = units * count. Some agents overflow the
Integer32 and send a negative count for disks over 2**31 units: read back as count + 2**32 (as
LibreNMS does), since a size cannot be negative.
`memory`: see memory_from (buffers and cache are not counted as used, as LibreNMS does).
"""
from __future__ import annotations

from probe.sources.snmp import mibtables as T
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
        return {"storage": storage, "processors": processors, "memory": memory_from(storage, kib)}


def memory_from(storage: list[dict], memory_kib: int | None) -> dict:
    """Physical memory: total from hrMemorySize or the RAM row's size (the larger); used from the RAM row,
    minus buffers and cache where the agent reports them as their own rows (Net-SNMP's "Memory
    buffers" and "Cached memory"): memory a kernel gives back on demand is not used."""
    ram = [s for s in storage if s["type"] == "hrStorageRam" and s["size_bytes"]]
    row = next((s for s in ram if (s["descr"] or "").lower() == "physical memory"), ram[0] if ram else None)
    by_descr = {(s["descr"] or "").lower(): s for s in storage if s["type"] == "hrStorageOther"}
    buffers = (by_descr.get("memory buffers") or {}).get("used_bytes")
    cached = (by_descr.get("cached memory") or {}).get("used_bytes")
    used = row["used_bytes"] if row else None
    if used is not None and (buffers is not None or cached is not None):
        used = max(0, used - (buffers or 0) - (cached or 0))
    # hrMemorySize and the RAM row should agree; when they do not, the larger is the memory: FreeBSD's
    # bsnmpd RAM rows describe only active memory, some printers' hrMemorySize only a part.
    sizes = [v for v in (memory_kib * 1024 if memory_kib else None, row["size_bytes"] if row else None) if v]
    total = max(sizes) if sizes else None
    return {"total_bytes": total, "used_bytes": used, "buffers_bytes": buffers, "cached_bytes": cached,
            "storage_index": row["index"] if row else None}


def _storage_type(oid) -> str | None:
    if oid is None:
        return None
    root = T.OID["hrStorageTypes"]
    if oid[:len(root)] == root and len(oid) == len(root) + 1:
        return T.ENUMS["hrStorageType"].get(oid[-1], "hrStorage" + str(oid[-1]))
    return ".".join(map(str, oid))  # a vendor type: keep the OID


MODULE = HostResourcesModule("hostresources")
