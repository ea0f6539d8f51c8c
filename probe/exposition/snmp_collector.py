"""Prometheus metrics from the SNMP poller's latest results (never polls: a slow device cannot make
a scrape slow).

`SnmpCollector(results)` takes a callable returning the latest `DeviceResult` of each device (the
poller keeps them, merged across its fast and slow schedules with `DeviceResult.merged_with`) and
yields fresh families on each collect(). `families(results)` is the same as a plain function, for
the one-shot `sitevigil snmp --format prom` and the `/snmp?target=` endpoint.

Names: prefix sitevigil_snmp_, base units, counters end in _total, `_info` for label-only facts.
Every label set is bounded: `device` by the configured/discovered devices, `module` and `class` by
fixed lists, interface/storage/supply indexes by the tables' row cap. Interface metrics carry
`ifindex` and `ifname` (stable); ifDescr/ifAlias/ifType are in sitevigil_snmp_if_info. Per-MAC FDB
and ARP rows are not series (they would be unbounded): only their counts are.

Per device and module: up, last success timestamp, poll duration, PDUs/retries/timeouts (last poll
and running totals), error class of the last poll, errors by class, problems found in the data.
"""
from __future__ import annotations

from typing import Callable, Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

P = "sitevigil_snmp_"
CASTS = (("ucast", "unicast"), ("multicast", "multicast"), ("broadcast", "broadcast"))


def _g(name, doc, labels):
    return GaugeMetricFamily(P + name, doc, labels=labels)


def _c(name, doc, labels):
    return CounterMetricFamily(P + name, doc, labels=labels)


def _s(v) -> str:
    return "" if v is None else str(v)


def families(results: Iterable) -> list:
    """Metric families for these DeviceResults (see the module docstring for the names)."""
    d, dm = ["device"], ["device", "module"]
    up = _g("up", "Whether the device answered SNMP in its latest poll (any module succeeded).", d)
    mod_up = _g("module_up", "Whether the module's latest poll succeeded.", dm)
    last_ok = _g("module_last_success_timestamp_seconds", "When the module last succeeded (0: never).", dm)
    dur = _g("module_poll_duration_seconds", "How long the module's latest poll took.", dm)
    pdus = _g("module_last_poll_pdus", "SNMP requests the module's latest poll sent.", dm)
    retries = _g("module_last_poll_retries", "Retries in the module's latest poll.", dm)
    tmo = _g("module_last_poll_timeouts", "Timeouts in the module's latest poll.", dm)
    pdus_t = _c("pdus", "SNMP requests sent, by module.", dm)
    retries_t = _c("retries", "SNMP retries, by module.", dm)
    tmo_t = _c("timeouts", "SNMP requests that timed out, by module.", dm)
    polls_t = _c("module_polls", "Polls of each module.", dm)
    err = _g("module_error", "1 for the error class of the module's latest poll, when it failed.", dm + ["class"])
    err_t = _c("module_errors", "Failed polls by error class.", dm + ["class"])
    probs = _g("module_problems", "Values the agent sent that could not be used in the latest poll.", dm)

    dev_info = InfoMetricFamily(P + "device", "What the device says it is (SNMPv2-MIB system group).",
                                labels=d)
    uptime = _g("uptime_seconds", "sysUpTime of the agent.", d)
    restarts = _c("restarts", "Agent restarts seen (sysUpTime went back).", d)

    ifl = ["device", "ifindex", "ifname"]
    if_info = InfoMetricFamily(P + "if", "Interface labels (IF-MIB).", labels=ifl)
    if_admin = _g("if_admin_up", "1 when ifAdminStatus is up.", ifl)
    if_oper = _g("if_oper_up", "1 when ifOperStatus is up.", ifl)
    if_speed = _g("if_speed_bytes", "Interface speed in bytes per second (ifSpeed, or ifHighSpeed).", ifl)
    if_changes = _c("if_status_changes", "Oper status / ifLastChange changes seen since the probe started.", ifl)
    if_rx = _c("if_receive_bytes", "Bytes received (wrap-corrected since the probe first saw the row).", ifl)
    if_tx = _c("if_transmit_bytes", "Bytes sent (wrap-corrected since the probe first saw the row).", ifl)
    if_rxp = _c("if_receive_packets", "Packets received by cast.", ifl + ["cast"])
    if_txp = _c("if_transmit_packets", "Packets sent by cast.", ifl + ["cast"])
    if_rxe = _c("if_receive_errors", "Inbound packets with errors.", ifl)
    if_txe = _c("if_transmit_errors", "Outbound packets with errors.", ifl)
    if_rxd = _c("if_receive_discards", "Inbound packets discarded.", ifl)
    if_txd = _c("if_transmit_discards", "Outbound packets discarded.", ifl)

    stl = ["device", "index", "descr"]
    st_size = _g("storage_size_bytes", "hrStorage size in bytes.", stl)
    st_used = _g("storage_used_bytes", "hrStorage used in bytes.", stl)
    cpu = _g("processor_load_ratio", "hrProcessorLoad (last minute average) as a ratio.", ["device", "index"])
    mem_size = _g("memory_size_bytes", "Physical memory (hrMemorySize).", d)
    mem_used = _g("memory_used_bytes", "Physical memory in use (hrStorageRam).", d)

    sul = ["device", "index", "descr", "type"]
    sup_ratio = _g("printer_supply_remaining_ratio", "Remaining fraction of a printer supply (absent when the printer "
                   "reports no quantity).", sul)
    sup_level = _g("printer_supply_level", "Printer supply level in its own units.", sul)
    sup_max = _g("printer_supply_max_capacity", "Printer supply capacity in its own units.", sul)
    sup_state = _g("printer_supply_state", "1 for the supply's state (ok, some_remaining, unknown, other...).",
                   ["device", "index", "descr", "state"])

    ups_charge = _g("ups_battery_charge_ratio", "UPS battery charge.", d)
    ups_runtime = _g("ups_battery_runtime_seconds", "UPS estimated runtime remaining on battery.", d)
    ups_onbat = _g("ups_on_battery", "1 when the UPS runs on battery.", d)
    ups_load = _g("ups_output_load_ratio", "UPS output load (highest phase).", d)
    ups_replace = _g("ups_battery_replace_needed", "1 when the UPS asks for a battery replacement.", d)
    ups_status = _g("ups_battery_status", "1 for the UPS battery status (normal, low, depleted...).", d + ["status"])

    lldp = InfoMetricFamily(P + "lldp_neighbor", "LLDP neighbours seen on each local port.",
                            labels=["device", "local_ifindex", "local_port"])
    fdb = _g("fdb_entries", "MAC addresses in the forwarding table, by VLAN.", ["device", "vlan"])
    arp = _g("arp_entries", "Entries in the ARP/neighbour table.", d)
    chassis = InfoMetricFamily(P + "chassis", "Chassis model and serial (ENTITY-MIB).", labels=d)

    for res in results:
        dev = res.target
        up.add_metric([dev], 1.0 if res.up else 0.0)
        restarts.add_metric([dev], float(res.restarts))
        for name, m in sorted(res.modules.items()):
            lab = [dev, name]
            st = res.stats.get(name, {})
            mod_up.add_metric(lab, 1.0 if m.ok else 0.0)
            last_ok.add_metric(lab, float(st.get("last_success") or 0.0))
            dur.add_metric(lab, m.duration_seconds)
            pdus.add_metric(lab, float(m.pdus))
            retries.add_metric(lab, float(m.retries))
            tmo.add_metric(lab, float(m.timeouts))
            probs.add_metric(lab, float(m.problems_total))
            if not m.ok:
                err.add_metric(lab + [m.error_class or "error"], 1.0)
        for name, st in sorted(res.stats.items()):
            lab = [dev, name]
            pdus_t.add_metric(lab, float(st["pdus"]))
            retries_t.add_metric(lab, float(st["retries"]))
            tmo_t.add_metric(lab, float(st["timeouts"]))
            polls_t.add_metric(lab, float(st["polls"]))
            for cls, n in sorted(st["errors"].items()):
                err_t.add_metric(lab + [_s(cls)], float(n))

        data = res.data()
        sys = data.get("sys")
        if sys:
            dev_info.add_metric([dev], {"sys_name": _s(sys.get("name")), "sys_object_id": _s(sys.get("object_id")),
                                        "sys_descr": _s(sys.get("descr"))[:128], "location": _s(sys.get("location"))})
            if sys.get("uptime_seconds") is not None:
                uptime.add_metric([dev], sys["uptime_seconds"])
        for i in data.get("interfaces") or []:
            lab = [dev, str(i["index"]), _s(i.get("name"))]
            if_info.add_metric(lab, {"ifdescr": _s(i.get("descr")), "ifalias": _s(i.get("alias")),
                                     "iftype": _s(i.get("type")), "mac": _s(i.get("mac"))})
            if i.get("admin_status") is not None:
                if_admin.add_metric(lab, 1.0 if i["admin_status"] == "up" else 0.0)
            if i.get("oper_status") is not None:
                if_oper.add_metric(lab, 1.0 if i["oper_status"] == "up" else 0.0)
            if i.get("speed_bps") is not None:
                if_speed.add_metric(lab, i["speed_bps"] / 8.0)
            if_changes.add_metric(lab, float(i.get("status_changes") or 0))
            tot = i.get("total") or {}
            for fam, key in ((if_rx, "in_octets"), (if_tx, "out_octets"), (if_rxe, "in_errors"),
                             (if_txe, "out_errors"), (if_rxd, "in_discards"), (if_txd, "out_discards")):
                if key in tot:
                    fam.add_metric(lab, tot[key])
            for short, cast in CASTS:
                for fam, key in ((if_rxp, f"in_{short}_pkts"), (if_txp, f"out_{short}_pkts")):
                    if key in tot:
                        fam.add_metric(lab + [cast], tot[key])
        for s in data.get("storage") or []:
            lab = [dev, str(s["index"]), _s(s.get("descr"))]
            if s.get("size_bytes") is not None:
                st_size.add_metric(lab, float(s["size_bytes"]))
            if s.get("used_bytes") is not None:
                st_used.add_metric(lab, float(s["used_bytes"]))
        for p in data.get("processors") or []:
            if p.get("load_percent") is not None:
                cpu.add_metric([dev, str(p["index"])], p["load_percent"] / 100.0)
        mem = data.get("memory") or {}
        if mem.get("total_bytes") is not None:
            mem_size.add_metric([dev], float(mem["total_bytes"]))
        if mem.get("used_bytes") is not None:
            mem_used.add_metric([dev], float(mem["used_bytes"]))
        for s in data.get("printer_supplies") or []:
            idx = f"{s.get('device_index', 1)}.{s['index']}"
            lab = [dev, idx, _s(s.get("descr")), _s(s.get("type"))]
            if s.get("remaining_ratio") is not None:
                sup_ratio.add_metric(lab, s["remaining_ratio"])
            if s.get("level") is not None:
                sup_level.add_metric(lab, float(s["level"]))
            if s.get("max_capacity") is not None:
                sup_max.add_metric(lab, float(s["max_capacity"]))
            sup_state.add_metric([dev, idx, _s(s.get("descr")), _s(s.get("state"))], 1.0)
        ups = data.get("ups")
        if ups:
            for fam, key, conv in ((ups_charge, "battery_charge_ratio", float), (ups_runtime, "runtime_seconds", float),
                                   (ups_onbat, "on_battery", lambda b: 1.0 if b else 0.0),
                                   (ups_load, "output_load_ratio", float),
                                   (ups_replace, "replace_battery", lambda b: 1.0 if b else 0.0)):
                if ups.get(key) is not None:
                    fam.add_metric([dev], conv(ups[key]))
            if ups.get("battery_status"):
                ups_status.add_metric([dev, ups["battery_status"]], 1.0)
        for n in data.get("lldp_neighbors") or []:
            lldp.add_metric([dev, _s(n.get("if_index")), _s(n.get("local_port_id"))],
                            {"remote_sys_name": _s(n.get("sys_name")), "remote_port_id": _s(n.get("port_id")),
                             "remote_chassis_id": _s(n.get("chassis_id")), "remote_port_descr": _s(n.get("port_descr"))})
        if "fdb" in data:
            per_vlan: dict[str, int] = {}
            for f in data["fdb"]:
                per_vlan[_s(f.get("vlan"))] = per_vlan.get(_s(f.get("vlan")), 0) + 1
            for vlan, count in sorted(per_vlan.items()):
                fdb.add_metric([dev, vlan], float(count))
        if "arp" in data:
            arp.add_metric([dev], float(len(data["arp"])))
        ch = data.get("chassis")
        if ch and (ch.get("model") or ch.get("serial")):
            chassis.add_metric([dev], {"model": _s(ch.get("model")), "serial": _s(ch.get("serial"))})

    return [up, mod_up, last_ok, dur, pdus, retries, tmo, pdus_t, retries_t, tmo_t, polls_t, err, err_t, probs,
            dev_info, uptime, restarts, if_info, if_admin, if_oper, if_speed, if_changes, if_rx, if_tx, if_rxp, if_txp,
            if_rxe, if_txe, if_rxd, if_txd, st_size, st_used, cpu, mem_size, mem_used, sup_ratio, sup_level, sup_max,
            sup_state, ups_charge, ups_runtime, ups_onbat, ups_load, ups_replace, ups_status, lldp, fdb, arp, chassis]


class SnmpCollector(Collector):
    """Serves the poller's latest results; `results` returns an iterable of DeviceResult."""

    def __init__(self, results: Callable[[], Iterable]):
        self._results = results

    def collect(self):
        yield from families(list(self._results()))

    def describe(self):
        return []  # collect lazily: the set of devices changes
