"""Visits and remote sessions: each tied to the findings it served or to its reason, saved at once or
refused with the reason, never changed afterwards, pruned with the ledger's retention."""
from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from probe.findings.ledger import Ledger, LedgerError
from probe.findings.model import Finding
from probe.findings.visits import Visits
from probe.state.store import Store, StoreError
from tests.conftest import REPO_ROOT


def test_a_visit_for_findings_is_listed_with_them(store):
    led = Ledger(store)
    a = led.record(Finding("printer_supply_low", "warning", "printer-2f", {}, 100.0, 100.0, "black toner"))
    b = led.record(Finding("disk_full_soon", "warning", "nas-1", {}, 100.0, 100.0, "/volume1"))
    v = Visits(store)
    got = v.add(start=5000.0, minutes=45, technician="alice", mode="on_site", summary="toner and disk",
                findings=[b.id, a.id, a.id])
    assert got == {"id": 1, "start": 5000.0, "minutes": 45, "technician": "alice", "mode": "on_site",
                   "reason": "finding", "summary": "toner and disk", "findings": sorted([a.id, b.id])}
    planned = v.add(start=9000.0, minutes=20, technician="bob", mode="remote", summary="patching",
                    reason="planned")
    assert planned["id"] == 2 and planned["findings"] == [] and planned["reason"] == "planned"
    assert [x["id"] for x in v.listing()] == [1, 2]
    assert [x["id"] for x in v.listing(since=6000.0)] == [2]
    assert [x["id"] for x in v.listing(until=6000.0)] == [1]
    assert [x["id"] for x in v.for_finding(a.id)] == [1]
    assert v.for_finding(99) == []


@pytest.mark.parametrize("kwargs, message", [
    (dict(findings=[], reason=None), "a visit needs a reason"),
    (dict(findings=[], reason="finding"), "names the finding ids it served"),
    (dict(findings=[], reason="coffee"), "a visit needs a reason"),
    (dict(findings=[77], reason=None), "no finding with id 77"),
    (dict(reason="planned", mode="by_pigeon"), "mode must be one of on_site, remote"),
    (dict(reason="planned", minutes=0), "duration must be more than 0"),
    (dict(reason="planned", minutes=25 * 60), "at most 24 hours"),
    (dict(reason="planned", technician="  "), "technician's name"),
    (dict(reason="planned", summary=""), "summary of what was done"),
])
def test_a_bad_visit_is_refused_with_the_reason_and_nothing_is_saved(store, kwargs, message):
    Ledger(store)
    v = Visits(store)
    args = dict(start=1.0, minutes=30, technician="alice", mode="remote", summary="x") | kwargs
    with pytest.raises(LedgerError, match=message):
        v.add(**args)
    assert v.listing() == []


def test_a_full_disk_refuses_the_visit_and_keeps_nothing_half_written(store):
    led = Ledger(store)
    ep = led.record(Finding("port_scan", "warning", "10.0.0.5"))
    v = Visits(store)
    v.add(start=1.0, minutes=10, technician="alice", mode="remote", summary="first", reason="planned")
    store._db.execute("PRAGMA max_page_count = 1")  # every new page fails as on a full disk (SQLITE_FULL)
    try:
        with pytest.raises(StoreError, match="nothing was changed"):
            v.add(start=2.0, minutes=10, technician="alice", mode="remote", summary="x" * 20000, findings=[ep.id])
    finally:
        store._db.execute("PRAGMA max_page_count = 1073741823")
    assert [x["summary"] for x in v.listing()] == ["first"]
    assert store.query("SELECT COUNT(*) FROM visit_findings")[0][0] == 0
    again = v.add(start=2.0, minutes=10, technician="alice", mode="remote", summary="again", findings=[ep.id])
    assert again["id"] == 2 and again["findings"] == [ep.id]


_WRITER = """
import sys
from probe.findings.visits import Visits
from probe.state.store import Store
s = Store(sys.argv[1])
v = Visits(s)
for i in range(int(sys.argv[2])):
    v.add(start=float(i), minutes=5, technician="proc", mode="remote", summary=f"proc {i}", reason="planned")
s.close()
"""


def test_ids_stay_unique_and_each_visit_keeps_its_findings_with_threads_and_a_second_process(tmp_path):
    s = Store(str(tmp_path))
    led = Ledger(s)
    eps = [led.record(Finding("port_scan", "warning", f"10.0.0.{i}")) for i in range(4)]
    v = Visits(s)
    child = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path), "40"], cwd=REPO_ROOT)
    errors = []

    def worker(n):
        try:
            for i in range(20):
                v.add(start=1000.0 + i, minutes=5, technician=f"t{n}", mode="on_site", summary=f"t{n} {i}",
                      findings=[eps[n].id])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert child.wait(timeout=60) == 0
    assert not errors
    rows = v.listing(limit=10_000)
    assert len(rows) == 120 and len({r["id"] for r in rows}) == 120
    for r in rows:  # each visit is tied to its own thread's finding, never another's
        if r["technician"] == "proc":
            assert r["findings"] == []
        else:
            assert r["findings"] == [eps[int(r["technician"][1:])].id]
    s.close()


def test_visits_past_the_retention_go_with_their_links(store):
    led = Ledger(store)
    ep = led.record(Finding("port_scan", "warning", "10.0.0.5"))
    v = Visits(store)
    v.add(start=100.0, minutes=5, technician="a", mode="remote", summary="old", findings=[ep.id])
    v.add(start=10_000.0, minutes=5, technician="a", mode="remote", summary="new", reason="planned")
    assert v.prune(now=10_100.0, retention=5000.0) == 1
    assert [x["summary"] for x in v.listing()] == ["new"]
    assert store.query("SELECT COUNT(*) FROM visit_findings")[0][0] == 0
    assert v.prune(now=10_100.0, retention=5000.0) == 0
