"""The findings ledger: one episode per (kind, device), closed when quiet, notes kept, bounded."""
import pytest
from prometheus_client import CollectorRegistry

from probe.findings.ledger import Ledger, LedgerCollector
from probe.findings.model import Finding
from probe.state.store import Store


class Clock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path))
    yield s
    s.close()


def test_one_episode_per_kind_and_device(store):
    clock = Clock()
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
    clock = Clock()
    led = Ledger(store, quiet_after=60, clock=clock)
    first = led.record(Finding("arp_spoofing", "critical", "aa:bb:cc:00:00:01"))
    clock.t += 61
    assert [e.id for e in led.close_quiet()] == [first.id]
    second = led.record(Finding("arp_spoofing", "critical", "aa:bb:cc:00:00:01"))
    assert second.id != first.id
    hist = led.history()
    assert [h["resolved_at"] for h in sorted(hist, key=lambda h: h["id"])] == [1061.0, None]


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
    h = led2.history()[0]
    assert h["notes"][0]["text"] == "Replaced the black toner cartridge." and h["notes"][0]["author"] == "alice"
    with pytest.raises(KeyError):
        led2.add_note(9999, "x")
    with pytest.raises(ValueError):
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
    assert reg.get_sample_value("sitevigil_findings_open", {"kind": "port_scan", "severity": "warning"}) == 2
    assert reg.get_sample_value("sitevigil_findings_raised_total", {"kind": "port_scan", "severity": "warning"}) == 2
