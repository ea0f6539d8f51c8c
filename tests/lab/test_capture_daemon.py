"""`sitevigil run` in the lab's probe namespace: the capture subsystem counts mirror-port frames on
/metrics, and a missing capture interface shows as FAILED with its reason on /-/status.json."""
from __future__ import annotations

import json
import os
import sys

import pytest

from tests.helpers import sample, wait_for
from tests.lab.daemon import REPO_ROOT, probe_daemon
from tests.lab.fixtures import lab_fixture

pytestmark = pytest.mark.lab

SENDER = os.path.join(REPO_ROOT, "tests", "lab", "send_frames.py")
CONFIG = """\
capture: {{interface: {interface}, block_count: 8, block_timeout: 50ms}}
"""

lab = lab_fixture(hosts=2)


def test_daemon_counts_mirror_frames(lab, tmp_path):
    with probe_daemon(lab, tmp_path, CONFIG.format(interface="mirror0")) as d:
        h0, h1 = lab.hosts
        lab.run(h0, [sys.executable, SENDER, "--count", "1500", "--run", "9", "--dst", h1.mac])

        def counted():
            body = d.get("/metrics")
            done = (sample(body, "sitevigil_capture_frames_total") or 0) >= 1500 \
                and sample(body, "sitevigil_capture_kernel_drops_total") is not None
            return body if done else None

        body = wait_for(counted, 15, "1500 mirror frames counted", context=lambda: d.log()[-2000:])
        assert sample(body, "sitevigil_capture_kernel_drops_total") == 0
        assert sample(body, "sitevigil_subsystem_up", subsystem="capture") == 1
        status = json.loads(d.get("/-/status.json"))
        (cap,) = [s for s in status["subsystems"] if s["name"] == "capture"]
        assert cap["health"] == "ok" and cap["watching"]["interface"] == "mirror0"


def test_daemon_reports_missing_capture_interface(lab, tmp_path):
    with probe_daemon(lab, tmp_path, CONFIG.format(interface="nosuch0")) as d:
        status = json.loads(d.get("/-/status.json"))
        (cap,) = [s for s in status["subsystems"] if s["name"] == "capture"]
        assert cap["health"] == "failed"
        assert cap["reason"].startswith("capture interface 'nosuch0' does not exist")
        assert sample(d.get("/metrics"), "sitevigil_subsystem_up", subsystem="capture") == 0
