"""Device type from SNMP, LLDP/CDP, DHCP, names and vendor, with the evidence that decided."""
import json

import pytest

from probe.state.devicetype import TYPES, classify

# LibreNMS's own device type for each recording -> ours (an independent label for the same device).
LIBRENMS_TYPES = {"power": {"ups"}, "wireless": {"access_point"}, "network": {"switch", "router"},
                  "printer": {"printer"}, "server": {"server"}, "firewall": {"router"}, "storage": {"nas"}}


def _snmprec(path):
    values = {}
    for line in path.read_text(errors="replace").splitlines():
        parts = line.split("|", 2)
        if len(parts) == 3:
            oid, tag, value = parts
            if tag == "4x":
                value = bytes.fromhex(value).decode("utf-8", "replace")
            elif tag in ("2", "65", "66", "67"):
                value = int(value)
            values[oid] = value
    return values


def test_recorded_devices_get_the_type_librenms_gave_them(shared_data):
    base = shared_data / "snmp" / "librenms"
    checked = 0
    wrong = []
    for rec in sorted((base / "snmprec").glob("*.snmprec")):
        expected = json.loads((base / "expected" / (rec.stem + ".json")).read_text())
        devs = (expected.get("os", {}).get("discovery") or {}).get("devices") or []
        if not devs or devs[0].get("type") not in LIBRENMS_TYPES:
            continue
        v = _snmprec(rec)
        snmp = {"sys_descr": v.get("1.3.6.1.2.1.1.1.0"), "sys_object_id": v.get("1.3.6.1.2.1.1.2.0"),
                "sys_name": v.get("1.3.6.1.2.1.1.5.0"), "sys_services": v.get("1.3.6.1.2.1.1.7.0")}
        result = classify(snmp=snmp, names=[snmp["sys_name"] or ""])
        checked += 1
        if result.type not in LIBRENMS_TYPES[devs[0]["type"]]:
            wrong.append((rec.stem, devs[0]["type"], result.type, result.rule, result.value))
        assert result.rule and result.votes, rec.stem  # the evidence is kept
    assert checked >= 20
    assert not wrong, wrong


def test_standard_mibs_outweigh_names_and_vendor():
    r = classify(snmp={"sys_descr": "Linux printsrv 5.10", "printer_name": "Office MFP"},
                 names=["nas-backup"], vendor="Synology Incorporated")
    assert r.type == "printer" and r.rule == "snmp.printer_mib" and r.value == "Office MFP"
    assert {v.type for v in r.votes} >= {"printer", "nas"}


def test_lldp_cdp_capabilities():
    assert classify(capabilities=["bridge"]).type == "switch"
    assert classify(capabilities=["router"]).type == "router"
    assert classify(capabilities=["wlan access point"]).type == "access_point"
    assert classify(capabilities=["telephone", "bridge"], vendor="Polycom").type == "phone"
    r = classify(capabilities=["bridge", "router"])
    assert r.type == "switch" and r.rule == "lldp_cdp.capabilities"


def test_dhcp_vendor_class_and_fingerprint():
    r = classify(dhcp_vendor_class="android-dhcp-13")
    assert (r.type, r.rule) == ("phone", "dhcp.vendor_class")
    win10 = [1, 3, 6, 15, 31, 33, 43, 44, 46, 47, 119, 121, 249, 252]
    r = classify(dhcp_params=win10, dhcp_vendor_class="MSFT 5.0")
    assert r.type == "workstation" and {v.rule for v in r.votes} == {"dhcp.vendor_class", "dhcp.parameter_list"}
    macos = [1, 121, 3, 6, 15, 114, 119, 252, 95, 44, 46]
    assert classify(dhcp_params=macos).type == "workstation"
    ios = [1, 121, 3, 6, 15, 119, 252]
    assert classify(dhcp_params=ios).type == "phone"
    assert classify(dhcp_params=[1, 3, 6]).type == "unknown"


@pytest.mark.parametrize("name,kind", [
    ("NPI3A4F21", "printer"), ("BRN3C2AF4112233", "printer"), ("DESKTOP-4K2J9QX", "workstation"),
    ("WIN-8M4O0TKC1QE", "server"), ("SEP001122334455", "phone"), ("fw-branch1", "router"),
    ("ap-lobby", "access_point"), ("ups-rack2", "ups"), ("nas01", "nas"), ("cam-door", "camera"),
    ("sw-core.example.com", "switch"), ("Johns-iPhone", "phone"), ("Annas-MacBook-Pro", "workstation"),
])
def test_host_name_conventions(name, kind):
    r = classify(names=[name])
    assert (r.type, r.rule, r.value) == (kind, "name", name)


def test_vendor_alone_is_a_weak_hint_and_nothing_is_unknown():
    r = classify(vendor="Hikvision Digital Technology Co.,Ltd.")
    assert r.type == "camera" and r.rule == "mac.vendor" and r.score < 30
    assert classify(vendor="Hikvision", names=["DESKTOP-4K2J9QX"], dhcp_vendor_class="MSFT 5.0").type == "workstation"
    r = classify()
    assert r.type == "unknown" and r.votes == [] and r.evidence()["rule"] is None


def test_sys_services_and_bridge_ports():
    assert classify(snmp={"sys_services": 2}).type == "switch"
    assert classify(snmp={"sys_services": 4}).type == "router"
    assert classify(snmp={"bridge_ports": 24}).type == "switch"
    assert classify(snmp={"sys_services": 72}).type == "unknown"


def test_mdns_services():
    r = classify(services=["_ipp._tcp", "_http._tcp"])
    assert (r.type, r.rule) == ("printer", "mdns.service")


def test_every_type_is_reachable_and_known():
    assert TYPES[-1] == "unknown" and len(set(TYPES)) == 11


@pytest.mark.parametrize("descr,oid,kind", [
    ("Cisco IOS Software, C2960X Software (C2960X-UNIVERSALK9-M), Version 15.2(7)E3", "1.3.6.1.4.1.9.1.1208", "switch"),
    ("Cisco IOS Software, C2900 Software (C2900-UNIVERSALK9-M), Version 15.7(3)M5", "1.3.6.1.4.1.9.1.1041", "router"),
    ("Cisco Adaptive Security Appliance Version 9.8(4)", "1.3.6.1.4.1.9.1.2114", "router"),
    ("Juniper Networks, Inc. srx300 internet router, kernel JUNOS 19.4R3", "1.3.6.1.4.1.2636.1.1.1.2.133", "router"),
    ("Juniper Networks, Inc. ex2300-24p Ethernet Switch, kernel JUNOS 20.2R3", "1.3.6.1.4.1.2636.1.1.1.2.132", "switch"),
    ("RouterOS RB4011iGS+", "1.3.6.1.4.1.14988.1", "router"),
    ("Linux DiskStation 4.4.59+ #25426 SMP PREEMPT x86_64 GNU/Linux synology_apollolake_918+", "1.3.6.1.4.1.8072.3.2.10", "nas"),
    ("Hardware: Intel64 Family 6 Model 85 - Software: Windows Version 6.3 (Build 17763 Multiprocessor Free)",
     "1.3.6.1.4.1.311.1.1.3.1.2", "server"),
    ("Hardware: Intel64 Family 6 Model 142 - Software: Windows Version 6.3 (Build 19045 Multiprocessor Free)",
     "1.3.6.1.4.1.311.1.1.3.1.1", "workstation"),
    ("Brother NC-8300h, Firmware Ver.1.11  (08.12.08),MID 8C5-F51,FID 2", "1.3.6.1.4.1.2435.2.3.9.1", "printer"),
    ("AXIS P3245-LVE Network Camera 10.12.114", "1.3.6.1.4.1.368.4", "camera"),
    ("Integrated Lights-Out 5 2.72 Sep 04 2022", "1.3.6.1.4.1.232.9.4.11", "server"),
    ("Dell EMC Networking N1548P, 6.6.3.10", "1.3.6.1.4.1.674.10895.3090", "switch"),
    ("Linux TS-453Be 4.14.24-qnap #1 SMP", "1.3.6.1.4.1.24681", "nas"),
    ("FortiGate-60F v7.0.12", "1.3.6.1.4.1.12356.101.1.1", "router"),
    ("Cisco AP Software, ap3g2-k9w7-xx, 15.3(3)JF15", "1.3.6.1.4.1.9.1.1662", "access_point"),
    ("Linux web01 5.15.0-91-generic #101-Ubuntu SMP x86_64", "1.3.6.1.4.1.8072.3.2.10", "server"),
])
def test_common_agents(descr, oid, kind):
    r = classify(snmp={"sys_descr": descr, "sys_object_id": oid})
    assert r.type == kind, r.evidence()
