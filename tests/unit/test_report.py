"""The monthly report's parts: plain words per kind, months in local time, the coverage record, the
numbers, and the daemon's "is a report due" logic on a fake clock."""
from __future__ import annotations

import asyncio
import os
import re
import time
from datetime import datetime
from types import SimpleNamespace

import pytest

from probe.exposition import report as rep
from probe.exposition.report_words import CATEGORIES, category, describe
from probe.findings.ledger import Ledger
from probe.findings.lan import KINDS as LAN_KINDS
from probe.findings.model import Cleared, Finding
from probe.findings.visits import Visits
from probe.state.coverage import Coverage, covered, gaps
from probe.state.store import Store
from probe.subsystems.base import Activity, Context, activity_totals


@pytest.fixture
def berlin(monkeypatch):
    """Local time with daylight saving (Europe/Berlin: summer time ends 2026-10-25, starts 2026-03-29)."""
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _ep(kind, evidence=None, device="fileserver", subject="", source="probe", state="open"):
    return {"id": 1, "kind": kind, "device": device, "subject": subject, "evidence": evidence or {},
            "source": source, "state": state, "severity": "warning", "first_seen": 0.0, "last_seen": 0.0,
            "events": []}


# -- words --------------------------------------------------------------------------------------------
def test_storage_filling_says_how_soon_it_would_have_been_full():
    w = describe(_ep("storage_filling", {"days_to_full": 9.2, "used_ratio": 0.87}, subject="storage /srv"), "fileserver")
    assert w.what == ("The disk /srv on fileserver was 87% full; at the rate it was filling it would have been "
                      "full in 9 days.")
    assert w.decision and w.category == "devices and power"
    w = describe(_ep("storage_filling", {"days_to_full": None, "used_ratio": 0.97}, subject="storage C:"), "pc1")
    assert w.what == "The disk C: on pc1 was 97% full."


def test_supply_and_ups_words_and_decisions():
    w = describe(_ep("printer_supply_low", {"remaining_ratio": 0.05}, subject="supply Black Toner"), "printer-2f")
    assert w.what == "printer-2f had 5% of its Black Toner left."
    assert w.decision == "buying a replacement Black Toner"
    w = describe(_ep("ups_battery_replace", {"battery_status": None}, subject="ups"), "ups1")
    assert w.decision == "a new UPS battery"
    w = describe(_ep("ups_battery_low", {"battery_status": "depleted"}, subject="ups"), "ups1")
    assert w.title == "The battery backup (UPS) ups1 reported its battery depleted"
    w = describe(_ep("ups_on_battery", {"runtime_seconds": 1260}), "ups1")
    assert "about 21 more minutes" in w.what and w.decision == ""


def test_every_known_kind_has_its_own_words():
    snmp = ("storage_filling", "printer_supply_low", "ups_on_battery", "ups_runtime_short", "ups_battery_replace",
            "ups_battery_low", "device_unreachable", "device_rebooted", "interface_errors_rising",
            "interface_flapping")
    inventory = ("device_new", "device_returned", "device_gone", "device_ip_changed", "device_name_changed")
    generic = describe(_ep("no_such_kind"), "x").why
    for kind in LAN_KINDS + snmp + inventory + ("anomaly",):
        w = describe(_ep(kind), "dev")
        assert w.why != generic, kind
        assert "{" not in w.title + w.what, (kind, w)  # no template left unfilled
        assert w.category in CATEGORIES


def test_technicians_and_clients_name_the_same_kinds():
    """Two registers, one list of kinds: a kind with client words has a technician's title and back."""
    from probe.exposition.report_words import _WORDS
    from probe.findings.titles import TITLES, title

    assert set(TITLES) == set(_WORDS)
    assert title("port_scan") == "Port scan" and title("fan_failure") == "Fan failure"


def test_unknown_kind_falls_back_to_its_name_and_summary():
    w = describe(_ep("fan_failure", {"summary": "switch1 fan 2 stopped"}), "switch1")
    assert w.title == "Fan failure on switch1"
    assert w.what == "switch1 fan 2 stopped."
    w = describe(_ep("fan_failure"), "switch1")
    assert w.what == "The probe saw a problem of the kind “fan failure” on switch1."
    assert category("fan_failure") == "network"


def test_a_reported_problem_says_who_found_it():
    w = describe(_ep("printer_jam", {"reported": "jams since Monday"}, source="client"), "printer-2f")
    assert w.title == "Printer jam (printer-2f)"
    assert w.what == "jams since Monday. This was reported by the client: the probe did not see it."
    assert w.category == "reported by people"
    w = describe(_ep("wifi_dead_spot", {"reported": "no signal in room 3"}, source="visit"), "office")
    assert "found by the technician on a visit" in w.what


# -- months -------------------------------------------------------------------------------------------
def test_month_bounds_are_local_midnights(berlin):
    start, end = rep.month_bounds("2026-10")
    assert datetime.fromtimestamp(start).strftime("%Y-%m-%d %H:%M") == "2026-10-01 00:00"
    assert (end - start) / 3600 == 31 * 24 + 1  # summer time ends on the 25th: one hour longer
    start, end = rep.month_bounds("2026-03")
    assert (end - start) / 3600 == 31 * 24 - 1
    start, end = rep.month_bounds("2026-12")
    assert datetime.fromtimestamp(end).strftime("%Y-%m-%d %H:%M") == "2027-01-01 00:00"
    assert rep.previous_month("2026-01") == "2025-12"
    assert rep.previous_month("2026-11", 5) == "2026-06"


@pytest.mark.parametrize("text", ["2026-13", "2026/11", "November", ""])
def test_bad_month_is_refused_with_the_format(text):
    with pytest.raises(ValueError, match=r"is not a month \(expected YYYY-MM, e\.g\. 2026-11\)"):
        rep.parse_month(text)


# -- the daemon's due logic ----------------------------------------------------------------------------
def test_report_due_once_for_the_previous_month(tmp_path, berlin):
    d = str(tmp_path / "reports")
    watched = datetime(2026, 10, 20).timestamp()
    first_of_dec = datetime(2026, 12, 1, 0, 30).timestamp()
    assert rep.report_due(datetime(2026, 11, 30, 23, 59).timestamp(), d, watched) == "2026-10"
    assert rep.report_due(first_of_dec, d, watched) == "2026-11"
    os.makedirs(d)
    open(rep.report_path(d, "2026-11"), "w").close()
    assert rep.report_due(first_of_dec, d, watched) is None            # already written
    assert rep.report_due(datetime(2026, 12, 15).timestamp(), d, watched) is None
    assert rep.report_due(datetime(2027, 1, 1, 0, 5).timestamp(), d, watched) == "2026-12"  # across the year
    # a probe that started watching after the month ended has nothing to say about it
    assert rep.report_due(first_of_dec, str(tmp_path / "new"), datetime(2026, 12, 1, 0, 1).timestamp()) is None
    assert rep.report_due(first_of_dec, str(tmp_path / "new"), None) is None


def test_daemon_writes_the_report_once_atomically(tmp_path, berlin):
    store = Store(str(tmp_path))
    cov = Coverage(store)
    cov.heartbeat(datetime(2026, 11, 3).timestamp())
    cov.heartbeat(datetime(2026, 11, 3, 0, 0, 10).timestamp())
    cfg = SimpleNamespace(report=SimpleNamespace(msp_name="Acme IT", client_name="Dentist"))
    now = datetime(2026, 12, 1, 0, 20).timestamp()
    path = asyncio.run(rep.write_monthly_report(store, cfg, now))
    assert path == str(tmp_path / "reports" / "2026-11.html")
    text = open(path, encoding="utf-8").read()
    assert "Dentist: your network in November 2026" in text and "Acme IT" in text
    assert os.listdir(tmp_path / "reports") == ["2026-11.html"]  # no temporary file left behind
    mtime = os.stat(path).st_mtime_ns
    assert asyncio.run(rep.write_monthly_report(store, cfg, now + 3600)) is None
    assert os.stat(path).st_mtime_ns == mtime
    store.close()


# -- coverage -------------------------------------------------------------------------------------------
def test_coverage_heartbeats_extend_gaps_and_months_start_anew(berlin):
    store = Store("", memory=True)
    cov = Coverage(store, gap=60)
    t0 = datetime(2026, 11, 30, 23, 0).timestamp()
    a = cov.heartbeat(t0, 0, 0)
    assert cov.heartbeat(t0 + 10, 5, 1000) == a
    assert cov.heartbeat(t0 + 20, 7, 1500) == a
    b = cov.heartbeat(t0 + 200, 9, 1600)       # 180 s without a heartbeat: a gap
    assert b != a
    c = cov.heartbeat(t0 + 210, 2, 100)        # totals went down: a subsystem restarted, all of it is new
    assert c == b
    d = cov.heartbeat(t0 + 3600 + 5, 3, 150)   # past local midnight into December: a new interval
    rows = {r["id"]: r for r in cov.intervals(0, 1e18)}
    assert rows[a]["end"] - rows[a]["start"] == 20 and (rows[a]["polls"], rows[a]["frames"]) == (7, 1500)
    assert (rows[b]["polls"], rows[b]["frames"]) == (2 + 2, 100 + 100)
    assert d not in (a, b) and rows[d]["start"] >= rep.month_bounds("2026-12")[0]
    assert all(r["source"] == "live" for r in rows.values())


def test_coverage_union_gaps_replay_and_prune():
    ivs = [{"start": 0, "end": 100, "source": "live"}, {"start": 50, "end": 300, "source": "replay"},
           {"start": 1000, "end": 2000, "source": "live"}]
    st = covered(ivs, 10, 1500)
    assert st == [(10, 300, "live+replay"), (1000, 1500, "live")]
    assert gaps(st, 10, 1500, min_gap=300) == [(300, 1000)]
    assert gaps(st, 0, 3000, min_gap=1) == [(0, 10), (300, 1000), (1500, 3000)]
    store = Store("", memory=True)
    cov = Coverage(store, max_rows=2)
    cov.record_span(0, 50, label="old.pcap")
    cov.record_span(10_000, 10_050)
    cov.record_span(20_000, 20_050)
    with pytest.raises(ValueError, match="ends"):
        cov.record_span(5, 1)
    assert cov.prune(now=1000, retention=500) == 1    # ended before the retention
    cov.record_span(30_000, 30_050)
    assert cov.prune(now=1000, retention=500) == 1    # beyond max_rows: the oldest goes
    assert [r["start"] for r in cov.intervals(0, 1e18)] == [20_000, 30_000]


def test_activity_totals_read_the_subsystems_counters(tmp_path):
    from probe.config import load_file
    from probe.subsystems.snmp import SnmpSubsystem

    conf = tmp_path / "c.yml"
    conf.write_text("subnets: [{cidr: 192.0.2.0/24}]\n")
    snmp = SnmpSubsystem(load_file(str(conf)), Context(store=Store("", memory=True)))
    dev = lambda *polls: SimpleNamespace(modules={f"m{i}": SimpleNamespace(polls=p) for i, p in enumerate(polls)})  # noqa: E731
    snmp.poller = SimpleNamespace(devices=lambda: [dev(4, 2), dev(3), dev()])
    assert snmp.activity() == Activity(polls=7)  # a device's poll once: its most polled module
    capture = SimpleNamespace(activity=lambda: Activity(frames=12345))
    other = SimpleNamespace(activity=Activity)
    assert activity_totals([snmp, capture, other]) == (7, 12345)


# -- numbers --------------------------------------------------------------------------------------------
def test_numbers_and_grouping_of_a_small_month(berlin):
    store = Store("", memory=True)
    now = [datetime(2026, 11, 2, 9, 0).timestamp()]
    ledger = Ledger(store, quiet_after=3600, clock=lambda: now[0])
    day = lambda d, h=9: datetime(2026, 11, d, h).timestamp()  # noqa: E731
    for d in (2, 5, 9):  # the same printer three times: one entry
        ledger.record(Finding("printer_supply_low", "warning", "printer", {"remaining_ratio": 0.04}, day(d), day(d),
                              "supply Black"))
        ledger.clear(Cleared("printer_supply_low", "printer", "supply Black", day(d, 12)))
    disk = ledger.record(Finding("storage_filling", "warning", "fs1", {"days_to_full": 9, "used_ratio": 0.8},
                                 day(10), day(10), "storage /srv"))
    ledger.record(Finding("port_scan", "critical", "10.0.0.9", {"distinct_dst_ports": 900}, day(28, 23),
                          day(28, 23)))
    now[0] = day(11)
    ledger.add_reported("printer_jam", "printer", "jams", "client", "alice", at=day(12))
    ledger.record(Finding("device_new", "info", "aa:bb", {}, datetime(2026, 10, 30).timestamp(),
                          datetime(2026, 10, 30).timestamp()))  # October's: not found this month
    Visits(store).add(start=day(14), minutes=30, technician="bob", mode="on_site", summary="freed space",
                      findings=[disk.id])
    Visits(store).add(start=day(20), minutes=20, technician="bob", mode="remote", summary="patching",
                      reason="planned")
    Coverage(store).record_span(day(1, 0), day(20), frames=42)
    m = rep.build(store, "2026-11", msp_name="M", client_name="C", now=datetime(2026, 12, 1, 1).timestamp())
    n = m.numbers
    assert (n["findings_found"], n["found_by_probe"], n["reported_by_client"], n["found_on_visit"]) == (6, 5, 1, 0)
    assert n["resolved"] == 3 and n["still_open"] == 4 and n["needs_decision"] == 1
    assert (n["visits_on_site"], n["remote_sessions"]) == (1, 1)
    assert n["median_resolve_hours"] == 3.0
    assert n["frames_seen"] == 42 and n["coverage_gaps"] == 1
    assert n["hours_covered"] == round((day(20) - day(1, 0)) / 3600, 1)
    printer = [en for en in m.entries if en.kind == "printer_supply_low"]
    assert len(printer) == 1 and len(printer[0].episodes) == 3
    assert printer[0].story[0].startswith("This happened 3 times this month, first on Monday 2 November")
    disk_entry = next(en for en in m.entries if en.kind == "storage_filling")
    assert "full in 9 days" in disk_entry.what
    assert any("bob came on site for it (30 minutes)" in s for s in disk_entry.story)
    assert m.entries[0].open  # open problems first
    html = rep.render(m)
    shown = dict(re.findall(r'data-number="([a-z0-9_]+)">([^<]*)<', html))
    assert set(shown) == {k for k, v in n.items() if v is not None or "trend_median" not in k}
    assert shown["trend_found_2026_11"] == "6" and shown["trend_found_2026_10"] == "1"
    assert shown["findings_found"] == "6" and shown["median_resolve_hours"] == "3"


def test_an_empty_month_says_nothing_was_found_and_what_was_watched(berlin):
    store = Store("", memory=True)
    Coverage(store).record_span(datetime(2026, 11, 1).timestamp(), datetime(2026, 12, 1).timestamp())
    m = rep.build(store, "2026-11", msp_name="M", client_name="C", now=datetime(2026, 12, 3).timestamp())
    html = rep.render(m)
    assert m.numbers["findings_found"] == 0 and m.numbers["coverage_gaps"] == 0
    assert "Nothing went wrong that the probe or anyone else noticed this month." in html
    assert "There was nothing to report this month" in html
    assert "without a gap" in html
    assert m.numbers["median_resolve_hours"] is None
    assert 'data-number="median_resolve_hours"' not in html  # no median made up from nothing


def test_many_findings_stay_bounded(berlin):
    store = Store("", memory=True)
    t = datetime(2026, 11, 3).timestamp()
    ledger = Ledger(store, quiet_after=60, clock=lambda: t)
    for i in range(3000):  # 300 devices, each scanning ten times
        ts = t + i * 600
        ledger.record(Finding("port_scan", "warning", f"10.0.{i % 300 // 250}.{i % 300 % 250}", {}, ts, ts))
    m = rep.build(store, "2026-11", msp_name="M", client_name="C", now=datetime(2026, 12, 2).timestamp())
    assert m.numbers["findings_found"] == 3000
    assert len(m.entries) == 300 and all(len(en.episodes) == 10 for en in m.entries)
    html = rep.render(m)
    assert html.count('<article class="entry') == rep.MAX_ENTRIES
    assert len(html) < 1_500_000


@pytest.mark.parametrize("monthly", [True, False])
def test_the_daemons_state_loop_keeps_coverage_and_writes_last_months_report(tmp_path, berlin, monkeypatch, monthly):
    """Daemon._flush_state alone, on a fake clock and a fake sleep (no daemon is started): each turn is a
    coverage heartbeat with the subsystems' totals, and on the 1st last month's report is written once."""
    import probe.daemon as daemon_mod
    from probe.daemon import Daemon
    from probe.health import ClockWatch

    now = [datetime(2026, 12, 1, 0, 5).timestamp()]
    turns = []

    async def fake_sleep(seconds):
        if len(turns) == 4:
            raise asyncio.CancelledError
        turns.append(seconds)
        now[0] += seconds

    monkeypatch.setattr(daemon_mod, "time", SimpleNamespace(time=lambda: now[0]))
    monkeypatch.setattr(daemon_mod, "asyncio", SimpleNamespace(sleep=fake_sleep))
    store = Store(str(tmp_path))
    Coverage(store).record_span(datetime(2026, 11, 20).timestamp(), datetime(2026, 11, 30).timestamp(),
                                source="live")
    frames = [0]

    def activity():
        frames[0] += 100
        return Activity(frames=frames[0])

    d = Daemon.__new__(Daemon)
    d.store, d.ledger, d.visits, d.coverage = store, Ledger(store, clock=lambda: now[0]), Visits(store), Coverage(store)
    d.subsystems = [SimpleNamespace(name="capture", activity=activity)]
    d.clock_watch = ClockWatch(wall=lambda: now[0], mono=lambda: now[0])  # the fake clocks agree: no jump
    d.config = SimpleNamespace(report=SimpleNamespace(monthly=monthly, msp_name="Acme IT", client_name="Dentist"))
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(d._flush_state())
    assert turns == [10, 10, 10, 10]
    live = [r for r in d.coverage.intervals(now[0] - 3600, now[0] + 1) if r["start"] >= rep.month_bounds("2026-12")[0]]
    assert len(live) == 1 and live[0]["end"] - live[0]["start"] == 40 and live[0]["frames"] == 500
    if monthly:
        assert os.listdir(tmp_path / "reports") == ["2026-11.html"]
        assert "Dentist: your network in November 2026" in (tmp_path / "reports" / "2026-11.html").read_text()
    else:
        assert not (tmp_path / "reports").exists()
    store.close()
