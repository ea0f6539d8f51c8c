"""Faults under the running daemon, in the lab (issue 12): the capture interface goes down and comes
back, is deleted and created again; the state disk (a small tmpfs) fills up and frees again. After each,
the findings, notes and visits stored before are all there and unchanged, the probe recovered by itself,
and its metrics say what happened. (A bad config on reload and SIGKILL while writing findings are in
test_daemon_e2e.py; the interface missing at start and removed in test_capture_daemon.py and
test_capture_subsystem.py.)"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time

import pytest

from tests.helpers import sample, samples, wait_for
from tests.lab.daemon import REPO_ROOT, probe_daemon
from tests.lab.fixtures import lab_fixture

pytestmark = pytest.mark.lab

SENDER = os.path.join(REPO_ROOT, "tests", "lab", "send_frames.py")
CONFIG = """\
subnets: [{{cidr: {subnet}}}]
snmp: {{enabled: false}}
sweep: {{enabled: false}}
capture: {{interface: mirror0, window: 2s, block_count: 8, block_timeout: 50ms}}
"""

lab = lab_fixture(hosts=2)


def _record(d) -> dict:
    """A reported finding with a note and a visit that names it, through the API as a technician would."""
    status, f = d.post("/api/findings", {"kind": "printer jam", "device": "printer-2f", "reported_by": "client",
                                         "note": "jams every morning", "by": "carol"})
    assert status == 201, f
    status, _ = d.post(f"/api/findings/{f['id']}/notes", {"note": "rollers worn", "by": "carol"})
    assert status == 201
    status, v = d.post("/api/visits", {"minutes": 30, "technician": "carol", "mode": "on_site",
                                       "summary": "cleaned the rollers", "findings": [f["id"]]})
    assert status == 201, v
    return _stored(d)


def _stored(d) -> dict:
    """What the ledger holds: every finding (with its events and notes) and every visit."""
    findings = json.loads(d.get("/api/findings?state=all"))["findings"]
    visits = json.loads(d.get("/api/visits"))["visits"]
    return {"findings": {f["id"]: f for f in findings}, "visits": visits}


def _kept(before: dict, after: dict) -> None:
    """Everything stored before is still there, unchanged (more may have been added since)."""
    for fid, f in before["findings"].items():
        assert fid in after["findings"], f"finding {fid} lost"
        a = after["findings"][fid]
        assert a["events"][:len(f["events"])] == f["events"], f"finding {fid} changed: {f} -> {a}"
        assert (a["kind"], a["device"], a["first_seen"]) == (f["kind"], f["device"], f["first_seen"])
    assert after["visits"][:len(before["visits"])] == before["visits"]


def _capture(d) -> dict:
    (cap,) = [s for s in json.loads(d.get("/-/status.json"))["subsystems"] if s["name"] == "capture"]
    return cap


def _frames(d) -> float:
    return sample(d.get("/metrics"), "sitevigil_capture_frames_total") or 0


def _raised(d, kind: str) -> float:
    """Episodes of `kind` the probe opened, of any severity (counted in memory: written or not yet)."""
    return sum(s.value for s in samples(d.get("/metrics"), "sitevigil_findings_raised_total")
               if s.labels.get("kind") == kind)


def _send(lab, n: int) -> None:
    h0, h1 = lab.hosts
    lab.run(h0, [sys.executable, SENDER, "--count", str(n), "--run", "5", "--dst", h1.mac])


def test_capture_interface_down_up_deleted_and_recreated(lab, tmp_path):
    with probe_daemon(lab, tmp_path, CONFIG.format(subnet=lab.subnet)) as d:
        log = lambda: d.log()[-3000:]  # noqa: E731
        stored = _record(d)
        wait_for(lambda: _capture(d)["health"] == "ok", 15, "capture ok", context=log)
        _send(lab, 500)
        wait_for(lambda: _frames(d) >= 500, 15, "500 frames counted", context=log)
        counted = _frames(d)

        # down: FAILED with the reason, counted as an interruption; up again: it reopens by itself
        lab.run(lab.probe, ["ip", "link", "set", "mirror0", "down"])
        cap = wait_for(lambda: (c := _capture(d))["health"] == "failed" and c, 15, "capture failed", context=log)
        assert "mirror0" in cap["reason"] and ("down" in cap["reason"] or "removed" in cap["reason"]), cap
        body = d.get("/metrics")
        assert sample(body, "sitevigil_capture_interruptions_total") == 1
        assert sample(body, "sitevigil_subsystem_up", subsystem="capture") == 0
        lab.run(lab.probe, ["ip", "link", "set", "mirror0", "up"])
        wait_for(lambda: _capture(d)["health"] == "ok", 20, "capture ok again after the link came up", context=log)
        assert sample(d.get("/metrics"), "sitevigil_capture_opens_total") == 2
        _send(lab, 500)
        wait_for(lambda: _frames(d) >= counted + 500, 15, "frames counted after the link came back", context=log)
        counted = _frames(d)

        # deleted: FAILED "does not exist" while it is gone; created again (a new ifindex): reopened
        lab.unplug_mirror()
        try:
            cap = wait_for(lambda: (c := _capture(d))["health"] == "failed" and "does not exist" in c["reason"] and c,
                           20, "capture failed: the interface does not exist", context=log)
            assert sample(d.get("/metrics"), "sitevigil_capture_interruptions_total") == 2
        finally:
            lab.replug_mirror()
        wait_for(lambda: _capture(d)["health"] == "ok", 20, "capture ok on the recreated interface", context=log)
        _send(lab, 500)
        wait_for(lambda: _frames(d) >= counted + 500, 15, "frames counted on the recreated interface", context=log)
        body = d.get("/metrics")
        assert sample(body, "sitevigil_capture_opens_total") == 3
        assert sample(body, "sitevigil_subsystem_up", subsystem="capture") == 1
        _kept(stored, _stored(d))


@contextlib.contextmanager
def _tmpfs(path, size: str):
    path.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(path) -> None:
    """Fill the file system at `path` to the last byte (unbuffered writes, smaller as room runs out)."""
    fd = os.open(path / "filler", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        size = 1 << 20
        while size:
            try:
                os.write(fd, b"\0" * size)
            except OSError:
                size //= 2
    finally:
        os.close(fd)


def _scan(lab) -> None:
    """A real SYN scan of 500 ports from one lab host to the other: a port_scan finding."""
    scanner, victim = lab.hosts
    lab.run(scanner, ["timeout", "40", "nmap", "-n", "-Pn", "--disable-arp-ping", "-sS", "-p", "1-500", "-T4",
                      "--max-retries", "0", "--host-timeout", "30s", str(victim.ip)], check=False, timeout=60)


def test_state_disk_fills_up_and_frees_again(lab, tmp_path):
    """Findings the capture raises while the disk is full are kept in memory and written once there is
    room; a technician's note is refused with the reason (never silently dropped); the metrics and the
    log say the database cannot be written, and the backlog drains by itself."""
    with _tmpfs(tmp_path / "state", "4m") as state, \
            probe_daemon(lab, tmp_path, CONFIG.format(subnet=lab.subnet)) as d:
        log = lambda: d.log()[-3000:]  # noqa: E731
        stored = _record(d)
        fid = next(iter(stored["findings"]))
        _fill(state)
        _scan(lab)
        # raised while the disk is full: counted at once; in the ledger's listing once it is written
        wait_for(lambda: _raised(d, "port_scan"), 60, "the port scan raised", context=log)

        def failing():
            body = d.get("/metrics")
            return body if (sample(body, "sitevigil_state_write_failures_total") or 0) > 0 else None

        body = wait_for(failing, 30, "the state database's failed writes on /metrics", context=log)
        assert (sample(body, "sitevigil_state_write_backlog") or 0) > 0
        status, answer = d.post(f"/api/findings/{fid}/notes", {"note": "while the disk is full", "by": "carol"})
        assert status == 503 and "full" in answer["error"], (status, answer)
        assert "database or disk is full" in d.log()

        os.unlink(state / "filler")  # room again: the backlog is written by itself

        def drained():
            body = d.get("/metrics")
            return body if sample(body, "sitevigil_state_write_backlog") == 0 else None

        wait_for(drained, 60, "the backlog written once the disk had room", context=log)
        status, _ = d.post(f"/api/findings/{fid}/notes", {"note": "after the disk freed", "by": "carol"})
        assert status == 201
        assert sample(d.get("/metrics"), "sitevigil_state_writes_dropped_total") == 0
        scan = d.wait_finding({"port_scan"}, timeout=5)
        after = _stored(d)
        _kept(stored, after)
        assert scan["id"] in after["findings"]
        notes = [n["text"] for n in after["findings"][fid]["notes"]]
        assert "after the disk freed" in notes and "while the disk is full" not in notes


def test_findings_written_while_the_disk_was_full_survive_a_restart(lab, tmp_path):
    """The same fault, then a restart on the same state directory: the scan found while the disk was
    full, the note and the visit are read back from the database."""
    with _tmpfs(tmp_path / "state", "4m") as state:
        with probe_daemon(lab, tmp_path, CONFIG.format(subnet=lab.subnet)) as d:
            stored = _record(d)
            _fill(state)
            _scan(lab)
            wait_for(lambda: _raised(d, "port_scan"), 60, "the port scan raised", context=lambda: d.log()[-3000:])
            os.unlink(state / "filler")
            wait_for(lambda: sample(d.get("/metrics"), "sitevigil_state_write_backlog") == 0, 60,
                     "the backlog written", context=lambda: d.log()[-3000:])
            scan = d.wait_finding({"port_scan"}, timeout=5)
        with probe_daemon(lab, tmp_path, CONFIG.format(subnet=lab.subnet)) as d:
            after = _stored(d)
            _kept(stored, after)
            assert scan["id"] in after["findings"] and after["findings"][scan["id"]]["kind"] == "port_scan"


LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


def test_the_wall_clock_set_forward_and_back(lab, tmp_path):
    """The daemon's wall clock is set two hours forward, then three back (libfaketime under the daemon;
    the monotonic clock is left alone, as a real clock step leaves it). The open port-scan episode is
    neither closed by the jump forward (its quiet timer is monotonic) nor split; the findings, notes and
    visits stored before are unchanged; the capture goes on counting; /metrics says the clock was set,
    by how much. (The kernel stamps captured frames with the machine's real clock, which a test must not
    set: the capture's own handling of a clock set back is test_aggregate's, on frames stamped so.)"""
    if not os.path.exists(LIBFAKETIME):
        pytest.fail(f"{LIBFAKETIME} is missing: scripts/bootstrap --test installs Debian's faketime")
    offset = tmp_path / "faketime"
    offset.write_text("+0\n")
    env = {"LD_PRELOAD": LIBFAKETIME, "FAKETIME_TIMESTAMP_FILE": str(offset), "FAKETIME_NO_CACHE": "1",
           "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    with probe_daemon(lab, tmp_path, CONFIG.format(subnet=lab.subnet), env=env) as d:
        log = lambda: d.log()[-3000:]  # noqa: E731
        stored = _record(d)
        _scan(lab)
        scan = d.wait_finding({"port_scan"}, timeout=60)
        stored = _stored(d)

        def jumped(n):
            body = d.get("/metrics")
            return body if sample(body, "sitevigil_clock_jumps_total") == n else None

        offset.write_text("+7200\n")
        body = wait_for(lambda: jumped(1), 30, "the clock set forward noticed", context=log)
        assert 7190 < sample(body, "sitevigil_clock_last_jump_seconds") < 7210
        assert "the wall clock was set forward by 7200 s" in d.log()
        time.sleep(11)  # a round of the daemon's quiet-episode check after the jump
        f = json.loads(d.get(f"/api/findings/{scan['id']}"))
        assert f["state"] == "open" and f["resolved_at"] is None, f
        frames = _frames(d)
        _send(lab, 300)
        wait_for(lambda: _frames(d) >= frames + 300, 15, "frames counted after the jump", context=log)

        offset.write_text("-3600\n")
        body = wait_for(lambda: jumped(2), 30, "the clock set back noticed", context=log)
        assert -10810 < sample(body, "sitevigil_clock_last_jump_seconds") < -10790
        assert "the wall clock was set back by 10800 s" in d.log()
        assert _capture(d)["health"] == "ok"
        frames = _frames(d)
        _send(lab, 300)
        wait_for(lambda: _frames(d) >= frames + 300, 15, "frames counted after the clock was set back", context=log)
        status, _ = d.post(f"/api/findings/{scan['id']}/notes", {"note": "seen after the clock was fixed", "by": "carol"})
        assert status == 201
        after = _stored(d)
        _kept(stored, after)
        assert after["findings"][scan["id"]]["state"] == "open"
