"""`sitevigil run` with no config file, as the README's first command starts it, inside a lab probe
namespace: it finds the namespace's interfaces and subnets on its own and serves on the default port."""
import json
import os
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
