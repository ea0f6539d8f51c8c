"""The technician page in a real browser (headless Chromium) against the real API on loopback: a person
reads the findings and acts on them, and the ledger holds exactly what they did."""
from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from probe.findings.ledger import Ledger
from probe.findings.model import Finding
from probe.findings.visits import Visits
from probe.state.store import Store
from tests.browser import browser, console_errors  # noqa: F401 - the fixture
from tests.helpers import ServedApi


class _Sweep:
    """A subsystem as the status page sees it, watching nested values (as the sweep's last_sweep)."""
    name = "sweep"
    status = SimpleNamespace(health=SimpleNamespace(value="ok"), reason="", since=0.0)

    def describe(self):
        return {"subnets": ["10.0.0.0/24"], "interval_seconds": 600.0,
                "last_sweep": {"rx_dropped": 0, "devices": 12, "duration_seconds": 3.5}}


@pytest.fixture
def page(tmp_path, browser):
    from selenium.webdriver.support.ui import WebDriverWait

    store = Store(str(tmp_path))
    ledger = Ledger(store)
    visits = Visits(store)
    now = time.time()
    scan = ledger.record(Finding("port_scan", "critical", "10.0.0.5",
                                 {"distinct_dst_ports": 994, "scan_type": "syn", "mac": "00:25:b3:bf:91:ee",
                                  "windows": 3}, now - 3600, now - 60))
    toner = ledger.record(Finding("printer_supply_low", "warning", "printer-2f",
                                  {"remaining_ratio": 0.04, "summary": "printer-2f black toner: 4% left"},
                                  now - 7200, now - 120, "black toner"))
    api = ServedApi(ledger, visits, prefix="")
    api.http._subsystems = lambda: [_Sweep()]
    with api:
        browser.get(api.url + "/")
        wait = WebDriverWait(browser, 15)
        wait.until(lambda d: d.execute_script("return document.body.dataset.loaded"))
        yield SimpleNamespace(d=browser, wait=wait, ledger=ledger, visits=visits, scan=scan.id, toner=toner.id,
                              url=api.url)
    store.close()


def _reloaded(p, before=None):
    """Wait for the page's next refresh after an action."""
    p.wait.until(lambda d: d.execute_script("return document.body.dataset.loaded") != before)


def _act(p, finding_id, action, note, by="alice"):
    from selenium.webdriver.common.by import By

    card = p.d.find_element(By.ID, f"finding-{finding_id}")
    form = card.find_element(By.CSS_SELECTOR, "form.act")
    for name, value in (("note", note), ("by", by)):
        field = form.find_element(By.NAME, name)
        field.clear()
        if value:
            field.send_keys(value)
    before = p.d.execute_script("return document.body.dataset.loaded")
    form.find_element(By.CSS_SELECTOR, f"button[data-action={action}]").click()
    return before, form


def test_findings_read_in_words_with_their_evidence(page):
    from selenium.webdriver.common.by import By

    text = page.d.find_element(By.TAG_NAME, "body").text
    card = page.d.find_element(By.ID, f"finding-{page.scan}")
    assert "Port scan — 10.0.0.5" in card.text and "critical" in card.text.lower()
    terms = {dt.text: dd.text for dt, dd in zip(card.find_elements(By.CSS_SELECTOR, "dl.evidence dt"),
                                                card.find_elements(By.CSS_SELECTOR, "dl.evidence dd"))}
    assert terms["distinct destination ports"] == "994" and terms["scan type"] == "syn"
    toner = page.d.find_element(By.ID, f"finding-{page.toner}")
    assert "Printer supply low — printer-2f (black toner)" in toner.text
    assert "printer-2f black toner: 4% left" in toner.text and "4.0 %" in toner.text
    assert "Needs attention (2)" in text
    watching = page.d.find_element(By.ID, "subsystems").text
    assert "rx dropped 0, devices 12, duration 3.5 s" in watching and "10.0.0.0/24" in watching
    for repr_mark in ("{'", "':", "[]", "None"):          # no Python reprs anywhere a person reads
        assert repr_mark not in text, repr_mark
    assert console_errors(page.d) == []


def test_acknowledge_then_resolve_with_notes(page):
    from selenium.webdriver.common.by import By

    before, _ = _act(page, page.scan, "ack", "checking with the client")
    _reloaded(page, before)
    card = page.d.find_element(By.ID, f"finding-{page.scan}")
    assert card.get_attribute("data-state") == "acknowledged"
    assert [b.get_attribute("data-action") for b in card.find_elements(By.CSS_SELECTOR, "button")] == ["resolve", "dismiss"]
    before, _ = _act(page, page.scan, "resolve", "the client's IT audit; agreed a schedule")
    _reloaded(page, before)
    closed = page.d.find_element(By.ID, "closed")
    assert closed.find_element(By.ID, f"finding-{page.scan}").get_attribute("data-state") == "resolved"
    assert [(e["action"], e["by"], e["note"]) for e in page.ledger.show(page.scan)["events"]] == [
        ("opened", "probe", ""), ("acknowledged", "alice", "checking with the client"),
        ("resolved", "alice", "the client's IT audit; agreed a schedule")]
    assert console_errors(page.d) == []


def test_an_action_without_a_note_or_on_a_stale_page_says_why_and_changes_nothing(page):
    from selenium.webdriver.common.by import By

    _, form = _act(page, page.toner, "resolve", "")
    assert form.find_element(By.CSS_SELECTOR, ".error").text == "write a note first"
    # meanwhile another technician dismisses it from the command line; this page has not refreshed
    page.ledger.transition(page.toner, "dismissed", "the client buys its own toner", "bob")
    _, form = _act(page, page.toner, "ack", "ordering toner")
    page.wait.until(lambda d: form.find_element(By.CSS_SELECTOR, ".error").text)
    assert "is dismissed: it cannot be acknowledged" in form.find_element(By.CSS_SELECTOR, ".error").text
    assert [e["by"] for e in page.ledger.show(page.toner)["events"]] == ["probe", "bob"]
    assert [m for m in console_errors(page.d) if "409" not in m] == []  # the refused POST itself is logged


def test_record_a_reported_problem_and_a_visit(page):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    form = page.d.find_element(By.ID, "reported-form")
    form.find_element(By.NAME, "kind").send_keys("printer jam")
    form.find_element(By.NAME, "device").send_keys("printer-2f")
    Select(form.find_element(By.NAME, "reported_by")).select_by_value("client")
    form.find_element(By.NAME, "note").send_keys("jams every morning")
    form.find_element(By.NAME, "by").send_keys("carol")
    before = page.d.execute_script("return document.body.dataset.loaded")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _reloaded(page, before)
    reported = [r for r in page.ledger.listing() if r["source"] == "client"]
    assert [(r["kind"], r["device"], r["events"][0]["by"]) for r in reported] == [("printer_jam", "printer-2f", "carol")]
    card = page.d.find_element(By.ID, f"finding-{reported[0]['id']}")
    assert "reported by the client" in card.text and "jams every morning" in card.text

    vf = page.d.find_element(By.ID, "visit-form")
    assert vf.find_element(By.NAME, "technician").get_attribute("value") == "carol"  # remembered
    minutes = vf.find_element(By.NAME, "minutes")
    minutes.clear()
    minutes.send_keys("45")
    vf.find_element(By.NAME, "findings").send_keys(f"{reported[0]['id']}, {page.toner}")
    vf.find_element(By.NAME, "summary").send_keys("cleaned the rollers, replaced the toner")
    before = page.d.execute_script("return document.body.dataset.loaded")
    vf.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _reloaded(page, before)
    [v] = page.visits.listing()
    assert (v["technician"], v["minutes"], v["mode"], v["findings"]) == (
        "carol", 45.0, "on_site", sorted([reported[0]["id"], page.toner]))
    assert abs(v["start"] - (time.time() - 30 * 60)) < 300  # the form's default: half an hour ago
    row = page.d.find_element(By.CSS_SELECTOR, f"#visits-table tr[data-visit='{v['id']}']")
    assert "cleaned the rollers" in row.text and f"#{page.toner}" in row.text and "on site" in row.text
    # a bad id is refused with the reason, and nothing is recorded
    vf.find_element(By.NAME, "findings").send_keys("4242")
    vf.find_element(By.NAME, "summary").send_keys("x")
    vf.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    page.wait.until(lambda d: vf.find_element(By.CSS_SELECTOR, ".error").text)
    assert "no finding with id 4242" in vf.find_element(By.CSS_SELECTOR, ".error").text
    assert len(page.visits.listing()) == 1
