"""Our Prometheus exposition, linted by Prometheus' own promtool (`promtool check metrics`): the capture
subsystem's families, and the SNMP families of every shared device recording."""
from __future__ import annotations

import asyncio
import shutil
import subprocess

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from probe.sources.snmp.modules import DeviceMemory, poll_device
from probe.sources.snmp.snmprec import SnmprecClient
from tests.unit.test_capture_subsystem import FakeRing, batch, make, wait_for
from tests.unit.test_snmp_collector import registry_for

pytestmark = pytest.mark.peer


@pytest.fixture(autouse=True)
def _fresh_ring():
    FakeRing.reset()


def test_exported_metrics_pass_promtool(tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("needs promtool (Debian package prometheus)")

    async def go():
        sub = make(tmp_path)
        FakeRing.script = [batch(3), {"packets": 1, "drops": 1}]
        await sub.start()
        assert await wait_for(lambda: sub.snapshot()["counters"].kernel_drops == 1)
        reg = CollectorRegistry(auto_describe=False)
        for c in sub.collectors():
            reg.register(c)
        await sub.stop()
        return generate_latest(reg)

    text = asyncio.run(go())
    proc = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()


def test_promtool_accepts_the_exposition_of_every_recording(shared_data, tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian prometheus) not installed")
    results = [asyncio.run(poll_device(SnmprecClient.from_file(f), DeviceMemory(), target=f.stem))
               for f in sorted((shared_data / "snmp" / "librenms" / "snmprec").glob("*.snmprec"))]
    text = generate_latest(registry_for(results))
    assert text.count(b"\n") > 1000
    r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
