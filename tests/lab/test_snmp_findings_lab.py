"""SNMP-derived findings, anomaly series and inventory in the running daemon, against real agents in
the lab: snmpsim (a recording rewritten between polls: errors rising, a link flapping, a disk
filling, toner low, the UPS on battery with little runtime, a restart) and Net-SNMP snmpd (paused:
a device no longer answering; its sysName/sysDescr reach the inventory). /metrics passes promtool."""
from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from tests.helpers import samples, wait_for
from tests.lab.daemon import probe_daemon
from tests.snmpsim_lab import Snmpsim, SnmpsimUnavailable

pytestmark = [pytest.mark.lab, pytest.mark.peer,
              pytest.mark.skipif(not os.path.exists("/usr/sbin/snmpd") and shutil.which("snmpd") is None,
                                 reason="needs snmpd (Debian package snmpd)")]

IF, IFX = "1.3.6.1.2.1.2.2.1", "1.3.6.1.2.1.31.1.1.1"
STORAGE_UNITS, STORAGE_SIZE = 4096, 1_000_000


def recording(step: int, *, lab_ip_prefix: str, rebooted: bool = False, trouble: bool = False) -> str:
    """A small device (two interfaces, a disk, a toner, a UPS, an ARP entry) as it answers at `step`:
    interface 2 gains 1000 input errors and changes state each step, the disk gains 2% each step;
    with `trouble` the toner is at 5% and the UPS runs on battery with 3 minutes left; with `rebooted`
    sysUpTime is back to 3 s."""
    oper2 = 1 if step % 2 == 0 else 2
    rows = [
        ("1.3.6.1.2.1.1.1.0", 4, "sitevigil lab device (snmpsim)"),
        ("1.3.6.1.2.1.1.2.0", 6, "1.3.6.1.4.1.8072.3.2.10"),
        ("1.3.6.1.2.1.1.3.0", 67, 300 if rebooted else 50_000_000),
        ("1.3.6.1.2.1.1.5.0", 4, "simdev"),
        ("1.3.6.1.2.1.1.6.0", 4, "lab rack"),
        ("1.3.6.1.2.1.2.1.0", 2, 2),
        ("1.3.6.1.2.1.31.1.5.0", 67, 100),
        ("1.3.6.1.2.1.25.2.3.1.1.1", 2, 1),
        ("1.3.6.1.2.1.25.2.3.1.2.1", 6, "1.3.6.1.2.1.25.2.1.4"),
        ("1.3.6.1.2.1.25.2.3.1.3.1", 4, "/data"),
        ("1.3.6.1.2.1.25.2.3.1.4.1", 2, STORAGE_UNITS),
        ("1.3.6.1.2.1.25.2.3.1.5.1", 2, STORAGE_SIZE),
        ("1.3.6.1.2.1.25.2.3.1.6.1", 2, STORAGE_SIZE // 2 + step * STORAGE_SIZE // 50),
        ("1.3.6.1.2.1.43.11.1.1.5.1.1", 2, 3),
        ("1.3.6.1.2.1.43.11.1.1.6.1.1", 4, "Black Toner"),
        ("1.3.6.1.2.1.43.11.1.1.8.1.1", 2, 100),
        ("1.3.6.1.2.1.43.11.1.1.9.1.1", 2, 5 if trouble else 80),
        ("1.3.6.1.2.1.33.1.1.2.0", 4, "LabUPS 1500"),
        ("1.3.6.1.2.1.33.1.2.1.0", 2, 2),
        ("1.3.6.1.2.1.33.1.2.3.0", 2, 3 if trouble else 60),
        ("1.3.6.1.2.1.33.1.2.4.0", 2, 90),
        ("1.3.6.1.2.1.33.1.4.1.0", 2, 5 if trouble else 3),
        (f"1.3.6.1.2.1.4.22.1.2.1.{lab_ip_prefix}.200", "4x", "020000000200"),
        (f"1.3.6.1.2.1.4.22.1.4.1.{lab_ip_prefix}.200", 2, 3),
    ]
    for i, name in ((1, "eth0"), (2, "eth1")):
        rows += [
            (f"{IF}.1.{i}", 2, i), (f"{IF}.2.{i}", 4, name), (f"{IF}.3.{i}", 2, 6), (f"{IF}.5.{i}", 66, 100_000_000),
            (f"{IF}.7.{i}", 2, 1), (f"{IF}.8.{i}", 2, oper2 if i == 2 else 1),
            (f"{IF}.9.{i}", 67, 1000 + (step * 10 if i == 2 else 0)),
            (f"{IF}.10.{i}", 65, 1_000_000 + step * 125_000 * i), (f"{IF}.13.{i}", 65, 0),
            (f"{IF}.14.{i}", 65, step * 1000 if i == 2 else 0), (f"{IF}.16.{i}", 65, 2_000_000 + step * 50_000),
            (f"{IF}.19.{i}", 65, 0), (f"{IF}.20.{i}", 65, 0),
            (f"{IFX}.1.{i}", 4, name), (f"{IFX}.15.{i}", 66, 100), (f"{IFX}.18.{i}", 4, f"port {i}"),
        ]
    rows.sort(key=lambda r: tuple(int(x) for x in r[0].split(".")))
    return "".join(f"{oid}|{tag}|{value}\n" for oid, tag, value in rows)


def test_snmp_findings_scores_and_inventory_in_the_daemon(lab_factory, tmp_path):
    lab = lab_factory(hosts=2, mirror=False)
    sim_host, agent_host = lab.hosts
    prefix = ".".join(str(lab.subnet.network_address).split(".")[:3])
    agent = lab.start_snmpd(agent_host)
    os.chmod(tmp_path, 0o755)
    rec = tmp_path / "sim.snmprec"
    rec.write_text(recording(0, lab_ip_prefix=prefix))
    sim = Snmpsim([rec], netns=sim_host.ns, address=str(sim_host.ip), port=1161)
    try:
        sim.start()
    except SnmpsimUnavailable as exc:
        sim.stop()
        pytest.skip(f"snmpsim unavailable: {exc}")
    sim_target = f"{sim_host.ip}:1161"
    config = f"""
        subnets: [{{cidr: "{lab.subnet}"}}]
        capture: {{enabled: false}}
        sweep: {{enabled: false}}
        snmp:
          counters_interval: 1s
          inventory_interval: 3s
          timeout: 0.4s
          retries: 0
          credentials:
            - {{name: sim, version: "2c", community: sim}}
            - {{name: lab, version: "2c", community: lab-public}}
          targets:
            - {{address: "{sim_host.ip}", port: 1161, credentials: [sim]}}
            - {{address: "{agent_host.ip}", credentials: [lab]}}
          findings: {{storage_min_span: 2s, unreachable_polls: 2}}
        """
    try:
        with probe_daemon(lab, tmp_path, config) as d:
            def polls() -> float:
                got = [s.value for s in samples(d.get("/metrics"), "sitevigil_snmp_polls_total")
                       if s.labels == {"target": sim_target, "module": "system"}]
                return got[0] if got else 0.0

            def log() -> str:
                return d.log()[-2000:]

            def after_polls(n: int, timeout: float = 20.0) -> None:
                start = polls()
                wait_for(lambda: polls() >= start + n, timeout, f"{n} more polls of {sim_target}", context=log)

            t0 = time.monotonic()
            after_polls(2)
            wait_for(lambda: [s for s in samples(d.get("/metrics"), "sitevigil_snmp_up")
                              if s.labels == {"target": str(agent_host.ip), "module": "system"} and s.value == 1],
                     10, f"a successful poll of snmpd on {agent_host}", context=log)
            assert not [f for f in d.findings() if f["device"] == sim_target], "a healthy device raised findings"
            agent.pause()                                         # the snmpd host stops answering
            for step in (1, 2, 3, 4):
                sim.rewrite("sim.snmprec", recording(step, lab_ip_prefix=prefix))
                after_polls(2)
            sim.rewrite("sim.snmprec", recording(5, lab_ip_prefix=prefix, trouble=True))
            after_polls(2)
            sim.rewrite("sim.snmprec", recording(6, lab_ip_prefix=prefix, trouble=True, rebooted=True))
            after_polls(2)

            found = {}
            for kind in ("interface_errors_rising", "interface_flapping", "storage_filling", "printer_supply_low",
                         "ups_on_battery", "ups_runtime_short", "device_rebooted"):
                # state=all: the errors stop rising after the reboot's counter reset, and the ledger resolves
                # an episode once its condition has cleared
                found[kind] = d.wait_finding({kind}, timeout=10, device=sim_target, state="all")
            assert found["interface_errors_rising"]["evidence"]["in_errors_delta"] == 1000
            assert found["interface_errors_rising"]["evidence"]["subject"] == "ifIndex 2 (eth1)"
            storage = found["storage_filling"]["evidence"]
            assert storage["used_ratio"] < 0.95 and storage["days_to_full"] is not None  # the projection, not the ratio
            assert found["printer_supply_low"]["evidence"]["remaining_ratio"] == pytest.approx(0.05)
            assert found["ups_runtime_short"]["evidence"]["runtime_seconds"] == 180
            assert found["interface_flapping"]["evidence"]["changes"] >= 3
            gone = d.wait_finding({"device_unreachable"}, timeout=10, device=str(agent_host.ip))
            assert gone["severity"] == "critical" and gone["evidence"]["failed_polls"] >= 2
            # once per episode: every kind opened once for the simulated device
            episodes = [f for f in d.findings("all") if f["device"] == sim_target]
            kinds = [f["kind"] for f in episodes]
            assert len(kinds) == len(set(kinds)), kinds
            assert "device_unreachable" not in kinds
            agent.resume()

            body = d.get("/metrics")
            # anomaly series from the counters: 2 interfaces x 6 series + the disk's growth
            tracked = samples(body, "sitevigil_anomaly_series")
            assert tracked and tracked[0].value >= 13
            assert any(s.labels == {"device": sim_target} for s in samples(body, "sitevigil_anomaly_device_score_max"))
            # the SNMP data itself is exported
            assert any(s.labels.get("target") == sim_target and s.labels.get("ifname") == "eth1"
                       for s in samples(body, "sitevigil_snmp_if_receive_errors_total"))
            # inventory: the agent by its address with what it says it is, the ARP row as a device
            infos = samples(body, "sitevigil_device_info")
            sim_dev = [s.labels for s in infos if s.labels["ip"] == str(sim_host.ip)]
            assert sim_dev and sim_dev[0]["name"] == "simdev", infos
            assert [s for s in infos if s.labels["ip"] == f"{prefix}.200" and s.labels["mac"] == "02:00:00:00:02:00"]
            agent_dev = [s.labels for s in infos if s.labels["ip"] == str(agent_host.ip)]
            assert agent_dev and agent_dev[0]["name"] == f"{agent_host.name}.lab" and agent_dev[0]["type"] == "server"
            if shutil.which("promtool"):
                lint = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, text=True,
                                      timeout=60)
                assert lint.returncode == 0, lint.stdout + lint.stderr
            assert time.monotonic() - t0 < 60
    finally:
        sim.stop()
