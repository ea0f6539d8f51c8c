"""The daemon's SNMP subsystem against real snmpd agents in the lab: /metrics serves the latest
results without waiting on a paused agent, per-module bookkeeping, and /snmp's access rules."""
from __future__ import annotations

import os
import shutil

import pytest

from tests.helpers import sample, wait_for
from tests.lab.daemon import probe_daemon

pytestmark = [pytest.mark.lab, pytest.mark.peer,
              pytest.mark.skipif(not os.path.exists("/usr/sbin/snmpd") and shutil.which("snmpd") is None,
                                 reason="needs snmpd (Debian package snmpd)")]

def test_daemon_polls_on_schedule_and_serves_latest_results(lab_factory, tmp_path):
    lab = lab_factory(hosts=3, snmp_hosts=2, mirror=False)
    a, b = lab.snmpds
    config = f"""
subnets: [{{cidr: "{lab.subnet}"}}]
capture: {{enabled: false}}
snmp:
  counters_interval: 1s
  inventory_interval: 30s
  timeout: 0.3s
  retries: 0
  credentials:
    - {{name: wrong, version: "2c", community: nope}}
    - {{name: lab, version: "2c", community: lab-public}}
  targets:
    - {{address: "{a.host.ip}"}}
    - {{address: "{b.host.ip}", modules: [system, interfaces]}}
    - {{address: "{lab.hosts[2].ip}"}}
"""
    with probe_daemon(lab, tmp_path, config) as d:
        def both_up():
            m = d.fetch("/metrics")
            if m["status"] != 200:
                return None
            ok = all(sample(m["body"], "sitevigil_snmp_up", target=str(x.host.ip), module="system") == 1
                     for x in (a, b))
            return m["body"] if ok else None

        body = wait_for(both_up, 20, "both agents polled")
        assert sample(body, "sitevigil_snmp_credential_info", target=str(a.host.ip), credential="lab") == 1
        assert sample(body, "sitevigil_snmp_up", target=str(b.host.ip), module="interfaces") == 1
        # The host without an agent: every module down with class timeout, nothing else hidden.
        wait_for(lambda: sample(d.fetch("/metrics")["body"], "sitevigil_snmp_poll_error_info",
                                target=str(lab.hosts[2].ip), module="system", **{"class": "timeout"}) == 1,
                 20, "the host without an agent reported with class timeout")

        # Pause one agent: scrapes stay fast, its modules go down with a timeout, the other stays up.
        a.pause()
        try:
            def a_down():
                m = d.fetch("/metrics")
                assert m["seconds"] < 2.0, m["seconds"]
                return m["body"] if sample(m["body"], "sitevigil_snmp_up", target=str(a.host.ip),
                                           module="system") == 0 else None

            body = wait_for(a_down, 20, "paused agent reported down")
            assert sample(body, "sitevigil_snmp_up", target=str(b.host.ip), module="system") == 1
            assert sample(body, "sitevigil_snmp_poll_error_info", target=str(a.host.ip), module="system",
                          **{"class": "timeout"}) == 1
            assert sample(body, "sitevigil_snmp_timeouts_total", target=str(a.host.ip), module="system") >= 1
        finally:
            a.resume()
        wait_for(lambda: sample(d.fetch("/metrics")["body"], "sitevigil_snmp_up", target=str(a.host.ip),
                                module="system") == 1, 20, "resumed agent back up")

        r = d.fetch(f"/snmp?target={b.host.ip}&module=system")
        assert r["status"] == 200 and sample(r["body"], "sitevigil_snmp_up", target=str(b.host.ip), module="system") == 1
        r = d.fetch("/snmp?target=198.51.100.4")
        assert r["status"] == 403 and "outside the client subnets" in r["body"]
        status = d.fetch("/-/status.json")["body"]
        assert "lab-public" not in status and "nope" not in status
    import sqlite3

    # The credential that worked is remembered in the state store.
    db = sqlite3.connect(str(tmp_path / "state" / "sitevigil.db"))
    rows = dict((addr, cred) for addr, _, cred in db.execute("SELECT address, port, credential FROM snmp_credential"))
    assert rows[str(a.host.ip)] == "lab" and rows[str(b.host.ip)] == "lab"
