"""The live daemon's capture path feeds the inventory and the anomaly scores, and its own sweep of the
lab LAN (which crosses the mirror port like anyone's traffic) raises no finding about the probe.

A real lldpd on one lab host announces its system name (with no SNMP, only LLDP can tell it); the
probe learns it from the wire.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
import time

import pytest

from tests.helpers import samples, wait_for
from tests.lab.daemon import probe_daemon

pytestmark = [pytest.mark.lab, pytest.mark.peer]


def test_daemon_learns_devices_from_the_wire_and_its_own_sweep_is_not_a_finding(lab_factory, tmp_path):
    for tool in ("lldpd", "curl"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool}")
    lab = lab_factory(hosts=2)
    nas = lab.hosts[1]
    name = socket.gethostname()  # lldpd's system name; lab namespaces share the machine's hostname
    config = f"""\
subnets: [{{cidr: {lab.subnet}}}]
snmp: {{enabled: false}}
sweep: {{enabled: true, interval: 1h}}
capture: {{interface: mirror0, window: 1s}}
"""
    with probe_daemon(lab, tmp_path, config) as probe:
        # lldpd drops to its own user, which must reach its control socket: not under pytest's 0700 tmp dir
        sock_dir = tempfile.mkdtemp(prefix=f"svlldpd{os.getpid()}-")
        os.chmod(sock_dir, 0o755)
        lldpd = lab.popen(nas, ["lldpd", "-d", "-I", "eth0", "-u", os.path.join(sock_dir, "lldpd.sock")])
        try:
            # the sweep ARPs every address of the /24, nearly all unanswered: a host sweep, were it anyone else
            log = lambda: "--- daemon log ---\n" + probe.log()[-3000:]  # noqa: E731
            wait_for(lambda: re.search(r"sweep of \d+ addresses took", probe.log()), 60, "a sweep to finish",
                     every=1.0, context=log)
            info = wait_for(lambda: [s for s in samples(probe.get("/metrics"), "sitevigil_device_info")
                                     if s.labels["name"] == name], 30, "lldpd's name to be learnt", every=1.0, context=log)
        finally:
            lab.stop(lldpd)
            shutil.rmtree(sock_dir, ignore_errors=True)
        assert info[0].labels["mac"] == nas.mac and info[0].labels["ip"] == str(nas.ip), info
        # the capture scores each device's rates once a window
        unlabelled = {s.name: s.value for s in samples(probe.get("/metrics")) if not s.labels}
        assert unlabelled["sitevigil_anomaly_series"] >= 7 and unlabelled["sitevigil_anomaly_samples_total"] > 0, unlabelled
        time.sleep(3)  # the sweep's last windows closed and were judged
        assert probe.findings() == []
