"""SNMP results as Prometheus metrics: names, units, bounded labels, failing modules visible."""
from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry
from prometheus_client.registry import Collector

from probe.exposition.snmp_collector import families, for_devices
from probe.sources.snmp.modules import MODULES, DeviceMemory, poll_device
from probe.sources.snmp.snmprec import SnmprecClient
from tests.unit.test_snmp_modules import DEVICE, IF, IFX, UPTIME

PRINTER_UPS = DEVICE + "".join(f"1.3.6.1.2.1.43.11.1.1.{col}.1.{i}|{tag}|{v}\n" for col, tag, vals in (
    (6, 4, ["Black", "Cyan"]), (5, 2, [3, 3]), (8, 2, [200, 100]), (9, 2, [50, -3])) for i, v in zip((1, 2), vals)) + (
    "1.3.6.1.2.1.33.1.2.1.0|2|3\n1.3.6.1.2.1.33.1.2.3.0|2|7\n1.3.6.1.2.1.33.1.2.4.0|2|40\n1.3.6.1.2.1.33.1.4.1.0|2|5\n"
    "1.3.6.1.2.1.25.2.3.1.2.1|6|1.3.6.1.2.1.25.2.1.4\n1.3.6.1.2.1.25.2.3.1.3.1|4|/\n"
    "1.3.6.1.2.1.25.2.3.1.4.1|2|4096\n1.3.6.1.2.1.25.2.3.1.5.1|2|1000\n1.3.6.1.2.1.25.2.3.1.6.1|2|250\n")


class _Results(Collector):
    def __init__(self, results):
        self.results = results

    def collect(self):
        return families(self.results)


def registry_for(results):
    reg = CollectorRegistry()
    reg.register(_Results(results))
    return reg


def test_metrics_from_a_device():
    c = SnmprecClient.from_text(PRINTER_UPS)
    mem = DeviceMemory()
    asyncio.run(poll_device(c, mem, target="10.0.0.5", now=1000.0, modules=list(MODULES)))
    c.set(UPTIME, 106000)
    c.set(f"{IF}.10.2", 1000)  # wrapped 32-bit counter
    r = asyncio.run(poll_device(c, mem, target="10.0.0.5", now=1060.0, modules=list(MODULES)))
    reg = registry_for([r])
    v = reg.get_sample_value
    dev = {"target": "10.0.0.5"}
    assert v("sitevigil_snmp_up", {**dev, "module": "interfaces"}) == 1.0
    assert v("sitevigil_snmp_last_success_timestamp_seconds", {**dev, "module": "ups"}) > 0
    assert v("sitevigil_snmp_polls_total", {**dev, "module": "system"}) == 2
    assert v("sitevigil_snmp_restarts_total", dev) == 0
    assert v("sitevigil_snmp_pdus_total", {**dev, "module": "interfaces"}) >= 3
    eth1 = {**dev, "ifindex": "2", "ifname": "Gi0/2"}
    assert v("sitevigil_snmp_if_receive_bytes_total", eth1) == 1000 + (1 << 32) - 4294967000
    assert v("sitevigil_snmp_if_speed_bytes", eth1) == 100_000_000 / 8
    assert v("sitevigil_snmp_if_info", {**eth1, "ifdescr": "eth1", "ifalias": "", "iftype": "ethernetCsmacd",
                                        "mac": ""}) == 1.0
    assert v("sitevigil_snmp_storage_size_bytes", {**dev, "index": "1", "descr": "/"}) == 4096 * 1000
    black = {**dev, "index": "1.1", "descr": "Black", "type": "toner"}
    assert v("sitevigil_snmp_printer_supply_remaining_ratio", black) == 0.25
    cyan = {**dev, "index": "1.2", "descr": "Cyan", "type": "toner"}
    assert v("sitevigil_snmp_printer_supply_remaining_ratio", cyan) is None  # -3 is not a number
    assert v("sitevigil_snmp_printer_supply_state", {**dev, "index": "1.2", "descr": "Cyan",
                                                     "state": "some_remaining"}) == 1.0
    assert v("sitevigil_snmp_ups_battery_runtime_seconds", dev) == 420.0
    assert v("sitevigil_snmp_ups_on_battery", dev) == 1.0
    assert v("sitevigil_snmp_ups_battery_status", {**dev, "status": "low"}) == 1.0


def test_a_failing_module_shows_its_error_class_and_hides_nothing():
    c = SnmprecClient.from_text(DEVICE, timeout_under=[IFX])
    r = asyncio.run(poll_device(c, DeviceMemory(), target="sw", now=1.0))
    reg = registry_for([r])
    v = reg.get_sample_value
    assert v("sitevigil_snmp_up", {"target": "sw", "module": "interfaces"}) == 0.0
    assert v("sitevigil_snmp_poll_error_info", {"target": "sw", "module": "interfaces", "class": "timeout"}) == 1.0
    assert v("sitevigil_snmp_poll_errors_total", {"target": "sw", "module": "interfaces", "class": "timeout"}) == 1
    assert v("sitevigil_snmp_timeouts_total", {"target": "sw", "module": "interfaces"}) == 1
    assert v("sitevigil_snmp_up", {"target": "sw", "module": "system"}) == 1.0
    assert v("sitevigil_snmp_uptime_seconds", {"target": "sw"}) == 1000.0


def test_merged_results_keep_the_slow_modules():
    c = SnmprecClient.from_text(DEVICE)
    mem = DeviceMemory()
    slow = asyncio.run(poll_device(c, mem, target="sw", now=1.0, modules=["system", "inventory"]))
    fast = asyncio.run(poll_device(c, mem, target="sw", now=61.0, modules=["system", "interfaces"]))
    merged = fast.merged_with(slow)
    assert set(merged.modules) == {"system", "interfaces", "inventory"}
    assert merged.modules["system"] is fast.modules["system"]


def test_for_devices_serves_the_pollers_devices_data_only():
    class PollerDevice:  # what the poller hands over: target, data(), modules {name: state.result}
        def __init__(self, result):
            self.target, self._data = result.target, result.data()
            self.modules = {n: type("State", (), {"result": m})() for n, m in result.modules.items()}

        def data(self):
            return self._data

    c = SnmprecClient.from_text(DEVICE, lie_types={IFX + ".6": "OctetString"})
    dev = PollerDevice(asyncio.run(poll_device(c, DeviceMemory(), target="sw", now=1.0)))
    reg = CollectorRegistry()
    reg.register(for_devices(lambda: [dev]))
    v = reg.get_sample_value
    assert v("sitevigil_snmp_if_receive_bytes_total", {"target": "sw", "ifindex": "1", "ifname": "Gi0/1"}) == 0.0
    assert v("sitevigil_snmp_module_problems", {"target": "sw", "module": "interfaces"}) == 1.0
    # Poll health is the poller's own collector's job: none of it here.
    assert v("sitevigil_snmp_up", {"target": "sw", "module": "system"}) is None
    assert v("sitevigil_snmp_pdus_total", {"target": "sw", "module": "system"}) is None
