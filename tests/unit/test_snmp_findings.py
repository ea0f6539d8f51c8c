"""Findings from SNMP polls: values changed between polls of a fake device, one ledger episode per problem."""
from __future__ import annotations

import asyncio

import pytest

from probe.findings.ledger import Ledger
from probe.findings.model import Cleared
from probe.findings.snmp_rules import SnmpRules, days_to_full
from probe.sources.snmp.modules import MODULES, DeviceMemory, poll_device
from probe.sources.snmp.snmprec import SnmprecClient
from tests.unit.test_snmp_collector import PRINTER_UPS
from tests.unit.test_snmp_modules import IF, UPTIME

HR_USED = "1.3.6.1.2.1.25.2.3.1.6.1"


class Device:
    def __init__(self, text=PRINTER_UPS):
        self.client = SnmprecClient.from_text(text)
        self.mem = DeviceMemory()
        self.rules = SnmpRules()
        self.now = 1000.0
        self.ledger = Ledger.in_memory(quiet_after=float("inf"), clock=lambda: self.now)
        self.ticks = 100000

    def poll(self, advance=60.0, **changes):
        self.now += advance
        self.ticks += int(advance * 100)
        self.client.set(UPTIME, self.ticks)
        for oid, value in changes.items():
            self.client.set(oid.replace("_", "."), value)
        r = asyncio.run(poll_device(self.client, self.mem, target="dev1", now=self.now, modules=list(MODULES)))
        return self.report(self.rules.observe(r, self.now))

    def report(self, reports):
        """Into the ledger, as the daemon does; returns the findings that opened an episode."""
        before = {e.id for e in self.ledger.open_episodes()}
        self.ledger.submit(f if isinstance(f, Cleared) else f.to_finding() for f in reports)
        opened = {e.finding.key for e in self.ledger.open_episodes() if e.id not in before}
        return {f.kind: f for f in reports if not isinstance(f, Cleared) and f.key in opened}


def test_days_to_full():
    assert days_to_full([(0, 100), (3600, 200), (7200, 300)], 86400 / 3600 * 100 + 300) == pytest.approx(1.0)
    assert days_to_full([(0, 300), (3600, 300), (7200, 300)], 1000) is None      # not growing
    assert days_to_full([(0, 1), (10, 2), (20, 3)], 1000) is None                # too short a span
    assert days_to_full([(0, 1), (7200, 2)], 1000) is None                       # too few samples


def test_first_poll_raises_the_standing_conditions_once():
    d = Device()
    first = d.poll(advance=0)
    # PRINTER_UPS: on battery, 7 min runtime, battery low, Black toner 25% (not low), Cyan -3 (not low)
    assert set(first) == {"ups_on_battery", "ups_runtime_short", "ups_battery_low"}
    assert first["ups_runtime_short"].evidence["runtime_seconds"] == 420
    assert d.poll() == {}  # same episode: nothing new


def test_reboot_errors_flaps_supply_and_storage():
    d = Device()
    d.poll(advance=0)
    # Errors rising on eth1.
    got = d.poll(**{f"{IF}.14.2": 500})
    assert "interface_errors_rising" in got
    assert got["interface_errors_rising"].evidence["in_errors_delta"] == 495
    assert "ifIndex 2 (Gi0/2)" == got["interface_errors_rising"].subject
    # Link flapping: down, up, down within 15 minutes.
    d.poll(**{f"{IF}.8.2": 2})
    d.poll(**{f"{IF}.8.2": 1})
    got = d.poll(**{f"{IF}.8.2": 2})
    assert "interface_flapping" in got
    # Toner running out.
    got = d.poll(**{"1.3.6.1.2.1.43.11.1.1.9.1.1": 10})
    assert got["printer_supply_low"].evidence["remaining_ratio"] == 0.05
    # Storage filling: 1000 units, +50 per 10 minutes -> full in well under 7 days.
    raised = {}
    for used in (300, 350, 400, 450):
        raised.update(d.poll(advance=600, **{HR_USED: used}))
    assert raised["storage_filling"].evidence["days_to_full"] < 1.0
    assert "storage_filling" in {k[0] for k in d.rules.active()}
    # Reboot: uptime goes back.
    d.ticks = 500
    d.now += 60
    d.client.set(UPTIME, 500)
    r = asyncio.run(poll_device(d.client, d.mem, target="dev1", now=d.now, modules=list(MODULES)))
    got = d.report(d.rules.observe(r, d.now))
    assert "device_rebooted" in got
    assert "interface_errors_rising" not in got  # the counter reset is not read as errors


def test_episode_ends_after_clear_polls_and_can_start_again():
    d = Device()
    d.poll(advance=0)
    assert "interface_errors_rising" in d.poll(**{f"{IF}.14.2": 500})
    d.poll()
    d.poll()  # two quiet polls: the episode is over
    assert not [k for k in d.rules.active() if k[0] == "interface_errors_rising"]
    assert "interface_errors_rising" in d.poll(**{f"{IF}.14.2": 900})


def test_printer_special_values_raise_nothing():
    d = Device()
    d.poll(advance=0)
    got = d.poll(**{"1.3.6.1.2.1.43.11.1.1.9.1.1": -2})
    assert "printer_supply_low" not in got


def test_forget_bounds_state():
    d = Device()
    d.poll(advance=0)
    d.poll(advance=600, **{HR_USED: 300})
    assert d.rules.active() and d.rules._storage
    d.rules.forget("dev1")
    assert not d.rules.active() and not d.rules._storage and not d.rules._flaps


def test_findings_convert_to_the_ledgers_finding():
    d = Device()
    f = d.poll(advance=0)["ups_on_battery"].to_finding()
    assert (f.kind, f.severity, f.device) == ("ups_on_battery", "critical", "dev1")
    assert f.evidence["subject"] == "ups" and f.first_seen == d.now


def test_state_follows_the_devices_tables():
    d = Device()
    d.poll(advance=0)
    assert ("dev1", 1) in d.rules._storage and ("dev1", 2) in d.rules._flaps
    for col in (1, 2, 3, 5, 7, 8, 9, 10, 14):
        d.client.delete(f"{IF}.{col}.2")
    for col in (1, 15, 18):
        d.client.delete(f"1.3.6.1.2.1.31.1.1.1.{col}.2")
    for col in (2, 3, 4, 5, 6):
        d.client.delete(f"1.3.6.1.2.1.25.2.3.1.{col}.1")
    d.poll()
    assert ("dev1", 2) not in d.rules._flaps and ("dev1", 1) in d.rules._flaps
    assert not d.rules._storage


def test_memory_and_optical_media_are_not_disks_filling():
    from probe.findings.snmp_rules import fillable_storage

    full = "1.3.6.1.2.1.25.2.3.1.6.1"
    for typ, descr, raised in (("1.3.6.1.2.1.25.2.1.2", "Physical memory", False),       # hrStorageRam
                               ("1.3.6.1.2.1.25.2.1.3", "Virtual memory", False),        # hrStorageVirtualMemory
                               ("1.3.6.1.2.1.25.2.1.7", "D:\\", False),                  # hrStorageCompactDisc
                               ("1.3.6.1.2.1.25.2.1.1", "Cached memory", False),         # hrStorageOther
                               ("1.3.6.1.2.1.25.2.1.1", "/volume1", True),               # a NAS volume as Other
                               ("1.3.6.1.2.1.25.2.1.4", "/", True)):                     # hrStorageFixedDisk
        d = Device()
        d.client.apply(f"1.3.6.1.2.1.25.2.3.1.2.1|6|{typ}\n1.3.6.1.2.1.25.2.3.1.3.1|4|{descr}\n")
        got = d.poll(advance=0, **{full: 999})   # 99.9% used
        assert ("storage_filling" in got) is raised, (descr, got)
    assert fillable_storage({"type": None, "descr": "C:\\ Label:System  Serial Number 1234"})
    assert not fillable_storage({"type": "hrStorageFloppyDisk", "descr": "A:\\"})
