"""The ledger as a technician's workflow: open -> acknowledged -> resolved / dismissed, every change an
event with who, when and a note; problems reported by people; the daemon picking up what a command in
another process did; metrics and Grafana annotations from the same rows."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading

import pytest
from prometheus_client import CollectorRegistry

from probe.findings.ledger import LATENCY_BUCKETS, Ledger, LedgerCollector, LedgerError
from probe.findings.model import Cleared, Finding
from probe.findings.visits import Visits
from probe.state.store import Store, StoreError
from tests.helpers import Clock
from tests.conftest import REPO_ROOT


def toner(t, ratio=0.04):
    return Finding("printer_supply_low", "warning", "printer-2f", {"ratio": ratio}, t, t, "black toner")


def actions(ep):
    return [(e["action"], e["by"], e["state"], e["note"]) for e in ep["events"]]


def test_acknowledge_then_the_probe_resolves_when_the_condition_stops(store):
    clock = Clock()
    led = Ledger(store, quiet_after=600, clock=clock)
    ep = led.record(toner(clock.t))
    clock.t += 120
    shown = led.transition(ep.id, "acknowledged", "toner ordered", "alice")
    assert shown["state"] == "acknowledged" and shown["resolved_at"] is None
    clock.t += 60
    led.record(toner(clock.t, 0.03))               # still reported: still the same episode, acknowledged
    assert led.open_episodes()[0].state == "acknowledged"
    clock.t += 60
    led.clear(Cleared("printer_supply_low", "printer-2f", "black toner", clock.t))
    done = led.show(ep.id)
    assert done["state"] == "resolved" and done["resolved_at"] == clock.t
    assert actions(done) == [("opened", "probe", "open", ""), ("acknowledged", "alice", "acknowledged", "toner ordered"),
                             ("ended", "probe", "resolved", "")]
    assert led.resolved_total == {("printer_supply_low", "probe"): 1}


def test_an_episode_still_reported_stays_open_however_long_it_lasts(store):
    clock = Clock()
    led = Ledger(store, quiet_after=600, clock=clock)
    ep = led.record(Finding("duplicate_ip", "critical", "10.0.0.7", {}, clock.t, clock.t))
    for _ in range(2 * 3600 // 30):  # reported every window for two hours
        clock.t += 30
        led.record(Finding("duplicate_ip", "critical", "10.0.0.7", {}, clock.t, clock.t))
        led.close_quiet()
    assert led.show(ep.id)["state"] == "open" and led.show(ep.id)["resolved_at"] is None


def test_a_technicians_resolve_takes_it_out_of_the_probes_hands(store):
    clock = Clock()
    led = Ledger(store, quiet_after=600, clock=clock)
    ep = led.record(toner(clock.t))
    clock.t += 3600
    led.transition(ep.id, "resolved", "replaced the black toner", "bob")
    assert led.open_episodes() == [] and led.show(ep.id)["resolved_at"] == clock.t
    assert led.resolved_total == {("printer_supply_low", "technician"): 1}
    clock.t += 60
    again = led.record(toner(clock.t, 0.02))  # the detector still sees it: the fix did not hold
    assert again.id != ep.id and again.state == "open"
    assert led.show(ep.id)["state"] == "resolved" and led.show(ep.id)["occurrences"] == 1


def test_a_dismissed_episode_is_followed_quietly_to_its_end(store):
    clock = Clock()
    led = Ledger(store, quiet_after=600, clock=clock)
    ep = led.record(Finding("device_new", "info", "aa:bb:cc:00:00:09", {}, clock.t, clock.t))
    led.transition(ep.id, "dismissed", "the client's new printer, expected", "alice")
    clock.t += 60
    same = led.record(Finding("device_new", "info", "aa:bb:cc:00:00:09", {}, clock.t, clock.t))
    assert same.id == ep.id and same.occurrences == 2 and same.state == "dismissed"
    clock.t += 601
    led.close_quiet()
    done = led.show(ep.id)
    assert done["state"] == "dismissed" and done["resolved_at"] == clock.t
    assert [a for a, *_ in actions(done)] == ["opened", "dismissed", "ended"]
    assert led.resolved_total == {}


@pytest.mark.parametrize("first, then, message", [
    ("resolved", "acknowledged", "finding 1 is resolved: it cannot be acknowledged (only when open)"),
    ("resolved", "resolved", "finding 1 is resolved: it cannot be resolved (only when open or acknowledged)"),
    ("dismissed", "resolved", "finding 1 is dismissed: it cannot be resolved"),
    ("acknowledged", "acknowledged", "finding 1 is acknowledged: it cannot be acknowledged"),
])
def test_transitions_the_state_does_not_allow_are_refused_and_change_nothing(store, first, then, message):
    led = Ledger(store, clock=Clock())
    ep = led.record(toner(1_000_000.0))
    assert ep.id == 1
    led.transition(ep.id, first, "done", "alice")
    before = led.show(ep.id)
    with pytest.raises(LedgerError, match=message.replace("(", r"\(").replace(")", r"\)")):
        led.transition(ep.id, then, "again", "bob")
    assert led.show(ep.id) == before


def test_bad_requests_say_what_is_wrong(store):
    led = Ledger(store, clock=Clock())
    ep = led.record(toner(1_000_000.0))
    with pytest.raises(LedgerError, match="no finding with id 77"):
        led.transition(77, "resolved", "x", "alice")
    with pytest.raises(LedgerError, match="a note is needed"):
        led.transition(ep.id, "dismissed", "  ", "alice")
    with pytest.raises(LedgerError, match="who: some text is needed"):
        led.transition(ep.id, "resolved", "fixed", "")
    with pytest.raises(LedgerError, match="unknown action 'closed'"):
        led.transition(ep.id, "closed", "fixed", "alice")
    with pytest.raises(LedgerError, match="reported_by must be one of client, visit"):
        led.add_reported("slow_wifi", "office", "slow", "probe", "alice")
    with pytest.raises(LedgerError, match="unknown state 'closed'"):
        led.listing(states=["closed"])


def test_a_problem_reported_by_the_client_stays_open_until_a_technician_resolves_it(tmp_path):
    clock = Clock()
    s = Store(str(tmp_path))
    led = Ledger(s, quiet_after=60, clock=clock)
    rep = led.add_reported("printer_jam", "printer-2f", "jams on every print since Monday", "client", "carol",
                           severity="warning")
    assert (rep["source"], rep["state"], rep["first_seen"]) == ("client", "open", clock.t)
    assert actions(rep) == [("opened", "carol", "open", "jams on every print since Monday")]
    assert led.open_episodes() == []  # not the probe's: its detectors never touch it
    clock.t += 86400
    led.close_quiet()
    s.close()
    s = Store(str(tmp_path))
    led = Ledger(s, quiet_after=60, clock=clock)  # a restart does not hand it to the probe either
    led.close_quiet()
    assert led.open_episodes() == [] and led.show(rep["id"])["state"] == "open"
    assert [e["id"] for e in led.listing()] == [rep["id"]]
    clock.t += 600
    led.transition(rep["id"], "resolved", "cleared the paper path, replaced the pickup roller", "bob")
    assert led.listing() == [] and led.show(rep["id"])["resolved_at"] == clock.t
    s.close()


def test_the_daemon_picks_up_what_a_command_in_another_process_did(tmp_path):
    clock = Clock()
    daemon_store = Store(str(tmp_path))
    daemon = Ledger(daemon_store, quiet_after=600, clock=clock)
    ep = daemon.record(toner(clock.t))
    cli = subprocess.run([sys.executable, "-c", f"""
import sys; sys.path.insert(0, {str(REPO_ROOT)!r})
from probe.findings.ledger import Ledger
from probe.state.store import Store
s = Store({str(tmp_path)!r})
led = Ledger(s, clock=lambda: {clock.t + 300})
led.transition({ep.id}, "acknowledged", "on it", "alice")
led.transition({ep.id}, "resolved", "new cartridge", "alice")
s.close()
"""], capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    clock.t += 400
    again = daemon.record(toner(clock.t, 0.01))  # the daemon learns of the resolve before it records
    assert again.id != ep.id
    assert daemon.resolved_total == {("printer_supply_low", "technician"): 1}
    assert daemon.latency["acknowledged"][1] == 1 and daemon.latency["resolved"][1] == 1
    daemon.close_quiet()  # syncing again counts nothing twice
    assert daemon.latency["resolved"][1] == 1
    daemon_store.close()


def test_ids_and_events_stay_whole_with_threads_and_a_second_process_at_once(tmp_path):
    s = Store(str(tmp_path))
    led = Ledger(s, quiet_after=1e9)
    first = [led.record(Finding("port_scan", "warning", f"10.1.0.{i}", {})) for i in range(1, 101)]
    code = f"""
import sys; sys.path.insert(0, {str(REPO_ROOT)!r})
from probe.findings.ledger import Ledger
from probe.state.store import Store
s = Store({str(tmp_path)!r})
led = Ledger(s)
for i in range(1, 101):
    led.transition({first[0].id} + i - 1, "acknowledged", f"looked at {{i}}", "cli")
    led.add_reported("reported", f"desk-{{i}}", "slow", "client", "cli")
s.close()
"""
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)

    def writer(k):
        for i in range(300):
            led.record(Finding("device_new", "info", f"aa:00:00:{k:02x}:{i >> 8:02x}:{i & 0xff:02x}", {}))

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    rows = s.query("SELECT id, kind, device, source, state FROM findings")
    assert len(rows) == 100 + 900 + 100 and len({r[0] for r in rows}) == len(rows)
    by_device = {(r[1], r[2]): r for r in rows}
    assert len(by_device) == len(rows)  # no id points at another episode's row
    assert sum(1 for r in rows if r[3] == "client") == 100
    assert sum(1 for r in rows if r[4] == "acknowledged") == 100
    events = s.query("SELECT finding_id, action, note FROM finding_events WHERE actor = 'cli' AND action = 'acknowledged'")
    assert sorted(int(n.split()[-1]) for _, _, n in events) == list(range(1, 101))
    assert {fid for fid, _, _ in events} == {e.id for e in first}
    s.close()


def test_a_full_disk_refuses_a_technicians_action_and_loses_nothing(store):
    led = Ledger(store, clock=Clock())
    ep = led.record(toner(1_000_000.0))
    led.transition(ep.id, "acknowledged", "on it", "alice")
    store._db.execute(f"PRAGMA max_page_count={store.query('PRAGMA page_count')[0][0]}")
    with pytest.raises(StoreError, match="nothing was changed"):
        for _ in range(10_000):  # until the last byte is used up, with notes the size of the transition's event
            led.add_note(ep.id, "fixed", "alice")
    with pytest.raises(StoreError, match="nothing was changed"):
        led.transition(ep.id, "resolved", "fixed", "alice")
    store._db.execute("PRAGMA max_page_count=1000000")
    shown = led.show(ep.id)
    assert shown["state"] == "acknowledged" and shown["resolved_at"] is None
    assert [a for a, *_ in actions(shown)][:2] == ["opened", "acknowledged"]
    assert all(a == "note" for a, *_ in actions(shown)[2:])  # every note saved before the disk filled is there
    led.transition(ep.id, "resolved", "fixed", "alice")
    assert led.show(ep.id)["state"] == "resolved"


def test_a_version_2_database_keeps_its_episodes_and_notes(tmp_path):
    path = tmp_path / "sitevigil.db"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL);
        INSERT INTO schema_versions VALUES ('findings', 2);
        CREATE TABLE findings (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, severity TEXT NOT NULL,
            device TEXT NOT NULL, evidence TEXT NOT NULL, first_seen REAL NOT NULL, last_seen REAL NOT NULL,
            occurrences INTEGER NOT NULL DEFAULT 1, resolved_at REAL, subject TEXT NOT NULL DEFAULT '');
        CREATE TABLE finding_notes (id INTEGER PRIMARY KEY AUTOINCREMENT, finding_id INTEGER NOT NULL,
            at REAL NOT NULL, author TEXT NOT NULL, text TEXT NOT NULL);
        INSERT INTO findings VALUES (1, 'port_scan', 'warning', '10.0.0.5', '{}', 100, 200, 3, 250, '');
        INSERT INTO findings VALUES (2, 'ups_on_battery', 'critical', 'ups-1', '{}', 300, 400, 2, NULL, '');
        INSERT INTO finding_notes VALUES (1, 1, 260, 'alice', 'the new vulnerability scanner');
    """)
    db.commit()
    db.close()
    s = Store(str(tmp_path))
    led = Ledger(s, clock=Clock())
    one, two = led.show(1), led.show(2)
    assert (one["state"], one["resolved_at"], one["source"]) == ("resolved", 250, "probe")
    assert one["notes"] == [{"at": 260, "author": "alice", "text": "the new vulnerability scanner"}]
    assert two["state"] == "open" and [e.id for e in led.open_episodes()] == [2]
    s.close()


def test_metrics_and_annotations_come_from_the_same_rows(store):
    clock = Clock()
    led = Ledger(store, quiet_after=600, clock=clock)
    scan = led.record(Finding("port_scan", "warning", "10.0.0.5", {}, clock.t, clock.t))
    ups = led.record(Finding("ups_on_battery", "critical", "ups-1", {}, clock.t, clock.t))
    led.add_reported("slow_wifi", "meeting room", "calls drop", "visit", "bob")
    clock.t += 400
    led.transition(scan.id, "acknowledged", "checking the laptop", "alice")
    clock.t += 5000
    led.transition(ups.id, "resolved", "mains back, tested the transfer", "alice")
    reg = CollectorRegistry()
    reg.register(LedgerCollector(led))
    v = reg.get_sample_value
    assert v("sitevigil_findings_open", {"kind": "port_scan", "severity": "warning", "state": "acknowledged"}) == 1
    assert v("sitevigil_findings_open", {"kind": "slow_wifi", "severity": "warning", "state": "open"}) == 1
    assert v("sitevigil_findings_open", {"kind": "ups_on_battery", "severity": "critical", "state": "open"}) is None
    assert v("sitevigil_findings_resolved_total", {"kind": "ups_on_battery", "by": "technician"}) == 1
    assert v("sitevigil_finding_time_to_acknowledged_seconds_bucket", {"le": "300.0"}) == 0
    assert v("sitevigil_finding_time_to_acknowledged_seconds_bucket", {"le": "900.0"}) == 1
    assert v("sitevigil_finding_time_to_resolved_seconds_sum") == 5400
    assert v("sitevigil_finding_time_to_resolved_seconds_count") == 1
    assert len(LATENCY_BUCKETS) == 10
    notes = led.annotations(since=clock.t - 86400, until=clock.t)
    by_title = {a["title"]: a for a in notes}
    assert set(by_title) == {"port_scan on 10.0.0.5", "ups_on_battery on ups-1", "slow_wifi on meeting room"}
    assert by_title["ups_on_battery on ups-1"]["timeEnd"] - by_title["ups_on_battery on ups-1"]["time"] == 5_400_000
    assert by_title["port_scan on 10.0.0.5"]["timeEnd"] == int(clock.t * 1000)  # still going on: up to now
    assert by_title["slow_wifi on meeting room"]["text"] == "warning, open, found by visit"
    json.dumps(notes)


_KILLED_WRITER = """
import sys, time
from probe.findings.ledger import Ledger
from probe.findings.model import Finding
from probe.findings.visits import Visits
from probe.state.store import Store
s = Store(sys.argv[1])
led, vis = Ledger(s), Visits(s)
for i in range(100000):
    ep = led.record(Finding("port_scan", "warning", f"10.1.{i // 250}.{i % 250}", {"n": i}))
    led.add_note(ep.id, f"note {i}", "alice")
    v = vis.add(start=float(i), minutes=5, technician="alice", mode="remote", summary=f"visit {i}",
                findings=[ep.id])
    print(ep.id, v["id"], flush=True)   # said only once all three are stored
"""


def test_sigkill_loses_no_finding_note_or_visit_the_writer_had_stored(tmp_path):
    """The writer says 'stored' after each finding, note and visit; killed with SIGKILL mid-stream,
    everything it said is in the database, whole (no half of a visit, no note without its finding)."""
    import signal
    import time as _time

    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(tmp_path)], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, text=True)
    said = []
    deadline = _time.monotonic() + 30
    while len(said) < 150 and _time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        said.append(tuple(map(int, line.split())))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert len(said) >= 150, "the writer did not get going"
    s = Store(str(tmp_path))
    led, vis = Ledger(s), Visits(s)
    visits = {v["id"]: v for v in vis.listing(limit=1_000_000)}
    for fid, vid in said:
        ep = led.show(fid)
        assert [e["note"] for e in ep["events"] if e["action"] == "note"] == [f"note {ep['evidence']['n']}"]
        assert visits[vid]["findings"] == [fid]
    for v in visits.values():   # what it had not yet said is there whole or not at all
        assert len(v["findings"]) == 1
    s.close()
