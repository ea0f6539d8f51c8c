"""The monthly client report: one self-contained HTML page a small-business owner reads in five minutes.

    model = build(store, "2026-11", names=cfg.report, now=time.time())
    html = render(model)

`build` reads the ledger, the visits, the coverage record and the inventory of one local month and
computes every number the page shows; `render` only lays them out. Each headline number sits in an
element with `data-number="NAME"` (the names are `model.numbers`' keys), so a test can recompute every
one of them from the database on its own. Charts are inline SVG; the page has no script, and loads no
font, image or stylesheet, so it reads the same offline, printed or as a PDF.

Nothing from the configuration reaches the page except the two names in `report:` (no community, no
key, no address of the probe). The evidence shown in the folded technical detail is the ledger's,
which never holds a credential.

Bounded: repeated episodes of one kind on one device are one entry ("happened 12 times"), at most
MAX_ENTRIES entries are described in full, the rest listed in one line each, and each entry's event
list is capped.
"""
from __future__ import annotations

import asyncio
import html
import logging
import json
import os
import sqlite3
import statistics
import time
from dataclasses import dataclass, field
from datetime import datetime

from probe.exposition.report_words import CATEGORIES, category, describe
from probe.files import write_atomically
from probe.findings.ledger import STATES, Ledger
from probe.findings.visits import Visits
from probe.state.coverage import Coverage, covered, gaps
from probe.state.store import Store

_log = logging.getLogger(__name__)

MAX_ENTRIES = 40        # problems described in full; the rest get one line each
MAX_LISTED = 500        # ... and at most this many lines
MAX_EVENTS = 30         # events shown per problem in its technical detail
MAX_FINDINGS = 20_000   # episodes read for one month at most
TREND_MONTHS = 6        # months in the trend charts (this one and the five before)
MIN_GAP = 5 * 60.0      # an uncovered stretch shorter than this is not a gap worth showing
# open problems whose fix costs money or needs the owner's yes
DECISION_KINDS = ("storage_filling", "ups_runtime_short", "ups_battery_replace", "ups_battery_low",
                  "printer_supply_low")


# -- months -------------------------------------------------------------------------------------------
def parse_month(text: str) -> tuple[int, int]:
    try:
        d = datetime.strptime(text.strip(), "%Y-%m")
    except ValueError:
        raise ValueError(f"--month: {text!r} is not a month (expected YYYY-MM, e.g. 2026-11)") from None
    return d.year, d.month


def month_bounds(month: str) -> tuple[float, float]:
    """[start, end) of a local calendar month, as seconds since the epoch (DST-aware: local midnight)."""
    y, m = parse_month(month)
    start = datetime(y, m, 1)
    end = datetime(y + (m == 12), m % 12 + 1, 1)
    return start.timestamp(), end.timestamp()


def month_of(ts: float) -> str:
    return time.strftime("%Y-%m", time.localtime(ts))


def previous_month(month: str, back: int = 1) -> str:
    y, m = parse_month(month)
    i = y * 12 + (m - 1) - back
    return f"{i // 12:04d}-{i % 12 + 1:02d}"


def report_due(now: float, reports_dir: str, first_watched: float | None) -> str | None:
    """The month whose report the daemon should write now, or None: the previous local month, once
    (its file is not there yet), and only if the probe was watching before that month ended
    (`first_watched`: the earliest coverage record), so a new install writes no empty report of a
    month it never saw. Checked hourly, it is written on the 1st, or when the daemon next runs."""
    month = previous_month(month_of(now))
    if first_watched is None or first_watched >= month_bounds(month)[1]:
        return None
    return None if os.path.exists(report_path(reports_dir, month)) else month


def report_path(reports_dir: str, month: str) -> str:
    return os.path.join(reports_dir, f"{month}.html")


# -- the model ----------------------------------------------------------------------------------------
@dataclass
class Entry:
    """One problem as the report tells it: repeated episodes of one kind on one device together."""
    key: tuple
    title: str
    what: str
    why: str
    category: str
    decision: str
    device: str
    kind: str
    source: str
    episodes: list = field(default_factory=list)   # the ledger's dicts, oldest first
    visits: list = field(default_factory=list)
    story: list = field(default_factory=list)      # sentences: how early, what was done

    @property
    def open(self) -> bool:
        return any(e["state"] in ("open", "acknowledged") for e in self.episodes)

    @property
    def anchor(self) -> str:
        return f"f{self.episodes[0]['id']}"


@dataclass
class Model:
    month: str
    start: float
    end: float
    msp_name: str
    client_name: str
    generated: float
    numbers: dict           # name -> value, every one shown with data-number
    entries: list           # Entry, most important first
    visits: list
    coverage: list          # (start, end, sources) stretches within the month
    gaps: list              # (start, end)
    replays: list           # coverage intervals from replayed captures
    devices_by_type: dict
    trend: list             # per month: {"month", "by_category": {cat: n}, "median_resolve_hours"}
    finding_ids: dict       # finding id -> entry anchor (visits link to them)


def _names(store: Store) -> dict[str, str]:
    """Device key, MAC and IP -> the name the inventory shows it by."""
    from probe.state.inventory import Device

    out: dict[str, str] = {}
    try:
        rows = store.query("SELECT key, mac, ip, doc FROM inventory_device")
    except sqlite3.OperationalError:  # no inventory yet
        return out
    for key, mac, ip, doc in rows:
        try:
            label = Device.from_dict(json.loads(doc)).label
        except (ValueError, KeyError, TypeError):
            continue
        for k in (key, mac, ip):
            if k:
                out.setdefault(k, label)
    return out


def _devices_by_type(store: Store, start: float, end: float) -> dict[str, int]:
    try:
        rows = store.query("SELECT type, COUNT(*) FROM inventory_device WHERE first_seen < ? AND last_seen >= ? "
                           "GROUP BY type ORDER BY COUNT(*) DESC, type", (end, start))
    except sqlite3.OperationalError:
        return {}
    return {t: n for t, n in rows}


def _median_hours(seconds: list[float]) -> float | None:
    return round(statistics.median(seconds) / 3600.0, 1) if seconds else None


def _resolved_in(eps: list[dict], start: float, end: float) -> list[dict]:
    return [e for e in eps if e["state"] == "resolved" and e["resolved_at"] is not None
            and start <= e["resolved_at"] < end]


def _month_findings(ledger: Ledger, start: float, end: float) -> list[dict]:
    rows = ledger.listing(states=STATES, since=start, until=end - 1e-6, limit=MAX_FINDINGS)
    return sorted(rows, key=lambda e: (e["first_seen"], e["id"]))


def build(store: Store, month: str, *, msp_name: str, client_name: str, now: float | None = None) -> Model:
    now = time.time() if now is None else now
    start, end = month_bounds(month)
    ledger = Ledger(store)
    visits = Visits(store)
    coverage = Coverage(store)
    names = _names(store)

    eps = _month_findings(ledger, start, end)
    found = [e for e in eps if start <= e["first_seen"] < end]
    still_open = [e for e in eps if e["state"] in ("open", "acknowledged")]
    resolved = _resolved_in(eps, start, end)
    month_visits = visits.listing(since=start, until=end - 1e-6)

    # coverage: as far as the month has gone (a report of the running month does not call the future a gap)
    upto = min(end, max(start, now))
    ivs = coverage.intervals(start, end)
    stretches = covered(ivs, start, upto)
    holes = gaps(stretches, start, upto, MIN_GAP)
    covered_s = sum(e - s for s, e, _ in stretches)
    in_month = [i for i in ivs if start <= i["start"] < end]

    numbers = {
        "findings_found": len(found),
        "found_by_probe": sum(e["source"] == "probe" for e in found),
        "reported_by_client": sum(e["source"] == "client" for e in found),
        "found_on_visit": sum(e["source"] == "visit" for e in found),
        "resolved": len(resolved),
        "dismissed": sum(e["state"] == "dismissed" for e in found),
        "still_open": len(still_open),
        "needs_decision": sum(e["kind"] in DECISION_KINDS for e in still_open),
        "visits_on_site": sum(v["mode"] == "on_site" for v in month_visits),
        "remote_sessions": sum(v["mode"] == "remote" for v in month_visits),
        "hours_covered": round(covered_s / 3600.0, 1),
        "hours_in_month": round((upto - start) / 3600.0, 1),
        "coverage_gaps": len(holes),
        "snmp_polls": sum(i["polls"] for i in in_month),
        "frames_seen": sum(i["frames"] for i in in_month),
        "devices_watched": 0,
        "median_resolve_hours": _median_hours([e["resolved_at"] - e["first_seen"] for e in resolved]),
    }
    by_type = _devices_by_type(store, start, end)
    numbers["devices_watched"] = sum(by_type.values())

    entries = _entries(eps, names, visits, start, end)
    finding_ids = {e["id"]: en.anchor for en in entries for e in en.episodes}

    trend = []
    for back in range(TREND_MONTHS - 1, -1, -1):
        m = previous_month(month, back) if back else month
        ms, me = month_bounds(m)
        meps = eps if m == month else _month_findings(ledger, ms, me)
        cats = {c: 0 for c in CATEGORIES}
        for e in meps:
            if ms <= e["first_seen"] < me:
                cats[category(e["kind"], e["source"])] += 1
        res = _resolved_in(meps, ms, me)
        trend.append({"month": m, "by_category": cats,
                      "median_resolve_hours": _median_hours([e["resolved_at"] - e["first_seen"] for e in res])})
    for t in trend:  # the charts' figures are numbers like the others: data-number, recomputable
        key = t["month"].replace("-", "_")
        numbers[f"trend_found_{key}"] = sum(t["by_category"].values())
        numbers[f"trend_median_resolve_hours_{key}"] = t["median_resolve_hours"]

    return Model(month=month, start=start, end=end, msp_name=msp_name, client_name=client_name, generated=now,
                 numbers=numbers, entries=entries, visits=month_visits, coverage=stretches, gaps=holes,
                 replays=[i for i in ivs if i["source"] == "replay"], devices_by_type=by_type, trend=trend,
                 finding_ids=finding_ids)


_SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


def _entries(eps: list[dict], names: dict, visits: Visits, start: float, end: float) -> list[Entry]:
    groups: dict[tuple, Entry] = {}
    for e in eps:
        key = (e["kind"], e["device"], e["subject"], e["source"])  # the ledger's episode key: the same problem again
        dev = names.get(e["device"], e["device"])
        en = groups.get(key)
        if en is None:
            w = describe(e, dev)
            en = groups[key] = Entry(key, w.title, w.what, w.why, w.category, w.decision, dev, e["kind"],
                                     e["source"])
        else:  # the latest episode's evidence says it best ("latest" merges: the current figure)
            w = describe(e, dev)
            en.what = w.what
        en.episodes.append(e)
    for en in groups.values():
        seen_visits = {}
        for e in en.episodes:
            for v in visits.for_finding(e["id"]):
                seen_visits[v["id"]] = v
        en.visits = sorted(seen_visits.values(), key=lambda v: v["start"])
        en.story = _story(en)

    def importance(en: Entry):
        worst = min(_SEVERITY_ORDER.get(e["severity"], 3) for e in en.episodes)
        return (not en.open, en.category == "devices coming and going", worst, -len(en.episodes),
                en.episodes[0]["first_seen"])
    return sorted(groups.values(), key=importance)


def _day(ts: float) -> str:
    """"Tuesday 3 November": the month too, as a problem may have begun the month before."""
    t = time.localtime(ts)
    return f"{time.strftime('%A', t)} {t.tm_mday} {time.strftime('%B', t)}"


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return "under a minute"
    if seconds < 3600:
        return f"{max(1, round(seconds / 60))} minutes"
    if seconds < 2 * 86400:
        h = round(seconds / 3600)
        return "1 hour" if h == 1 else f"{h} hours"
    return f"{round(seconds / 86400)} days"


def _story(en: Entry) -> list[str]:
    """How early it was found, and what was done, in sentences from the events and notes."""
    first = en.episodes[0]
    out = []
    n = len(en.episodes)
    if n > 1:
        out.append(f"This happened {n} times this month, first on {_day(first['first_seen'])}.")
    if en.source == "probe":
        out.append(f"The probe found it on {_day(first['first_seen'])} at "
                   f"{time.strftime('%H:%M', time.localtime(first['first_seen']))}, before anyone reported it.")
    people = [(ev, e) for e in en.episodes for ev in e["events"] if ev["by"] != "probe"]
    acted = [(ev, e) for ev, e in people if ev["action"] in ("acknowledged", "resolved", "dismissed")]
    if acted and en.source == "probe":
        ev, e = acted[0]
        out.append(f"A technician took it up {_duration(ev['at'] - e['first_seen'])} after it was found.")
    for ev, _e in people[:6]:
        note = ev["note"].strip().rstrip(".")
        if not note or ev["action"] == "opened":
            continue
        verb = {"acknowledged": "took it on", "resolved": "fixed it", "dismissed": "checked it and found it "
                "expected", "note": "noted"}.get(ev["action"], ev["action"])
        out.append(f"On {_day(ev['at'])}, {ev['by']} {verb}: {note}.")
    for v in en.visits[:3]:
        how = "came on site" if v["mode"] == "on_site" else "connected remotely"
        out.append(f"On {_day(v['start'])} {v['technician']} {how} for it ({round(v['minutes'])} minutes).")
    last = en.episodes[-1]
    if last["state"] == "resolved":
        by_probe = any(ev["action"] == "ended" for ev in last["events"]) and not any(
            ev["action"] == "resolved" for ev in last["events"])
        out.append("It stopped on its own, as the probe saw." if by_probe else "It is resolved.")
    elif last["state"] == "dismissed":
        out.append("The technician checked it: nothing to fix.")
    else:
        out.append("It is still open" + (f": it needs your decision on {en.decision}." if en.decision else "."))
    return out


# -- rendering ----------------------------------------------------------------------------------------
_CSS = """
body{font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1d2329;
margin:0;background:#fff}main{max-width:1100px;margin:0 auto;padding:18px 28px}
header{display:flex;justify-content:space-between;align-items:baseline;border-bottom:3px solid #24527a;
padding-bottom:6px}h1{font-size:26px;margin:0}h2{font-size:20px;margin:26px 0 8px;color:#24527a}
h3{font-size:17px;margin:0 0 4px}.muted{color:#5b6670}.cards{display:grid;grid-template-columns:repeat(4,1fr);
gap:12px;margin:14px 0}.card{border:1px solid #d5dde4;border-radius:8px;padding:10px 12px;background:#f6f9fb}
.card b{display:block;font-size:28px;color:#24527a}.card.warn b{color:#a3471b}.summary p{margin:6px 0}
.decide{border-left:5px solid #c8691c;background:#fff5ec;padding:8px 14px;margin:10px 0}
.decide li{margin:3px 0}.entry{border:1px solid #d5dde4;border-radius:8px;padding:12px 14px;margin:10px 0}
.entry.open{border-left:5px solid #c8691c}.tag{font-size:12px;padding:1px 7px;border-radius:9px;
background:#e5ecf2;margin-left:6px;white-space:nowrap}details{margin-top:6px}summary{cursor:pointer;color:#24527a}
table{border-collapse:collapse;width:100%;font-size:14px}td,th{border-bottom:1px solid #e2e7ec;padding:4px 6px;
text-align:left;vertical-align:top}code{font-size:13px;word-break:break-all}.charts{display:grid;
grid-template-columns:1fr 1fr;gap:18px}svg text{font:12px system-ui,Arial,sans-serif;fill:#1d2329}
@media print{main{padding:0}.entry,.card{break-inside:avoid}}
"""
_COLOURS = ("#24527a", "#3f8f6b", "#c8691c", "#7a4fa0", "#8c9aa6", "#b23b3b")


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _n(model: Model, name: str, fmt=None) -> str:
    v = model.numbers[name]
    shown = "not enough data" if v is None else (fmt(v) if fmt else f"{v:,}" if isinstance(v, int) else f"{v:g}")
    return f'<span data-number="{_e(name)}">{_e(shown)}</span>'


def _plural(n: int, one: str, many: str | None = None) -> str:
    return one if n == 1 else (many or one + "s")


def _month_name(month: str) -> str:
    y, m = parse_month(month)
    return datetime(y, m, 1).strftime("%B %Y")


def render(model: Model) -> str:
    title = f"{model.client_name}: your network in {_month_name(model.month)}"
    parts = [f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
             f'<meta name="viewport" content="width=device-width, initial-scale=1">'
             f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>",
             f'<header><div><h1 id="title">{_e(title)}</h1><div class="muted">Monthly report from '
             f'{_e(model.msp_name)}</div></div><div class="muted" data-generated="{model.generated:.3f}">written '
             f'{_e(time.strftime("%Y-%m-%d", time.localtime(model.generated)))}</div></header>']
    parts.append(_first_screen(model))
    parts.append(_problems(model))
    parts.append(_timeline(model))
    parts.append(_watched(model))
    parts.append(_trends(model))
    parts.append(f'<p class="muted">Every number above is counted from the probe\'s own records for '
                 f'{_e(_month_name(model.month))} (local time). Prepared by {_e(model.msp_name)} for '
                 f'{_e(model.client_name)}.</p></main></body></html>')
    return "".join(parts)


def _first_screen(m: Model) -> str:
    n = m.numbers
    found, probe = n["findings_found"], n["found_by_probe"]
    people = n["reported_by_client"] + n["found_on_visit"]
    cards = (f'<div class="cards" id="headline">'
             f'<div class="card"><b>{_n(m, "findings_found")}</b>{_plural(found, "problem")} found</div>'
             f'<div class="card"><b>{_n(m, "found_by_probe")}</b>found by the probe first</div>'
             f'<div class="card"><b>{_n(m, "resolved")}</b>resolved this month</div>'
             f'<div class="card{" warn" if n["still_open"] else ""}"><b>{_n(m, "still_open")}</b>still open</div>'
             f"</div>")
    lines = []
    so_far = "so far this month" if m.generated < m.end else "of the month"
    watched = (f"The probe watched {_n(m, 'devices_watched')} {_plural(n['devices_watched'], 'device')} for "
               f"{_n(m, 'hours_covered')} of the {_n(m, 'hours_in_month')} hours {so_far}")
    watched += (f", with {_n(m, 'coverage_gaps')} {_plural(n['coverage_gaps'], 'gap')} when it was not watching "
                f"(see <a href=\"#watched\">what was watched</a>)." if n["coverage_gaps"] else ", without a gap.")
    lines.append(watched)
    if not found:
        lines.append("Nothing went wrong that the probe or anyone else noticed this month.")
    else:
        lines.append(
            f"{_n(m, 'found_by_probe')} of the {found} {_plural(found, 'problem')} "
            f"{_plural(found, 'was', 'were')} found by the probe before anyone noticed; "
            f"{_n(m, 'reported_by_client')} {_plural(n['reported_by_client'], 'was', 'were')} reported by you and "
            f"{_n(m, 'found_on_visit')} found by a technician on a visit."
            + ("" if people or not probe else " Everything was caught by the probe."))
    lines.append(f"What was done: {_n(m, 'resolved')} {_plural(n['resolved'], 'problem')} resolved, "
                 f"{_n(m, 'dismissed')} checked and found harmless, "
                 f"{_n(m, 'visits_on_site')} {_plural(n['visits_on_site'], 'visit')} on site and "
                 f"{_n(m, 'remote_sessions')} remote {_plural(n['remote_sessions'], 'session')}"
                 + (f"; half the problems were resolved within {_n(m, 'median_resolve_hours')} hours."
                    if n["median_resolve_hours"] is not None else "."))
    decide = [en for en in m.entries if en.open and en.decision]
    other_open = [en for en in m.entries if en.open and not en.decision]
    block = ['<section id="decisions"><h2>Needs your decision</h2>']
    if decide:
        block.append(f'<div class="decide"><p><b>{_n(m, "needs_decision")}</b> open '
                     f'{_plural(n["needs_decision"], "problem needs", "problems need")} a purchase or your approval:</p><ul>')
        block += [f'<li><a href="#{en.anchor}">{_e(en.title)}</a>: {_e(en.decision)}</li>' for en in decide[:10]]
        block.append("</ul></div>")
    else:
        block.append(f"<p>Open problems that need a purchase or your approval: {_n(m, 'needs_decision')}. "
                     f"Nothing to decide this month.</p>")
    if other_open:
        block.append("<p>Also still open, being handled by your technicians: " + ", ".join(
            f'<a href="#{en.anchor}">{_e(en.title)}</a>' for en in other_open[:8])
            + (f" and {len(other_open) - 8} more" if len(other_open) > 8 else "") + ".</p>")
    block.append("</section>")
    return (f'<section id="summary" class="summary"><h2>This month in short</h2>{cards}'
            + "".join(f"<p>{line}</p>" for line in lines) + "</section>" + "".join(block))


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def _problems(m: Model) -> str:
    out = ['<section id="problems"><h2>The problems, one by one</h2>']
    if not m.entries:
        out.append("<p>There was nothing to report this month: no problem was found by the probe, reported by you "
                   "or found on a visit.</p>")
    for en in m.entries[:MAX_ENTRIES]:
        out.append(f'<article class="entry{" open" if en.open else ""}" id="{en.anchor}">'
                   f'<h3>{_e(en.title)}<span class="tag">{_e(en.category)}</span>'
                   f'{"<span class=tag>open</span>" if en.open else ""}</h3>'
                   f"<p>{_e(en.what)} {_e(en.why)}</p><p>{_e(' '.join(en.story))}</p>")
        out.append(_details(en))
        out.append("</article>")
    rest = m.entries[MAX_ENTRIES:]
    if rest:
        out.append(f"<h3>{len(rest)} smaller {_plural(len(rest), 'matter')}</h3><table><tr><th>what</th><th>times</th>"
                   "<th>first</th><th>state</th></tr>")
        for en in rest[:MAX_LISTED]:
            out.append(f'<tr id="{en.anchor}"><td>{_e(en.title)}</td><td>{len(en.episodes)}</td>'
                       f"<td>{_e(_when(en.episodes[0]['first_seen']))}</td><td>{_e(en.episodes[-1]['state'])}</td></tr>")
        out.append("</table>")
        if len(rest) > MAX_LISTED:
            out.append(f"<p>and {len(rest) - MAX_LISTED} more, listed by <code>sitevigil findings list</code>.</p>")
    out.append("</section>")
    return "".join(out)


def _details(en: Entry) -> str:
    rows = []
    for e in en.episodes[-10:]:
        rows.append(f"<tr><td>finding {e['id']}</td><td><code>{_e(e['kind'])}</code></td>"
                    f"<td><code>{_e(e['device'])}{' / ' + _e(e['subject']) if e['subject'] else ''}</code></td>"
                    f"<td>{_e(e['severity'])}, {_e(e['state'])}, found by {_e(e['source'])}</td>"
                    f"<td>{_e(_when(e['first_seen']))} to {_e(_when(e['last_seen']))}, {e['occurrences']} reports</td></tr>"
                    f"<tr><td></td><td colspan=4><code>{_e(json.dumps(e['evidence'], sort_keys=True, default=str)[:1500])}</code></td></tr>")
        for ev in e["events"][:MAX_EVENTS]:
            rows.append(f"<tr><td></td><td>{_e(_when(ev['at']))}</td><td>{_e(ev['action'])} by {_e(ev['by'])}</td>"
                        f"<td colspan=2>{_e(ev['note'])}</td></tr>")
        if len(e["events"]) > MAX_EVENTS:
            rows.append(f"<tr><td></td><td colspan=4>and {len(e['events']) - MAX_EVENTS} more events</td></tr>")
    more = f"<p>Showing the last 10 of {len(en.episodes)} times.</p>" if len(en.episodes) > 10 else ""
    return f"<details><summary>Technical detail</summary>{more}<table>{''.join(rows)}</table></details>"


def _timeline(m: Model) -> str:
    out = ['<section id="visits"><h2>Visits and remote sessions</h2>']
    if not m.visits:
        out.append("<p>No visit or remote session this month.</p></section>")
        return "".join(out)
    out.append("<table><tr><th>when</th><th>how</th><th>who</th><th>why</th><th>what was done</th></tr>")
    for v in m.visits:
        if v["findings"]:
            why = "for " + ", ".join(
                f'<a href="#{m.finding_ids[i]}">problem {i}</a>' if i in m.finding_ids else f"problem {i}"
                for i in v["findings"])
        else:
            why = {"planned": "planned work", "client_request": "your request"}.get(v["reason"], _e(v["reason"]))
        how = "on site" if v["mode"] == "on_site" else "remote"
        out.append(f"<tr><td>{_e(_when(v['start']))}</td><td>{how}, {round(v['minutes'])} min</td>"
                   f"<td>{_e(v['technician'])}</td><td>{why}</td><td>{_e(v['summary'])}</td></tr>")
    out.append("</table></section>")
    return "".join(out)


def _watched(m: Model) -> str:
    out = ['<section id="watched"><h2>What the probe watched</h2>']
    if m.devices_by_type:
        out.append("<p>Devices seen this month, by type: " + ", ".join(
            f"{_e(t)} {c}" for t, c in m.devices_by_type.items()) + ".</p>")
    else:
        out.append("<p>No device inventory was recorded this month.</p>")
    out.append(f"<p>{_n(m, 'snmp_polls')} device checks (SNMP polls) and {_n(m, 'frames_seen')} network frames "
               f"seen on the mirror port.</p>")
    out.append(_coverage_svg(m))
    if m.gaps:
        out.append("<p>Not watching: " + "; ".join(
            f"{_e(_when(s))} to {_e(_when(e))} ({_duration(e - s)})" for s, e in m.gaps[:20])
            + (f"; and {len(m.gaps) - 20} more" if len(m.gaps) > 20 else "") + ".</p>")
    if m.replays:
        out.append("<p>Part of this month's watching comes from replayed captures (recorded traffic analysed "
                   "afterwards), not from the live probe: " + "; ".join(
                       f"{_e(i['label'] or 'a capture')}, {_e(_when(i['start']))} ({_duration(i['end'] - i['start'])})"
                       for i in m.replays[:10]) + (f"; and {len(m.replays) - 10} more" if len(m.replays) > 10 else "")
                   + ".</p>")
    out.append("</section>")
    return "".join(out)


def _coverage_svg(m: Model) -> str:
    w, h, left = 1000, 46, 0
    span = max(1.0, m.end - m.start)
    x = lambda t: left + (t - m.start) / span * w  # noqa: E731
    bars = [f'<rect x="0" y="8" width="{w}" height="20" fill="#f1d6cc"><title>not watching</title></rect>']
    for s, e, src in m.coverage:
        colour = "#3f8f6b" if "live" in src.split("+") else "#7fb0d6"  # the live probe watched, a replay or not
        bars.append(f'<rect x="{x(s):.1f}" y="8" width="{max(0.5, x(e) - x(s)):.1f}" height="20" fill="{colour}">'
                    f"<title>{_e(src)}: {_e(_when(s))} to {_e(_when(e))}</title></rect>")
    if m.generated < m.end:
        bars.append(f'<rect x="{x(max(m.start, m.generated)):.1f}" y="8" width="{w - x(max(m.start, m.generated)):.1f}" '
                    f'height="20" fill="#eef1f3"><title>not yet</title></rect>')
    days = int(round(span / 86400))
    ticks = "".join(f'<text x="{d / days * w:.1f}" y="42">{d + 1}</text>' for d in range(0, days, 5))
    return (f'<svg role="img" aria-label="hours watched" viewBox="0 0 {w} {h}" width="100%" '
            f'xmlns="http://www.w3.org/2000/svg">{"".join(bars)}{ticks}</svg>'
            f'<p class="muted">Green: the live probe was watching; light blue: a replayed capture; '
            f"red: not watching.</p>")


def _trends(m: Model) -> str:
    return ('<section id="trends"><h2>Compared with earlier months</h2><div class="charts">'
            f"<div><h3>Problems found, by kind</h3>{_category_svg(m.trend)}</div>"
            f"<div><h3>How fast problems were resolved</h3>{_resolve_svg(m.trend)}</div></div></section>")


def _category_svg(trend: list) -> str:
    w, h, bottom = 480, 220, 180
    top = max([sum(t["by_category"].values()) for t in trend] + [1])
    bw = w / len(trend)
    out = []
    for i, t in enumerate(trend):
        y = bottom
        for c, colour in zip(CATEGORIES, _COLOURS):
            v = t["by_category"].get(c, 0)
            if not v:
                continue
            bh = v / top * 150
            y -= bh
            out.append(f'<rect x="{i * bw + 10:.1f}" y="{y:.1f}" width="{bw - 20:.1f}" height="{bh:.1f}" '
                       f'fill="{colour}"><title>{_e(t["month"])}: {v} {_e(c)}</title></rect>')
        total = sum(t["by_category"].values())
        name = f"trend_found_{t['month'].replace('-', '_')}"
        out.append(f'<text x="{i * bw + bw / 2:.1f}" y="{y - 4:.1f}" text-anchor="middle" '
                   f'data-number="{name}">{total}</text>')
        out.append(f'<text x="{i * bw + bw / 2:.1f}" y="{bottom + 16}" text-anchor="middle">{_e(t["month"])}</text>')
    legend = "".join(f'<span style="color:{c}">&#9632;</span> {_e(cat)} ' for cat, c in zip(CATEGORIES, _COLOURS))
    return (f'<svg role="img" aria-label="problems by kind per month" viewBox="0 0 {w} {h}" width="100%" '
            f'xmlns="http://www.w3.org/2000/svg">{"".join(out)}</svg><p class="muted">{legend}</p>')


def _resolve_svg(trend: list) -> str:
    w, h, bottom = 480, 220, 180
    vals = [t["median_resolve_hours"] for t in trend]
    top = max([v for v in vals if v is not None] + [1.0])
    bw = w / len(trend)
    out = []
    for i, (t, v) in enumerate(zip(trend, vals)):
        cx = i * bw + bw / 2
        if v is None:
            out.append(f'<text x="{cx:.1f}" y="{bottom - 4}" text-anchor="middle" fill="#8c9aa6">none resolved</text>')
        else:
            bh = max(1.0, v / top * 150)
            out.append(f'<rect x="{i * bw + 14:.1f}" y="{bottom - bh:.1f}" width="{bw - 28:.1f}" height="{bh:.1f}" '
                       f'fill="#3f8f6b"><title>{_e(t["month"])}: median {v:g} hours</title></rect>'
                       f'<text x="{cx:.1f}" y="{bottom - bh - 4:.1f}" text-anchor="middle">'
                       f'<tspan data-number="trend_median_resolve_hours_{t["month"].replace("-", "_")}">{v:g}</tspan>'
                       f' h</text>')
        out.append(f'<text x="{cx:.1f}" y="{bottom + 16}" text-anchor="middle">{_e(t["month"])}</text>')
    return (f'<svg role="img" aria-label="median hours to resolve per month" viewBox="0 0 {w} {h}" width="100%" '
            f'xmlns="http://www.w3.org/2000/svg">{"".join(out)}</svg>'
            f'<p class="muted">Median time from found to resolved, in hours (half were faster).</p>')


def write_report(store: Store, month: str, path: str, *, msp_name: str, client_name: str,
                 now: float | None = None) -> Model:
    model = build(store, month, msp_name=msp_name, client_name=client_name, now=now)
    write_atomically(path, render(model))
    return model


async def write_monthly_report(store: Store, config, now: float) -> str | None:
    """The daemon's part: write last month's report into STATE/reports/ when it is due (off the event
    loop); returns its path, or None when none was due or it could not be written (logged)."""
    reports_dir = os.path.join(store.state_dir, "reports")
    first = store.query("SELECT MIN(start) FROM coverage")[0][0]
    month = report_due(now, reports_dir, first)
    if month is None:
        return None
    path = report_path(reports_dir, month)
    try:
        model = await asyncio.to_thread(write_report, store, month, path, msp_name=config.report.msp_name,
                                        client_name=config.report.client_name, now=now)
    except (OSError, sqlite3.Error) as exc:
        _log.error("monthly report for %s: cannot write %s: %s", month, path, exc)
        return None
    _log.info("monthly report for %s written to %s (%d problems found, %d still open)", month, path,
              model.numbers["findings_found"], model.numbers["still_open"])
    return path
