"""`sitevigil sweep` in a simulated client LAN: every host found with its MAC, SNMP agents identified,
a host plugged in later is a new device, a host unplugged is reported gone after the configured absence."""
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.lab.fixtures import lab_fixture

pytestmark = [pytest.mark.lab, pytest.mark.peer]

SNMP_HOSTS = 5
DESCR = "Linux lab host (Net-SNMP agent for sitevigil tests)"


lan = lab_fixture(hosts=50, snmp_hosts=SNMP_HOSTS, needs=("snmpd",))


def sweep(lan, cmd, env, *args, timeout=120):
    r = lan.run(lan.probe, [*cmd, "sweep", *args], check=False, timeout=timeout, env=env)
    assert r.returncode == 0, r.stderr
    return r


def expected(lan):
    return {str(h.ip): h.mac for h in [lan.gateway, *lan.hosts]}


def test_arp_sweep_finds_every_host_with_its_mac_and_snmp_identity(lan, sitevigil_cmd, sitevigil_env):
    r = sweep(lan, sitevigil_cmd, sitevigil_env, str(lan.subnet), "--format", "json", "--community", "wrong-one",
              "--community", "lab-public")
    doc = json.loads(r.stdout)
    assert doc["complete"] and doc["methods"] == {str(lan.subnet): "arp"}
    found = {d["ip"]: d for d in doc["devices"]}
    assert {ip: d["mac"] for ip, d in found.items()} == expected(lan)
    agents = {str(a.host.ip): a for a in lan.snmpds}
    assert len(agents) == SNMP_HOSTS
    for ip, d in found.items():
        if ip in agents:
            assert d["snmp"]["sys_descr"] == DESCR
            assert d["snmp"]["sys_name"] == f"{agents[ip].host.name}.lab" and d["name"] == d["snmp"]["sys_name"]
            assert d["snmp"]["credential"] == "cli-community-2"  # the wrong community was tried first
            assert d["type"] == "server" and d["type_rule"] == "snmp.sys_descr"
        else:
            assert d["snmp"] is None and d["type"] == "unknown"
        assert d["mac_kind"] == "local" and d["randomised"]  # the lab's MACs are locally administered
        assert set(d) >= {"mac", "ip", "vendor", "type", "names", "snmp"}


def test_icmp_sweep_finds_every_address(lan, sitevigil_cmd, sitevigil_env):
    r = sweep(lan, sitevigil_cmd, sitevigil_env, str(lan.subnet), "--method", "icmp", "--no-snmp", "--format", "json")
    doc = json.loads(r.stdout)
    assert doc["methods"] == {str(lan.subnet): "icmp"}
    assert {d["ip"] for d in doc["devices"]} == set(expected(lan))
    assert all(d["mac"] is None and d["method"] == "icmp" for d in doc["devices"])


def test_default_subnets_are_the_probes_own(lan, sitevigil_cmd, sitevigil_env):
    doc = json.loads(sweep(lan, sitevigil_cmd, sitevigil_env, "--no-snmp", "--format", "json").stdout)
    assert doc["subnets"] == [str(lan.subnet)]  # eth0's subnet; the mirror port has no address
    assert {d["ip"] for d in doc["devices"]} == set(expected(lan))


def test_table_output(lan, sitevigil_cmd, sitevigil_env):
    r = sweep(lan, sitevigil_cmd, sitevigil_env, str(lan.subnet), "--no-snmp")
    lines = r.stdout.splitlines()
    assert lines[0].split()[:4] == ["IP", "MAC", "VENDOR", "TYPE"]
    assert sum(1 for line in lines if line.startswith(str(lan.subnet.network_address)[:-1])) == len(expected(lan))
    assert f"{len(expected(lan))} hosts up of 253 addresses" in r.stdout


def test_new_device_and_device_gone_findings(lan, sitevigil_cmd, sitevigil_env, tmp_path):
    agent = lan.snmpds[0]
    u = agent.v3_users[0]
    cfg = tmp_path / "sitevigil.yml"
    cfg.write_text(f"""
state_dir: {tmp_path / 'state'}
subnets:
  - cidr: {lan.subnet}
snmp:
  timeout: 1s
  retries: 0
  credentials:
    - {{name: v3lab, version: "3", username: {u['user']}, auth_protocol: SHA256, auth_key: {u['auth_key']},
       priv_protocol: AES256, priv_key: {u['priv_key']}}}
sweep:
  device_gone_after: 12s
""")
    run = ("--config.file", str(cfg), "--record", "--format", "json")

    first = json.loads(sweep(lan, sitevigil_cmd, sitevigil_env, *run).stdout)
    assert first["findings"] == []  # the first sweep is the baseline
    assert {d["ip"] for d in first["devices"]} == set(expected(lan))
    assert sum(1 for d in first["devices"] if d["snmp"] and d["snmp"]["credential"] == "v3lab") == SNMP_HOSTS

    newcomer = lan.add_host()
    second = json.loads(sweep(lan, sitevigil_cmd, sitevigil_env, *run).stdout)
    last_seen = time.time()
    assert [(f["kind"], f["device"], f["evidence"]["ip"]) for f in second["findings"]] == \
        [("device_new", newcomer.mac, str(newcomer.ip))]

    leaver = lan.hosts[20]
    lan.remove_host(leaver)
    third = json.loads(sweep(lan, sitevigil_cmd, sitevigil_env, *run).stdout)
    assert third["findings"] == []  # absent for less than device_gone_after
    time.sleep(max(0.0, last_seen + 12.5 - time.time()))
    fourth = json.loads(sweep(lan, sitevigil_cmd, sitevigil_env, *run).stdout)
    assert [(f["kind"], f["device"], f["evidence"]["ip"]) for f in fourth["findings"]] == \
        [("device_gone", leaver.mac, str(leaver.ip))]

    r = lan.run(lan.probe, [*sitevigil_cmd, "devices", "--config.file", str(cfg), "--format", "json"],
                env=sitevigil_env)
    devices = {d["mac"]: d for d in json.loads(r.stdout)["devices"]}
    assert devices[leaver.mac]["state"] == "gone" and devices[newcomer.mac]["state"] == "present"
    assert len(devices) == len(expected(lan)) + 1


def _scrape(lan, url, timeout=5):
    code = f"import urllib.request,sys; sys.stdout.write(urllib.request.urlopen({url!r}, timeout={timeout}).read().decode())"
    r = lan.run(lan.probe, [sys.executable, "-c", code], check=False, timeout=timeout + 5)
    return r.stdout if r.returncode == 0 else ""


def _value(text, name, labels=""):
    for line in text.splitlines():
        if line.startswith(name + (labels or " ")) or (not labels and line.startswith(name + " ")):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_daemon_sweeps_and_exposes_devices(lan, sitevigil_cmd, sitevigil_env, tmp_path):
    cfg = tmp_path / "daemon.yml"
    cfg.write_text(f"""
web:
  listen_address: 127.0.0.1:9847
state_dir: {tmp_path / 'state'}
subnets:
  - cidr: {lan.subnet}
snmp:
  credentials:
    - {{name: lab, version: "2c", community: lab-public}}
sweep:
  interval: 60s
  device_info_limit: 10
""")
    proc = lan.popen(lan.probe, [*sitevigil_cmd, "run", "--config.file", str(cfg)], env=sitevigil_env)
    try:
        deadline = time.monotonic() + 60
        text = ""
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode()
            text = _scrape(lan, "http://127.0.0.1:9847/metrics")
            if (_value(text, "sitevigil_sweep_last_success_timestamp_seconds") or 0) > 0:
                break
            time.sleep(1)
        n = len(expected(lan))
        assert _value(text, "sitevigil_sweep_hosts_found") == n
        assert _value(text, "sitevigil_sweep_hosts_snmp") == SNMP_HOSTS
        assert _value(text, "sitevigil_devices", '{state="present",type="server"}') == SNMP_HOSTS
        assert _value(text, "sitevigil_devices", '{state="present",type="unknown"}') == n - SNMP_HOSTS
        info = [line for line in text.splitlines() if line.startswith("sitevigil_device_info{")]
        assert len(info) == 10 and _value(text, "sitevigil_device_info_omitted") == n - 10
        assert _value(text, "sitevigil_subsystem_up", '{subsystem="sweep"}') == 1.0
        promtool = shutil.which("promtool")
        if promtool:
            r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
            assert r.returncode == 0, r.stdout + r.stderr
    finally:
        lan.stop(proc)
    assert proc.returncode == 0
    r = lan.run(lan.probe, [*sitevigil_cmd, "devices", "--state-dir", str(tmp_path / "state"), "--format", "json"],
                env=sitevigil_env)
    assert len(json.loads(r.stdout)["devices"]) == len(expected(lan))


LISTEN = r"""
import json, socket, sys, time
from probe.subsystems.devices import learn
from probe.subsystems.sweep import device_json
from probe.state.passive import observations
from probe.state.inventory import Inventory
want, want_name, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind(("mirror0", 0))
s.settimeout(0.2)
inv = Inventory(None)
end = time.monotonic() + seconds
while time.monotonic() < end:
    try:
        frame = s.recv(65535)
    except socket.timeout:
        continue
    learn(inv, observations(frame, time.time()))
    d = inv.get(want)
    if d is not None and d.names.get("lldp") == want_name:  # frames sent before the rename say the old name
        break
print(json.dumps([device_json(d) for d in inv.snapshot()]))
"""


def test_passive_learning_from_a_real_lldpd_on_the_mirror_port(lan, sitevigil_env):
    if shutil.which("lldpd") is None or shutil.which("lldpcli") is None:
        pytest.skip("needs lldpd (Debian package lldpd)")
    host = lan.hosts[1]
    sock = f"{lan.tmpdir}/lldpd-{host.name}.sock"
    # The settings go in the file lldpd's own lldpcli reads before it resumes the daemon: set afterwards
    # through the control socket, that lldpcli's late "resume" could put the host's name back.
    conf = Path(lan.tmpdir) / f"lldpd-{host.name}.conf"
    conf.write_text("configure system hostname lab-sw1\n"
                    "configure system capabilities enabled bridge\n"
                    "configure lldp tx-interval 1\n")
    lldpd = lan.popen(host, ["lldpd", "-d", "-u", sock, "-O", str(conf), "-I", "eth0", "-S", "Lab access switch"],
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        r = lan.run(lan.probe, [sys.executable, "-c", LISTEN, host.mac, "lab-sw1", "15"], env=sitevigil_env, timeout=30)
    finally:
        lan.stop(lldpd)
    devices = {d["mac"]: d for d in json.loads(r.stdout)}
    d = devices[host.mac]
    assert d["name"] == "lab-sw1" and d["ip"] == str(host.ip)  # LLDP management address
    assert d["type"] == "switch" and d["type_rule"] in ("lldp_cdp.capabilities", "lldp_cdp.description")
    assert d["names"]["lldp"] == "lab-sw1"
