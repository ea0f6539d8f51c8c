"""The SNMP engine against a real Net-SNMP snmpd in the lab: v2c, v1, the whole v3 auth x priv matrix
the packaged snmpd supports, wrong community / user / keys (told apart from a timeout), an agent
paused mid-walk and resumed, and an agent restarted under a live session.

The client runs inside the lab's probe namespace (tests/lab/snmp_runner.py), never in the machine's.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time

import pytest

from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.lab, pytest.mark.peer,
              pytest.mark.skipif(shutil.which("snmpd") is None and not os.path.exists("/usr/sbin/snmpd"),
                                 reason="needs snmpd (Debian package snmpd)"),
              pytest.mark.skipif(shutil.which("snmpbulkwalk") is None, reason="needs snmpbulkwalk (Debian package snmp)")]

AUTH = {"MD5": "MD5", "SHA": "SHA", "SHA224": "SHA-224", "SHA256": "SHA-256", "SHA384": "SHA-384", "SHA512": "SHA-512"}
# Every privacy protocol Net-SNMP 5.9 has: AES-192/256 are the Blumenthal key extension, -C the
# Reeder one (Cisco). 3DES is not in Net-SNMP, so it is not in the matrix.
PRIV = {"DES": "DES", "AES": "AES", "AES192": "AES-192", "AES256": "AES-256", "AES192C": "AES-192-C",
        "AES256C": "AES-256-C"}
SYSTEM = "1.3.6.1.2.1.1"
INTERFACES = "1.3.6.1.2.1.2"


def run_client(lab, spec: dict, *, timeout: float = 120) -> list[dict]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    r = lab.run(lab.probe, [sys.executable, "-m", "tests.lab.snmp_runner", json.dumps(spec)], env=env,
                cwd=str(REPO_ROOT), timeout=timeout, check=False)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def netsnmp_walk(lab, agent, oid: str) -> list[str]:
    r = lab.run(lab.probe, ["snmpbulkwalk", "-v2c", "-Cr25", "-On", "-c", agent.community, str(agent.host.ip), oid],
                env=dict(os.environ, MIBS=""))
    return [line.split(" = ")[0].lstrip(".") for line in r.stdout.splitlines() if " = " in line]


def v2c(name="c", community="lab-public"):
    return {"name": name, "version": "2c", "community": community}


def test_v2c_walk_matches_net_snmp_and_get_reads_sysname(lab):
    agent = lab.snmpds[0]
    out = run_client(lab, {"host": str(agent.host.ip), "credentials": [v2c()],
                           "ops": [["walk", INTERFACES], ["get", ["1.3.6.1.2.1.1.5.0", "1.3.6.1.2.1.1.99.0"]]]})
    rec = out[0]
    assert rec["ok"], rec
    ours = [row[0] for row in rec["results"][0]]
    assert ours == netsnmp_walk(lab, agent, INTERFACES)
    assert len(ours) > 20
    name, missing = rec["results"][1]
    assert name == ["1.3.6.1.2.1.1.5.0", "OctetString", "h0.lab"]
    assert missing[1] == "noSuchObject"
    assert rec["stats"]["retries"] == 0 and rec["stats"]["timeouts"] == 0


def test_v1_walk_by_getnext(lab):
    agent = lab.snmpds[0]
    out = run_client(lab, {"host": str(agent.host.ip),
                           "credentials": [{"name": "v1", "version": "1", "community": "lab-public"}],
                           "ops": [["walk", SYSTEM], ["get", ["1.3.6.1.2.1.1.5.0", "1.3.6.1.2.1.1.99.0"]]]})
    rec = out[0]
    assert rec["ok"], rec
    assert [row[0] for row in rec["results"][0]] == netsnmp_walk(lab, agent, SYSTEM)
    # One GETNEXT per varbind, and no Counter64 in v1.
    assert rec["stats"]["pdus"] >= len(rec["results"][0])
    assert rec["results"][1][0][2] == "h0.lab" and rec["results"][1][1][1] == "noSuchObject"


def test_v3_matrix_every_auth_and_priv_protocol(lab_factory):
    lab = lab_factory(hosts=1, mirror=False)
    users, creds = [], []
    for a, a_ns in AUTH.items():
        users.append({"user": f"an{a}", "auth": a_ns, "auth_key": f"auth-{a}-key"})
        creds.append({"name": f"an{a}", "version": "3", "username": f"an{a}", "auth_protocol": a,
                      "auth_key": f"auth-{a}-key"})
        for p, p_ns in PRIV.items():
            user = f"ap{a}{p}"
            users.append({"user": user, "auth": a_ns, "auth_key": f"auth-{a}-key", "priv": p_ns,
                          "priv_key": f"priv-{p}-key"})
            creds.append({"name": user, "version": "3", "username": user, "auth_protocol": a,
                          "auth_key": f"auth-{a}-key", "priv_protocol": p, "priv_key": f"priv-{p}-key"})
    agent = lab.start_snmpd(lab.hosts[0], v3_users=users)
    spec = {"host": str(agent.host.ip), "credentials": creds, "timeout": 2, "retries": 1,
            "ops": [["get", ["1.3.6.1.2.1.1.5.0"]], ["walk", SYSTEM], ["walk", INTERFACES]]}
    out = run_client(lab, spec)
    failed = {rec["name"]: rec.get("error") for rec in out if not rec["ok"]}
    assert not failed
    expected = netsnmp_walk(lab, agent, SYSTEM)
    for rec in out:
        assert rec["results"][0][0][2] == "h0.lab", rec["name"]
        assert [row[0] for row in rec["results"][1]] == expected, rec["name"]
    assert len(out) == 6 + 6 * 6
    # pysnmp, the reference, reads the same answers with the same keys: every OID and type, and every value
    # of sysName and the system group but its clocks (the interfaces' counters move with our own traffic).
    ref = run_client(lab, dict(spec, reference="pysnmp"))
    for ours, theirs in zip(out, ref):
        assert theirs["ok"], theirs
        for i, (a, b) in enumerate(zip(ours["results"], theirs["results"])):
            assert [r[:2] for r in a] == [r[:2] for r in b], ours["name"]
            if i < 2:
                assert [r for r in a if r[1] != "TimeTicks"] == [r for r in b if r[1] != "TimeTicks"], ours["name"]


def test_same_v3_user_with_different_keys_on_two_agents_at_once(lab_factory):
    """Sites reuse a v3 user name with per-device keys; concurrent sessions must not share keys."""
    lab = lab_factory(hosts=2, mirror=False)
    agents = []
    for i, host in enumerate(lab.hosts):
        agents.append(lab.start_snmpd(host, v3_users=[{"user": "monitor", "auth": "SHA", "auth_key": f"auth-key-{i}",
                                                       "priv": "AES", "priv_key": f"priv-key-{i}"}]))
    creds = [{"name": f"site{i}", "host": str(a.host.ip), "version": "3", "username": "monitor",
              "auth_protocol": "SHA", "auth_key": f"auth-key-{i}", "priv_protocol": "AES", "priv_key": f"priv-key-{i}"}
             for i, a in enumerate(agents)]
    out = run_client(lab, {"credentials": creds, "concurrent": True, "repeat": 5, "max_repetitions": 2,
                           "timeout": 1, "retries": 1, "ops": [["walk", SYSTEM]]})
    for rec in out:
        assert rec["ok"], rec
        assert rec["stats"]["timeouts"] == 0
        assert len(rec["results"]) == 5 and all(len(r) > 5 for r in rec["results"])


@pytest.mark.parametrize("impl", ["ours", "pysnmp"])
def test_wrong_credentials_are_auth_errors_and_a_dead_port_is_a_timeout(lab, impl):
    """Ours and the pysnmp reference tell the same errors apart, with the same words."""
    agent = lab.snmpds[0]
    ref = {"reference": "pysnmp"} if impl == "pysnmp" else {}
    good = {"name": "good", "version": "3", "username": "labv3", "auth_protocol": "SHA256", "auth_key": "authpass123",
            "priv_protocol": "AES256", "priv_key": "privpass123"}
    creds = [
        v2c("wrong-community", "not-the-community"),
        dict(good, name="unknown-user", username="nobody-here"),
        dict(good, name="wrong-auth-key", auth_key="wrongpass123"),
        dict(good, name="wrong-priv-key", priv_key="wrongpriv123"),
        dict(good, name="below-the-users-level", priv_protocol=None, priv_key=None),
        good,
    ]
    out = {rec["name"]: rec for rec in run_client(lab, {"host": str(agent.host.ip), "credentials": creds,
                                                        "timeout": 0.5, "retries": 1, **ref,
                                                        "ops": [["get", ["1.3.6.1.2.1.1.5.0"]]]})}
    assert out["good"]["ok"], out["good"]
    for name in ("wrong-community", "unknown-user", "wrong-auth-key", "wrong-priv-key", "below-the-users-level"):
        assert not out[name]["ok"], name
        assert out[name]["error_kind"] == "auth", (name, out[name]["error"])
    assert "wrong community" in out["wrong-community"]["error"]
    assert "does not know the v3 user" in out["unknown-user"]["error"]
    assert "wrong v3 auth key" in out["wrong-auth-key"]["error"]
    assert "wrong v3 privacy key" in out["wrong-priv-key"]["error"]  # Net-SNMP drops it silently
    assert "authorizationError" in out["below-the-users-level"]["error"]  # rouser ... priv, asked authNoPriv
    # No secret ever appears in an error.
    for rec in out.values():
        for secret in ("not-the-community", "wrongpass123", "wrongpriv123", "authpass123", "privpass123"):
            assert secret not in rec.get("error", "")

    # A host with no agent at all: silence on every credential, and no discovery answer either.
    silent = lab.hosts[1]
    out = run_client(lab, {"host": str(silent.ip), "credentials": [v2c(), good], "timeout": 0.3, "retries": 1,
                           **ref, "ops": [["get", ["1.3.6.1.2.1.1.5.0"]]]})
    for rec in out:
        assert rec["error_kind"] == "timeout", rec
        assert rec["stats"]["timeouts"] == 2 and rec["stats"]["retries"] == 1


@pytest.mark.parametrize("skew", [400, 3600])
def test_a_v3_clock_off_by_an_hour_is_set_right_by_the_agents_report(lab, skew):
    """Our notion of the agent's clock minutes or an hour ahead: snmpd answers with a signed
    usmStatsNotInTimeWindows report carrying its clock, we take it and the request goes through, once."""
    agent = lab.snmpds[0]
    good = {"name": "v3", "version": "3", "username": "labv3", "auth_protocol": "SHA256", "auth_key": "authpass123",
            "priv_protocol": "AES256", "priv_key": "privpass123"}
    rec = run_client(lab, {"host": str(agent.host.ip), "credentials": [good], "timeout": 1, "retries": 0,
                           "ops": [["get", ["1.3.6.1.2.1.1.5.0"]], ["skew_clock", skew],
                                   ["get", ["1.3.6.1.2.1.1.5.0"]], ["get", ["1.3.6.1.2.1.1.5.0"]]]})[0]
    assert rec["ok"], rec
    assert rec["results"][2][0][2] == rec["results"][3][0][2] == "h0.lab"
    assert rec["stats"]["timeouts"] == 0


def test_agent_paused_mid_walk_then_resumed_completes_the_walk(lab):
    agent = lab.snmpds[0]
    expected = netsnmp_walk(lab, agent, INTERFACES)
    spec = {"host": str(agent.host.ip), "credentials": [v2c()], "timeout": 0.5, "retries": 4,
            "max_repetitions": 5, "ops": [["walk", INTERFACES]],
            "pause": {"pid": agent.pid, "after_pdus": 3, "seconds": 1.2}}
    rec = run_client(lab, spec)[0]
    assert rec["paused"]
    assert rec["ok"], rec
    assert [row[0] for row in rec["results"][0]] == expected
    assert rec["stats"]["timeouts"] >= 2 and rec["stats"]["retries"] >= 2
    assert rec["seconds"] >= 1.0


def test_agent_paused_longer_than_the_retries_is_a_timeout_then_recovers(lab):
    agent = lab.snmpds[0]
    spec = {"host": str(agent.host.ip), "credentials": [v2c()], "timeout": 0.3, "retries": 1,
            "max_repetitions": 5, "ops": [["walk", INTERFACES]],
            "pause": {"pid": agent.pid, "after_pdus": 2, "seconds": 1.5}}
    rec = run_client(lab, spec)[0]
    assert not rec["ok"]
    # The credential had been answered before the pause: a timeout, not a wrong community.
    assert rec["error_kind"] == "timeout", rec["error"]
    time.sleep(1.0)  # the runner resumed the agent at 1.5 s; it answers again
    rec = run_client(lab, {"host": str(agent.host.ip), "credentials": [v2c()], "ops": [["walk", SYSTEM]]})[0]
    assert rec["ok"], rec


def test_agent_restarted_under_a_live_session(lab, tmp_path):
    agent = lab.snmpds[0]
    os.chmod(tmp_path, 0o777)
    ready, go = str(tmp_path / "ready"), str(tmp_path / "go")
    good = {"name": "v3", "version": "3", "username": "labv3", "auth_protocol": "SHA256", "auth_key": "authpass123",
            "priv_protocol": "AES256", "priv_key": "privpass123"}
    spec = {"host": str(agent.host.ip), "credentials": [good, v2c()], "timeout": 1.0, "retries": 3,
            "ops": [["walk", SYSTEM], ["touch", ready], ["wait_file", go], ["walk", SYSTEM]]}
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = lab.popen(lab.probe, [sys.executable, "-m", "tests.lab.snmp_runner", json.dumps(spec)], env=env,
                     cwd=str(REPO_ROOT), text=True)
    try:
        for _ in range(2):  # each credential's session waits once
            deadline = time.monotonic() + 30
            while not os.path.exists(ready) and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.05)
            assert os.path.exists(ready), proc.stderr.read() if proc.poll() is not None else "runner did not get ready"
            os.unlink(ready)
            agent = lab.restart_snmpd(agent)
            open(go, "w").close()
            time.sleep(0.3)
            os.unlink(go)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    for rec in json.loads(stdout):
        assert rec["ok"], rec
        before, after = rec["results"][0], rec["results"][3]
        assert [r[0] for r in before] == [r[0] for r in after]
        assert "1.3.6.1.2.1.1.3.0" in [r[0] for r in after]

