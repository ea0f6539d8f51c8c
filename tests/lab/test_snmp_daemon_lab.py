"""The daemon's SNMP subsystem against real snmpd agents in the lab: /metrics serves the latest
results without waiting on a paused agent, per-module bookkeeping, and /snmp's access rules."""
from __future__ import annotations

import json
import os
import shutil
import sys

import pytest

from tests.conftest import REPO_ROOT
from tests.helpers import sample, wait_for

pytestmark = [pytest.mark.lab, pytest.mark.peer,
              pytest.mark.skipif(not os.path.exists("/usr/sbin/snmpd") and shutil.which("snmpd") is None,
                                 reason="needs snmpd (Debian package snmpd)")]

pytest.importorskip("probe.sources.snmp.modules", reason="needs the SNMP modules (snmpmod branch)")

FETCH = """
import sys, time, urllib.request, urllib.error, json
t = time.monotonic()
try:
    r = urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2]))
    out = {"status": r.status, "body": r.read().decode()}
except urllib.error.HTTPError as e:
    out = {"status": e.code, "body": e.read().decode()}
except Exception as e:
    out = {"status": 0, "body": repr(e)}
out["seconds"] = time.monotonic() - t
print(json.dumps(out))
"""


def fetch(lab, url, timeout=10.0) -> dict:
    r = lab.run(lab.probe, [sys.executable, "-c", FETCH, url, str(timeout)], timeout=timeout + 10)
    return json.loads(r.stdout)


def test_daemon_polls_on_schedule_and_serves_latest_results(lab_factory, tmp_path, sitevigil_cmd):
    lab = lab_factory(hosts=3, snmp_hosts=2, mirror=False)
    a, b = lab.snmpds
    os.chmod(tmp_path, 0o755)
    cfg = tmp_path / "sitevigil.yml"
    cfg.write_text(f"""
web: {{listen_address: "{lab.probe.ip}:9977"}}
state_dir: {tmp_path}/state
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
""")
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    daemon = lab.popen(lab.probe, [*sitevigil_cmd, "run", "--config.file", str(cfg)], env=env, cwd=str(REPO_ROOT),
                       text=True)
    base = f"http://{lab.probe.ip}:9977"
    try:
        def both_up():
            m = fetch(lab, base + "/metrics")
            if m["status"] != 200:
                return None
            ok = all(sample(m["body"], "sitevigil_snmp_up", target=str(x.host.ip), module="system") == 1
                     for x in (a, b))
            return m["body"] if ok else None

        body = wait_for(both_up, 20, "both agents polled")
        assert sample(body, "sitevigil_snmp_credential_info", target=str(a.host.ip), credential="lab") == 1
        assert sample(body, "sitevigil_snmp_up", target=str(b.host.ip), module="interfaces") == 1
        # The host without an agent: every module down with class timeout, nothing else hidden.
        wait_for(lambda: sample(fetch(lab, base + "/metrics")["body"], "sitevigil_snmp_poll_error_info",
                                target=str(lab.hosts[2].ip), module="system", **{"class": "timeout"}) == 1,
                 20, "the host without an agent reported with class timeout")

        # Pause one agent: scrapes stay fast, its modules go down with a timeout, the other stays up.
        a.pause()
        try:
            def a_down():
                m = fetch(lab, base + "/metrics")
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
        wait_for(lambda: sample(fetch(lab, base + "/metrics")["body"], "sitevigil_snmp_up", target=str(a.host.ip),
                                module="system") == 1, 20, "resumed agent back up")

        r = fetch(lab, base + f"/snmp?target={b.host.ip}&module=system")
        assert r["status"] == 200 and sample(r["body"], "sitevigil_snmp_up", target=str(b.host.ip), module="system") == 1
        r = fetch(lab, base + "/snmp?target=198.51.100.4")
        assert r["status"] == 403 and "outside the client subnets" in r["body"]
        status = fetch(lab, base + "/-/status.json")["body"]
        assert "lab-public" not in status and "nope" not in status
    finally:
        lab.stop(daemon)
    import sqlite3

    # The credential that worked is remembered in the state store.
    db = sqlite3.connect(str(tmp_path / "state" / "sitevigil.db"))
    rows = dict((addr, cred) for addr, _, cred in db.execute("SELECT address, port, credential FROM snmp_credential"))
    assert rows[str(a.host.ip)] == "lab" and rows[str(b.host.ip)] == "lab"
