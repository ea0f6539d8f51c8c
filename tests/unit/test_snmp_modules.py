"""SNMP modules' derivations and robustness, against the fake client with values changed between polls
and agents that lie."""
from __future__ import annotations

import asyncio
import re

import pytest

from probe.sources.snmp.client import COUNTER32, COUNTER64, INTEGER, OCTETS, TIMETICKS
from probe.sources.snmp.modules import MODULES, DeviceMemory, poll_device
from probe.sources.snmp.modules.base import uptime_went_back
from probe.sources.snmp.modules.printer import level_state
from probe.sources.snmp.snmprec import SnmprecClient

SYS = "1.3.6.1.2.1.1"
IF = "1.3.6.1.2.1.2.2.1"
IFX = "1.3.6.1.2.1.31.1.1.1"
UPTIME = SYS + ".3.0"

DEVICE = f"""\
{SYS}.1.0|4|Test switch
{SYS}.2.0|6|1.3.6.1.4.1.8072.3.2.10
{SYS}.3.0|67|100000
{SYS}.5.0|4|sw1
{SYS}.6.0|4|closet
1.3.6.1.2.1.2.1.0|2|2
{IF}.1.1|2|1
{IF}.1.2|2|2
{IF}.2.1|4|eth0
{IF}.2.2|4|eth1
{IF}.3.1|2|6
{IF}.3.2|2|6
{IF}.5.1|66|4294967295
{IF}.5.2|66|100000000
{IF}.7.1|2|1
{IF}.7.2|2|1
{IF}.8.1|2|1
{IF}.8.2|2|1
{IF}.9.1|67|500
{IF}.9.2|67|600
{IF}.10.1|65|4294967000
{IF}.10.2|65|4294967000
{IF}.14.1|65|0
{IF}.14.2|65|5
{IFX}.1.1|4|Gi0/1
{IFX}.1.2|4|Gi0/2
{IFX}.6.1|70|1000
{IFX}.15.1|66|10000
{IFX}.15.2|66|100
{IFX}.18.1|4|uplink
{IFX}.18.2|4|
1.3.6.1.2.1.31.1.5.0|67|400
"""


def poll(client, mem, now, modules=("system", "interfaces")):
    return asyncio.run(poll_device(client, mem, now=now, modules=list(modules) if modules else None))


def by_index(result):
    return {r["index"]: r for r in result.data()["interfaces"]}


# -- restarts ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("prev,elapsed,now_ticks,restarted", [
    (100_000, 60, 106_000, False),                   # normal
    (100_000, 60, 100_000, False),                   # frozen/cached sysUpTime: not a restart
    (100_000, 60, 500, True),                        # went back
    ((1 << 32) - 1000, 60, 5000, False),             # 32-bit TimeTicks wrapped (497 days)
    (1_000, 3600, 100_000, True),                    # restarted 1000 s ago, after the last poll
    (100_000_000, 600, 30_000, True),                # restarted 5 min ago
    (100_000, 60, 100_000 + 6000 - 50, False),       # half a second of jitter
])
def test_uptime_went_back(prev, elapsed, now_ticks, restarted):
    assert uptime_went_back(prev, 1000.0, now_ticks, 1000.0 + elapsed) is restarted


def test_reboot_flag_and_counters_after_reboot():
    c = SnmprecClient.from_text(DEVICE)
    mem = DeviceMemory()
    r1 = poll(c, mem, 1000.0)
    assert r1.data()["sys"]["rebooted"] is False
    c.set(UPTIME, 100000 + 6000)
    c.set(f"{IF}.10.2", 100)            # 32-bit counter wrapped: 4294967000 -> 100
    r2 = poll(c, mem, 1060.0)
    assert r2.data()["sys"]["rebooted"] is False
    assert by_index(r2)[2]["delta"]["in_octets"] == 100 + (1 << 32) - 4294967000
    # The device restarts: uptime goes back and the counters restart from small values.
    c.set(UPTIME, 3000)
    c.set(f"{IF}.10.2", 50)
    c.set(f"{IFX}.6.1", 10)
    r3 = poll(c, mem, 1120.0)
    sys3 = r3.data()["sys"]
    assert sys3["rebooted"] is True and sys3["restarts"] == 1
    ifs = by_index(r3)
    assert ifs[2]["delta"]["in_octets"] is None  # a reset is not read as a wrap
    assert ifs[1]["delta"]["in_octets"] is None
    assert r3.data()["interfaces_poll"]["why"] == "agent restarted"
    # The monotonic totals never go back.
    assert ifs[2]["total"]["in_octets"] == by_index(r2)[2]["total"]["in_octets"]


def test_hc_counters_preferred_and_speed_from_high_speed():
    c = SnmprecClient.from_text(DEVICE)
    ifs = by_index(poll(c, DeviceMemory(), 1000.0))
    assert ifs[1]["in_octets"] == 1000 and ifs[1]["counter_bits"] == 64      # ifHCInOctets
    assert ifs[2]["in_octets"] == 4294967000 and ifs[2]["counter_bits"] == 32  # no HC column for row 2
    assert ifs[1]["speed_bps"] == 10_000 * 1_000_000    # ifSpeed saturated -> ifHighSpeed
    assert ifs[2]["speed_bps"] == 100_000_000
    assert ifs[1]["name"] == "Gi0/1" and ifs[1]["descr"] == "eth0" and ifs[1]["alias"] == "uplink"
    assert ifs[1]["type"] == "ethernetCsmacd" and ifs[1]["oper_status"] == "up"
    assert ifs[1]["last_change_at"] == 1000.0 - (100000 - 500) / 100.0  # ifLastChange 500, sysUpTime 100000


def test_error_counters_rising_and_link_flapping():
    c = SnmprecClient.from_text(DEVICE)
    mem = DeviceMemory()
    poll(c, mem, 1000.0)
    c.set(UPTIME, 106000)
    c.set(f"{IF}.14.2", 45)                 # ifInErrors 5 -> 45
    c.set(f"{IF}.8.2", 2)                   # eth1 went down
    c.set(f"{IF}.9.2", 105000)              # ifLastChange moved
    r = by_index(poll(c, mem, 1060.0))
    assert r[2]["delta"]["in_errors"] == 40
    assert r[2]["oper_status"] == "down" and r[2]["oper_status_changed"] and r[2]["status_changes"] == 1
    assert r[1]["status_changes"] == 0
    c.set(UPTIME, 112000)
    c.set(f"{IF}.8.2", 1)
    c.set(f"{IF}.9.2", 110000)
    r = by_index(poll(c, mem, 1120.0))
    assert r[2]["status_changes"] == 2 and r[2]["oper_status"] == "up"


def test_label_cache_invalidated_when_if_table_last_change_moves():
    c = SnmprecClient.from_text(DEVICE)
    mem = DeviceMemory()
    poll(c, mem, 1000.0)
    c.set(UPTIME, 106000)
    c.set(f"{IFX}.18.2", b"to-printer")      # alias edited: not seen while the cache holds
    r = poll(c, mem, 1060.0)
    assert r.data()["interfaces_poll"]["labels"] == "cached" and by_index(r)[2]["alias"] == ""
    c.set(UPTIME, 112000)
    c.set("1.3.6.1.2.1.31.1.5.0", 111000)    # ifTableLastChange moved
    r = poll(c, mem, 1120.0)
    assert r.data()["interfaces_poll"]["why"] == "ifTableLastChange moved"
    assert by_index(r)[2]["alias"] == "to-printer"


def test_vanished_interface_triggers_a_new_walk():
    c = SnmprecClient.from_text(DEVICE)
    mem = DeviceMemory()
    poll(c, mem, 1000.0)
    for col in (1, 2, 3, 5, 7, 8, 9, 10, 14):
        c.delete(f"{IF}.{col}.2")
    for col in (1, 15, 18):
        c.delete(f"{IFX}.{col}.2")
    c.set(UPTIME, 106000)
    r = poll(c, mem, 1060.0)
    assert r.data()["interfaces_poll"]["why"] == "a known interface stopped answering"
    assert list(by_index(r)) == [1]


# -- lying agents --------------------------------------------------------------------------------------
def test_non_increasing_oids_fail_only_that_module():
    c = SnmprecClient.from_text(DEVICE, lie_non_increasing=IF)
    r = poll(c, DeviceMemory(), 1000.0)
    assert r.modules["system"].ok
    assert not r.modules["interfaces"].ok
    assert r.modules["interfaces"].error_class == "protocol"
    assert "non-increasing" in r.modules["interfaces"].error
    assert r.data()["sys"]["name"] == "sw1"


def test_endless_table_is_cut_at_the_row_cap():
    c = SnmprecClient.from_text(DEVICE, lie_endless=IFX + ".1")
    r = asyncio.run(poll_device(c, DeviceMemory(), now=1000.0, modules=["system", "interfaces"], max_rows=200))
    assert r.modules["interfaces"].error_class == "protocol"
    assert re.search(r"more than \d+ rows", r.modules["interfaces"].error)


def test_wrong_types_become_located_problems():
    c = SnmprecClient.from_text(DEVICE, lie_types={IFX + ".6": OCTETS, SYS + ".3": OCTETS, SYS + ".5": INTEGER})
    r = poll(c, DeviceMemory(), 1000.0)
    assert r.modules["system"].ok and r.modules["interfaces"].ok
    assert r.data()["sys"]["uptime_seconds"] is None and r.data()["sys"]["name"] is None
    probs = r.modules["interfaces"].problems + r.modules["system"].problems
    assert any(p.startswith("ifHCInOctets.1: OctetString where a number") for p in probs), probs
    assert any(p.startswith("sysName.0: Integer32 where a string") for p in probs), probs
    row = by_index(r)[1]  # the garbage 64-bit value is dropped; the 32-bit column stands in
    assert row["in_octets"] == 4294967000 and row["counter_bits"] == 32


def test_garbage_values_never_crash_any_module():
    garbage = {SYS: OCTETS, "1.3.6.1.2.1.2": OCTETS, "1.3.6.1.2.1.31": INTEGER, "1.3.6.1.2.1.25": OCTETS,
               "1.3.6.1.2.1.43": OCTETS, "1.3.6.1.2.1.33": OCTETS, "1.3.6.1.4.1": COUNTER64,
               "1.3.6.1.2.1.17": OCTETS, "1.3.6.1.2.1.47": COUNTER32, "1.0.8802": TIMETICKS, "1.3.6.1.2.1.4": INTEGER}
    text = DEVICE + "1.3.6.1.2.1.25.2.3.1.5.1|2|100\n1.3.6.1.2.1.43.11.1.1.9.1.1|2|5\n1.3.6.1.2.1.33.1.2.4.0|2|50\n"
    c = SnmprecClient.from_text(text, lie_types=garbage)
    r = asyncio.run(poll_device(c, DeviceMemory(), now=1000.0, modules=list(MODULES)))
    for name, res in r.modules.items():
        assert res.ok or res.error_class in ("bad_value", "protocol"), (name, res.error)
        assert res.error_class != "internal", (name, res.error)


def test_timeouts_skip_the_device_or_fail_one_module():
    c = SnmprecClient.from_text(DEVICE, timeout_under=[SYS])
    r = poll(c, DeviceMemory(), 1000.0)
    assert r.modules["system"].error_class == "timeout"
    assert r.modules["interfaces"].error_class == "skipped" and not r.up
    c = SnmprecClient.from_text(DEVICE, timeout_under=[IFX])
    r = poll(c, DeviceMemory(), 1000.0)
    assert r.modules["system"].ok and r.modules["interfaces"].error_class == "timeout"
    assert r.modules["interfaces"].timeouts == 1
    assert r.up


def test_a_module_bug_is_reported_not_raised(monkeypatch):
    async def broken(self, ctx):
        raise TypeError("boom")
    monkeypatch.setattr(type(MODULES["interfaces"]), "poll", broken)
    r = poll(SnmprecClient.from_text(DEVICE), DeviceMemory(), 1000.0)
    assert r.modules["interfaces"].error_class == "internal" and "TypeError: boom" in r.modules["interfaces"].error
    assert r.modules["system"].ok


def test_pdus_counted_per_module():
    c = SnmprecClient.from_text(DEVICE)
    r = poll(c, DeviceMemory(), 1000.0)
    assert r.modules["system"].pdus == 1
    assert r.modules["interfaces"].pdus >= 2
    assert sum(m.pdus for m in r.modules.values()) == c.stats.pdus


def test_unknown_module_names_are_an_error():
    with pytest.raises(ValueError, match="unknown SNMP modules: nope"):
        poll(SnmprecClient.from_text(DEVICE), DeviceMemory(), 1000.0, modules=["system", "nope"])


# -- printers and UPSes ------------------------------------------------------------------------------
@pytest.mark.parametrize("level,cap,state,ratio", [
    (40, 100, "ok", 0.4), (-3, 100, "some_remaining", None), (-2, 100, "unknown", None),
    (-1, 100, "other", None), (50, -2, "capacity_unknown", None), (5, 0, "no_capacity", None),
    (150, 100, "over_capacity", 1.0), (-7, 100, "invalid", None), (None, 100, "missing", None),
])
def test_printer_level_states(level, cap, state, ratio):
    assert level_state(level, cap) == (state, ratio)


def test_printer_special_values_are_not_numbers():
    text = DEVICE + "".join(f"1.3.6.1.2.1.43.11.1.1.{col}.1.{i}|{tag}|{v}\n" for col, tag, vals in (
        (6, 4, ["Black", "Cyan", "Waste"]), (5, 2, [3, 3, 4]), (8, 2, [100, 100, -2]), (9, 2, [7, -3, 40]))
        for i, v in zip((1, 2, 3), vals))
    r = asyncio.run(poll_device(SnmprecClient.from_text(text), DeviceMemory(), now=1000.0, modules=["printer"]))
    s = {x["index"]: x for x in r.data()["printer_supplies"]}
    assert s[1]["remaining_ratio"] == 0.07 and s[1]["type"] == "toner"
    assert s[2]["remaining_ratio"] is None and s[2]["state"] == "some_remaining" and s[2]["level"] is None
    assert s[3]["remaining_ratio"] is None and s[3]["state"] == "capacity_unknown" and s[3]["max_capacity"] is None


def test_ups_units_and_sources():
    rfc = DEVICE + ("1.3.6.1.2.1.33.1.2.1.0|2|2\n1.3.6.1.2.1.33.1.2.2.0|2|120\n1.3.6.1.2.1.33.1.2.3.0|2|24\n"
                    "1.3.6.1.2.1.33.1.2.4.0|2|87\n1.3.6.1.2.1.33.1.4.1.0|2|5\n1.3.6.1.2.1.33.1.4.4.1.5.1|2|35\n")
    u = asyncio.run(poll_device(SnmprecClient.from_text(rfc), DeviceMemory(), now=1.0, modules=["ups"])).data()["ups"]
    assert u["runtime_seconds"] == 24 * 60 and u["battery_charge_ratio"] == 0.87 and u["on_battery"] is True
    assert u["output_load_ratio"] == 0.35 and u["battery_status"] == "normal" and u["sources"]["runtime_seconds"] == "UPS-MIB"
    apc = DEVICE.replace("1.3.6.1.4.1.8072.3.2.10", "1.3.6.1.4.1.318.1.3.27") + (
        "1.3.6.1.4.1.318.1.1.1.2.2.3.0|67|10976200\n1.3.6.1.4.1.318.1.1.1.2.3.1.0|66|1000\n"
        "1.3.6.1.4.1.318.1.1.1.4.1.1.0|2|2\n1.3.6.1.4.1.318.1.1.1.2.2.4.0|2|2\n")
    r = asyncio.run(poll_device(SnmprecClient.from_text(apc), DeviceMemory(), now=1.0))
    assert "ups" in r.modules  # chosen from sysObjectID enterprise 318
    u = r.data()["ups"]
    assert u["runtime_seconds"] == 109762.0 and u["battery_charge_ratio"] == 1.0
    assert u["on_battery"] is False and u["replace_battery"] is True and u["sources"]["runtime_seconds"] == "PowerNet-MIB"


def test_a_get_failing_for_one_missing_oid_is_retried_one_by_one():
    from probe.sources.snmp.client import SnmpProtocolError

    class V1Agent(SnmprecClient):
        async def get(self, oids):
            got = await super().get(oids)
            if any(vb.type in ("noSuchObject", "noSuchInstance") for vb in got):
                raise SnmpProtocolError("noSuchName at 2")
            return got

    c = V1Agent.from_text(DEVICE)  # no sysContact: the system GET fails as a whole on a v1 agent
    r = poll(c, DeviceMemory(), 1000.0)
    assert r.modules["system"].ok and r.data()["sys"]["name"] == "sw1" and r.data()["sys"]["contact"] is None
    assert r.modules["interfaces"].ok


def test_module_choice_is_remembered_until_restart_or_age():
    from probe.sources.snmp import mibtables as T
    from probe.sources.snmp.modules import CHOICE_MAX_AGE

    c = SnmprecClient.from_text(DEVICE)
    mem = DeviceMemory()
    probe_root = T.OID["prtMarkerSuppliesLevel"]
    asyncio.run(poll_device(c, mem, now=1000.0))
    assert c.stats.walked.count(probe_root) == 1 and mem.modules[:2] == ("system", "interfaces")
    c.set(UPTIME, 106000)
    asyncio.run(poll_device(c, mem, now=1060.0))
    assert c.stats.walked.count(probe_root) == 1  # remembered
    c.set(UPTIME, 106000 + int(CHOICE_MAX_AGE * 100))
    asyncio.run(poll_device(c, mem, now=1060.0 + CHOICE_MAX_AGE))
    assert c.stats.walked.count(probe_root) == 2  # looked again
    c.set(UPTIME, 10)  # restarted: a new firmware may answer other MIBs
    asyncio.run(poll_device(c, mem, now=1120.0 + CHOICE_MAX_AGE))
    assert c.stats.walked.count(probe_root) == 3


def test_memory_excludes_buffers_and_cache():
    from probe.sources.snmp.modules.hostresources import memory_from

    def row(i, typ, descr, size, used):
        return {"index": i, "type": typ, "descr": descr, "size_bytes": size, "used_bytes": used}

    storage = [row(1, "hrStorageRam", "Physical memory", 8000, 7000), row(6, "hrStorageOther", "Memory buffers", 8000, 500),
               row(7, "hrStorageOther", "Cached memory", 3000, 3000), row(31, "hrStorageFixedDisk", "/", 10**9, 10**8)]
    m = memory_from(storage, 8000 // 1024)
    assert m == {"total_bytes": 8000, "used_bytes": 3500, "buffers_bytes": 500, "cached_bytes": 3000,
                 "storage_index": 1}
    assert memory_from(storage[:1], None)["used_bytes"] == 7000  # no buffers/cache rows: as reported
    assert memory_from([], 1024) == {"total_bytes": 1024 * 1024, "used_bytes": None, "buffers_bytes": None,
                                     "cached_bytes": None, "storage_index": None}


# -- inventory ---------------------------------------------------------------------------------------
INVENTORY = DEVICE + """\
1.3.6.1.2.1.4.35.1.4.2.1.4.10.0.0.7|4x|00aabbccdd07
1.3.6.1.2.1.4.35.1.6.2.1.4.10.0.0.7|2|3
1.3.6.1.2.1.4.35.1.4.2.2.16.254.128.0.0.0.0.0.0.2.170.187.255.254.204.221.8|4x|00aabbccdd08
1.3.6.1.2.1.4.35.1.6.2.2.16.254.128.0.0.0.0.0.0.2.170.187.255.254.204.221.8|2|3
1.3.6.1.2.1.4.35.1.4.1.1.4.10.0.0.9|4x|00aabbccdd09
1.3.6.1.2.1.4.35.1.6.1.1.4.10.0.0.9|2|2
1.3.6.1.2.1.4.22.1.2.2.10.0.0.7|4x|00aabbccdd07
1.3.6.1.2.1.4.22.1.2.1.10.0.0.20|4x|00aabbccdd20
1.3.6.1.2.1.4.22.1.4.1.10.0.0.20|2|3
1.3.6.1.2.1.17.1.4.1.2.5|2|2
1.3.6.1.2.1.17.1.4.1.2.6|2|1
1.3.6.1.2.1.17.7.1.2.2.1.2.3.0.17.34.51.68.85|2|5
1.3.6.1.2.1.17.7.1.2.2.1.3.3.0.17.34.51.68.85|2|3
1.3.6.1.2.1.17.7.1.2.2.1.2.3.0.17.34.51.68.86|2|6
1.3.6.1.2.1.17.7.1.2.2.1.3.3.0.17.34.51.68.86|2|2
1.3.6.1.2.1.17.7.1.4.2.1.3.0.42|66|3
1.0.8802.1.1.2.1.3.7.1.3.5|4|Gi0/2
1.0.8802.1.1.2.1.3.7.1.3.9|4|mgmt
1.0.8802.1.1.2.1.4.1.1.4.0.5.1|2|4
1.0.8802.1.1.2.1.4.1.1.5.0.5.1|4x|001122334455
1.0.8802.1.1.2.1.4.1.1.6.0.5.1|2|3
1.0.8802.1.1.2.1.4.1.1.7.0.5.1|4x|0011223344aa
1.0.8802.1.1.2.1.4.1.1.9.0.5.1|4|core-sw
1.0.8802.1.1.2.1.4.1.1.6.0.9.2|2|5
1.0.8802.1.1.2.1.4.1.1.7.0.9.2|4|Gi1/0/48
1.3.6.1.2.1.47.1.1.1.1.2.1|4|Chassis
1.3.6.1.2.1.47.1.1.1.1.5.1|2|3
1.3.6.1.2.1.47.1.1.1.1.11.1|4|FOC1234X
1.3.6.1.2.1.47.1.1.1.1.13.1|4|WS-C2960
"""


def test_inventory_arp_fdb_lldp_entity():
    r = asyncio.run(poll_device(SnmprecClient.from_text(INVENTORY), DeviceMemory(), now=1.0, modules=["inventory"]))
    d = r.data()
    arp = {(a["ip"], a["if_index"]): a for a in d["arp"]}
    assert arp[("10.0.0.7", 2)]["mac"] == "00:aa:bb:cc:dd:07"
    assert arp[("fe80::2aa:bbff:fecc:dd08", 2)]["mac"] == "00:aa:bb:cc:dd:08"
    assert ("10.0.0.9", 1) not in arp          # ipNetToPhysicalType invalid
    assert arp[("10.0.0.20", 1)]["type"] == "dynamic"  # from ipNetToMediaTable only
    fdb = {f["mac"]: f for f in d["fdb"]}
    assert fdb["00:11:22:33:44:55"] == {"mac": "00:11:22:33:44:55", "vlan": 42, "fdb_id": 3, "port": 5,
                                        "if_index": 2, "status": "learned"}
    assert "00:11:22:33:44:56" not in fdb      # status invalid
    n = {x["local_port_num"]: x for x in d["lldp_neighbors"]}
    assert n[5]["if_index"] == 2               # lldpLocPortId "Gi0/2" is ifName of ifIndex 2
    assert n[5]["chassis_id"] == "00:11:22:33:44:55" and n[5]["port_id"] == "00:11:22:33:44:aa"
    assert n[5]["sys_name"] == "core-sw"
    assert n[9]["port_id"] == "Gi1/0/48" and n[9]["if_index"] is None  # "mgmt" is no interface here
    assert d["chassis"] == {"model": "WS-C2960", "serial": "FOC1234X", "descr": "Chassis"}


def test_inventory_sections_fail_alone():
    c = SnmprecClient.from_text(INVENTORY, timeout_under=["1.3.6.1.2.1.17"])
    r = asyncio.run(poll_device(c, DeviceMemory(), now=1.0, modules=["inventory"]))
    assert r.modules["inventory"].ok
    d = r.data()
    assert "fdb" not in d and d["arp"] and d["chassis"]
    assert any(p.startswith("fdb: timeout") for p in r.modules["inventory"].problems)


def test_cleared_32bit_counters_are_a_discontinuity_not_a_wrap():
    from probe.sources.snmp.modules.interfaces import plausible_wrap

    c = SnmprecClient.from_text(DEVICE)
    mem = DeviceMemory()
    poll(c, mem, 1000.0)
    c.set(UPTIME, 106000)
    c.set(f"{IF}.14.2", 0)          # ifInErrors 5 -> 0: "clear counters", no restart
    c.set(f"{IF}.10.2", 100)        # ifInOctets wraps: 296 + 100 bytes, plausible at 100 Mbit/s
    r = by_index(poll(c, mem, 1060.0))
    assert r[2]["delta"]["in_errors"] is None
    assert r[2]["delta"]["in_octets"] == 396
    assert plausible_wrap("in_octets", 4e9, 60.0, 10_000_000_000)       # 10G link: 4 GB in a minute is fine
    assert not plausible_wrap("in_octets", 4e9, 60.0, 100_000_000)      # 100M link: it is not
    assert plausible_wrap("in_errors", 4e9, 60.0, None)                 # speed unknown: trust the wrap


def test_counter_arithmetic_is_the_one_handed_in_and_the_daemon_hands_in_the_fast_path():
    """The interfaces module computes deltas with PollContext.counter_deltas: the specification
    (probe/sources/snmp/counters.py) by default, the fast path's kernel as the SNMP subsystem composes it;
    both give the same answers (tests/unit/test_fastpath_facade.py holds the kernels to it)."""
    from probe import fastpath
    from probe.config import load_text
    from probe.sources.snmp.counters import counter_deltas as spec
    from probe.state.store import Store
    from probe.subsystems.base import Context
    from probe.subsystems.snmp import SnmpSubsystem

    calls = []

    def recording(prev, cur, bits):
        calls.append((prev.tolist(), cur.tolist(), bits.tolist()))
        return spec(prev, cur, bits)

    c = SnmprecClient.from_text(DEVICE)
    mem = DeviceMemory()
    asyncio.run(poll_device(c, mem, now=1000.0, modules=["system", "interfaces"], counter_deltas=recording))
    c.set(UPTIME, 100000 + 6000)
    c.set(f"{IF}.10.2", 100)  # the 32-bit counter wraps: 4294967000 -> 100
    r = asyncio.run(poll_device(c, mem, now=1060.0, modules=["system", "interfaces"], counter_deltas=recording))
    assert len(calls) == 1 and [4294967000, 100, 32] in [list(t) for t in zip(*calls[0])]
    assert by_index(r)[2]["delta"]["in_octets"] == 100 + (1 << 32) - 4294967000

    sub = SnmpSubsystem(load_text("snmp: {enabled: true}\n"), Context(store=Store("", memory=True)))
    assert sub.poller.counter_deltas is fastpath.counter_deltas
