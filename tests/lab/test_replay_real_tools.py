"""Real tools make real trouble on a namespace LAN; the capture, replayed, raises the matching finding.

nmap SYN scan, hping3 SYN burst, arpspoof, a second DHCP server (dnsmasq), two hosts on one IP; and a
quiet run of ordinary traffic raises no attack. The LAN is tests.lab.netns.Lab: the gateway, the probe
(whose mirror port is captured), a victim (h0) and an attacker (h1).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest

from probe.findings.lan import ATTACK_KINDS
from tests.lab.record_captures import arping_argv

pytestmark = [pytest.mark.lab, pytest.mark.peer]


@pytest.fixture
def lan(lab_factory):
    lab = lab_factory(hosts=2)
    lab.victim, lab.attacker = lab.hosts
    return lab


def addr(lab, n: int) -> str:
    """The n-th address of the lab's subnet (for DHCP pools)."""
    return str(lab.subnet.network_address + n)


def spawn(lab, host, *argv):
    return lab.popen(host, list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


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
    tcpdump = lan.start_capture(str(cap))
    lan.run(lan.attacker, ["nmap", "-n", "-sS", "-Pn", "--disable-arp-ping", "-p", "1-1000", "--max-retries", "1",
                           str(lan.victim.ip)], timeout=120)
    lan.stop_capture(tcpdump)
    r = replay(sitevigil_cmd, sitevigil_env, cap)
    scans = [f for f in r["findings"] if f["kind"] == "port_scan"]
    assert [f["device"] for f in scans] == [str(lan.attacker.ip)], r["findings"]
    assert scans[0]["evidence"]["distinct_dst_ports"] > 500
    assert not (kinds(r) & set(ATTACK_KINDS)) - {"port_scan"}


def test_hping3_syn_burst(lan, tmp_path, sitevigil_cmd, sitevigil_env):
    need("hping3")
    cap = tmp_path / "hping.pcap"
    tcpdump = lan.start_capture(str(cap))
    # 3000 SYNs at ~5k/s to one port: bounded in count and time
    lan.run(lan.attacker, ["hping3", "-q", "-S", "-p", "80", "-c", "3000", "-i", "u200", str(lan.victim.ip)],
            timeout=60, check=False)
    lan.stop_capture(tcpdump)
    r = replay(sitevigil_cmd, sitevigil_env, cap)
    assert [f["device"] for f in r["findings"] if f["kind"] == "syn_flood"] == [str(lan.attacker.ip)], r["findings"]
    assert "port_scan" not in kinds(r)


def test_arpspoof(lan, tmp_path, sitevigil_cmd, sitevigil_env):
    need("arpspoof", "ping")
    cap = tmp_path / "arpspoof.pcap"
    gw = str(lan.gateway.ip)
    tcpdump = lan.start_capture(str(cap))
    lan.run(lan.victim, ["ping", "-c", "2", "-i", "0.2", gw])   # victim and gateway learn each other
    lan.run(lan.attacker, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
    spawn(lan, lan.attacker, "arpspoof", "-i", "eth0", "-t", str(lan.victim.ip), gw)
    spawn(lan, lan.victim, "ping", "-c", "30", "-i", "0.25", gw)
    time.sleep(7)
    lan.stop_capture(tcpdump)
    r = replay(sitevigil_cmd, sitevigil_env, cap)
    spoof = [f for f in r["findings"] if f["kind"] == "arp_spoofing"]
    assert [f["device"] for f in spoof] == [lan.attacker.mac], r["findings"]
    assert spoof[0]["evidence"]["previous_mac"] == lan.gateway.mac
    assert "duplicate_ip" not in kinds(r)


def test_rogue_dnsmasq(lan, tmp_path, sitevigil_cmd, sitevigil_env):
    need("dnsmasq", "nmap")
    for host, pool in ((lan.gateway, f"{addr(lan, 100)},{addr(lan, 150)}"), (lan.attacker, f"{addr(lan, 200)},{addr(lan, 250)}")):
        spawn(lan, host, "dnsmasq", "--no-daemon", "--port=0", "--no-resolv", "--no-hosts", "--interface=eth0",
              "--bind-interfaces", "--no-ping", f"--dhcp-range={pool},2m", f"--pid-file={tmp_path / host.name}.pid",
              f"--dhcp-leasefile={tmp_path / host.name}.leases")
    time.sleep(1.0)
    cap = tmp_path / "dhcp.pcap"
    tcpdump = lan.start_capture(str(cap))
    lan.run(lan.victim, ["nmap", "-n", "--script", "broadcast-dhcp-discover", "--script-args",
                         "broadcast-dhcp-discover.timeout=3", "-e", "eth0"], timeout=60, check=False)
    lan.stop_capture(tcpdump)
    r = replay(sitevigil_cmd, sitevigil_env, cap, "--allowed-dhcp-server", str(lan.gateway.ip))
    rogue = [f for f in r["findings"] if f["kind"] == "rogue_dhcp"]
    assert [f["device"] for f in rogue] == [lan.attacker.mac], r["findings"]
    assert rogue[0]["evidence"]["server_id"] == str(lan.attacker.ip)


def test_duplicate_ip(lan, tmp_path, sitevigil_cmd, sitevigil_env):
    need("arping")
    other = lan.add_host("other", ip=str(lan.victim.ip))  # a second host configured with the victim's address
    cap = tmp_path / "dup.pcap"
    tcpdump = lan.start_capture(str(cap))
    for host in (lan.victim, other):
        lan.run(host, arping_argv(lan, host, str(lan.gateway.ip), count=2), check=False)
    lan.stop_capture(tcpdump)
    r = replay(sitevigil_cmd, sitevigil_env, cap)
    dup = [f for f in r["findings"] if f["kind"] == "duplicate_ip"]
    assert [f["device"] for f in dup] == [str(lan.victim.ip)], r["findings"]
    assert sorted(dup[0]["evidence"]["macs"]) == sorted([lan.victim.mac, other.mac])
    assert "arp_spoofing" not in kinds(r)


def test_quiet_lan_raises_no_attack(lan, tmp_path, sitevigil_cmd, sitevigil_env):
    need("ping")
    cap = tmp_path / "quiet.pcap"
    tcpdump = lan.start_capture(str(cap))
    lan.run(lan.victim, ["ping", "-c", "5", "-i", "0.2", str(lan.gateway.ip)])
    lan.run(lan.attacker, ["ping", "-c", "5", "-i", "0.2", str(lan.victim.ip)])
    lan.run(lan.gateway, ["ping", "-c", "3", "-i", "0.2", str(lan.attacker.ip)])
    lan.stop_capture(tcpdump)
    r = replay(sitevigil_cmd, sitevigil_env, cap)
    assert r["frames"] >= 26
    assert not kinds(r) & set(ATTACK_KINDS), r["findings"]


def test_linux_cooked_capture_from_any_interface(lan, tmp_path, sitevigil_cmd, sitevigil_env):
    need("ping")
    cap = tmp_path / "any.pcap"
    tcpdump = lan.start_capture(str(cap), host=lan.victim, iface="any")
    lan.run(lan.victim, ["ping", "-c", "4", "-i", "0.2", str(lan.gateway.ip)])
    lan.stop_capture(tcpdump)
    linktype = int.from_bytes(cap.read_bytes()[20:24], "little")
    assert linktype in (113, 276)  # Linux cooked v1 or v2, depending on the tcpdump version
    r = replay(sitevigil_cmd, sitevigil_env, cap)
    assert r["frames"] >= 8 and r["malformed"] == 0 and r["error"] is None
    assert r["protocols"].get("icmp", 0) >= 8
    assert r["hosts"][str(lan.victim.ip)]["icmp_echo_request"] == 4


def test_nmap_udp_scan(lan, tmp_path, sitevigil_cmd, sitevigil_env):
    need("nmap")
    cap = tmp_path / "nmap_udp.pcap"
    tcpdump = lan.start_capture(str(cap))
    lan.run(lan.attacker, ["nmap", "-n", "-sU", "-Pn", "--disable-arp-ping", "-p", "1-300", "--max-retries", "0",
                           "--min-rate", "500", str(lan.victim.ip)], timeout=120)
    lan.stop_capture(tcpdump)
    r = replay(sitevigil_cmd, sitevigil_env, cap)
    scans = [f for f in r["findings"] if f["kind"] == "port_scan"]
    assert [f["device"] for f in scans] == [str(lan.attacker.ip)], r["findings"]
    assert scans[0]["evidence"]["udp_probes"] >= 250
