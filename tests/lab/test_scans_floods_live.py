"""Scans without SYN, MAC flooding and packet floods made by real tools on a lab LAN: the live probe on its
mirror port raises the finding within a minute. Every tool is bounded by a count and a timeout and sends
only to the lab's own addresses (macof's random addresses never leave the lab's bridge)."""
from __future__ import annotations

import sys

import pytest

from tests.lab.test_findings_live import _attack, _need, _watching, _who

pytestmark = [pytest.mark.lab, pytest.mark.peer]


def _nmap(flags: str):
    return lambda victim: ["nmap", "-n", "-Pn", "--disable-arp-ping", flags, "-p", "1-500", "-T4", "--max-retries",
                           "0", "--host-timeout", "30s", str(victim.ip)]


# tool, argv at the victim, the finding, what it must say (attacker, the finding)
ATTACKS = {
    "nmap -sF": ("nmap", _nmap("-sF"), "port_scan",
                 lambda a, f: f["device"] in _who(a) and f["evidence"]["scan_type"] == "stealth"),
    "nmap -sX": ("nmap", _nmap("-sX"), "port_scan",
                 lambda a, f: f["device"] in _who(a) and f["evidence"]["scan_type"] == "stealth"),
    "nmap -sA": ("nmap", _nmap("-sA"), "port_scan",
                 lambda a, f: f["device"] in _who(a) and f["evidence"]["scan_type"] == "ack"),
    "macof": ("macof", lambda victim: ["macof", "-i", "eth0", "-n", "3000"], "mac_flood",
              lambda a, f: f["device"] == "lan" and f["severity"] == "critical"
              and f["evidence"]["new_one_shot_macs"] + f["evidence"]["table_overflow_frames"] >= 1000),
    # 4,000 echo requests at up to ~3k/s to one host
    "hping3 icmp flood": ("hping3", lambda victim: ["hping3", "-q", "-1", "-i", "u300", "-c", "4000", str(victim.ip)],
                          "icmp_flood", lambda a, f: f["device"] in _who(a) and f["evidence"]["protocol"] == "icmp"),
}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_raises_its_finding(lab_factory, tmp_path, name):
    tool, argv, kind, check = ATTACKS[name]
    _need(tool, "curl")
    lab = lab_factory(hosts=2)
    attacker, victim = lab.hosts
    with _watching(lab, tmp_path) as probe:
        _attack(lab, attacker, argv(victim), seconds=45 if tool == "nmap" else 10)
        f = probe.wait_finding({kind}, timeout=60)
        assert check(attacker, f), f


def test_hping3_syn_flood_at_an_open_port(lab_factory, tmp_path):
    """Each SYN is answered (SYN-ACK) and reset by the attacker's kernel: nothing is left unanswered."""
    _need("hping3", "curl")
    lab = lab_factory(hosts=2)
    attacker, victim = lab.hosts
    listen = ("import socket, time\nx = socket.socket()\nx.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
              "x.bind(('0.0.0.0', 80))\nx.listen(50)\ntime.sleep(60)\n")
    server = lab.popen(victim, [sys.executable, "-c", listen])
    try:
        with _watching(lab, tmp_path) as probe:
            _attack(lab, attacker, ["hping3", "-q", "-S", "-p", "80", "-i", "u300", "-c", "3000", str(victim.ip)])
            f = probe.wait_finding({"syn_flood"}, timeout=60)
            assert f["device"] in _who(attacker) and f["evidence"]["synack_reset_by_initiator"] >= 100, f
    finally:
        lab.stop(server)
