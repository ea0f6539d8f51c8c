"""The findings ledger: the one place where reports become episodes, and what was done about each.

Detectors report what they see each time they look (every capture window, every SNMP poll, every
inventory change) and, where they know it, that a condition is gone (`Cleared`). The ledger keeps one
open episode per (kind, device, subject): the first report opens it, later ones move `last_seen`, bump
`occurrences`, keep the worst severity and merge the evidence (the finding says how: latest or peak).
An episode ends when its detector says the condition cleared, or after `quiet_after` seconds without
a report: `close_quiet()` checks on the ledger's clock (wall time in the daemon, the capture's own time
in a replay), and a report whose evidence begins that long after the episode's last one starts anew.
A technician's notes ("replaced toner", "moved the laptop off VLAN 1") are attached to an episode, so
the monthly report can show what was found and what was done.

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

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from probe.findings.model import SEVERITIES, Cleared, Finding
from probe.state.store import Store

_log = logging.getLogger(__name__)

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

_COLUMNS = "id, kind, severity, device, subject, evidence, first_seen, last_seen, occurrences, resolved_at"


@dataclass
class Episode:
    id: int
    finding: Finding
    occurrences: int = 1
    resolved_at: float | None = None

    def as_dict(self) -> dict:
        f = self.finding
        return {"id": self.id, "kind": f.kind, "severity": f.severity, "device": f.device, "subject": f.subject,
                "evidence": f.evidence, "first_seen": f.first_seen, "last_seen": f.last_seen,
                "occurrences": self.occurrences, "resolved_at": self.resolved_at}


class Ledger:
    def __init__(self, store: Store, *, quiet_after: float = 3600.0, max_open: int = 10_000,
                 retention: float = RETENTION_SECONDS, max_history: int = MAX_HISTORY,
                 clock: Callable[[], float] = time.time):
        self.store = store
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
        self._open: OrderedDict[tuple[str, str, str], Episode] = OrderedDict()
        self.raised_total: dict[tuple[str, str], int] = {}
        self.evicted_total = 0
        self._last_id = 0
        self._load_open()

    @classmethod
    def in_memory(cls, **kw) -> "Ledger":
        """A ledger that keeps nothing on disk (a replay without --state-dir, tests)."""
        return cls(Store("", memory=True), **kw)

    def _load_open(self) -> None:
        rows = self.store.query(
            f"SELECT {_COLUMNS} FROM findings WHERE resolved_at IS NULL ORDER BY last_seen DESC LIMIT ?",
            (self.max_open,))
        for row in reversed(rows):
            ep = _episode(row)
            self._open[ep.finding.key] = ep
        self._last_id = self._db_max_id()

    def _db_max_id(self) -> int:
        return int(self.store.query("SELECT COALESCE(MAX(id), 0) FROM findings")[0][0])

    # -- recording ------------------------------------------------------------------------------
    def record(self, finding: Finding) -> Episode:
        """Report a finding. Opens an episode, or updates the open one for the same key."""
        with self._lock:
            now = self.clock()
            if not finding.first_seen:
                finding.first_seen = now
            if not finding.last_seen:
                finding.last_seen = finding.first_seen
            key = finding.key
            ep = self._open.get(key)
            if ep is not None and finding.first_seen - ep.finding.last_seen > self.quiet_after:
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

    def _update(self, ep: Episode, finding: Finding) -> None:
        cur = ep.finding
        ep.occurrences += 1
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
        ep = Episode(self._insert(f), f)
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

    def _insert(self, f: Finding) -> int:
        """Write a new episode under an id allocated here; returns it. On a full disk the write waits in
        the store's backlog with that id, and the episode's later updates name the same row."""
        sql = ("INSERT INTO findings(id, kind, severity, device, subject, evidence, first_seen, last_seen) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
        for _ in range(ID_RETRIES):
            fid = self._last_id + 1
            if not self.store.backlog:  # the database is writable: another process may have written too
                fid = max(fid, self._db_max_id() + 1)
            self._last_id = fid
            try:
                self.store.write(sql, (fid, f.kind, f.severity, f.device, f.subject, _json(f.evidence),
                                       f.first_seen, f.last_seen))
                return fid
            except sqlite3.IntegrityError:  # another process took it between our read and our write
                continue
        raise RuntimeError(f"findings ledger: no free episode id after {ID_RETRIES} tries")

    def close_quiet(self) -> list[Episode]:
        """Close the episodes not reported for `quiet_after` seconds; returns them."""
        with self._lock:
            now = self.clock()
            closed = []
            for key, ep in list(self._open.items()):
                if now - ep.finding.last_seen >= self.quiet_after:
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
            self.store.write(f"DELETE FROM finding_notes WHERE finding_id IN ({doomed})", args)
            self.store.write(f"DELETE FROM findings WHERE id IN ({doomed})", args)
            self.pruned_total += n
            _log.info("findings ledger: %d resolved episodes past retention or beyond %d deleted", n,
                      self.max_history)
            return n

    def _close(self, ep: Episode, now: float) -> None:
        ep.resolved_at = now
        self.store.write("UPDATE findings SET resolved_at=? WHERE id=?", (now, ep.id))

    def add_note(self, finding_id: int, text: str, author: str = "technician") -> None:
        if not text.strip():
            raise ValueError("a note needs some text")
        with self._lock:
            if not self.store.query("SELECT 1 FROM findings WHERE id=?", (finding_id,)):
                raise KeyError(f"no finding with id {finding_id}")
            self.store.write("INSERT INTO finding_notes(finding_id, at, author, text) VALUES (?, ?, ?, ?)",
                             (finding_id, self.clock(), author, text.strip()))

    # -- reading --------------------------------------------------------------------------------
    def open_episodes(self) -> list[Episode]:
        with self._lock:
            return list(self._open.values())

    def all_findings(self) -> list[Finding]:
        """Every episode's finding, resolved or open, in the order they began (replay's answer)."""
        with self._lock:
            rows = self.store.query(f"SELECT {_COLUMNS} FROM findings ORDER BY first_seen, kind, device, subject, id")
        return [_episode(r).finding for r in rows]

    def history(self, since: float = 0.0, until: float | None = None, limit: int = 1000) -> list[dict]:
        rows = self.store.query(
            f"SELECT {_COLUMNS} FROM findings WHERE last_seen >= ? AND first_seen <= ? ORDER BY first_seen DESC LIMIT ?",
            (since, until if until is not None else 1e18, limit))
        notes: dict[int, list[dict]] = {}
        if rows:
            ids = [r[0] for r in rows]
            q = ",".join("?" * len(ids))
            for fid, at, author, text in self.store.query(
                    f"SELECT finding_id, at, author, text FROM finding_notes WHERE finding_id IN ({q}) ORDER BY at",
                    ids):
                notes.setdefault(fid, []).append({"at": at, "author": author, "text": text})
        return [{**_episode(r).as_dict(), "notes": notes.get(r[0], [])} for r in rows]


def _episode(row) -> Episode:
    fid, kind, sev, dev, subject, ev, first, last, occ, resolved = row
    return Episode(fid, Finding(kind, sev, dev, json.loads(ev), first, last, subject), occ, resolved)


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
    """sitevigil_findings_open{kind,severity} and sitevigil_findings_raised_total{kind,severity}.
    Kinds are the detectors' fixed set, severities three: the label sets are bounded."""

    def __init__(self, ledger: Ledger):
        self.ledger = ledger

    def collect(self) -> Iterable:
        open_ = GaugeMetricFamily("sitevigil_findings_open", "Findings whose episode is still going on.",
                                  labels=["kind", "severity"])
        counts: dict[tuple[str, str], int] = {}
        for ep in self.ledger.open_episodes():
            k = (ep.finding.kind, ep.finding.severity)
            counts[k] = counts.get(k, 0) + 1
        for (kind, sev), n in sorted(counts.items()):
            open_.add_metric([kind, sev], n)
        yield open_
        raised = CounterMetricFamily("sitevigil_findings_raised", "Finding episodes opened since start.",
                                     labels=["kind", "severity"])
        for (kind, sev), n in sorted(self.ledger.raised_total.items()):
            raised.add_metric([kind, sev], n)
        yield raised


def _json(obj) -> str:
    return json.dumps(obj, sort_keys=True, default=str)
