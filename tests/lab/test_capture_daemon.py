"""`sitevigil run` in the lab's probe namespace: the capture subsystem counts mirror-port frames on
/metrics, and a missing capture interface shows as FAILED with its reason on /-/status.json."""
from __future__ import annotations

import json
import os
import sys
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.lab.fixtures import lab_fixture
from tests.lab.netns import Lab

pytestmark = pytest.mark.lab

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SENDER = os.path.join(REPO, "tests", "lab", "send_frames.py")
FETCH = ("import sys, urllib.request\n"
         "print(urllib.request.urlopen('http://127.0.0.1:' + sys.argv[1] + sys.argv[2], timeout=5).read().decode())")


lab = lab_fixture(hosts=2)


def start_daemon(lab: Lab, interface: str, port: int):
    cfg = os.path.join(lab.tmpdir, f"capture-{interface}.yml")
    with open(cfg, "w") as fh:
        fh.write(f"capture:\n  interface: {interface}\n  block_count: 8\n  block_timeout: 50ms\n")
    state = os.path.join(lab.tmpdir, f"state-{interface}")
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = lab.popen(lab.probe, [sys.executable, "-m", "probe", "run", "--config.file", cfg,
                                 "--web.listen-address", f"127.0.0.1:{port}", "--state-dir", state], env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"daemon exited {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
        r = lab.run(lab.probe, [sys.executable, "-c", FETCH, str(port), "/-/ready"], check=False)
        if r.returncode == 0:
            return proc
        time.sleep(0.2)
    pytest.fail("daemon not ready within 30s")


def fetch(lab: Lab, port: int, path: str) -> str:
    return lab.run(lab.probe, [sys.executable, "-c", FETCH, str(port), path]).stdout


def metrics(lab: Lab, port: int) -> dict[str, float]:
    out = {}
    for fam in text_string_to_metric_families(fetch(lab, port, "/metrics")):
        for s in fam.samples:
            out[s.name + json.dumps(s.labels, sort_keys=True)] = s.value
    return out


def test_daemon_counts_mirror_frames(lab):
    port = 19847
    proc = start_daemon(lab, "mirror0", port)
    try:
        h0, h1 = lab.hosts
        lab.run(h0, [sys.executable, SENDER, "--count", "1500", "--run", "9", "--dst", h1.mac])
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            m = metrics(lab, port)
            if m.get("sitevigil_capture_frames_total{}", 0) >= 1500 and "sitevigil_capture_kernel_drops_total{}" in m:
                break
            time.sleep(0.5)
        assert m["sitevigil_capture_frames_total{}"] >= 1500
        assert m["sitevigil_capture_kernel_drops_total{}"] == 0
        assert m['sitevigil_subsystem_up{"subsystem": "capture"}'] == 1
        status = json.loads(fetch(lab, port, "/-/status.json"))
        (cap,) = [s for s in status["subsystems"] if s["name"] == "capture"]
        assert cap["health"] == "ok" and cap["watching"]["interface"] == "mirror0"
    finally:
        lab.stop(proc)


def test_daemon_reports_missing_capture_interface(lab):
    port = 19848
    proc = start_daemon(lab, "nosuch0", port)
    try:
        status = json.loads(fetch(lab, port, "/-/status.json"))
        (cap,) = [s for s in status["subsystems"] if s["name"] == "capture"]
        assert cap["health"] == "failed"
        assert cap["reason"].startswith("capture interface 'nosuch0' does not exist")
        assert metrics(lab, port)['sitevigil_subsystem_up{"subsystem": "capture"}'] == 0
    finally:
        lab.stop(proc)
