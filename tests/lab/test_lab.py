"""The lab itself: hosts reach each other, the mirror port sees their frames, snmpd answers, teardown is clean."""
import shutil
import subprocess
import time

import pytest

from tests.lab.netns import Lab

pytestmark = pytest.mark.lab


def _netns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def test_hosts_reach_each_other_and_mirror_sees_it(lab):
    h0, h1 = lab.hosts[0], lab.hosts[1]
    if shutil.which("tcpdump") is None:
        pytest.skip("needs tcpdump")
    cap = lab.popen(lab.probe, ["tcpdump", "-i", "mirror0", "-n", "-l", "-c", "4", "icmp"], text=True)
    time.sleep(1.0)
    lab.run(h0, ["ping", "-c", "2", "-W", "1", "-i", "0.2", str(h1.ip)])
    out, _ = cap.communicate(timeout=10)
    lines = [l for l in out.splitlines() if "ICMP" in l]
    assert len(lines) == 4, out  # 2 requests + 2 replies, seen on the mirror port, not on a learned port
    assert any(f"{h0.ip} > {h1.ip}" in l for l in lines)


def test_snmpd_answers_v2c_and_v3(lab):
    agent = lab.snmpds[0]
    get = ["snmpget", "-On", "-t", "1", "-r", "1"]
    r = lab.run(lab.probe, get + ["-v2c", "-c", agent.community, str(agent.host.ip), "1.3.6.1.2.1.1.5.0"])
    assert f"{agent.host.name}.lab" in r.stdout
    u = agent.v3_users[0]
    r = lab.run(lab.probe, get + ["-v3", "-l", "authPriv", "-u", u["user"], "-a", "SHA-256", "-A", u["auth_key"],
                                  "-x", "AES-256", "-X", u["priv_key"], str(agent.host.ip), "1.3.6.1.2.1.1.5.0"])
    assert f"{agent.host.name}.lab" in r.stdout


def test_teardown_removes_everything():
    with Lab(hosts=2) as lab:
        names = set(lab.namespaces)
        assert names <= _netns_names()
    assert not (names & _netns_names())  # nothing of ours left (others' namespaces are not ours to judge)
