"""Captures of real attack tools (tests/data/pcap, recorded by record.py there) replayed through the capture
pipeline: each raises its finding, about the attacker, with the scan type or protocol it can tell, and no
other attack finding."""
from __future__ import annotations

from pathlib import Path

import pytest

from probe.config import CaptureConfig, DetectionConfig
from probe.findings.lan import ATTACK_KINDS
from probe.findings.pipeline import CapturePipeline
from probe.sources.capfile import read_batches

DATA = Path(__file__).resolve().parent.parent / "data" / "pcap"
ATTACKER_IP, ATTACKER_MAC = "10.201.0.3", "02:5e:be:fc:00:03"

# file -> (kind, device, evidence that must match)
EXPECTED = {
    "nmap_fin_scan": ("port_scan", ATTACKER_IP, {"scan_type": "stealth"}),
    "nmap_xmas_scan": ("port_scan", ATTACKER_IP, {"scan_type": "stealth"}),
    "nmap_null_scan": ("port_scan", ATTACKER_IP, {"scan_type": "stealth"}),
    "nmap_ack_scan": ("port_scan", ATTACKER_IP, {"scan_type": "ack"}),
    "nmap_window_scan": ("port_scan", ATTACKER_IP, {"scan_type": "ack"}),
    "nmap_maimon_scan": ("port_scan", ATTACKER_IP, {"scan_type": "ack"}),
    "masscan_syn_scan": ("port_scan", ATTACKER_IP, {"scan_type": "syn"}),
    "macof_mac_flood": ("mac_flood", "lan", {"vlan": None}),
    "mausezahn_mac_flood": ("mac_flood", "lan", {}),
    "hping3_syn_flood_open_port": ("syn_flood", ATTACKER_IP, {"distinct_dst_ports": 1}),
    "hping3_icmp_flood": ("icmp_flood", ATTACKER_IP, {"protocol": "icmp"}),
    "hping3_udp_flood": ("udp_flood", ATTACKER_IP, {"protocol": "udp"}),
    "mausezahn_udp_flood_spoofed": ("udp_flood", ATTACKER_MAC, {"protocol": "udp"}),
}


def replay(path: Path):
    pipe = CapturePipeline(CaptureConfig(), DetectionConfig())
    for batch in read_batches(str(path)):
        pipe.add_batch(batch)
    pipe.finish()
    return pipe.findings.all_findings()


# the lab's loop and packet-loss captures, pinned by tests/integration/test_loop_retrans_replay.py
PINNED_ELSEWHERE = {"lab_forwarding_loop", "lab_tcp_loss_10pct",
                    "lab_arpspoof", "lab_duplicate_ip",  # tests/integration/test_arp_contest_replay.py
                    "benign_office_hour"}  # tests/integration/test_benign_captures.py: raises nothing


def test_every_capture_here_is_pinned():
    assert sorted(p.stem for p in DATA.glob("*.pcap")) == sorted([*EXPECTED, *PINNED_ELSEWHERE])
    assert all((DATA / f"{name}.pcap").stat().st_size < 300_000 for name in EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_attack_capture_raises_its_finding(name):
    kind, device, evidence = EXPECTED[name]
    found = replay(DATA / f"{name}.pcap")
    attacks = [f for f in found if f.kind in ATTACK_KINDS]
    assert [(f.kind, f.device) for f in attacks] == [(kind, device)], found
    for k, v in evidence.items():
        assert attacks[0].evidence[k] == v, (k, attacks[0].evidence)
    if kind == "mac_flood":
        assert attacks[0].evidence["new_one_shot_macs"] >= 1400 and attacks[0].severity == "critical"
    # the flood's own side effects (unreachables to spoofed sources, resets) are not reported apart
    assert [f for f in found if f.kind not in ATTACK_KINDS] == [], found
