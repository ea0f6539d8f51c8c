"""inventory: what a device is and what it sees around it (slow schedule).

- entity: ENTITY-MIB entPhysicalTable rows (model, serial, class...); `chassis` is the first
  chassis-class row (or the first row with a model/serial).
- lldp_neighbors: LLDP-MIB lldpRemTable, the local port resolved to an ifIndex by name (lldpLocPortId
  or lldpLocPortDesc equal to ifName/ifDescr), else through dot1dBasePortIfIndex, else the port number
  itself when it is an ifIndex.
- fdb: Q-BRIDGE dot1qTpFdbTable (the FDB id from its index, mapped to a VLAN id through
  dot1qVlanFdbId when the agent has it, else taken as the VLAN id) and BRIDGE dot1dTpFdbTable; bridge
  port -> ifIndex via dot1dBasePortIfIndex. Invalid entries are skipped.
- arp: IP-MIB ipNetToPhysicalTable (IPv4 and IPv6) and the older ipNetToMediaTable, merged.

Each section is read on its own: one that fails (timeout, lying agent) is reported as a problem and
does not hide the others; the module fails only when every section failed.
"""
from __future__ import annotations

from probe.sources.snmp.client import OCTETS, SnmpError
from probe.sources.snmp.modules.base import (
    ABSENT, AgentDataError, Module, PollContext, format_mac, inet_address, ipv4_from_index, mac_from_index,
    parse_mac_text,
)

ENTITY_COLUMNS = ("entPhysicalDescr", "entPhysicalContainedIn", "entPhysicalClass", "entPhysicalName",
                  "entPhysicalHardwareRev", "entPhysicalFirmwareRev", "entPhysicalSoftwareRev",
                  "entPhysicalSerialNum", "entPhysicalMfgName", "entPhysicalModelName", "entPhysicalIsFRU")
LLDP_COLUMNS = ("lldpRemChassisIdSubtype", "lldpRemChassisId", "lldpRemPortIdSubtype", "lldpRemPortId",
                "lldpRemPortDesc", "lldpRemSysName", "lldpRemSysDesc")


def lldp_id(subtype: str | None, raw: bytes | None, mac_subtype: str) -> str | None:
    """An LLDP chassis/port id as text: MACs as aa:bb:.., network addresses as IPs, names as text."""
    if raw is None:
        return None
    if subtype == mac_subtype:
        if len(raw) == 6:
            return format_mac(raw)
        parsed = parse_mac_text(raw)
        if parsed:
            return parsed
    if subtype == "networkAddress" and len(raw) in (5, 17):
        addr = inet_address(raw[0], list(raw[1:]))
        if addr:
            return addr
    text = raw.rstrip(b"\x00").decode("utf-8", "replace")
    if text and all(ch.isprintable() for ch in text):
        return text.strip()
    return raw.hex()


class InventoryModule(Module):
    async def applies(self, ctx: PollContext, sys: dict) -> bool:
        return True

    async def poll(self, ctx: PollContext) -> dict:
        out: dict = {}
        errors: list[SnmpError] = []
        for key, fn in (("entity", self._entity), ("lldp_neighbors", self._lldp), ("fdb", self._fdb),
                        ("arp", self._arp)):
            try:
                out.update(await fn(ctx))
            except SnmpError as exc:
                if exc.kind == "auth":
                    raise
                errors.append(exc)
                ctx.problem(f"{key}: {exc.kind}: {exc}")
        if len(errors) == 4:
            raise errors[0]
        return out

    async def _bridge_port_map(self, ctx: PollContext) -> dict[int, int]:
        if "bridge_ports" not in ctx.cache:
            col = await ctx.walk_column("dot1dBasePortIfIndex")
            ctx.cache["bridge_ports"] = {
                idx[0]: v for idx, vb in col.items()
                if len(idx) == 1 and (v := ctx.int(vb, "dot1dBasePortIfIndex", lo=1)) is not None}
        return ctx.cache["bridge_ports"]

    async def _entity(self, ctx: PollContext) -> dict:
        rows = []
        for idx, cols in sorted((await ctx.walk_columns(ENTITY_COLUMNS)).items()):
            if len(idx) != 1:
                ctx.problem(f"entPhysicalTable: index {idx} is not a single entPhysicalIndex")
                continue
            fru = ctx.int(cols.get("entPhysicalIsFRU"), "entPhysicalIsFRU")
            rows.append({
                "index": idx[0],
                "class": ctx.enum(cols.get("entPhysicalClass"), "entPhysicalClass"),
                "descr": ctx.text(cols.get("entPhysicalDescr"), "entPhysicalDescr"),
                "name": ctx.text(cols.get("entPhysicalName"), "entPhysicalName"),
                "contained_in": ctx.int(cols.get("entPhysicalContainedIn"), "entPhysicalContainedIn", lo=0),
                "model": ctx.text(cols.get("entPhysicalModelName"), "entPhysicalModelName") or None,
                "serial": ctx.text(cols.get("entPhysicalSerialNum"), "entPhysicalSerialNum") or None,
                "mfg": ctx.text(cols.get("entPhysicalMfgName"), "entPhysicalMfgName") or None,
                "hardware_rev": ctx.text(cols.get("entPhysicalHardwareRev"), "entPhysicalHardwareRev") or None,
                "firmware_rev": ctx.text(cols.get("entPhysicalFirmwareRev"), "entPhysicalFirmwareRev") or None,
                "software_rev": ctx.text(cols.get("entPhysicalSoftwareRev"), "entPhysicalSoftwareRev") or None,
                "fru": {1: True, 2: False}.get(fru),
            })
        chassis = next((r for r in rows if r["class"] == "chassis"), None) or \
            next((r for r in rows if r["model"] or r["serial"]), None)
        summary = {"model": chassis["model"], "serial": chassis["serial"], "descr": chassis["descr"]} if chassis else None
        return {"entity": rows, "chassis": summary}

    async def _lldp(self, ctx: PollContext) -> dict:
        rem = await ctx.walk_columns(LLDP_COLUMNS)
        if not rem:
            return {"lldp_neighbors": []}
        loc = await ctx.walk_columns(("lldpLocPortId", "lldpLocPortDesc"))
        names = await ctx.walk_columns(("ifName", "ifDescr"))
        by_name: dict[str, int] = {}
        for idx, cols in sorted(names.items(), reverse=True):  # lowest ifIndex wins a name clash
            if len(idx) == 1:
                for c in ("ifDescr", "ifName"):
                    n = ctx.text(cols.get(c), c)
                    if n:
                        by_name[n] = idx[0]
        bridge = None
        out = []
        for idx, cols in sorted(rem.items()):
            if len(idx) != 3:
                ctx.problem(f"lldpRemTable: index {idx} is not timeMark.localPortNum.index")
                continue
            port_num = idx[1]
            lp = loc.get((port_num,), {})
            local_id = ctx.text(lp.get("lldpLocPortId"), "lldpLocPortId")
            local_desc = ctx.text(lp.get("lldpLocPortDesc"), "lldpLocPortDesc")
            if_index = by_name.get(local_id or "") or by_name.get(local_desc or "")
            if if_index is None:
                if bridge is None:
                    bridge = await self._bridge_port_map(ctx)
                if_index = bridge.get(port_num) or (port_num if (port_num,) in names else None)
            ch_sub = ctx.enum(cols.get("lldpRemChassisIdSubtype"), "lldpRemChassisIdSubtype")
            pt_sub = ctx.enum(cols.get("lldpRemPortIdSubtype"), "lldpRemPortIdSubtype")
            out.append({
                "local_port_num": port_num, "local_port_id": local_id, "local_port_descr": local_desc,
                "if_index": if_index,
                "chassis_id_subtype": ch_sub,
                "chassis_id": lldp_id(ch_sub, _octets(ctx, cols.get("lldpRemChassisId"), "lldpRemChassisId"),
                                      "macAddress"),
                "port_id_subtype": pt_sub,
                "port_id": lldp_id(pt_sub, _octets(ctx, cols.get("lldpRemPortId"), "lldpRemPortId"), "macAddress"),
                "port_descr": ctx.text(cols.get("lldpRemPortDesc"), "lldpRemPortDesc"),
                "sys_name": ctx.text(cols.get("lldpRemSysName"), "lldpRemSysName"),
                "sys_descr": ctx.text(cols.get("lldpRemSysDesc"), "lldpRemSysDesc", max_len=512),
            })
        return {"lldp_neighbors": out}

    async def _fdb(self, ctx: PollContext) -> dict:
        q = await ctx.walk_columns(("dot1qTpFdbPort", "dot1qTpFdbStatus"))
        d = {} if q else await ctx.walk_columns(("dot1dTpFdbPort", "dot1dTpFdbStatus"))
        if not q and not d:
            return {"fdb": []}
        bridge = await self._bridge_port_map(ctx)
        # FDB id -> VLAN id (dot1qVlanCurrentTable, index timeMark.vlan); without it, FDB id = VLAN id.
        fdb_vlan: dict[int, int] = {}
        if q:
            for idx, vb in (await ctx.walk_column("dot1qVlanFdbId")).items():
                fid = ctx.int(vb, "dot1qVlanFdbId", lo=0)
                if len(idx) == 2 and fid is not None:
                    fdb_vlan.setdefault(fid, idx[1])
        out, seen = [], set()
        for prefix, table, vlan_arcs in (("dot1q", q, 1), ("dot1d", d, 0)):
            for idx, cols in sorted(table.items()):
                mac = mac_from_index(idx[vlan_arcs:])
                if mac is None or len(idx) != vlan_arcs + 6:
                    ctx.problem(f"{prefix}TpFdbTable: index {idx} is not {'fdbId.' if vlan_arcs else ''}MAC")
                    continue
                status = ctx.enum(cols.get(f"{prefix}TpFdbStatus"), f"{prefix}TpFdbStatus")
                if status == "invalid":
                    continue
                port = ctx.int(cols.get(f"{prefix}TpFdbPort"), f"{prefix}TpFdbPort", lo=0)
                fdb_id = idx[0] if vlan_arcs else None
                vlan = fdb_vlan.get(fdb_id, fdb_id) if vlan_arcs else None
                key = (mac, vlan, port)
                if key in seen:
                    continue
                seen.add(key)
                out.append({"mac": mac, "vlan": vlan, "fdb_id": fdb_id, "port": port,
                            "if_index": bridge.get(port) if port else None, "status": status})
                if len(out) >= ctx.max_rows:
                    raise AgentDataError(f"{prefix}TpFdbTable: more than {ctx.max_rows} entries")
        return {"fdb": out}

    async def _arp(self, ctx: PollContext) -> dict:
        out: dict[tuple, dict] = {}
        phys = await ctx.walk_columns(("ipNetToPhysicalPhysAddress", "ipNetToPhysicalType"))
        for idx, cols in sorted(phys.items()):
            # ifIndex . addressType . length . address octets (InetAddress is not IMPLIED)
            if len(idx) < 3 or idx[2] != len(idx) - 3:
                ctx.problem(f"ipNetToPhysicalTable: index {idx} is not ifIndex.type.len.address")
                continue
            ip = inet_address(idx[1], idx[3:])
            typ = ctx.enum(cols.get("ipNetToPhysicalType"), "ipNetToPhysicalType")
            mac = ctx.mac(cols.get("ipNetToPhysicalPhysAddress"), "ipNetToPhysicalPhysAddress")
            if ip is None or typ == "invalid" or mac is None:
                continue
            out[(ip, idx[0])] = {"ip": ip, "mac": mac, "if_index": idx[0], "type": typ}
        media = await ctx.walk_columns(("ipNetToMediaPhysAddress", "ipNetToMediaType"))
        for idx, cols in sorted(media.items()):
            ip = ipv4_from_index(idx[1:]) if len(idx) == 5 else None
            if ip is None:
                ctx.problem(f"ipNetToMediaTable: index {idx} is not ifIndex.IPv4")
                continue
            typ = ctx.enum(cols.get("ipNetToMediaType"), "ipNetToMediaType")
            mac = ctx.mac(cols.get("ipNetToMediaPhysAddress"), "ipNetToMediaPhysAddress")
            if typ == "invalid" or mac is None:
                continue
            out.setdefault((ip, idx[0]), {"ip": ip, "mac": mac, "if_index": idx[0], "type": typ})
            if len(out) >= ctx.max_rows:
                raise AgentDataError(f"ARP tables: more than {ctx.max_rows} entries")
        return {"arp": [out[k] for k in sorted(out, key=lambda k: (k[1], k[0]))]}


def _octets(ctx: PollContext, vb, name: str) -> bytes | None:
    if vb is None or vb.type in ABSENT:
        return None
    if vb.type != OCTETS:
        ctx.problem(f"{name}: {vb.type} where an octet string was expected")
        return None
    return bytes(vb.value)


MODULE = InventoryModule("inventory")
