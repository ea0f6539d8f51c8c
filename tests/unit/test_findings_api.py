"""The ledger's JSON HTTP API, served for real on loopback: the same operations as the command line,
with status codes that say what went wrong and bad requests that change nothing."""
from __future__ import annotations

import pytest

from probe.findings.ledger import Ledger
from probe.findings.model import Finding
from probe.findings.visits import Visits
from probe.state.store import Store
from tests.helpers import Clock, ServedApi


@pytest.fixture
def served(tmp_path):
    store = Store(str(tmp_path))
    clock = Clock()
    ledger = Ledger(store, clock=clock)
    visits = Visits(store, clock=clock)
    ep = ledger.record(Finding("port_scan", "warning", "10.0.0.5", {"distinct_dst_ports": 120}, clock.t, clock.t))
    with ServedApi(ledger, visits, prefix="/probe") as api:
        api.ledger, api.visits, api.store, api.clock, api.scan = ledger, visits, store, clock, ep.id
        yield api
    store.close()


def test_acknowledge_resolve_and_read_back(served):
    sid = served.scan
    status, doc = served.call("POST", f"/api/findings/{sid}/ack", {"note": "looking", "by": "alice"})
    assert status == 200 and doc["state"] == "acknowledged" and doc["title"] == "Port scan"
    status, doc = served.call("POST", f"/api/findings/{sid}/notes", {"note": "it is the backup job", "by": "alice"})
    assert status == 201 and doc["events"][-1]["note"] == "it is the backup job"
    status, doc = served.call("POST", f"/api/findings/{sid}/resolve", {"note": "job moved to 2 am", "by": "bob"})
    assert status == 200 and doc["state"] == "resolved"
    assert [(e["action"], e["by"]) for e in served.ledger.show(sid)["events"]] == [
        ("opened", "probe"), ("acknowledged", "alice"), ("note", "alice"), ("resolved", "bob")]
    assert served.call("GET", "/api/findings")[1] == {"findings": []}   # active: none left
    status, doc = served.call("GET", "/api/findings?state=resolved")
    assert [(f["id"], f["title"]) for f in doc["findings"]] == [(sid, "Port scan")]
    status, doc = served.call("GET", f"/api/findings/{sid}")
    assert status == 200 and doc["visits"] == []


def test_a_reported_problem_and_a_visit_for_it(served):
    status, rep = served.call("POST", "/api/findings", {"kind": "printer_jam", "device": "printer-2f",
                                                         "note": "jams daily", "reported_by": "client", "by": "bob"})
    assert status == 201 and rep["source"] == "client" and rep["state"] == "open"
    status, v = served.call("POST", "/api/visits", {"start": 999_000.0, "minutes": 40, "technician": "alice",
                                                     "mode": "on_site", "summary": "cleared the jam",
                                                     "findings": [rep["id"], served.scan]})
    assert status == 201 and v["findings"] == sorted([rep["id"], served.scan]) and v["reason"] == "finding"
    status, v2 = served.call("POST", "/api/visits", {"minutes": 15, "technician": "bob", "mode": "remote",
                                                      "summary": "patching", "reason": "planned"})
    assert status == 201 and v2["start"] == served.clock.t - 15 * 60   # default: it just ended
    status, doc = served.call("GET", "/api/visits?since=0")
    assert [x["id"] for x in doc["visits"]] == [v["id"], v2["id"]]
    assert [x["id"] for x in served.call("GET", f"/api/findings/{rep['id']}")[1]["visits"]] == [v["id"]]


@pytest.mark.parametrize("method, path, body, status, message", [
    ("POST", "/api/findings/{scan}/ack", {"by": "alice"}, 400, "note: some text is needed"),
    ("POST", "/api/findings/{scan}/ack", {"note": "x"}, 400, "by: some text is needed"),
    ("POST", "/api/findings/{scan}/frobnicate", {"note": "x", "by": "a"}, 404, "unknown action 'frobnicate'"),
    ("POST", "/api/findings/999/ack", {"note": "x", "by": "a"}, 404, "no finding with id 999"),
    ("GET", "/api/findings/abc", None, 404, "no finding with id 'abc'"),
    ("GET", "/api/findings?state=closed", None, 400, "unknown state 'closed'"),
    ("GET", "/api/findings?since=yesterday", None, 400, "since: expected a number"),
    ("POST", "/api/findings", {"kind": "x", "device": "d", "note": "n", "reported_by": "boss", "by": "a"}, 400,
     "reported_by must be one of client, visit"),
    ("POST", "/api/findings", {"kind": "x", "device": "d", "note": "n", "reported_by": "client", "by": "a",
                               "colour": "red"}, 400, "unknown field 'colour'"),
    ("POST", "/api/visits", {"minutes": "ten", "technician": "a", "mode": "remote", "summary": "s",
                             "reason": "planned"}, 400, "minutes: expected a number"),
    ("POST", "/api/visits", {"minutes": 10, "technician": "a", "mode": "remote", "summary": "s",
                             "findings": ["1"]}, 400, "findings: expected a list of finding ids"),
    ("POST", "/api/visits", {"minutes": 10, "technician": "a", "mode": "remote", "summary": "s",
                             "findings": [4242]}, 404, "no finding with id 4242"),
    ("POST", "/api/findings/{scan}/ack", b"{not json", 400, "request body is not JSON"),
    ("POST", "/api/findings/{scan}/ack", b"[1, 2]", 400, "expected a JSON object"),
])
def test_bad_requests_say_what_is_wrong_and_change_nothing(served, method, path, body, status, message):
    before = served.store.query("SELECT COUNT(*) FROM finding_events")[0][0]
    got, doc = served.call(method, path.format(scan=served.scan), body)
    assert got == status and message in doc["error"], doc
    assert served.store.query("SELECT COUNT(*) FROM finding_events")[0][0] == before
    assert served.visits.listing() == []


def test_a_second_resolve_is_a_conflict(served):
    assert served.call("POST", f"/api/findings/{served.scan}/dismiss", {"note": "audit", "by": "a"})[0] == 200
    status, doc = served.call("POST", f"/api/findings/{served.scan}/resolve", {"note": "x", "by": "a"})
    assert status == 409 and "is dismissed" in doc["error"]


def test_a_form_posted_from_another_site_is_refused(served):
    """A cross-site HTML form can send form-encoded or text bodies, never application/json."""
    for ctype in ("application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x"):
        status, doc = served.call("POST", f"/api/findings/{served.scan}/dismiss", b'{"note": "x", "by": "a"}',
                                  content_type=ctype)
        assert status == 415 and "Content-Type: application/json" in doc["error"]
    assert served.ledger.show(served.scan)["state"] == "open"


def test_a_body_too_large_is_refused(served):
    status, doc = served.call("POST", f"/api/findings/{served.scan}/ack",
                              {"note": "x" * 70_000, "by": "a"})
    assert status == 413 and "too large" in doc["error"]


def test_a_full_disk_answers_503_and_changes_nothing(served):
    served.store._db.execute("PRAGMA max_page_count = 1")
    try:
        status, doc = served.call("POST", f"/api/findings/{served.scan}/ack", {"note": "y" * 30_000, "by": "a"})
    finally:
        served.store._db.execute("PRAGMA max_page_count = 1073741823")
    assert status == 503 and "nothing was changed" in doc["error"]
    assert served.ledger.show(served.scan)["state"] == "open"


def test_grafana_annotations_in_milliseconds(served):
    served.clock.t += 600
    served.call("POST", f"/api/findings/{served.scan}/resolve", {"note": "done", "by": "a"})
    status, doc = served.call("GET", f"/api/annotations?from={(served.clock.t - 3600) * 1000:.0f}"
                                     f"&to={served.clock.t * 1000:.0f}")
    assert status == 200
    assert doc == [{"time": 1_000_000_000, "timeEnd": 1_000_600_000, "title": "port_scan on 10.0.0.5",
                    "text": "warning, resolved", "tags": ["port_scan", "warning", "resolved"], "id": served.scan}]
    assert served.call("GET", "/api/annotations?from=0&to=1000")[1] == []
