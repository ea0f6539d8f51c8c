"""The ledger from the command line, as a technician uses it (subprocesses, one state directory):
list, show, ack/resolve/dismiss with notes, problems reported by the client, visits tied to findings,
and a capture replayed into the ledger on its own clock."""
from __future__ import annotations

import json
import subprocess

import pytest

from probe.findings.ledger import Ledger
from probe.findings.model import Finding
from probe.state.store import Store


def sv(cmd, env, *args, rc=0):
    p = subprocess.run([*cmd, *args], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == rc, (p.stdout, p.stderr)
    return p


def seed(state_dir):
    s = Store(str(state_dir))
    led = Ledger(s)
    scan = led.record(Finding("port_scan", "warning", "10.0.0.5", {"ports": 120}, 1000.0, 1000.0))
    toner = led.record(Finding("printer_supply_low", "warning", "printer-2f", {"ratio": 0.04}, 2000.0, 2000.0,
                               "black toner"))
    s.close()
    return scan.id, toner.id


def test_a_technicians_day_from_the_command_line(sitevigil_cmd, sitevigil_env, tmp_path):
    cmd, env, d = sitevigil_cmd, sitevigil_env, ["--state-dir", str(tmp_path)]
    scan, toner = seed(tmp_path)
    listed = json.loads(sv(cmd, env, "findings", "list", *d, "--since", "1970-01-02", "--format", "json").stdout)
    assert {r["id"] for r in listed} == {scan, toner} and {r["state"] for r in listed} == {"open"}
    table = sv(cmd, env, "findings", *d).stdout
    assert "printer-2f (black toner)" in table and "port_scan" in table

    out = sv(cmd, env, "findings", "ack", str(toner), *d, "--note", "toner ordered", "--by", "alice").stdout
    assert f"finding {toner} (printer_supply_low on printer-2f) is now acknowledged" in out
    sv(cmd, env, "findings", "dismiss", str(scan), *d, "--note", "the client's own audit", "--by", "alice")
    # a second dismissal is refused, says why, and changes nothing
    again = sv(cmd, env, "findings", "dismiss", str(scan), *d, "--note", "again", rc=1)
    assert "dismissed" in again.stderr and again.stdout == ""
    missing = sv(cmd, env, "findings", "ack", "999", *d, "--note", "x", rc=1)
    assert "no finding with id 999" in missing.stderr

    added = sv(cmd, env, "findings", "add", *d, "--kind", "printer_jam", "--device", "printer-2f",
               "--note", "jams since Monday", "--reported-by", "client", "--by", "bob").stdout
    jam = int(added.split()[1])
    v = sv(cmd, env, "visits", "add", *d, "--technician", "alice", "--mode", "on_site", "--duration", "45m",
           "--start", "2026-11-14 09:30", "--finding", str(toner), "--finding", str(jam),
           "--summary", "Replaced the black toner, cleared the jam").stdout
    assert f"for finding {', '.join(map(str, sorted([toner, jam])))}" in v
    sv(cmd, env, "findings", "resolve", str(toner), *d, "--note", "replaced the black toner", "--by", "alice")
    sv(cmd, env, "findings", "note", str(jam), *d, "--note", "roller worn: order a kit", "--by", "alice")

    shown = json.loads(sv(cmd, env, "findings", "show", str(toner), *d, "--format", "json").stdout)
    assert shown["state"] == "resolved"
    assert [(e["action"], e["by"], e["note"]) for e in shown["events"]] == [
        ("opened", "probe", ""), ("acknowledged", "alice", "toner ordered"),
        ("resolved", "alice", "replaced the black toner")]
    assert [x["summary"] for x in shown["visits"]] == ["Replaced the black toner, cleared the jam"]
    text = sv(cmd, env, "findings", "show", str(jam), *d).stdout
    assert "reported by client" in text or "by client" in text
    assert "roller worn: order a kit" in text and "visit 1" in text

    active = json.loads(sv(cmd, env, "findings", "list", *d, "--format", "json").stdout)
    assert [r["id"] for r in active] == [jam]  # resolved and dismissed are no longer active
    every = json.loads(sv(cmd, env, "findings", "list", *d, "--state", "all", "--format", "json").stdout)
    assert {r["id"]: r["state"] for r in every} == {scan: "dismissed", toner: "resolved", jam: "open"}
    visits = json.loads(sv(cmd, env, "visits", "list", *d, "--since", "2026-11-01", "--format", "json").stdout)
    assert [(x["technician"], x["minutes"], x["findings"]) for x in visits] == [("alice", 45.0, sorted([toner, jam]))]


@pytest.mark.parametrize("args, message", [
    (["findings", "list", "--state", "closed"], "--state: unknown state 'closed'"),
    (["findings", "list", "--since", "last tuesday"], "--since: 'last tuesday' is neither"),
    (["visits", "add", "--technician", "a", "--mode", "remote", "--duration", "ages", "--summary", "s",
      "--reason", "planned"], "ages"),
    (["visits", "add", "--technician", "a", "--mode", "remote", "--duration", "10m", "--summary", "s"],
     "a visit needs a reason"),
])
def test_bad_arguments_say_what_is_wrong(sitevigil_cmd, sitevigil_env, tmp_path, args, message):
    p = subprocess.run([*sitevigil_cmd, *args, "--state-dir", str(tmp_path)], capture_output=True, text=True,
                       env=sitevigil_env, timeout=60)
    assert p.returncode in (1, 2) and message in p.stderr, p.stderr


def test_a_capture_replayed_into_the_ledger_keeps_its_own_timestamps(sitevigil_cmd, sitevigil_env, tmp_path,
                                                                      shared_data):
    from probe.sources.capfile import read_batches

    pcap = shared_data / "pcap" / "portscan_nmap_syn_1000ports.pcapng"
    times = [int(t) / 1e9 for batch in read_batches(str(pcap)) for t in batch.ts_ns]
    first, last = min(times), max(times)
    d = ["--state-dir", str(tmp_path)]
    out = json.loads(sv(sitevigil_cmd, sitevigil_env, "replay", str(pcap), *d, "--format", "json").stdout)
    scans = [f for f in out["findings"] if f["kind"] == "port_scan"]
    assert scans
    rows = json.loads(sv(sitevigil_cmd, sitevigil_env, "findings", "list", *d, "--state", "all",
                         "--format", "json").stdout)
    assert {r["id"] for r in rows} == {f["id"] for f in out["findings"]}
    for r in rows:  # on the capture's clock, not today's; ended (the capture is over), resolved by the probe
        assert first - 60 <= r["first_seen"] <= last + 60
        assert r["resolved_at"] is not None and r["resolved_at"] <= last + 3600 and r["state"] == "resolved"
    # a second replay of the same capture adds its own episodes and reports only those
    again = json.loads(sv(sitevigil_cmd, sitevigil_env, "replay", str(pcap), *d, "--format", "json").stdout)
    assert again["findings"] and min(f["id"] for f in again["findings"]) > max(r["id"] for r in rows)
