"""The capture subsystem in the lab: it counts every frame that reaches the mirror port, exports the
kernel's and the interface's drop counters, shares the load over fanout processes, and is FAILED with
a clear reason when its interface is missing."""
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

LAB_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lab")
CHILD = os.path.join(LAB_DIR, "capture_subsystem_child.py")
SENDER = os.path.join(LAB_DIR, "send_frames.py")


lab = lab_fixture(hosts=2)


def samples(text: str) -> dict[str, float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            key = s.name + ("{" + ",".join(f"{k}={v}" for k, v in sorted(s.labels.items())) + "}" if s.labels else "")
            out[key] = s.value
    return out


def run_subsystem(lab: Lab, n: int, send=None, **opts) -> tuple[dict, dict]:
    argv = [sys.executable, CHILD, "--iface", opts.pop("iface", "mirror0"), "--expect", str(n)]
    for key, value in opts.items():
        argv += [f"--{key}", str(value)]
    child = lab.popen(lab.probe, argv, text=True)
    try:
        started = json.loads(child.stdout.readline())
        h0, h1 = lab.hosts
        if send is not None:
            send(h0, h1)
        elif n:
            lab.run(h0, [sys.executable, SENDER, "--count", str(n), "--run", "5", "--dst", h1.mac])
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        return started, json.loads(out.strip().splitlines()[-1])
    finally:
        lab.stop(child)


@pytest.mark.peer  # the filter is compiled by tcpdump
def test_subsystem_counts_every_frame_and_exports_drops(lab):
    n = 3000
    started, end = run_subsystem(lab, n, bpf="ether proto 0x88b5")
    assert started["health"] == "ok", started
    m = samples(end["metrics"])
    assert m["sitevigil_capture_frames_total"] == n
    assert m["sitevigil_capture_bytes_total"] == 60 * n
    assert m["sitevigil_capture_kernel_packets_total"] == n
    assert m["sitevigil_capture_kernel_drops_total"] == 0
    assert "sitevigil_capture_interface_drops_total{counter=rx_dropped}" in m
    assert m["sitevigil_capture_last_frame_timestamp_seconds"] > 1e9
    assert end["describe"]["frames"] == n


def test_subsystem_fanout_processes_share_the_count(lab):
    n = 2000
    started, end = run_subsystem(lab, n, bpf="", fanout=2)
    assert started["health"] == "ok", started
    assert "2 processes" in started["reason"]
    m = samples(end["metrics"])
    assert m["sitevigil_capture_frames_total"] >= n  # markers plus whatever else crossed the switch
    assert m["sitevigil_capture_kernel_drops_total"] == 0
    assert m["sitevigil_capture_ring_size_bytes"] == 2 * 8 * (1 << 20)


def test_missing_interface_fails_with_the_reason(lab):
    started, end = run_subsystem(lab, 0, iface="nosuch0", timeout=0.5)
    assert started["health"] == "failed"
    assert "capture interface 'nosuch0' does not exist" in started["reason"]
    assert end["health"] == "failed"
    assert samples(end["metrics"])["sitevigil_capture_frames_total"] == 0


def test_interface_removed_while_capturing_fails_with_the_reason(lab):
    lab.run(lab.probe, ["ip", "link", "add", "gone0", "type", "veth", "peer", "name", "gone1"])
    lab.run(lab.probe, ["ip", "link", "set", "gone0", "up"])
    lab.run(lab.probe, ["ip", "link", "set", "gone1", "up"])
    child = lab.popen(lab.probe, [sys.executable, CHILD, "--iface", "gone0", "--timeout", "5"], text=True)
    try:
        started = json.loads(child.stdout.readline())
        assert started["health"] == "ok", started
        lab.run(lab.probe, ["ip", "link", "del", "gone0"])
        out, err = child.communicate(timeout=30)
        end = json.loads(out.strip().splitlines()[-1])
    finally:
        lab.stop(child)
        lab.run(lab.probe, ["ip", "link", "del", "gone0"], check=False)
    assert end["health"] == "failed"
    # First "went down or was removed", then, on each retry, "does not exist".
    assert end["reason"].startswith(("capture interface 'gone0' went down or was removed",
                                     "capture interface 'gone0' does not exist")), end["reason"]
    assert "went down or was removed" in err or "went down or was removed" in end["reason"], err


def test_live_frames_are_parsed_and_aggregated(lab):
    def ping(h0, h1):
        lab.run(h0, ["ping", "-c", "3", "-i", "0.2", "-W", "1", str(h1.ip)])

    started, end = run_subsystem(lab, 6, send=ping, bpf="icmp")
    assert started["health"] == "ok", started
    m = samples(end["metrics"])
    assert m["sitevigil_capture_frames_total"] == 6  # 3 echo requests + 3 replies through the mirror port
    assert m["sitevigil_capture_protocol_frames_total{protocol=icmp}"] == 6
    assert m["sitevigil_capture_protocol_frames_total{protocol=ipv4}"] == 6


def test_fanout_workers_do_not_outlive_a_killed_daemon(lab):
    import signal
    import subprocess

    child = lab.popen(lab.probe, [sys.executable, CHILD, "--iface", "mirror0", "--fanout", "2", "--timeout", "30"],
                      text=True)
    try:
        started = json.loads(child.stdout.readline())
        assert started["health"] == "ok", started
        pids = set(subprocess.run(["ip", "netns", "pids", lab.probe.ns], capture_output=True, text=True).stdout.split())
        assert len(pids) >= 3  # the daemon stand-in and its two capture workers
        os.kill(child.pid, signal.SIGKILL)  # our own child, by pid: no chance to stop its workers
        child.wait(5)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            left = subprocess.run(["ip", "netns", "pids", lab.probe.ns], capture_output=True, text=True).stdout.split()
            if not set(left) & pids:
                break
            time.sleep(0.1)
        assert not set(left) & pids, f"capture workers still running: {left}"
    finally:
        lab.stop(child)
