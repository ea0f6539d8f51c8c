"""interfaces: IF-MIB ifTable + ifXTable.

Labels (ifDescr, ifName, ifAlias, ifType, ifPhysAddress) are walked once and cached; the cache is
dropped when the agent restarted, when ifTableLastChange or ifNumber moved, when a known row stops
answering, or after LABEL_MAX_AGE (ifAlias edits do not move ifTableLastChange). While the cache
holds, each poll reads only the changing columns with GETs by index, not whole-table walks.

Counters: the 64-bit ifHC* column where the row has it, the 32-bit one otherwise. Deltas between
polls come from ctx.counter_deltas (probe/sources/snmp/counters.py, or the fast path's kernel the SNMP
subsystem hands in: 32-bit wrap handled; a 64-bit decrease is a
discontinuity, not a wrap; a 32-bit decrease is a wrap only when the increment it implies fits the
link's speed, see plausible_wrap); after a restart or an ifCounterDiscontinuityTime move the previous values
are dropped, so a reset is never read as a wrap. `total` is a monotonic, wrap-corrected running sum
of deltas since the probe first saw the row: what the Prometheus `_total` counters expose.

`name` is ifName, or ifDescr when the agent has no ifName (old IF-MIB agents, printers).
Speed: ifSpeed (bit/s) unless it is saturated at 2**32-1 or missing, then ifHighSpeed * 1e6.
"""
from __future__ import annotations

import numpy as np

from probe.sources.snmp import mibtables as T
from probe.sources.snmp.modules.base import ABSENT, AgentDataError, Module, PollContext

LABEL_COLUMNS = ("ifDescr", "ifType", "ifName", "ifAlias", "ifPhysAddress")
STATUS_COLUMNS = ("ifAdminStatus", "ifOperStatus", "ifSpeed", "ifHighSpeed", "ifLastChange",
                  "ifCounterDiscontinuityTime")
# counter name -> (64-bit column or None, 32-bit column)
COUNTERS = {
    "in_octets": ("ifHCInOctets", "ifInOctets"),
    "out_octets": ("ifHCOutOctets", "ifOutOctets"),
    "in_ucast_pkts": ("ifHCInUcastPkts", "ifInUcastPkts"),
    "out_ucast_pkts": ("ifHCOutUcastPkts", "ifOutUcastPkts"),
    "in_multicast_pkts": ("ifHCInMulticastPkts", "ifInMulticastPkts"),
    "out_multicast_pkts": ("ifHCOutMulticastPkts", "ifOutMulticastPkts"),
    "in_broadcast_pkts": ("ifHCInBroadcastPkts", "ifInBroadcastPkts"),
    "out_broadcast_pkts": ("ifHCOutBroadcastPkts", "ifOutBroadcastPkts"),
    "in_errors": (None, "ifInErrors"),
    "out_errors": (None, "ifOutErrors"),
    "in_discards": (None, "ifInDiscards"),
    "out_discards": (None, "ifOutDiscards"),
}
COUNTER_COLUMNS = tuple(c for pair in COUNTERS.values() for c in pair if c)
DYNAMIC_COLUMNS = STATUS_COLUMNS + COUNTER_COLUMNS
LABEL_MAX_AGE = 3600.0
SPEED_SATURATED = (1 << 32) - 1


def plausible_wrap(counter: str, delta: float, interval: float | None, speed_bps: int | None) -> bool:
    """Could a 32-bit counter have wrapped to give this delta in `interval` s on a link this fast?
    A decrease is read as a wrap only if the increment it implies fits the link (octets: speed / 8;
    packets, errors, discards: the minimum-frame rate, 84 bytes on the wire), with 50% slack. An
    operator's "clear counters" then shows as a discontinuity instead of ~4 billion new errors."""
    if not interval or interval <= 0 or not speed_bps:
        return True  # nothing to judge by
    per_second = speed_bps / 8.0 if counter.endswith("octets") else speed_bps / (84 * 8.0)
    return delta <= per_second * interval * 1.5 + 1000


class InterfacesModule(Module):
    async def applies(self, ctx: PollContext, sys: dict) -> bool:
        return True  # nearly every agent has IF-MIB; an empty table is an honest empty answer

    async def poll(self, ctx: PollContext) -> dict:
        slot = ctx.memory.slot(self.name)
        sc = await ctx.scalars(["sysUpTime", "ifTableLastChange", "ifNumber"])
        uptime = ctx.int(sc["sysUpTime"], "sysUpTime", lo=0)
        ctx.observe_uptime(uptime)
        last_change = ctx.int(sc["ifTableLastChange"], "ifTableLastChange", lo=0)
        if_number = ctx.int(sc["ifNumber"], "ifNumber", lo=0)

        why = self._stale(ctx, slot, last_change, if_number)
        rows: dict[int, dict] | None = None
        if why is None:
            rows = await self._get_by_index(ctx, slot)
            if rows is None:
                why = "a known interface stopped answering"
        if why is not None:
            rows = await self._walk(ctx, slot)
            slot.update(labels_at=ctx.now, boot_epoch=ctx.memory.boot_epoch, if_table_last_change=last_change,
                        if_number=if_number)
        interval = ctx.now - slot["prev_at"] if slot.get("prev_at") is not None else None
        out = self._derive(ctx, slot, rows, uptime, interval)
        slot["prev_at"] = ctx.now
        return {"interfaces": out,
                "interfaces_poll": {"labels": "walked" if why else "cached", "why": why,
                                    "interval_seconds": interval, "if_table_last_change": last_change}}

    # -- reading ----------------------------------------------------------------------------------
    def _stale(self, ctx, slot, last_change, if_number) -> str | None:
        if "labels" not in slot:
            return "first poll"
        if slot.get("boot_epoch") != ctx.memory.boot_epoch:
            return "agent restarted"
        if last_change is not None and slot.get("if_table_last_change") not in (None, last_change):
            return "ifTableLastChange moved"
        if if_number is not None and slot.get("if_number") not in (None, if_number):
            return "ifNumber changed"
        if ctx.now - slot.get("labels_at", ctx.now) > LABEL_MAX_AGE:
            return "label cache expired"
        return None

    async def _walk(self, ctx: PollContext, slot: dict) -> dict[int, dict]:
        table = await ctx.walk_columns(LABEL_COLUMNS + DYNAMIC_COLUMNS)
        labels: dict[int, dict] = {}
        present: dict[int, tuple[str, ...]] = {}
        rows: dict[int, dict] = {}
        for idx, cols in sorted(table.items()):
            if len(idx) != 1:
                ctx.problem(f"ifTable: index {'.'.join(map(str, idx))} is not a single ifIndex")
                continue
            i = idx[0]
            labels[i] = {
                "descr": ctx.text(cols.get("ifDescr"), "ifDescr"),
                "name": ctx.text(cols.get("ifName"), "ifName") or ctx.text(cols.get("ifDescr"), "ifDescr"),
                "alias": ctx.text(cols.get("ifAlias"), "ifAlias"),
                "type": ctx.enum(cols.get("ifType"), "ifType"),
                "mac": ctx.mac(cols.get("ifPhysAddress"), "ifPhysAddress"),
            }
            # Where the row has the 64-bit column, its 32-bit twin is not worth a varbind per poll.
            shadowed = {low for hc, low in COUNTERS.values() if hc and hc in cols and cols[hc].type == "Counter64"}
            present[i] = tuple(c for c in DYNAMIC_COLUMNS if c in cols and c not in shadowed)
            rows[i] = {c: cols[c] for c in present[i]}
        slot["labels"] = labels
        slot["present"] = present
        # Forget counters of rows that are gone (bounded by the table).
        for key in ("prev", "total", "oper", "flaps", "last_change", "discontinuity"):
            if key in slot:
                slot[key] = {i: v for i, v in slot[key].items() if i in labels}
        return rows

    async def _get_by_index(self, ctx: PollContext, slot: dict) -> dict[int, dict] | None:
        wanted = [(i, c) for i, cols in slot["present"].items() for c in cols]
        got = await ctx.get([T.OID[c] + (i,) for i, c in wanted])
        rows: dict[int, dict] = {i: {} for i in slot["present"]}
        for (i, c), vb in zip(wanted, got):
            if vb.type in ABSENT:
                if c == "ifOperStatus":
                    return None  # the row went away: walk again
                continue
            rows[i][c] = vb
        return rows

    # -- deriving ---------------------------------------------------------------------------------
    def _derive(self, ctx: PollContext, slot: dict, rows: dict[int, dict], uptime: int | None,
                interval: float | None) -> list[dict]:
        prev: dict = slot.setdefault("prev", {})
        total: dict = slot.setdefault("total", {})
        opers: dict = slot.setdefault("oper", {})
        flaps: dict = slot.setdefault("flaps", {})
        last_changes: dict = slot.setdefault("last_change", {})
        disc: dict = slot.setdefault("discontinuity", {})
        if slot.get("counters_epoch") != ctx.memory.boot_epoch:
            prev.clear()  # counters restarted with the agent: never read a reset as a wrap
            slot["counters_epoch"] = ctx.memory.boot_epoch

        out, keys, p_vals, c_vals, bits = [], [], [], [], []
        for i, cols in sorted(rows.items()):
            lab = slot["labels"].get(i, {})
            d = ctx.int(cols.get("ifCounterDiscontinuityTime"), "ifCounterDiscontinuityTime", lo=0)
            if d is not None and disc.get(i) not in (None, d):
                prev.pop(i, None)
            disc[i] = d
            speed = ctx.int(cols.get("ifSpeed"), "ifSpeed", lo=0)
            high = ctx.int(cols.get("ifHighSpeed"), "ifHighSpeed", lo=0)
            speed_bps = speed
            if (speed is None or speed >= SPEED_SATURATED) and high is not None:
                speed_bps = high * 1_000_000
            oper = ctx.enum(cols.get("ifOperStatus"), "ifOperStatus")
            last = ctx.int(cols.get("ifLastChange"), "ifLastChange", lo=0)
            oper_changed = i in opers and oper is not None and opers[i] is not None and opers[i] != oper
            last_moved = i in last_changes and last is not None and last_changes[i] not in (None, last)
            if oper_changed or last_moved:
                flaps[i] = flaps.get(i, 0) + 1
            opers[i], last_changes[i] = oper, last
            row = {"index": i, "name": lab.get("name"), "descr": lab.get("descr"), "alias": lab.get("alias"),
                   "type": lab.get("type"), "mac": lab.get("mac"), "speed_bps": speed_bps, "high_speed_mbps": high,
                   "admin_status": ctx.enum(cols.get("ifAdminStatus"), "ifAdminStatus"), "oper_status": oper,
                   "last_change_seconds": last / 100.0 if last is not None else None,
                   # ifLastChange is sysUpTime at the change: as a wall-clock time, when it is plausible
                   # (0 means "before the agent started", and it cannot be ahead of the uptime).
                   "last_change_at": (ctx.now - (uptime - last) / 100.0
                                      if uptime is not None and last and last <= uptime else None),
                   "oper_status_changed": oper_changed, "last_change_moved": last_moved,
                   "status_changes": flaps.get(i, 0)}
            cur_bits = {}
            for name, (hc, low) in COUNTERS.items():
                val = None
                if hc and hc in cols:
                    val = ctx.counter(cols[hc], hc)
                if val is None and low in cols:
                    val = ctx.counter(cols[low], low)
                row[name] = val[0] if val else None
                if val is None:
                    continue
                cur_bits[name] = val[1]
                pv = prev.get(i, {}).get(name)
                if pv is not None and pv[1] == val[1]:
                    keys.append((i, name))
                    p_vals.append(pv[0])
                    c_vals.append(val[0])
                    bits.append(val[1])
            row["counter_bits"] = 64 if 64 in cur_bits.values() else (32 if cur_bits else None)
            row["delta"] = {}
            row["total"] = {}
            prev[i] = {n: (row[n], b) for n, b in cur_bits.items()}
            out.append(row)

        deltas = ctx.counter_deltas(np.array(p_vals, dtype=np.uint64), np.array(c_vals, dtype=np.uint64),
                                         np.array(bits, dtype=np.uint8)) if keys else []
        by_index = {r["index"]: r for r in out}
        for (i, name), dv, pv, cv in zip(keys, deltas, p_vals, c_vals):
            if not np.isnan(dv) and cv < pv and not plausible_wrap(name, float(dv), interval,
                                                                   by_index[i]["speed_bps"]):
                dv = np.nan  # counters cleared (or a lying agent), not a 32-bit wrap
            by_index[i]["delta"][name] = None if np.isnan(dv) else float(dv)
        for r in out:
            tot = total.setdefault(r["index"], {})
            for name in COUNTERS:
                if r[name] is None:
                    continue
                dv = r["delta"].get(name)
                tot[name] = tot.get(name, 0.0) + (dv or 0.0)
                r["total"][name] = tot[name]
                r["delta"].setdefault(name, None)
        if len(out) > ctx.max_rows:
            raise AgentDataError(f"ifTable: more than {ctx.max_rows} rows")
        return out


MODULE = InterfacesModule("interfaces")
