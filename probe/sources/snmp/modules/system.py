"""system: SNMPv2-MIB system group (sysDescr, sysObjectID, sysName, sysLocation, sysUpTime) and
agent restarts, told from sysUpTime going back (32-bit TimeTicks wrap taken into account)."""
from __future__ import annotations

from probe.sources.snmp.client import format_oid
from probe.sources.snmp.modules.base import AgentDataError, Module, PollContext

SCALARS = ("sysDescr", "sysObjectID", "sysUpTime", "sysContact", "sysName", "sysLocation")


class SystemModule(Module):
    async def applies(self, ctx: PollContext, sys: dict) -> bool:
        return True

    async def poll(self, ctx: PollContext) -> dict:
        got = await ctx.scalars(SCALARS)
        if all(v is None for v in got.values()):
            raise AgentDataError("the agent has no system group (sysDescr, sysObjectID, sysUpTime all missing)")
        ticks = ctx.int(got["sysUpTime"], "sysUpTime", lo=0)
        restarted = ctx.observe_uptime(ticks)
        oid = ctx.oid(got["sysObjectID"], "sysObjectID")
        return {"sys": {
            "descr": ctx.text(got["sysDescr"], "sysDescr", max_len=1024),
            "object_id": format_oid(oid) if oid is not None else None,
            "name": ctx.text(got["sysName"], "sysName"),
            "location": ctx.text(got["sysLocation"], "sysLocation"),
            "contact": ctx.text(got["sysContact"], "sysContact"),
            "uptime_seconds": ticks / 100.0 if ticks is not None else None,
            "rebooted": restarted,  # sysUpTime went back: the agent (or device) restarted
            "restarts": ctx.memory.restarts,
        }}


MODULE = SystemModule("system")
