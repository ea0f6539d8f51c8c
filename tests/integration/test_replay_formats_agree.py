"""`sitevigil replay --format json` and `--format prom` tell the same findings (issue 12): both read the one
ledger, whose episodes are merged by the daemon's rule (a report within detection.episode_quiet of the open
episode's last evidence extends it; later, it starts a new one). JSON lists every episode; Prometheus counts
them by kind and severity (raised, open, resolved); the two must agree, capture by capture, in both fast
path implementations."""
from __future__ import annotations

import collections
import json
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from scapy.layers.l2 import ARP, Ether

from probe.sources.capfile import write_pcap
from probe.sources.frames import FrameBatch

DATA = Path(__file__).resolve().parent.parent / "data" / "pcap"
SHARED = Path("/work/shared/data/pcap")
S = 10**9
T0 = 1_700_000_000 * S
A = "02:00:00:00:00:0a"


def _announcements(path, bursts_s):
    """Bursts of 30 gratuitous ARPs from one MAC (a gratuitous_arp_storm each), at the given seconds."""
    frames, ts = [], []
    for start in bursts_s:
        for k in range(30):
            frames.append(bytes(Ether(src=A, dst="ff:ff:ff:ff:ff:ff") / ARP(hwsrc=A, psrc="10.0.0.10", pdst="10.0.0.10")))
            ts.append(T0 + start * S + k * 50_000_000)
    write_pcap(str(path), [FrameBatch.from_frames(frames, ts_ns=ts)])
    return path


def _replay(cmd, env, path, fmt, *extra):
    p = subprocess.run([*cmd, "replay", str(path), "--format", fmt, *extra], capture_output=True, text=True,
                       env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    return p.stdout


def _both(cmd, env, path, *extra):
    """(JSON findings, {(metric, labels): value} of the findings families) of one capture."""
    findings = json.loads(_replay(cmd, env, path, "json", *extra))["findings"]
    prom = {}
    for fam in text_string_to_metric_families(_replay(cmd, env, path, "prom", *extra)):
        for s in fam.samples:
            if s.name.startswith("sitevigil_findings_"):
                prom[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return findings, prom


def _from_json(findings):
    """What the Prometheus families should say, counted from the JSON episodes."""
    want = collections.Counter()
    for f in findings:
        want[("sitevigil_findings_raised_total", (("kind", f["kind"]), ("severity", f["severity"])))] += 1
        if f["state"] in ("open", "acknowledged"):
            want[("sitevigil_findings_open",
                  (("kind", f["kind"]), ("severity", f["severity"]), ("state", f["state"])))] += 1
        else:
            want[("sitevigil_findings_resolved_total", (("by", "probe"), ("kind", f["kind"])))] += 1
    return dict(want)


@pytest.fixture(params=["cython", "python"])
def env(request, sitevigil_env, impl_env):
    return impl_env(sitevigil_env, request.param)


@pytest.fixture
def impl_env():
    def make(base, name):
        e = dict(base)
        e.pop("SITEVIGIL_NO_EXTENSIONS", None)
        if name == "python":
            e["SITEVIGIL_NO_EXTENSIONS"] = "1"
        return e
    return make


CAPTURES = ["lab_forwarding_loop.pcap", "hping3_icmp_flood.pcap", "hping3_syn_flood_open_port.pcap",
            "mausezahn_udp_flood_spoofed.pcap", "macof_mac_flood.pcap", "masscan_syn_scan.pcap"]


@pytest.mark.parametrize("name", CAPTURES)
def test_json_and_prom_agree_on_recorded_captures(sitevigil_cmd, env, name):
    findings, prom = _both(sitevigil_cmd, env, DATA / name)
    assert findings, "each of these captures raises something"
    assert prom == _from_json(findings)
    # one episode per (kind, device, subject) in one capture of seconds: nothing repeated in the list
    keys = [(f["kind"], f["device"], f.get("subject")) for f in findings]
    assert len(keys) == len(set(keys)), keys


@pytest.mark.parametrize("name", ["dhcp_flood_500.pcap", "arp_poison_mitm.pcapng", "portscan_nmap_syn_1000ports.pcapng"])
def test_json_and_prom_agree_on_shared_captures(sitevigil_cmd, env, name):
    if not (SHARED / name).exists():
        pytest.skip(f"{SHARED / name} not here")
    findings, prom = _both(sitevigil_cmd, env, SHARED / name)
    assert prom == _from_json(findings)


def test_repeats_within_the_quiet_time_are_one_episode_in_both(sitevigil_cmd, env, tmp_path):
    # bursts at 0 s and 100 s (within episode_quiet, 300 s: one episode), and at 1000 s (a new one)
    path = _announcements(tmp_path / "announce.pcap", [0, 100, 1000])
    findings, prom = _both(sitevigil_cmd, env, path)
    storms = [f for f in findings if f["kind"] == "gratuitous_arp_storm"]
    assert [(f["device"], f["state"]) for f in storms] == [(A, "resolved"), (A, "open")]
    assert storms[0]["first_seen"] == T0 / S and storms[0]["last_seen"] >= (T0 + 100 * S) / S
    assert prom == _from_json(findings)
    assert prom[("sitevigil_findings_raised_total", (("kind", "gratuitous_arp_storm"), ("severity", "warning")))] == 2
    # a shorter quiet time splits the first two as well, in both outputs
    cfg = tmp_path / "config.yml"
    cfg.write_text("detection:\n  episode_quiet: 60s\n")
    findings, prom = _both(sitevigil_cmd, env, path, "--config.file", str(cfg))
    assert len([f for f in findings if f["kind"] == "gratuitous_arp_storm"]) == 3
    assert prom == _from_json(findings)
    # with a state directory every episode ends a quiet time after the capture: all resolved, none open
    findings = json.loads(_replay(sitevigil_cmd, env, path, "json", "--state-dir", str(tmp_path / "s1")))["findings"]
    text = _replay(sitevigil_cmd, env, path, "prom", "--state-dir", str(tmp_path / "s2"))
    prom = {(s.name, tuple(sorted(s.labels.items()))): s.value for fam in text_string_to_metric_families(text)
            for s in fam.samples if s.name.startswith("sitevigil_findings_")}
    assert [f["state"] for f in findings if f["kind"] == "gratuitous_arp_storm"] == ["resolved", "resolved"]
    assert prom == _from_json(findings)
