"""The findings ledger: the one place where reports become episodes, and what was done about each.

Detectors report what they see each time they look (every capture window, every SNMP poll, every
inventory change) and, where they know it, that a condition is gone (`Cleared`). The ledger keeps one
open episode per (kind, device, subject): the first report opens it, later ones move `last_seen`, bump
`occurrences`, keep the worst severity and merge the evidence (the finding says how: latest or peak).
An episode ends when its detector says the condition cleared, or after `quiet_after` seconds without
a report: `close_quiet()` checks on the ledger's clock (wall time in the daemon, the capture's own time
in a replay), and a report whose evidence begins that long after the episode's last one starts anew.

Each episode is also a technician's work item, in one of STATES: open, acknowledged (someone is on
it), resolved (by a technician, or by the probe when the condition stopped) or dismissed (expected, with
the reason). Every change is an event (who, when, what, a note) appended to `finding_events`; nothing
is overwritten. An episode a detector still reports stays open however long it lasts. A technician's
resolve takes it out of the probe's hands: if the detector sees the condition again, that is a new
episode (the fix did not hold, and the report shows it). A dismissed episode is followed to its end
quietly. A technician can also record a problem the probe did not find (`add_reported`: reported by
the client, or found on a visit), so the report can say how much the probe found first.

A person's action is saved before it is acknowledged, or refused with the reason (a full disk, an
episode another technician closed meanwhile): `Store.write_now`. The daemon picks up what a
technician's command did from another process through the events table (`_sync`).

Safe to call from several threads (the capture thread and the event loop) and beside other processes
on the same database (a technician's command): every operation holds one lock, and the ledger
allocates episode ids itself, so an id is never read back from a connection another thread is writing
on, and a write queued on a full disk keeps the id its later updates name.

Stored in the probe's SQLite database; the open set held in memory is bounded, and so is the history
on disk: resolved episodes older than `retention` seconds (13 months by default: a year of monthly
reports and the month before) are deleted with their notes, and beyond `max_history` resolved episodes
the oldest go first, so a flood of findings cannot fill the disk.
"""
from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString

from probe.findings.model import SEVERITIES, Cleared, Finding
from probe.state.store import Store

_log = logging.getLogger(__name__)

STATES = ("open", "acknowledged", "resolved", "dismissed")
SOURCES = ("probe", "client", "visit")  # who found it: the probe, or a person (reported by the client, found on a visit)
ACTIONS = ("acknowledged", "resolved", "dismissed")  # a technician's transitions
_ALLOWED_FROM = {"acknowledged": ("open",), "resolved": ("open", "acknowledged"),
                 "dismissed": ("open", "acknowledged")}
PROBE = "probe"  # the actor of the probe's own events
# time from found to acknowledged / resolved, seconds: a minute to a month
LATENCY_BUCKETS = (60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 12 * 3600.0, 86400.0, 3 * 86400.0, 7 * 86400.0,
                   30 * 86400.0)

RETENTION_SECONDS = 400 * 86400.0  # resolved episodes older than this are deleted
MAX_HISTORY = 200_000              # resolved episodes kept at most (the oldest go first)
PRUNE_EVERY = 3600.0               # seconds between prunes
ID_RETRIES = 20                    # another process took the id we allocated: allocate again, this often

_DDL = [
    """CREATE TABLE IF NOT EXISTS findings (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL, severity TEXT NOT NULL, device TEXT NOT NULL,
        evidence TEXT NOT NULL, first_seen REAL NOT NULL, last_seen REAL NOT NULL,
        occurrences INTEGER NOT NULL DEFAULT 1, resolved_at REAL)""",
    "CREATE INDEX IF NOT EXISTS findings_open ON findings(resolved_at, kind, device)",
    "CREATE INDEX IF NOT EXISTS findings_time ON findings(first_seen)",
    """CREATE TABLE IF NOT EXISTS finding_notes (
        id INTEGER PRIMARY KEY AUTOINCREMENT, finding_id INTEGER NOT NULL REFERENCES findings(id),
        at REAL NOT NULL, author TEXT NOT NULL, text TEXT NOT NULL)""",
]
# version 2: episodes are per subject too (two flapping ports of one switch are two problems)
_DDL_V2 = ["ALTER TABLE findings ADD COLUMN subject TEXT NOT NULL DEFAULT ''"]

# version 3: the technician's workflow (state, who found it) and its append-only event log; notes are
# events. resolved_at stays "when the episode ended" (the condition stopped, or a technician resolved it).
_DDL_V3 = [
    "ALTER TABLE findings ADD COLUMN state TEXT NOT NULL DEFAULT 'open'",
    "ALTER TABLE findings ADD COLUMN source TEXT NOT NULL DEFAULT 'probe'",
    "UPDATE findings SET state='resolved' WHERE resolved_at IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS findings_state ON findings(state)",
    """CREATE TABLE IF NOT EXISTS finding_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT, finding_id INTEGER NOT NULL REFERENCES findings(id),
        at REAL NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, state TEXT NOT NULL,
        note TEXT NOT NULL DEFAULT '')""",
    "CREATE INDEX IF NOT EXISTS finding_events_finding ON finding_events(finding_id, id)",
    """INSERT INTO finding_events(finding_id, at, actor, action, state, note)
        SELECT n.finding_id, n.at, n.author, 'note', f.state, n.text
        FROM finding_notes n JOIN findings f ON f.id = n.finding_id ORDER BY n.id""",
    "DROP TABLE finding_notes",
]

_COLUMNS = ("id, kind, severity, device, subject, evidence, first_seen, last_seen, occurrences, resolved_at, "
            "state, source")


@dataclass
class Episode:
    id: int
    finding: Finding
    occurrences: int = 1
    resolved_at: float | None = None  # when it ended (None: still going on)
    state: str = "open"               # one of STATES
    source: str = "probe"             # one of SOURCES
    heard: float = 0.0                # when it was last seen, on the ledger's quiet-timer clock (not stored)

    def as_dict(self) -> dict:
        f = self.finding
        return {"id": self.id, "kind": f.kind, "severity": f.severity, "device": f.device, "subject": f.subject,
                "evidence": f.evidence, "first_seen": f.first_seen, "last_seen": f.last_seen,
                "occurrences": self.occurrences, "resolved_at": self.resolved_at, "state": self.state,
                "source": self.source}


class LedgerError(Exception):
    """A technician's action that cannot be done (say why): unknown id, a transition the state does not
    allow, a missing note."""


class NoSuchFinding(LedgerError):
    """The id names no finding (or no visit)."""


class StateConflict(LedgerError):
    """The finding's state does not allow it (already resolved, or changed meanwhile by someone else)."""


def parse_states(text: str) -> tuple[str, ...]:
    """A technician's state filter: open, acknowledged, resolved, dismissed, active (open or
    acknowledged) or all; several comma-separated. LedgerError names the one it does not know."""
    out: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if part == "all":
            out += STATES
        elif part == "active":
            out += ["open", "acknowledged"]
        elif part in STATES:
            out.append(part)
        else:
            raise LedgerError(f"unknown state {part!r} (expected {', '.join(STATES)}, active or all)")
    return tuple(dict.fromkeys(out))


class Ledger:
    def __init__(self, store: Store, *, quiet_after: float = 3600.0, max_open: int = 10_000,
                 retention: float = RETENTION_SECONDS, max_history: int = MAX_HISTORY,
                 clock: Callable[[], float] = time.time, elapsed: Callable[[], float] | None = None):
        """`clock` dates what is stored; quiet timers run on `elapsed`, a clock nobody sets: by default
        the monotonic clock when `clock` is the wall clock (so a clock set forward does not close every
        open episode at once, nor one set back keep them open), else `clock` itself (a capture's time)."""
        self.store = store
        self.elapsed = elapsed or (time.monotonic if clock is time.time else clock)
        self.quiet_after = quiet_after
        self.max_open = max_open
        self.retention = retention
        self.max_history = max_history
        self.pruned_total = 0
        self._next_prune = 0.0
        self.clock = clock
        self._lock = threading.RLock()
        store.ensure_schema("findings", 1, _DDL)
        store.ensure_schema("findings", 2, _DDL_V2)
        store.ensure_schema("findings", 3, _DDL_V3)
        self._open: OrderedDict[tuple[str, str, str], Episode] = OrderedDict()
        self.raised_total: dict[tuple[str, str], int] = {}
        self.resolved_total: dict[tuple[str, str], int] = {}  # (kind, "probe" | "technician")
        self.latency: dict[str, list] = {a: [[0] * len(LATENCY_BUCKETS), 0, 0.0] for a in ("acknowledged", "resolved")}
        self.evicted_total = 0
        self._last_id = 0
        self._seen_event = int(store.query("SELECT COALESCE(MAX(id), 0) FROM finding_events")[0][0])
        self._own_events: set[int] = set()  # technicians' events made here that _sync has not passed yet
        self._load_open()

    @classmethod
    def in_memory(cls, **kw) -> "Ledger":
        """A ledger that keeps nothing on disk (a replay without --state-dir, tests)."""
        return cls(Store("", memory=True), **kw)

    def _load_open(self) -> None:
        rows = self.store.query(
            f"SELECT {_COLUMNS} FROM findings WHERE resolved_at IS NULL AND source = 'probe' "
            f"ORDER BY last_seen DESC LIMIT ?",
            (self.max_open,))
        for row in reversed(rows):
            ep = _episode(row)
            ep.heard = self._heard(ep.finding.last_seen)
            self._open[ep.finding.key] = ep
        self._last_id = self._db_max_id()

    @property
    def last_id(self) -> int:
        """The largest episode id in the database (a replay lists only the episodes past it)."""
        with self._lock:
            return self._db_max_id()

    def _db_max_id(self) -> int:
        return int(self.store.query("SELECT COALESCE(MAX(id), 0) FROM findings")[0][0])

    # -- recording ------------------------------------------------------------------------------
    def record(self, finding: Finding) -> Episode:
        """Report a finding. Opens an episode, or updates the open one for the same key."""
        with self._lock:
            self._sync()
            now = self.clock()
            if not finding.first_seen:
                finding.first_seen = now
            if not finding.last_seen:
                finding.last_seen = finding.first_seen
            key = finding.key
            ep = self._open.get(key)
            if ep is not None and self._heard(finding.first_seen, now) - ep.heard > self.quiet_after:
                del self._open[key]  # it ended before this report's evidence began: this one starts a new episode
                self._close(ep, now)
                ep = None
            if ep is not None:
                self._update(ep, finding)
                return ep
            return self._open_episode(finding, now)

    def clear(self, cleared: Cleared) -> Episode | None:
        """The detector says the condition is gone: resolve its open episode now (None if none was open)."""
        with self._lock:
            self._sync()
            ep = self._open.pop(cleared.key, None)
            if ep is not None:
                self._close(ep, cleared.at or self.clock())
            return ep

    def submit(self, reports: Iterable[Finding | Cleared]) -> None:
        """Several reports in order (what a detector returned for one look)."""
        for r in reports:
            if isinstance(r, Cleared):
                self.clear(r)
            else:
                self.record(r)

    def _heard(self, at: float, now: float | None = None) -> float:
        """Wall-clock time `at` (of a report made now) on the quiet-timer clock."""
        return self.elapsed() - ((self.clock() if now is None else now) - at)

    def _update(self, ep: Episode, finding: Finding) -> None:
        cur = ep.finding
        ep.occurrences += 1
        ep.heard = max(ep.heard, self._heard(finding.last_seen))
        cur.last_seen = max(cur.last_seen, finding.last_seen)
        if finding.evidence_merge == "peak":
            cur.evidence = _merge_peak(cur.evidence, finding.evidence)
        else:
            cur.evidence = dict(finding.evidence)
        if SEVERITIES.index(finding.severity) > SEVERITIES.index(cur.severity):
            cur.severity = finding.severity  # an episode only gets worse
        self._open.move_to_end(cur.key)
        self.store.write("UPDATE findings SET last_seen=?, evidence=?, occurrences=?, severity=? WHERE id=?",
                         (cur.last_seen, _json(cur.evidence), ep.occurrences, cur.severity, ep.id))

    def _open_episode(self, finding: Finding, now: float) -> Episode:
        f = Finding(finding.kind, finding.severity, finding.device, dict(finding.evidence), finding.first_seen,
                    finding.last_seen, finding.subject, finding.evidence_merge)
        ep = Episode(self._insert(f), f, heard=self._heard(f.last_seen, now))
        self._event(ep.id, f.first_seen, PROBE, "opened", "open")
        self._open[f.key] = ep
        k = (f.kind, f.severity)
        self.raised_total[k] = self.raised_total.get(k, 0) + 1
        _log.warning("finding: %s (%s) on %s%s: %s", f.kind, f.severity, f.device,
                     f" ({f.subject})" if f.subject else "", _json(f.evidence)[:300])
        if len(self._open) > self.max_open:  # bound: close the stalest episode
            _, old = self._open.popitem(last=False)
            self._close(old, now)
            self.evicted_total += 1
        return ep

    def _insert(self, f: Finding, source: str = "probe", opened_by: tuple[str, str] | None = None) -> int:
        """Write a new episode under an id allocated here; returns it. On a full disk the write waits in
        the store's backlog with that id, and the episode's later updates name the same row. With
        `opened_by` (who, note: a person's report) the episode and its first event are written now or
        not at all (StoreError)."""
        sql = ("INSERT INTO findings(id, kind, severity, device, subject, evidence, first_seen, last_seen, source) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
        for _ in range(ID_RETRIES):
            fid = self._last_id + 1
            if not self.store.backlog:  # the database is writable: another process may have written too
                fid = max(fid, self._db_max_id() + 1)
            self._last_id = fid
            row = (fid, f.kind, f.severity, f.device, f.subject, _json(f.evidence), f.first_seen, f.last_seen, source)
            try:
                if opened_by is None:
                    self.store.write(sql, row)
                else:
                    self.store.write_now([(sql, row), (_EVENT_SQL, (fid, f.first_seen, opened_by[0], "opened", "open",
                                                                    opened_by[1]))])
                return fid
            except sqlite3.IntegrityError:  # another process took it between our read and our write
                continue
        raise RuntimeError(f"findings ledger: no free episode id after {ID_RETRIES} tries")

    def _event(self, finding_id: int, at: float, actor: str, action: str, state: str, note: str = "") -> None:
        self.store.write(_EVENT_SQL, (finding_id, at, actor, action, state, note))

    def close_quiet(self) -> list[Episode]:
        """Close the episodes not reported for `quiet_after` seconds; returns them."""
        with self._lock:
            self._sync()
            now, elapsed = self.clock(), self.elapsed()
            closed = []
            for key, ep in list(self._open.items()):
                if elapsed - ep.heard >= self.quiet_after:
                    del self._open[key]
                    self._close(ep, now)
                    closed.append(ep)
            if now >= self._next_prune:
                self._next_prune = now + PRUNE_EVERY
                self.prune(now)
            return closed

    def prune(self, now: float | None = None) -> int:
        """Delete resolved episodes past the retention or beyond max_history (oldest first) and their
        notes; open episodes are never deleted. Returns how many went."""
        with self._lock:
            now = self.clock() if now is None else now
            doomed = ("SELECT id FROM findings WHERE resolved_at IS NOT NULL AND (last_seen < ? OR id <= COALESCE(("
                      "SELECT id FROM findings WHERE resolved_at IS NOT NULL ORDER BY id DESC LIMIT 1 OFFSET ?), -1))")
            args = (now - self.retention, self.max_history)
            n = self.store.query(f"SELECT COUNT(*) FROM ({doomed})", args)[0][0]
            if not n:
                return 0
            self.store.write(f"DELETE FROM finding_events WHERE finding_id IN ({doomed})", args)
            self.store.write(f"DELETE FROM findings WHERE id IN ({doomed})", args)
            self.pruned_total += n
            _log.info("findings ledger: %d resolved episodes past retention or beyond %d deleted", n,
                      self.max_history)
            return n

    def _close(self, ep: Episode, now: float) -> None:
        """The probe saw the condition stop: the episode ends, and is resolved unless a technician
        dismissed it (it stays dismissed)."""
        ep.resolved_at = now
        if ep.state in ("open", "acknowledged"):
            ep.state = "resolved"
            self._count_resolved(ep, PROBE, now)
        self.store.write("UPDATE findings SET resolved_at=?, state=? WHERE id=?", (now, ep.state, ep.id))
        self._event(ep.id, now, PROBE, "ended", ep.state)

    def _count_resolved(self, ep: Episode, actor: str, now: float) -> None:
        k = (ep.finding.kind, "probe" if actor == PROBE else "technician")
        self.resolved_total[k] = self.resolved_total.get(k, 0) + 1
        self._observe("resolved", now - ep.finding.first_seen)

    def _observe(self, action: str, seconds: float) -> None:
        buckets, _, _ = h = self.latency[action]
        for i, edge in enumerate(LATENCY_BUCKETS):
            if seconds <= edge:
                buckets[i] += 1
        h[1] += 1
        h[2] += max(0.0, seconds)

    # -- a technician's work ------------------------------------------------------------------------
    def transition(self, finding_id: int, action: str, note: str, by: str) -> dict:
        """Acknowledge, resolve or dismiss an episode, with a note (what was done; for a dismissal, why
        it is expected). Saved before it returns (StoreError if it cannot be); LedgerError when the
        episode does not exist or its state does not allow it. Returns the episode as history gives it."""
        if action not in ACTIONS:
            raise LedgerError(f"unknown action {action!r} (expected one of {', '.join(ACTIONS)})")
        note, by = _text(note, "note"), _text(by, "who")
        with self._lock:
            self._sync()
            row = self.store.query("SELECT state, first_seen, kind, resolved_at FROM findings WHERE id=?",
                                   (finding_id,))
            if not row:
                raise NoSuchFinding(f"no finding with id {finding_id}")
            state, first_seen, kind, ended = row[0]
            if state not in _ALLOWED_FROM[action]:
                raise StateConflict(f"finding {finding_id} is {state}: it cannot be {action} "
                                  f"(only when {' or '.join(_ALLOWED_FROM[action])})")
            now = self.clock()
            end = (now if ended is None else ended) if action == "resolved" else ended
            (changed, _), (_, event_id) = self.store.write_now([
                ("UPDATE findings SET state=?, resolved_at=? WHERE id=? AND state=?", (action, end, finding_id, state)),
                (_EVENT_SQL, (finding_id, now, by, action, action, note)),
            ])
            if not changed:  # another process changed it between our read and our write
                raise StateConflict(f"finding {finding_id} changed meanwhile; look again")
            self._own_events.add(event_id)  # applied here: _sync skips it
            self._apply(finding_id, action, by, now, first_seen, kind)
            return self.show(finding_id)

    def _apply(self, finding_id: int, state: str, actor: str, at: float, first_seen: float, kind: str) -> None:
        """What a technician's transition means to the episodes the probe follows and to the metrics."""
        ep = next((e for e in self._open.values() if e.id == finding_id), None)
        if state == "acknowledged":
            self._observe("acknowledged", at - first_seen)
        elif state == "resolved":
            k = (kind, "technician")
            self.resolved_total[k] = self.resolved_total.get(k, 0) + 1
            self._observe("resolved", at - first_seen)
        if ep is None:
            return
        ep.state = state
        if state == "resolved":  # out of the probe's hands: a later report is a new episode
            del self._open[ep.finding.key]
            ep.resolved_at = at

    def _sync(self) -> None:
        """Apply what a technician did from another process (its events are in the database)."""
        rows = self.store.query("SELECT e.id, e.finding_id, e.action, e.actor, e.at, f.first_seen, f.kind "
                                "FROM finding_events e JOIN findings f ON f.id = e.finding_id WHERE e.id > ? "
                                "ORDER BY e.id", (self._seen_event,))
        if not rows:
            return
        self._seen_event = rows[-1][0]
        for eid, fid, action, actor, at, first_seen, kind in rows:
            if eid in self._own_events:
                self._own_events.discard(eid)
            elif action in ACTIONS:
                self._apply(fid, action, actor, at, first_seen, kind)

    def add_reported(self, kind: str, device: str, note: str, reported_by: str, by: str, *,
                     severity: str = "warning", subject: str = "", at: float | None = None) -> dict:
        """Record a problem the probe did not find: reported by the client, or found on a visit. It is
        open until a technician resolves it; the probe's detectors never touch it."""
        if reported_by not in SOURCES[1:]:
            raise LedgerError(f"reported_by must be one of {', '.join(SOURCES[1:])}, got {reported_by!r}")
        note, by = _text(note, "note"), _text(by, "who")
        kind, device = _text(kind, "kind"), _text(device, "device")
        if severity not in SEVERITIES:
            raise LedgerError(f"unknown severity {severity!r} (expected one of {', '.join(SEVERITIES)})")
        with self._lock:
            when = self.clock() if at is None else at
            f = Finding(kind, severity, device, {"reported": note}, when, when, subject)
            fid = self._insert(f, source=reported_by, opened_by=(by, note))
            return self.show(fid)

    def add_note(self, finding_id: int, text: str, author: str = "technician") -> None:
        text, author = _text(text, "note"), _text(author, "who")
        with self._lock:
            row = self.store.query("SELECT state FROM findings WHERE id=?", (finding_id,))
            if not row:
                raise NoSuchFinding(f"no finding with id {finding_id}")
            self.store.write_now([(_EVENT_SQL, (finding_id, self.clock(), author, "note", row[0][0], text))])

    # -- reading --------------------------------------------------------------------------------
    def open_episodes(self) -> list[Episode]:
        """The episodes the probe follows (its detectors still report them), stalest first."""
        with self._lock:
            return list(self._open.values())

    def show(self, finding_id: int) -> dict:
        """One episode with its events, oldest first (LedgerError if there is none)."""
        rows = self.store.query(f"SELECT {_COLUMNS} FROM findings WHERE id=?", (finding_id,))
        if not rows:
            raise NoSuchFinding(f"no finding with id {finding_id}")
        return self._with_events(rows)[0]

    def listing(self, *, states: Iterable[str] = ("open", "acknowledged"), since: float = 0.0,
                until: float | None = None, limit: int = 1000) -> list[dict]:
        """Episodes in `states` that were going on at some time in [since, until], newest first, with
        their events: the technician's list."""
        states = tuple(states)
        for st in states:
            if st not in STATES:
                raise LedgerError(f"unknown state {st!r} (expected one of {', '.join(STATES)})")
        q = ",".join("?" * len(states))
        rows = self.store.query(
            f"SELECT {_COLUMNS} FROM findings WHERE state IN ({q}) AND COALESCE(resolved_at, 1e18) >= ? "
            f"AND first_seen <= ? ORDER BY first_seen DESC, id DESC LIMIT ?",
            (*states, since, until if until is not None else 1e18, limit))
        return self._with_events(rows)

    def annotations(self, since: float, until: float, limit: int = 1000) -> list[dict]:
        """Grafana annotations (the JSON API / Infinity data sources read this shape): one region per
        episode going on in [since, until], from when it was found to when it ended (or now)."""
        now = self.clock()
        out = []
        for ep in self.listing(states=STATES, since=since, until=until, limit=limit):
            where = ep["device"] + (f" ({ep['subject']})" if ep["subject"] else "")
            out.append({"time": int(ep["first_seen"] * 1000),
                        "timeEnd": int((ep["resolved_at"] if ep["resolved_at"] is not None else now) * 1000),
                        "title": f"{ep['kind']} on {where}",
                        "text": f"{ep['severity']}, {ep['state']}" + (f", found by {ep['source']}"
                                                                      if ep["source"] != "probe" else ""),
                        "tags": [ep["kind"], ep["severity"], ep["state"]], "id": ep["id"]})
        return out

    def _with_events(self, rows) -> list[dict]:
        events: dict[int, list[dict]] = {}
        if rows:
            ids = [r[0] for r in rows]
            q = ",".join("?" * len(ids))
            for fid, at, actor, action, state, note in self.store.query(
                    f"SELECT finding_id, at, actor, action, state, note FROM finding_events "
                    f"WHERE finding_id IN ({q}) ORDER BY id", ids):
                events.setdefault(fid, []).append({"at": at, "by": actor, "action": action, "state": state,
                                                   "note": note})
        out = []
        for r in rows:
            evs = events.get(r[0], [])
            notes = [{"at": e["at"], "author": e["by"], "text": e["note"]} for e in evs if e["note"]]
            out.append({**_episode(r).as_dict(), "events": evs, "notes": notes})
        return out

    def all_findings(self, after_id: int = 0) -> list[Finding]:
        """Every episode's finding (with an id above after_id), resolved or open, in the order they began
        (replay's answer)."""
        return [ep.finding for ep in self.episodes(after_id)]

    def episodes(self, after_id: int = 0) -> list[Episode]:
        """all_findings' episodes, with their ids and states."""
        with self._lock:
            rows = self.store.query(f"SELECT {_COLUMNS} FROM findings WHERE id > ? "
                                    f"ORDER BY first_seen, kind, device, subject, id", (after_id,))
        return [_episode(r) for r in rows]


_EVENT_SQL = "INSERT INTO finding_events(finding_id, at, actor, action, state, note) VALUES (?, ?, ?, ?, ?, ?)"


def _text(value, what: str) -> str:
    text = (value or "").strip() if isinstance(value, str) or value is None else None
    if not text:
        raise LedgerError(f"{what}: some text is needed" if what != "note" else
                          "a note is needed: say what was done (or, for a dismissal, why it is expected)")
    return text


def _episode(row) -> Episode:
    fid, kind, sev, dev, subject, ev, first, last, occ, resolved, state, source = row
    return Episode(fid, Finding(kind, sev, dev, json.loads(ev), first, last, subject), occ, resolved, state, source)


def _merge_peak(old: dict, new: dict) -> dict:
    """Numbers keep the episode's worst (largest) value; anything else takes the latest; windows counts."""
    merged = dict(old)
    for k, v in new.items():
        o = merged.get(k)
        if _number(v) and _number(o):
            merged[k] = max(o, v)
        else:
            merged[k] = v
    merged["windows"] = old.get("windows", 1) + 1
    return merged


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class LedgerCollector:
    """The ledger as metrics. Kinds are the detectors' fixed set (and the few a technician types),
    severities three, states four: the label sets are bounded.

    sitevigil_findings_open{kind,severity,state}: episodes open or acknowledged (from the database, so
    a technician's work from another process and the problems reported by people count);
    sitevigil_findings_raised_total{kind,severity}: episodes the probe opened since start;
    sitevigil_findings_resolved_total{kind,by}: resolved since start, by the probe (the condition
    stopped) or by a technician; sitevigil_finding_time_to_{acknowledged,resolved}_seconds: from found
    to that state, for the transitions since start."""

    def __init__(self, ledger: Ledger):
        self.ledger = ledger

    def collect(self) -> Iterable:
        led = self.ledger
        open_ = GaugeMetricFamily("sitevigil_findings_open", "Findings open or acknowledged, by kind, severity "
                                  "and state.", labels=["kind", "severity", "state"])
        for kind, sev, state, n in led.store.query(
                "SELECT kind, severity, state, COUNT(*) FROM findings WHERE state IN ('open', 'acknowledged') "
                "GROUP BY kind, severity, state ORDER BY kind, severity, state"):
            open_.add_metric([kind, sev, state], n)
        yield open_
        with led._lock:
            raised = sorted(led.raised_total.items())
            resolved = sorted(led.resolved_total.items())
            latency = {a: ([*h[0]], h[1], h[2]) for a, h in led.latency.items()}
        fam = CounterMetricFamily("sitevigil_findings_raised", "Finding episodes the probe opened since start.",
                                  labels=["kind", "severity"])
        for (kind, sev), n in raised:
            fam.add_metric([kind, sev], n)
        yield fam
        fam = CounterMetricFamily("sitevigil_findings_resolved", "Finding episodes resolved since start, by the "
                                  "probe (the condition stopped) or by a technician.", labels=["kind", "by"])
        for (kind, by), n in resolved:
            fam.add_metric([kind, by], n)
        yield fam
        for action, (buckets, count, total) in latency.items():
            h = HistogramMetricFamily(f"sitevigil_finding_time_to_{action}_seconds",
                                      f"Time from a finding being found to it being {action}, for those "
                                      f"{action} since start.", unit="")
            h.add_metric([], [(_le(edge), n) for edge, n in zip(LATENCY_BUCKETS, buckets)] + [("+Inf", count)],
                         total)
            yield h


def _le(edge: float) -> str:
    return floatToGoString(edge)  # as prometheus_client writes its own histograms' le labels


def _json(obj) -> str:
    return json.dumps(obj, sort_keys=True, default=str)
