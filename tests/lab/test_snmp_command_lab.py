"""`sitevigil snmp` against a real Net-SNMP snmpd, run inside the lab's probe namespace."""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.lab, pytest.mark.peer,
              pytest.mark.skipif(not os.path.exists("/usr/sbin/snmpd") and shutil.which("snmpd") is None,
                                 reason="needs snmpd (Debian package snmpd)")]


def sitevigil(lab, sitevigil_cmd, args, env=None):
    e = dict(os.environ, PYTHONPATH=str(REPO_ROOT), **(env or {}))
    for k in list(e):
        if k.startswith("SITEVIGIL_SNMP_") and k not in (env or {}):
            del e[k]
    return lab.run(lab.probe, [*sitevigil_cmd, "snmp", *args], env=e, cwd=str(REPO_ROOT), check=False, timeout=60)


def test_v2c_json_has_the_system_and_interfaces_of_the_agent(lab, sitevigil_cmd):
    agent = lab.snmpds[0]
    r = sitevigil(lab, sitevigil_cmd, [str(agent.host.ip), "--community", "lab-public"])
    assert r.returncode in (0, 1), r.stderr
    out = json.loads(r.stdout)
    assert out["sys"]["name"] == "h0.lab"
    assert out["sys"]["object_id"].startswith("1.3.6.1.4.1.8072.")
    assert out["sys"]["uptime_seconds"] >= 0
    names = {i["name"] for i in out["interfaces"]}
    assert {"lo", "eth0"} <= names
    eth0 = next(i for i in out["interfaces"] if i["name"] == "eth0")
    assert eth0["oper_status"] == "up" and eth0["in_octets"] > 0
    assert out["poll"]["system"]["ok"] and out["poll"]["interfaces"]["pdus"] >= 1
    assert "lab-public" not in r.stdout + r.stderr


def test_secrets_from_the_environment_and_prom_output(lab, sitevigil_cmd):
    agent = lab.snmpds[0]
    env = {"SITEVIGIL_SNMP_V3_USER": "labv3", "SITEVIGIL_SNMP_AUTH_KEY": "authpass123",
           "SITEVIGIL_SNMP_PRIV_KEY": "privpass123"}
    r = sitevigil(lab, sitevigil_cmd, [str(agent.host.ip), "--auth-proto", "SHA256", "--priv-proto", "AES256",
                                       "--module", "system,interfaces", "--format", "prom"], env=env)
    assert r.returncode == 0, r.stderr
    target = str(agent.host.ip)
    assert f'sitevigil_snmp_up{{module="system",target="{target}"}} 1.0' in r.stdout
    assert f'sitevigil_snmp_up{{module="interfaces",target="{target}"}} 1.0' in r.stdout
    assert "authpass123" not in r.stdout + r.stderr and "privpass123" not in r.stdout + r.stderr
    if shutil.which("promtool"):
        lint = subprocess.run(["promtool", "check", "metrics"], input=r.stdout, capture_output=True, text=True,
                              timeout=30)
        assert lint.returncode == 0, lint.stdout + lint.stderr


def test_wrong_community_is_reported_as_auth_and_a_dead_host_as_timeout(lab, sitevigil_cmd):
    agent = lab.snmpds[0]
    r = sitevigil(lab, sitevigil_cmd, [str(agent.host.ip), "--community", "not-it", "--timeout", "0.4",
                                       "--retries", "0", "--module", "system"])
    assert r.returncode == 3
    out = json.loads(r.stdout)
    assert out["errors"]["system"]["class"] == "auth"
    assert "not-it" not in r.stdout + r.stderr

    silent = lab.hosts[1]
    r = sitevigil(lab, sitevigil_cmd, [str(silent.ip), "--community", "lab-public", "--timeout", "0.3",
                                       "--retries", "1", "--module", "system"])
    assert r.returncode == 3
    assert json.loads(r.stdout)["errors"]["system"]["class"] == "timeout"


def test_credentials_from_a_config_file_are_tried_in_order(lab, sitevigil_cmd, tmp_path):
    agent = lab.snmpds[0]
    cfg = tmp_path / "sitevigil.yml"
    cfg.write_text(f"""
snmp:
  timeout: 0.4s
  retries: 0
  credentials:
    - {{name: old-community, version: "2c", community: nope}}
    - {{name: site-v3, version: "3", username: labv3, auth_protocol: SHA256, auth_key: authpass123,
       priv_protocol: AES256, priv_key: privpass123}}
state_dir: {tmp_path}/state
""")
    os.chmod(tmp_path, 0o755)
    os.chmod(cfg, 0o644)
    r = sitevigil(lab, sitevigil_cmd, [str(agent.host.ip), "--config.file", str(cfg), "--module", "system"])
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["credential"] == "site-v3"
    # The refused credential's probe is counted as the system module's traffic.
    assert out["poll"]["system"]["ok"]


def test_bad_usage_exits_2(lab, sitevigil_cmd):
    agent = lab.snmpds[0]
    for args in (["--module", "nonsense", "--community", "x"], ["--v3-user", "u", "--auth-proto", "SHA"],
                 ["--version", "2c"]):
        r = sitevigil(lab, sitevigil_cmd, [str(agent.host.ip), *args])
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert "sitevigil snmp:" in r.stderr
