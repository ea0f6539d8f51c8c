"""`sitevigil run` with no config file, as the README's first command starts it, inside a lab probe
namespace: it finds the namespace's interfaces and subnets on its own and serves on the default port."""
import json
import os
import subprocess
import sys
import time

import pytest

from probe.config import DEFAULT_PORT
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.lab


def test_runs_on_built_in_defaults(lab_factory, tmp_path):
    lab = lab_factory(hosts=1)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    env.pop("NOTIFY_SOCKET", None)
    proc = lab.popen(lab.probe, [sys.executable, "-m", "probe", "run", "--state-dir", str(tmp_path / "state")],
                     env=env, text=True)
    url = f"http://{lab.probe.ip}:{DEFAULT_PORT}"
    deadline = time.monotonic() + 30
    status = None
    while time.monotonic() < deadline and status is None:
        r = lab.run(lab.hosts[0], ["curl", "-sS", "--max-time", "2", url + "/-/status.json"], check=False)
        if r.returncode == 0:
            status = json.loads(r.stdout)
        else:
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.3)
    assert status is not None, "daemon never answered on the default port"
    metrics = lab.run(lab.hosts[0], ["curl", "-sS", url + "/metrics"]).stdout
    assert "sitevigil_build_info{" in metrics
    assert (tmp_path / "state" / "sitevigil.db").exists()

    diag = lab.run(lab.probe, [sys.executable, "-m", "probe", "diag", "--format", "json",
                               "--state-dir", str(tmp_path / "state")], env=env)
    report = json.loads(diag.stdout)
    assert [s["cidr"] for s in report["config"]["subnets"]] == [str(lab.subnet)]
    assert report["default_route_interface"] == "eth0"
    assert report["config"]["capture"]["interface"] == "eth0"
    names = {i["name"] for i in report["interfaces"]}
    assert {"eth0", "mirror0"} >= names and "eth0" in names
    assert report["state_database"]["exists"]

    proc.terminate()
    assert proc.wait(timeout=30) == 0  # SIGTERM is a clean stop, not a kill


def test_the_readmes_scripts_run_starts_in_a_namespace_with_no_way_out(lab_factory, tmp_path):
    """`ip netns exec NS scripts/run`, as the README advises: once set up (the test command did), starting
    needs no network beyond the LAN (the lab's probe namespace has no route to any package registry)."""
    lab = lab_factory(hosts=1)
    env = dict(os.environ)
    env.pop("NOTIFY_SOCKET", None)
    out = tmp_path / "run.log"
    with open(out, "w") as log:
        proc = lab.popen(lab.probe, [str(REPO_ROOT / "scripts" / "run"), "--state-dir", str(tmp_path / "state")],
                         env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://{lab.probe.ip}:{DEFAULT_PORT}/-/ready"
    deadline = time.monotonic() + 60
    ready = False
    while time.monotonic() < deadline and not ready:
        r = lab.run(lab.hosts[0], ["curl", "-sS", "--max-time", "2", url], check=False)
        ready = r.returncode == 0 and "ready" in r.stdout
        if not ready:
            assert proc.poll() is None, out.read_text()
            time.sleep(0.5)
    assert ready, out.read_text()
    assert "pip" not in out.read_text() and "installing" not in out.read_text()
    lab.stop(proc, timeout=30)
