"""Real tools make real trouble on a namespace LAN; the capture, replayed, raises the matching finding.

nmap SYN scan, hping3 SYN burst, arpspoof, a second DHCP server (dnsmasq), two hosts on one IP; and a
quiet run of ordinary traffic raises no attack.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest

from probe.findings.lan import ATTACK_KINDS
from tests.lab.replay_lan import Lan, lab_available

pytestmark = [pytest.mark.lab, pytest.mark.peer]

NET = "10.233.7"
GW_MAC, VICTIM_MAC, ATTACKER_MAC, OTHER_MAC = "02:aa:00:00:00:01", "02:aa:00:00:00:02", "02:aa:00:00:00:66", "02:aa:00:00:00:77"


@pytest.fixture
def lan(request):
    reason = lab_available()
    if reason:
        pytest.skip(reason)
    net = Lan(request.node.name[-6:].replace("[", "").replace("]", "")[:4])
    try:
        net.add_host("gw", f"{NET}.1/24", GW_MAC)
        net.add_host("victim", f"{NET}.2/24", VICTIM_MAC)
        net.add_host("attacker", f"{NET}.66/24", ATTACKER_MAC)
        yield net
    finally:
        net.close()


def need(*tools):
    for t in tools:
        if shutil.which(t) is None:
            pytest.skip(f"{t} not installed")


def replay(sitevigil_cmd, sitevigil_env, path, *extra):
    p = subprocess.run([*sitevigil_cmd, "replay", str(path), *extra], capture_output=True, text=True,
                       env=sitevigil_env, timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def kinds(report):
    return {f["kind"] for f in report["findings"]}


def test_nmap_syn_scan(lan, tmp_path, sitevigil_cmd, sitevigil_env):
    need("nmap")
    cap = tmp_path / "nmap.pcap"
    lan.start_capture(str(cap))
    lan.exec("attacker", "nmap", "-n", "-sS", "-Pn", "--disable-arp-ping", "-p", "1-1000", "--max-retries", "1",
             f"{NET}.2", timeout=120)
    lan.stop_capture()
    r = replay(sitevigil_cmd, sitevigil_env, cap)
    scans = [f for f in r["findings"] if f["kind"] == "port_scan"]
    assert [f["device"] for f in scans] == [f"{NET}.66"], r["findings"]
    assert scans[0]["evidence"]["distinct_dst_ports"] > 500
    assert not (kinds(r) & set(ATTACK_KINDS)) - {"port_scan"}


def test_hping3_syn_burst(lan, tmp_path, sitevigil_cmd, sitevigil_env):
    need("hping3")
    cap = tmp_path / "hping.pcap"
    lan.start_capture(str(cap))
    # 3000 SYNs at ~5k/s to one port: bounded in count and time
    lan.exec("attacker", "hping3", "-q", "-S", "-p", "80", "-c", "3000", "-i", "u200", f"{NET}.2", timeout=60, check=False)
    lan.stop_capture()
    r = replay(sitevigil_cmd, sitevigil_env, cap)
    assert [f["device"] for f in r["findings"] if f["kind"] == "syn_flood"] == [f"{NET}.66"], r["findings"]
    assert "port_scan" not in kinds(r)


def test_arpspoof(lan, tmp_path, sitevigil_cmd, sitevigil_env):
    need("arpspoof", "ping")
    cap = tmp_path / "arpspoof.pcap"
    lan.start_capture(str(cap))
    lan.exec("victim", "ping", "-c", "2", "-i", "0.2", f"{NET}.1")   # victim and gateway learn each other
    lan.exec("attacker", "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
    lan.spawn("attacker", "arpspoof", "-i", "eth0", "-t", f"{NET}.2", f"{NET}.1")
    lan.spawn("victim", "ping", "-c", "30", "-i", "0.25", f"{NET}.1")
    time.sleep(7)
    lan.stop_capture()
    r = replay(sitevigil_cmd, sitevigil_env, cap)
    spoof = [f for f in r["findings"] if f["kind"] == "arp_spoofing"]
    assert [f["device"] for f in spoof] == [ATTACKER_MAC], r["findings"]
    assert spoof[0]["evidence"]["previous_mac"] == GW_MAC
    assert "duplicate_ip" not in kinds(r)


def test_rogue_dnsmasq(lan, tmp_path, sitevigil_cmd, sitevigil_env):
    need("dnsmasq", "nmap")
    for host, ip, pool in (("gw", f"{NET}.1", f"{NET}.100,{NET}.150"), ("attacker", f"{NET}.66", f"{NET}.200,{NET}.250")):
        lan.spawn(host, "dnsmasq", "--no-daemon", "--port=0", "--no-resolv", "--no-hosts", "--interface=eth0",
                  "--bind-interfaces", "--no-ping", f"--dhcp-range={pool},2m", f"--pid-file={tmp_path / host}.pid",
                  f"--dhcp-leasefile={tmp_path / host}.leases")
    time.sleep(1.0)
    cap = tmp_path / "dhcp.pcap"
    lan.start_capture(str(cap))
    lan.exec("victim", "nmap", "-n", "--script", "broadcast-dhcp-discover", "--script-args",
             "broadcast-dhcp-discover.timeout=3", "-e", "eth0", timeout=60, check=False)
    lan.stop_capture()
    r = replay(sitevigil_cmd, sitevigil_env, cap, "--allowed-dhcp-server", f"{NET}.1")
    rogue = [f for f in r["findings"] if f["kind"] == "rogue_dhcp"]
    assert [f["device"] for f in rogue] == [ATTACKER_MAC], r["findings"]
    assert rogue[0]["evidence"]["server_id"] == f"{NET}.66"


def test_duplicate_ip(lan, tmp_path, sitevigil_cmd, sitevigil_env):
    need("arping")
    lan.add_host("other", f"{NET}.2/24", OTHER_MAC)  # a second host configured with the victim's address
    cap = tmp_path / "dup.pcap"
    lan.start_capture(str(cap))
    lan.exec("victim", "arping", "-q", "-c", "2", "-w", "1", "-i", "eth0", f"{NET}.1", check=False)
    lan.exec("other", "arping", "-q", "-c", "2", "-w", "1", "-i", "eth0", f"{NET}.1", check=False)
    lan.stop_capture()
    r = replay(sitevigil_cmd, sitevigil_env, cap)
    dup = [f for f in r["findings"] if f["kind"] == "duplicate_ip"]
    assert [f["device"] for f in dup] == [f"{NET}.2"], r["findings"]
    assert sorted(dup[0]["evidence"]["macs"]) == [VICTIM_MAC, OTHER_MAC]
    assert "arp_spoofing" not in kinds(r)


def test_quiet_lan_raises_no_attack(lan, tmp_path, sitevigil_cmd, sitevigil_env):
    need("ping")
    cap = tmp_path / "quiet.pcap"
    lan.start_capture(str(cap))
    lan.exec("victim", "ping", "-c", "5", "-i", "0.2", f"{NET}.1")
    lan.exec("attacker", "ping", "-c", "5", "-i", "0.2", f"{NET}.2")
    lan.exec("gw", "ping", "-c", "3", "-i", "0.2", f"{NET}.66")
    lan.stop_capture()
    r = replay(sitevigil_cmd, sitevigil_env, cap)
    assert r["frames"] >= 26
    assert not kinds(r) & set(ATTACK_KINDS), r["findings"]


def test_linux_cooked_capture_from_any_interface(lan, tmp_path, sitevigil_cmd, sitevigil_env):
    need("ping")
    cap = tmp_path / "any.pcap"
    p = lan.spawn("victim", "tcpdump", "-i", "any", "-n", "-U", "-w", str(cap))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (cap.exists() and cap.stat().st_size >= 24):
        time.sleep(0.05)
    time.sleep(0.3)
    lan.exec("victim", "ping", "-c", "4", "-i", "0.2", f"{NET}.1")
    time.sleep(0.3)
    Lan._stop(p)
    linktype = int.from_bytes(cap.read_bytes()[20:24], "little")
    assert linktype in (113, 276)  # Linux cooked v1 or v2, depending on the tcpdump version
    r = replay(sitevigil_cmd, sitevigil_env, cap)
    assert r["frames"] >= 8 and r["malformed"] == 0 and r["error"] is None
    assert r["protocols"].get("icmp", 0) >= 8
    assert r["hosts"][f"{NET}.2"]["icmp_echo_request"] == 4


def test_nmap_udp_scan(lan, tmp_path, sitevigil_cmd, sitevigil_env):
    need("nmap")
    cap = tmp_path / "nmap_udp.pcap"
    lan.start_capture(str(cap))
    lan.exec("attacker", "nmap", "-n", "-sU", "-Pn", "--disable-arp-ping", "-p", "1-300", "--max-retries", "0",
             "--min-rate", "500", f"{NET}.2", timeout=120)
    lan.stop_capture()
    r = replay(sitevigil_cmd, sitevigil_env, cap)
    scans = [f for f in r["findings"] if f["kind"] == "port_scan"]
    assert [f["device"] for f in scans] == [f"{NET}.66"], r["findings"]
    assert scans[0]["evidence"]["udp_probes"] >= 250
