"""Scans without SYN, MAC flooding and packet floods made by real tools on a lab LAN: the live probe on its
mirror port raises the finding within a minute. Every tool is bounded by a count and a timeout and sends
only to the lab's own addresses (macof's random addresses never leave the lab's bridge)."""
from __future__ import annotations

import pytest

from tests.integration.test_findings_live import _config, _need, _warm_up, _who
from tests.lab.daemon import probe_daemon

pytestmark = [pytest.mark.lab, pytest.mark.peer]


@pytest.mark.parametrize("flags,scan_type", [("-sF", "stealth"), ("-sX", "stealth"), ("-sA", "ack")])
def test_nmap_scans_without_syn(lab_factory, tmp_path, flags, scan_type):
    _need("nmap", "curl")
    lab = lab_factory(hosts=2)
    scanner, victim = lab.hosts
    with probe_daemon(lab, tmp_path, _config(lab)) as probe:
        _warm_up(lab)
        lab.run(scanner, ["nmap", "-n", "-Pn", "--disable-arp-ping", flags, "-p", "1-500", "-T4",
                          "--max-retries", "0", "--host-timeout", "30s", str(victim.ip)], timeout=60)
        f = probe.wait_finding({"port_scan"}, timeout=60)
        assert f["device"] in _who(scanner) and f["evidence"]["scan_type"] == scan_type, f


def test_macof_mac_flood(lab_factory, tmp_path):
    _need("macof", "curl")
    lab = lab_factory(hosts=2)
    attacker = lab.hosts[0]
    with probe_daemon(lab, tmp_path, _config(lab)) as probe:
        _warm_up(lab)
        lab.run(attacker, ["timeout", "10", "macof", "-i", "eth0", "-n", "3000"], check=False, timeout=20)
        f = probe.wait_finding({"mac_flood"}, timeout=60)
        assert f["device"] == "lan" and f["severity"] == "critical", f
        assert f["evidence"]["new_one_shot_macs"] + f["evidence"]["table_overflow_frames"] >= 1000, f


def test_hping3_icmp_flood(lab_factory, tmp_path):
    _need("hping3", "curl")
    lab = lab_factory(hosts=2)
    attacker, victim = lab.hosts
    with probe_daemon(lab, tmp_path, _config(lab)) as probe:
        _warm_up(lab)
        # 4,000 echo requests at up to ~3k/s to one host
        lab.run(attacker, ["timeout", "10", "hping3", "-q", "-1", "-i", "u300", "-c", "4000", str(victim.ip)],
                check=False, timeout=20)
        f = probe.wait_finding({"icmp_flood"}, timeout=60)
        assert f["device"] in _who(attacker) and f["evidence"]["protocol"] == "icmp", f


def test_hping3_syn_flood_at_an_open_port(lab_factory, tmp_path):
    """Each SYN is answered (SYN-ACK) and reset by the attacker's kernel: nothing is left unanswered."""
    import sys
    _need("hping3", "curl")
    lab = lab_factory(hosts=2)
    attacker, victim = lab.hosts
    listen = ("import socket, time\nx = socket.socket()\nx.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
              "x.bind(('0.0.0.0', 80))\nx.listen(50)\ntime.sleep(60)\n")
    server = lab.popen(victim, [sys.executable, "-c", listen])
    try:
        with probe_daemon(lab, tmp_path, _config(lab)) as probe:
            _warm_up(lab)
            lab.run(attacker, ["timeout", "10", "hping3", "-q", "-S", "-p", "80", "-i", "u300", "-c", "3000",
                               str(victim.ip)], check=False, timeout=20)
            f = probe.wait_finding({"syn_flood"}, timeout=60)
            assert f["device"] in _who(attacker) and f["evidence"]["synack_reset_by_initiator"] >= 100, f
    finally:
        lab.stop(server)
