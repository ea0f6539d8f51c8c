"""Prometheus metrics of what SNMP devices said (interfaces, storage, printer supplies, UPS...),
from the poller's latest results: never polls, so a slow device cannot make a scrape slow.

- `for_devices(devices)` -> `SnmpCollector`: what the daemon registers. `devices()` returns the
  poller's devices: objects with `target` (the label) and `data()` (each module's latest successful
  data) and, optionally, `modules` {name: state with `.result`} for the data-quality gauge.
- `families(results)`: the same families for plain `DeviceResult`s (the one-shot `sitevigil snmp`,
  tests, benchmarks), plus poll-health families named exactly as the poller's own collector
  (probe/exposition/snmp_poll_collector.py): sitevigil_snmp_up{target,module},
  _last_success_timestamp_seconds, _poll_duration_seconds, _polls_total, _pdus_total,
  _retries_total, _timeouts_total, _poll_errors_total{class}, _poll_error_info{class}. Register one
  or the other for a device, never both.

Names: prefix sitevigil_snmp_, base units, counters end in _total, `_info` for label-only facts.
Every label set is bounded: `target` by the configured/discovered devices, `module`/`class`/`state`
by fixed lists, interface/storage/supply indexes by the tables' row cap. Interface metrics carry
`ifindex` and `ifname` (stable); ifDescr/ifAlias/ifType are in sitevigil_snmp_if_info. Per-MAC FDB
and ARP rows are not series (they would be unbounded): only their counts are. Interface counters are
the modules' wrap-corrected running totals (32-bit wraps and restarts never look like resets).
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


def _rows(data: dict, key: str) -> list[dict]:
    """data[key] when it is a list of rows (dicts); anything else (absent, malformed) is no rows."""
    v = data.get(key)
    return [r for r in v if isinstance(r, dict) and "index" in r] if isinstance(v, list) else []


def _obj(data: dict, key: str) -> dict:
    v = data.get(key)
    return v if isinstance(v, dict) else {}


def health_families(results: Iterable) -> list:
    """Poll health of DeviceResults, named and labelled as the poller's SnmpPollCollector."""
    from probe.exposition.snmp_poll_collector import poll_health_families

    up, last_ok, dur, polls_t, pdus_t, retries_t, tmo_t, err_t, err = poll_health_families()
    for res in results:
        for name, m in sorted(res.modules.items()):
            lab = [res.target, name]
            up.add_metric(lab, 1.0 if m.ok else 0.0)
            dur.add_metric(lab, m.duration_seconds)
            if not m.ok:
                err.add_metric(lab + [m.error_class or "internal"], 1.0)
        for name, st in sorted(res.stats.items()):
            lab = [res.target, name]
            if st.get("last_success") is not None:
                last_ok.add_metric(lab, float(st["last_success"]))
            polls_t.add_metric(lab, float(st["polls"]))
            pdus_t.add_metric(lab, float(st["pdus"]))
            retries_t.add_metric(lab, float(st["retries"]))
            tmo_t.add_metric(lab, float(st["timeouts"]))
            for cls, n in sorted(st["errors"].items()):
                err_t.add_metric(lab + [_s(cls)], float(n))
    return [up, last_ok, dur, polls_t, pdus_t, retries_t, tmo_t, err_t, err]


def families(results: Iterable) -> list:
    """Data and poll-health families for plain DeviceResults."""
    results = list(results)
    return health_families(results) + data_families(results)


def _problems(dev) -> dict[str, int]:
    mods = getattr(dev, "modules", None) or {}
    out = {}
    for name, m in mods.items():
        r = getattr(m, "result", m)  # the poller's ModuleState, or a ModuleResult
        if r is not None and getattr(r, "problems_total", None) is not None:
            out[name] = int(r.problems_total)
    return out


def data_families(devices: Iterable) -> list:
    """What the devices said: `devices` have `target` and `data()` (DeviceResults or poller devices)."""
    d = ["target"]
    probs = _g("module_problems", "Values the agent sent that could not be used (wrong type, out of range) in "
               "the module's latest poll.", ["target", "module"])

    dev_info = InfoMetricFamily(P + "device", "What the device says it is (SNMPv2-MIB system group).",
                                labels=d)
    uptime = _g("uptime_seconds", "sysUpTime of the agent.", d)
    restarts = _c("restarts", "Agent restarts seen (sysUpTime went back).", d)

    ifl = ["target", "ifindex", "ifname"]
    if_info = InfoMetricFamily(P + "if", "Interface labels (IF-MIB).", labels=ifl)
    if_admin = _g("if_admin_up", "1 when ifAdminStatus is up.", ifl)
    if_oper = _g("if_oper_up", "1 when ifOperStatus is up.", ifl)
    if_speed = _g("if_speed_bytes", "Interface speed in bytes per second (ifSpeed, or ifHighSpeed).", ifl)
    if_changes = _c("if_status_changes", "Oper status / ifLastChange changes seen since the probe started.", ifl)
    if_last = _g("if_last_change_timestamp_seconds", "When the interface last changed state (ifLastChange).", ifl)
    if_rx = _c("if_receive_bytes", "Bytes received (wrap-corrected since the probe first saw the row).", ifl)
    if_tx = _c("if_transmit_bytes", "Bytes sent (wrap-corrected since the probe first saw the row).", ifl)
    if_rxp = _c("if_receive_packets", "Packets received by cast.", ifl + ["cast"])
    if_txp = _c("if_transmit_packets", "Packets sent by cast.", ifl + ["cast"])
    if_rxe = _c("if_receive_errors", "Inbound packets with errors.", ifl)
    if_txe = _c("if_transmit_errors", "Outbound packets with errors.", ifl)
    if_rxd = _c("if_receive_discards", "Inbound packets discarded.", ifl)
    if_txd = _c("if_transmit_discards", "Outbound packets discarded.", ifl)

    stl = ["target", "index", "descr"]
    st_size = _g("storage_size_bytes", "hrStorage size in bytes.", stl)
    st_used = _g("storage_used_bytes", "hrStorage used in bytes.", stl)
    cpu = _g("processor_load_ratio", "hrProcessorLoad (last minute average) as a ratio.", ["target", "index"])
    mem_size = _g("memory_size_bytes", "Physical memory (hrMemorySize).", d)
    mem_used = _g("memory_used_bytes", "Physical memory in use (hrStorageRam).", d)

    sul = ["target", "index", "descr", "type"]
    sup_ratio = _g("printer_supply_remaining_ratio", "Remaining fraction of a printer supply (absent when the printer "
                   "reports no quantity).", sul)
    sup_level = _g("printer_supply_level", "Printer supply level in its own units.", sul)
    sup_max = _g("printer_supply_max_capacity", "Printer supply capacity in its own units.", sul)
    sup_state = _g("printer_supply_state", "1 for the supply's state (ok, some_remaining, unknown, other...).",
                   ["target", "index", "descr", "state"])

    ups_charge = _g("ups_battery_charge_ratio", "UPS battery charge.", d)
    ups_runtime = _g("ups_battery_runtime_seconds", "UPS estimated runtime remaining on battery.", d)
    ups_onbat = _g("ups_on_battery", "1 when the UPS runs on battery.", d)
    ups_load = _g("ups_output_load_ratio", "UPS output load (highest phase).", d)
    ups_replace = _g("ups_battery_replace_needed", "1 when the UPS asks for a battery replacement.", d)
    ups_status = _g("ups_battery_status", "1 for the UPS battery status (normal, low, depleted...).", d + ["status"])

    lldp = InfoMetricFamily(P + "lldp_neighbor", "LLDP neighbours seen on each local port.",
                            labels=["target", "local_ifindex", "local_port"])
    fdb = _g("fdb_entries", "MAC addresses in the forwarding table, by VLAN.", ["target", "vlan"])
    arp = _g("arp_entries", "Entries in the ARP/neighbour table.", d)
    chassis = InfoMetricFamily(P + "chassis", "Chassis model and serial (ENTITY-MIB).", labels=d)

    for res in devices:
        dev = res.target
        for name, n in sorted(_problems(res).items()):
            probs.add_metric([dev, name], float(n))
        data = res.data()
        if not isinstance(data, dict):
            continue
        sys = _obj(data, "sys")
        if sys:
            if sys.get("restarts") is not None:
                restarts.add_metric([dev], float(sys["restarts"]))
            dev_info.add_metric([dev], {"sys_name": _s(sys.get("name")), "sys_object_id": _s(sys.get("object_id")),
                                        "sys_descr": _s(sys.get("descr"))[:128], "location": _s(sys.get("location"))})
            if sys.get("uptime_seconds") is not None:
                uptime.add_metric([dev], sys["uptime_seconds"])
        for i in _rows(data, "interfaces"):
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
            if i.get("last_change_at") is not None:
                if_last.add_metric(lab, float(i["last_change_at"]))
            tot = i.get("total") or {}
            for fam, key in ((if_rx, "in_octets"), (if_tx, "out_octets"), (if_rxe, "in_errors"),
                             (if_txe, "out_errors"), (if_rxd, "in_discards"), (if_txd, "out_discards")):
                if key in tot:
                    fam.add_metric(lab, tot[key])
            for short, cast in CASTS:
                for fam, key in ((if_rxp, f"in_{short}_pkts"), (if_txp, f"out_{short}_pkts")):
                    if key in tot:
                        fam.add_metric(lab + [cast], tot[key])
        for s in _rows(data, "storage"):
            lab = [dev, str(s["index"]), _s(s.get("descr"))]
            if s.get("size_bytes") is not None:
                st_size.add_metric(lab, float(s["size_bytes"]))
            if s.get("used_bytes") is not None:
                st_used.add_metric(lab, float(s["used_bytes"]))
        for p in _rows(data, "processors"):
            if p.get("load_percent") is not None:
                cpu.add_metric([dev, str(p["index"])], p["load_percent"] / 100.0)
        mem = _obj(data, "memory")
        if mem.get("total_bytes") is not None:
            mem_size.add_metric([dev], float(mem["total_bytes"]))
        if mem.get("used_bytes") is not None:
            mem_used.add_metric([dev], float(mem["used_bytes"]))
        for s in _rows(data, "printer_supplies"):
            idx = f"{s.get('device_index', 1)}.{s['index']}"
            lab = [dev, idx, _s(s.get("descr")), _s(s.get("type"))]
            if s.get("remaining_ratio") is not None:
                sup_ratio.add_metric(lab, s["remaining_ratio"])
            if s.get("level") is not None:
                sup_level.add_metric(lab, float(s["level"]))
            if s.get("max_capacity") is not None:
                sup_max.add_metric(lab, float(s["max_capacity"]))
            sup_state.add_metric([dev, idx, _s(s.get("descr")), _s(s.get("state"))], 1.0)
        ups = _obj(data, "ups")
        if ups:
            for fam, key, conv in ((ups_charge, "battery_charge_ratio", float), (ups_runtime, "runtime_seconds", float),
                                   (ups_onbat, "on_battery", lambda b: 1.0 if b else 0.0),
                                   (ups_load, "output_load_ratio", float),
                                   (ups_replace, "replace_battery", lambda b: 1.0 if b else 0.0)):
                if ups.get(key) is not None:
                    fam.add_metric([dev], conv(ups[key]))
            if ups.get("battery_status"):
                ups_status.add_metric([dev, ups["battery_status"]], 1.0)
        for n in (x for x in data.get("lldp_neighbors") or [] if isinstance(x, dict)):
            lldp.add_metric([dev, _s(n.get("if_index")), _s(n.get("local_port_id"))],
                            {"remote_sys_name": _s(n.get("sys_name")), "remote_port_id": _s(n.get("port_id")),
                             "remote_chassis_id": _s(n.get("chassis_id")), "remote_port_descr": _s(n.get("port_descr"))})
        if isinstance(data.get("fdb"), list):
            per_vlan: dict[str, int] = {}
            for f in (x for x in data["fdb"] if isinstance(x, dict)):
                per_vlan[_s(f.get("vlan"))] = per_vlan.get(_s(f.get("vlan")), 0) + 1
            for vlan, count in sorted(per_vlan.items()):
                fdb.add_metric([dev, vlan], float(count))
        if isinstance(data.get("arp"), list):
            arp.add_metric([dev], float(len(data["arp"])))
        ch = _obj(data, "chassis")
        if ch and (ch.get("model") or ch.get("serial")):
            chassis.add_metric([dev], {"model": _s(ch.get("model")), "serial": _s(ch.get("serial"))})

    return [probs, dev_info, uptime, restarts, if_info, if_admin, if_oper, if_speed, if_changes, if_last, if_rx, if_tx, if_rxp, if_txp,
            if_rxe, if_txe, if_rxd, if_txd, st_size, st_used, cpu, mem_size, mem_used, sup_ratio, sup_level, sup_max,
            sup_state, ups_charge, ups_runtime, ups_onbat, ups_load, ups_replace, ups_status, lldp, fdb, arp, chassis]


class SnmpCollector(Collector):
    """Data families of the poller's devices (see the module docstring)."""

    def __init__(self, devices: Callable[[], Iterable]):
        self._devices = devices

    def collect(self):
        yield from data_families(list(self._devices()))

    def describe(self):
        return []  # collect lazily: the set of devices changes


def for_devices(devices: Callable[[], Iterable]) -> SnmpCollector:
    """What the SNMP subsystem registers next to its poll-health collector."""
    return SnmpCollector(devices)
