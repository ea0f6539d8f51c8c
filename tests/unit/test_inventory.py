"""The inventory: learning, findings, ageing, bounds and persistence in the SQLite store."""
import json

import pytest

from probe.state.inventory import GONE, MAX_IPS, PRESENT, Inventory
from probe.state.oui import OuiTable
from probe.state.store import Store
from tests.helpers import Clock

OUI = OuiTable({"0050c2": "IEEE Registration Authority", "001b21": "Intel Corporate", "00c0ee": "Kyocera"})


def inv(store=None, **kw):
    kw.setdefault("oui", OUI)
    return Inventory(store, **kw)


def kinds(findings):
    return [f.kind for f in findings]


def test_first_sweep_is_a_baseline_then_new_devices_are_news():
    i = inv()
    assert i.observe("00:1b:21:00:00:01", "10.0.0.5", source="sweep_arp", ts=1) == []
    i.mark_baselined()
    f = i.observe("00:1b:21:00:00:02", "10.0.0.6", source="arp", ts=2)
    assert kinds(f) == ["device_new"]
    assert f[0].device == "00:1b:21:00:00:02" and f[0].evidence["ip"] == "10.0.0.6"
    assert f[0].evidence["vendor"] == "Intel Corporate"
    assert i.observe("00:1b:21:00:00:02", "10.0.0.6", source="arp", ts=3) == []


def test_ip_and_name_changes_raise_findings_once():
    i = inv()
    i.mark_baselined()
    i.observe("00:1b:21:00:00:01", "10.0.0.5", "pc-anna", source="dhcp", ts=1)
    f = i.observe("00:1b:21:00:00:01", "10.0.0.9", source="arp", ts=2)
    assert kinds(f) == ["device_ip_changed"]
    assert (f[0].evidence["old_ip"], f[0].evidence["new_ip"]) == ("10.0.0.5", "10.0.0.9")
    # back to an address it already had: no new finding (multi-homed, DHCP flip)
    assert i.observe("00:1b:21:00:00:01", "10.0.0.5", source="arp", ts=3) == []
    f = i.observe("00:1b:21:00:00:01", name="pc-bert", source="dhcp", ts=4)
    assert kinds(f) == ["device_name_changed"] and f[0].evidence["new_name"] == "pc-bert"
    # another source naming it differently is not a change of name
    assert i.observe("00:1b:21:00:00:01", name="PC-ANNA", source="netbios", ts=5) == []
    d = i.get("00-1B-21-00-00-01")
    assert d.ips[0] == "10.0.0.5" and set(d.ips) == {"10.0.0.5", "10.0.0.9"}
    assert d.name == "pc-bert"  # DHCP names first


def test_device_gone_after_absence_and_forgotten_later():
    clock = Clock()
    i = inv(gone_after=60, forget_after=600, clock=clock)
    i.mark_baselined()
    i.observe("00:1b:21:00:00:01", "10.0.0.5", source="arp", ts=clock.t)
    i.observe("00:1b:21:00:00:02", "10.0.0.6", source="arp", ts=clock.t)
    clock.t += 59
    i.observe("00:1b:21:00:00:02", "10.0.0.6", source="arp", ts=clock.t)
    assert i.age() == []
    clock.t += 2
    f = i.age()
    assert kinds(f) == ["device_gone"] and f[0].device == "00:1b:21:00:00:01"
    assert f[0].severity == "warning" and f[0].evidence["absent_seconds"] == pytest.approx(61)
    assert i.get("00:1b:21:00:00:01").state == GONE
    assert i.age() == []  # reported once
    f = i.observe("00:1b:21:00:00:01", "10.0.0.5", source="arp", ts=clock.t)
    assert kinds(f) == ["device_returned"] and i.get("00:1b:21:00:00:01").state == PRESENT
    clock.t += 700
    i.age()
    assert len(i) == 0


def test_row_cap_evicts_gone_then_least_recently_seen():
    i = inv(max_devices=3)
    for n in range(3):
        i.observe(f"00:1b:21:00:00:0{n}", f"10.0.0.{n + 1}", source="arp", ts=100 + n)
    i.devices["00:1b:21:00:00:02"].state = GONE
    i.observe("00:1b:21:00:00:09", "10.0.0.9", source="arp", ts=200)
    assert set(i.devices) == {"00:1b:21:00:00:00", "00:1b:21:00:00:01", "00:1b:21:00:00:09"}
    i.observe("00:1b:21:00:00:0a", "10.0.0.10", source="arp", ts=201)
    assert "00:1b:21:00:00:00" not in i.devices and len(i) == 3 and i.evicted_total == 2


def test_per_device_lists_are_bounded():
    i = inv()
    for n in range(50):
        i.observe("00:1b:21:00:00:01", f"10.0.1.{n + 1}", name="x" * 1000, source=f"src{n}", ts=n,
                  facts={f"fact{n}": "y" * 1000})
    d = i.get("00:1b:21:00:00:01")
    assert len(d.ips) == MAX_IPS and d.ips[0] == "10.0.1.50"
    assert len(d.names) <= 12 and all(len(n) <= 255 for n in d.names.values())
    assert len(d.facts) <= 24 and all(len(v) <= 255 for v in d.facts.values())


def test_what_is_not_a_device_is_ignored():
    i = inv()
    assert i.observe("01:00:5e:00:00:fb", "10.0.0.1") == []       # multicast MAC
    assert i.observe("ff:ff:ff:ff:ff:ff", "10.0.0.1") == []
    assert i.observe("00:00:00:00:00:00", "10.0.0.1") == []
    assert i.observe("not-a-mac", "10.0.0.1") == []
    assert i.observe(None, None) == []
    i.observe("00:1b:21:00:00:01", "0.0.0.0", source="dhcp")
    assert i.get("00:1b:21:00:00:01").ip is None
    assert len(i) == 1


def test_ip_only_device_is_adopted_when_its_mac_shows_up():
    i = inv()
    i.mark_baselined()
    assert kinds(i.observe(None, "10.9.0.7", source="sweep_icmp", ts=1)) == ["device_new"]
    assert i.get("10.9.0.7").key == "ip:10.9.0.7"
    assert i.observe("00:1b:21:00:00:07", "10.9.0.7", source="snmp_arp", ts=2) == []
    assert len(i) == 1 and i.get("00:1b:21:00:00:07").sources.keys() == {"sweep_icmp", "snmp_arp"}


def test_type_is_reclassified_as_facts_arrive_with_evidence():
    i = inv()
    i.observe("00:c0:ee:00:00:01", "10.0.0.30", source="arp")
    d = i.get("00:c0:ee:00:00:01")
    assert (d.type, d.type_evidence["rule"]) == ("printer", "mac.vendor")  # a weak hint from the OUI
    i.observe("00:c0:ee:00:00:01", "10.0.0.30", name="sw-floor2", source="snmp",
              facts={"snmp": {"sys_descr": "HP J9773A 2530-24G-PoEP Switch", "bridge_ports": 28}})
    d = i.get("00:c0:ee:00:00:01")
    assert d.type == "switch" and d.type_evidence["rule"] == "snmp.sys_descr"
    assert any(v["rule"] == "snmp.bridge_ports" for v in d.type_evidence["votes"])


def test_survives_a_restart(tmp_path):
    store = Store(str(tmp_path))
    i = inv(store)
    i.observe("00:1b:21:00:00:01", "10.0.0.5", "pc-anna", source="dhcp", ts=10,
              facts={"dhcp_params": [1, 3, 6, 15, 31, 33, 43, 44, 46, 47, 119, 121, 249, 252]})
    i.mark_baselined()
    assert i.flush()
    store.close()

    store = Store(str(tmp_path))
    j = inv(store)
    d = j.get("00:1b:21:00:00:01")
    assert (d.ip, d.name, d.type, d.first_seen) == ("10.0.0.5", "pc-anna", "workstation", 10)
    assert j.baselined
    assert kinds(j.observe("00:1b:21:00:00:02", "10.0.0.6", source="arp", ts=11)) == ["device_new"]
    j.age(10 + 91 * 86400)  # forget everything
    j.flush()
    assert store.query("SELECT COUNT(*) FROM inventory_device")[0][0] == 0
    store.close()


def test_load_skips_unreadable_rows(tmp_path):
    store = Store(str(tmp_path))
    inv(store)
    store.write("INSERT INTO inventory_device VALUES ('x', NULL, NULL, 'present', 'unknown', 0, 0, 'not json')")
    store.write("INSERT INTO inventory_device VALUES ('00:1b:21:00:00:01', NULL, NULL, 'present', 'unknown', 0, 5, ?)",
                (json.dumps({"key": "00:1b:21:00:00:01", "mac": "00:1b:21:00:00:01", "last_seen": 5}),))
    j = inv(store)
    assert list(j.devices) == ["00:1b:21:00:00:01"]
    store.close()
