"""The findings ledger: one episode per (kind, device), closed when quiet, notes kept, bounded."""
import time

import pytest
from prometheus_client import CollectorRegistry

from probe.findings.ledger import STATES, Ledger, LedgerCollector, LedgerError
from probe.findings.model import Finding
from probe.state.store import Store
from tests.helpers import Clock


def test_one_episode_per_kind_and_device(store):
    clock = Clock(1000.0)
    led = Ledger(store, quiet_after=60, clock=clock)
    a = led.record(Finding("port_scan", "warning", "10.0.0.5", {"ports": 100}))
    clock.t += 10
    b = led.record(Finding("port_scan", "critical", "10.0.0.5", {"ports": 900}, clock.t, clock.t))
    led.record(Finding("port_scan", "warning", "10.0.0.6", {"ports": 50}))
    assert a.id == b.id and b.occurrences == 2
    assert b.finding.severity == "critical" and b.finding.evidence == {"ports": 900}
    assert b.finding.first_seen == 1000.0 and b.finding.last_seen == 1010.0
    assert len(led.open_episodes()) == 2
    assert led.raised_total == {("port_scan", "warning"): 2}


def test_quiet_episode_closes_and_a_new_one_opens(store):
    clock = Clock(1000.0)
    led = Ledger(store, quiet_after=60, clock=clock)
    first = led.record(Finding("arp_spoofing", "critical", "aa:bb:cc:00:00:01"))
    clock.t += 61
    assert [e.id for e in led.close_quiet()] == [first.id]
    second = led.record(Finding("arp_spoofing", "critical", "aa:bb:cc:00:00:01"))
    assert second.id != first.id
    hist = led.listing(states=STATES)
    assert [h["resolved_at"] for h in sorted(hist, key=lambda h: h["id"])] == [1061.0, None]


def test_a_clock_set_forward_or_back_does_not_end_or_prolong_episodes(store):
    """Quiet timers run on a clock nobody sets (monotonic beside the wall clock): the wall clock set two
    hours forward closes nothing and the next report continues the same episode; set back, an episode
    still closes after quiet_after seconds of real silence. What is stored keeps the wall clock's dates."""
    wall, mono = Clock(1_000_000.0), Clock(50.0)
    led = Ledger(store, quiet_after=600, clock=wall, elapsed=mono)
    ep = led.record(Finding("port_scan", "warning", "10.0.0.5", {"ports": 100}))
    wall.t += 7200
    mono.t += 30
    assert led.close_quiet() == []
    again = led.record(Finding("port_scan", "warning", "10.0.0.5", {"ports": 120}))
    assert again.id == ep.id and again.occurrences == 2 and again.finding.last_seen == 1_007_200.0
    wall.t -= 7200 + 3600  # set back past the episode's own dates
    mono.t += 599
    assert led.close_quiet() == []
    mono.t += 2
    assert [e.id for e in led.close_quiet()] == [ep.id]
    # without a jump the two clocks agree, and the default pairs the wall clock with the monotonic one
    assert Ledger(store).elapsed is time.monotonic


def test_clock_watch_notices_the_wall_clock_being_set():
    from probe.health import ClockWatch
    wall, mono = Clock(1_000_000.0), Clock(50.0)
    w = ClockWatch(2.0, wall=wall, mono=mono)
    wall.t += 10.5
    mono.t += 10
    assert w.check() is None                 # drift within the tolerance
    wall.t += 7210
    mono.t += 10
    assert w.check() == 7200 and (w.jumps_total, w.last_jump) == (1, 7200)
    wall.t -= 3590
    mono.t += 10
    assert w.check() == -3600 and (w.jumps_total, w.last_jump) == (2, -3600)


def test_survives_restart_and_keeps_notes(tmp_path):
    s = Store(str(tmp_path))
    led = Ledger(s)
    ep = led.record(Finding("printer_supply_low", "warning", "printer-2f", {"supply": "black toner", "ratio": 0.04}))
    led.add_note(ep.id, "Replaced the black toner cartridge.", "alice")
    s.close()
    s2 = Store(str(tmp_path))
    led2 = Ledger(s2)
    assert [e.id for e in led2.open_episodes()] == [ep.id]
    again = led2.record(Finding("printer_supply_low", "warning", "printer-2f", {"ratio": 0.03}))
    assert again.id == ep.id and again.occurrences == 2
    h = led2.listing(states=STATES)[0]
    assert h["notes"][0]["text"] == "Replaced the black toner cartridge." and h["notes"][0]["author"] == "alice"
    with pytest.raises(LedgerError, match="no finding with id 9999"):
        led2.add_note(9999, "x")
    with pytest.raises(LedgerError, match="a note is needed"):
        led2.add_note(ep.id, "   ")
    s2.close()


def test_open_set_is_bounded(store):
    led = Ledger(store, max_open=100)
    for i in range(1000):  # a flood of spoofed sources
        led.record(Finding("syn_flood", "critical", f"spoofed-{i}"))
    assert len(led.open_episodes()) == 100 and led.evicted_total == 900


def test_collector_exports_bounded_families(store):
    led = Ledger(store)
    led.record(Finding("port_scan", "warning", "10.0.0.5"))
    led.record(Finding("port_scan", "warning", "10.0.0.6"))
    reg = CollectorRegistry()
    reg.register(LedgerCollector(led))
    assert reg.get_sample_value("sitevigil_findings_open",
                                {"kind": "port_scan", "severity": "warning", "state": "open"}) == 2
    assert reg.get_sample_value("sitevigil_findings_raised_total", {"kind": "port_scan", "severity": "warning"}) == 2


def test_history_on_disk_is_bounded_by_age_and_count(store):
    """Resolved episodes past the retention go (with their notes), and beyond max_history the oldest
    go first; open episodes always stay, so a flood of findings cannot fill the disk."""
    clock = Clock(1_000_000.0)
    led = Ledger(store, quiet_after=60, retention=86400, max_history=50, clock=clock)
    old = led.record(Finding("device_new", "info", "aa:00:00:00:00:01", {}))
    led.add_note(old.id, "expected: the new printer")
    clock.t += 120
    led.close_quiet()                       # closes it; the prune keeps it (young, few)
    assert len(led.listing(states=STATES, limit=10_000)) == 1
    clock.t += 2 * 86400                    # now past the retention
    for i in range(120):                    # a flood of findings, each resolved
        led.record(Finding("device_new", "info", f"aa:00:00:00:01:{i:02x}", {}, clock.t + i, clock.t + i))
    still_open = led.record(Finding("port_scan", "warning", "10.0.0.9", {}, clock.t + 1000, clock.t + 1000))
    clock.t += 1000
    led.close_quiet()   # the 120 close (the scan was reported just now and stays open), then the hourly prune
    hist = led.listing(states=STATES, limit=10_000)
    resolved = [h for h in hist if h["resolved_at"] is not None]
    assert led.pruned_total == 71           # the old one + the 70 oldest of the flood
    assert len(resolved) == 50 and old.id not in {h["id"] for h in hist}
    assert min(h["device"] for h in resolved) == "aa:00:00:00:01:46"  # the newest 50 remain (0x46 = 70)
    assert any(h["id"] == still_open.id and h["resolved_at"] is None for h in hist)
    assert store.query("SELECT COUNT(*) FROM finding_events WHERE note != ''")[0][0] == 0
    assert led.prune() == 0
