"""arp_spoofing vs duplicate_ip through `sitevigil replay`, on two lab recordings (tests/data/pcap/README.md)
made with the real tools, in windows from 1 s to 30 s: the verdict must not depend on how a contest
falls across windows."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent.parent / "data" / "pcap"
ARP_KINDS = {"arp_spoofing", "duplicate_ip", "gratuitous_arp_storm"}


def findings(cmd, env, name: str, window: int) -> list[dict]:
    p = subprocess.run([*cmd, "replay", str(DATA / name), "--format", "json", "--window", str(window)],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    return [f for f in json.loads(p.stdout)["findings"] if f["kind"] in ARP_KINDS]


@pytest.mark.parametrize("window", [1, 2, 10, 30])
def test_dsniff_arpspoof_is_arp_spoofing_and_nothing_else(sitevigil_cmd, sitevigil_env, window):
    """arpspoof -t h1 gateway: a reply every 2 s unasked, then five parting replies that restore the
    gateway's MAC in h1's cache (sent from the attacker, naming the gateway's MAC)."""
    got = findings(sitevigil_cmd, sitevigil_env, "lab_arpspoof.pcap", window)
    assert [(f["kind"], f["device"], f["severity"]) for f in got] == [
        ("arp_spoofing", "02:5e:2d:97:00:03", "critical")], got
    ev = got[0]["evidence"]
    assert ev["ip"] == "10.222.0.1" and ev["previous_mac"] == "02:5e:2d:97:00:01"
    assert ev["signs"]["unsolicited_replies"] and ev["arp_replies"] >= 3


@pytest.mark.parametrize("window", [1, 2, 10, 30])
def test_second_address_answered_by_both_is_a_duplicate(sitevigil_cmd, sitevigil_env, window):
    """h0 adds h1's address, announces it three times (arping -U, as requests), then both answer the
    gateway's who-has for it twice: a misconfiguration, a warning on the address."""
    got = findings(sitevigil_cmd, sitevigil_env, "lab_duplicate_ip.pcap", window)
    assert [(f["kind"], f["device"], f["severity"]) for f in got] == [
        ("duplicate_ip", "10.232.0.4", "warning")], got
    ev = got[0]["evidence"]
    assert ev["macs"] == ["02:5e:bb:1b:00:03", "02:5e:bb:1b:00:04"]
    assert ev["signs"] == {"unsolicited_replies": False, "claims_gateway_ip": False, "traffic_redirected": False}
