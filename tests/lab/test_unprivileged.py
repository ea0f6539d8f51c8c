"""The daemon as the service unit runs it: an unprivileged user holding only CAP_NET_RAW,
CAP_NET_ADMIN and CAP_NET_BIND_SERVICE (here through setpriv), in a lab probe namespace, captures, sweeps and polls as root does."""
from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.lab, pytest.mark.peer]

PORT = 9847
CAPS = "+net_raw,+net_admin,+net_bind_service"  # the unit's: capture, sweeps, UDP 162 for traps


def _setpriv(uid: int, gid: int) -> list[str]:
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", f"--inh-caps={CAPS}",
            f"--ambient-caps={CAPS}", f"--bounding-set=-all,{CAPS}", "--"]


def _metric(text: str, name: str, labels: str = "") -> float | None:
    m = re.search(rf"^{re.escape(name)}(?:{{[^}}]*{re.escape(labels)}[^}}]*}})? (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def test_an_unprivileged_user_with_two_capabilities_captures_sweeps_and_polls(lab_factory):
    for tool in ("setpriv", "snmpd", "curl"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool}")
    nobody = pwd.getpwnam("nobody")
    uid, gid = nobody.pw_uid, nobody.pw_gid
    check = subprocess.run([*_setpriv(uid, gid), sys.executable, "-c", "import probe"], cwd=REPO_ROOT,
                           env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)), capture_output=True, text=True)
    if check.returncode != 0:
        pytest.skip(f"this checkout is not readable by nobody: {check.stderr.strip()[-200:]}")
    lab = lab_factory(hosts=2, snmp_hosts=1)
    home = os.path.join(lab.tmpdir, "unprivileged")
    os.makedirs(os.path.join(home, "state"))
    os.chown(os.path.join(home, "state"), uid, gid)
    conf = os.path.join(home, "sitevigil.yml")
    with open(conf, "w") as f:
        f.write(textwrap.dedent(f"""\
            web: {{listen_address: "{lab.probe.ip}:{PORT}"}}
            state_dir: {home}/state
            subnets: [{{cidr: {lab.subnet}}}]
            snmp:
              credentials: [{{name: lab, version: 2c, community: lab-public}}]
              targets: [{{address: {lab.snmpds[0].host.ip}}}]
              timeout: 2s
            capture: {{interface: mirror0, window: 2s}}
            sweep: {{interval: 1h}}
            """))
    log_path = os.path.join(home, "daemon.log")
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    env.pop("NOTIFY_SOCKET", None)
    with open(log_path, "a") as log:
        proc = lab.popen(lab.probe, [*_setpriv(uid, gid), sys.executable, "-m", "probe", "run", "--config.file", conf],
                         env=env, stdout=log, stderr=subprocess.STDOUT, cwd=home)
    url = f"http://{lab.probe.ip}:{PORT}/metrics"
    try:
        deadline = time.monotonic() + 60
        body, done = "", False
        while time.monotonic() < deadline and not done:
            assert proc.poll() is None, open(log_path).read()[-3000:]
            lab.run(lab.hosts[1], ["ping", "-c", "3", "-i", "0.2", "-W", "1", str(lab.gateway.ip)], check=False)
            r = lab.run(lab.hosts[1], ["curl", "-sS", "--max-time", "5", url], check=False)
            body = r.stdout
            done = ((_metric(body, "sitevigil_capture_frames_total") or 0) > 0
                    and (_metric(body, "sitevigil_sweep_hosts_found") or 0) >= 3
                    and _metric(body, "sitevigil_snmp_up", f'target="{lab.snmpds[0].host.ip}') == 1.0)
            time.sleep(0.5)
        log_text = open(log_path).read()
        assert done, f"as nobody with {CAPS}: capture, sweep or SNMP did not work\n{body[-3000:]}\n{log_text[-3000:]}"
        status = open(f"/proc/{proc.pid}/status").read()
        assert re.search(rf"^Uid:\s+{uid}\s", status, re.M)          # really unprivileged
        assert "Permission denied" not in log_text and "Operation not permitted" not in log_text
    finally:
        lab.stop(proc)
