"""The findings ledger: every problem the probe found, once per episode, and what was done about it.

A detector reports a finding each time it sees the problem; the ledger keeps one open episode per
(kind, device): the first report opens it, later ones only move `last_seen`, bump `occurrences` and
keep the latest evidence. An episode with no report for `quiet_after` seconds is closed (resolved). A
technician's notes ("replaced toner", "moved the laptop off VLAN 1") are attached to an episode, so the
monthly report can show what was found and what was done.

Stored in the probe's SQLite database; the open set held in memory is bounded, and so is the history
on disk: resolved episodes older than `retention` seconds (13 months by default: a year of monthly
reports and the month before) are deleted with their notes, and beyond `max_history` resolved episodes
the oldest go first, so a flood of findings cannot fill the disk.
"""
from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from probe.findings.model import SEVERITIES, Finding
from probe.state.store import Store

_log = logging.getLogger(__name__)

RETENTION_SECONDS = 400 * 86400.0  # resolved episodes older than this are deleted
MAX_HISTORY = 200_000              # resolved episodes kept at most (the oldest go first)
PRUNE_EVERY = 3600.0               # seconds between prunes

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


@dataclass
class Episode:
    id: int
    finding: Finding
    occurrences: int = 1
    resolved_at: float | None = None

    def as_dict(self) -> dict:
        d = {"id": self.id, "kind": self.finding.kind, "severity": self.finding.severity,
             "device": self.finding.device, "evidence": self.finding.evidence,
             "first_seen": self.finding.first_seen, "last_seen": self.finding.last_seen,
             "occurrences": self.occurrences, "resolved_at": self.resolved_at}
        return d


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
        store.ensure_schema("findings", 1, _DDL)
        self._open: OrderedDict[tuple[str, str], Episode] = OrderedDict()
        self.raised_total: dict[tuple[str, str], int] = {}
        self.evicted_total = 0
        self._load_open()

    def _load_open(self) -> None:
        rows = self.store.query(
            "SELECT id, kind, severity, device, evidence, first_seen, last_seen, occurrences FROM findings "
            "WHERE resolved_at IS NULL ORDER BY last_seen DESC LIMIT ?", (self.max_open,))
        for fid, kind, sev, dev, ev, first, last, occ in reversed(rows):
            f = Finding(kind, sev, dev, json.loads(ev), first, last)
            self._open[(kind, dev)] = Episode(fid, f, occ)

    # -- recording ------------------------------------------------------------------------------
    def record(self, finding: Finding) -> Episode:
        """Report a finding. Opens an episode, or updates the open one for the same kind and device."""
        now = self.clock()
        if not finding.first_seen:
            finding.first_seen = now
        if not finding.last_seen:
            finding.last_seen = finding.first_seen
        key = (finding.kind, finding.device)
        ep = self._open.get(key)
        if ep is not None:
            ep.occurrences += 1
            ep.finding.last_seen = max(ep.finding.last_seen, finding.last_seen)
            ep.finding.evidence = finding.evidence
            if SEVERITIES.index(finding.severity) > SEVERITIES.index(ep.finding.severity):
                ep.finding.severity = finding.severity  # an episode only gets worse
            self._open.move_to_end(key)
            self.store.write("UPDATE findings SET last_seen=?, evidence=?, occurrences=?, severity=? WHERE id=?",
                             (ep.finding.last_seen, _json(ep.finding.evidence), ep.occurrences,
                              ep.finding.severity, ep.id))
            return ep
        fid = self._insert(finding)
        ep = Episode(fid, Finding(finding.kind, finding.severity, finding.device, dict(finding.evidence),
                                  finding.first_seen, finding.last_seen))
        self._open[key] = ep
        k = (finding.kind, finding.severity)
        self.raised_total[k] = self.raised_total.get(k, 0) + 1
        _log.warning("finding: %s (%s) on %s: %s", finding.kind, finding.severity, finding.device,
                     _json(finding.evidence)[:300])
        if len(self._open) > self.max_open:  # bound: close the stalest episode
            _, old = self._open.popitem(last=False)
            self._close(old, now)
            self.evicted_total += 1
        return ep

    def _insert(self, f: Finding) -> int:
        args = (f.kind, f.severity, f.device, _json(f.evidence), f.first_seen, f.last_seen)
        sql = ("INSERT INTO findings(kind, severity, device, evidence, first_seen, last_seen) "
               "VALUES (?, ?, ?, ?, ?, ?)")
        if self.store.write(sql, args):
            return self.store.query("SELECT last_insert_rowid()")[0][0]
        # Disk full: the write is queued in the store's backlog; the episode lives on in memory with a
        # provisional negative id until it is written.
        return -(len(self._open) + 1)

    def close_quiet(self) -> list[Episode]:
        """Close the episodes not reported for `quiet_after` seconds; returns them."""
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
        now = self.clock() if now is None else now
        rows = self.store.query(
            "SELECT id FROM findings WHERE resolved_at IS NOT NULL AND (last_seen < ? OR id <= COALESCE(("
            "SELECT id FROM findings WHERE resolved_at IS NOT NULL ORDER BY id DESC LIMIT 1 OFFSET ?), -1))",
            (now - self.retention, self.max_history))
        if not rows:
            return 0
        ids = [(r[0],) for r in rows]
        self.store.write_many("DELETE FROM finding_notes WHERE finding_id=?", ids)
        self.store.write_many("DELETE FROM findings WHERE id=?", ids)
        self.pruned_total += len(ids)
        _log.info("findings ledger: %d resolved episodes past retention or beyond %d deleted", len(ids),
                  self.max_history)
        return len(ids)

    def _close(self, ep: Episode, now: float) -> None:
        ep.resolved_at = now
        if ep.id > 0:
            self.store.write("UPDATE findings SET resolved_at=? WHERE id=?", (now, ep.id))

    def add_note(self, finding_id: int, text: str, author: str = "technician") -> None:
        if not text.strip():
            raise ValueError("a note needs some text")
        if not self.store.query("SELECT 1 FROM findings WHERE id=?", (finding_id,)):
            raise KeyError(f"no finding with id {finding_id}")
        self.store.write("INSERT INTO finding_notes(finding_id, at, author, text) VALUES (?, ?, ?, ?)",
                         (finding_id, self.clock(), author, text.strip()))

    # -- reading --------------------------------------------------------------------------------
    def open_episodes(self) -> list[Episode]:
        return list(self._open.values())

    def history(self, since: float = 0.0, until: float | None = None, limit: int = 1000) -> list[dict]:
        rows = self.store.query(
            "SELECT id, kind, severity, device, evidence, first_seen, last_seen, occurrences, resolved_at "
            "FROM findings WHERE last_seen >= ? AND first_seen <= ? ORDER BY first_seen DESC LIMIT ?",
            (since, until if until is not None else 1e18, limit))
        notes: dict[int, list[dict]] = {}
        if rows:
            ids = [r[0] for r in rows]
            q = ",".join("?" * len(ids))
            for fid, at, author, text in self.store.query(
                    f"SELECT finding_id, at, author, text FROM finding_notes WHERE finding_id IN ({q}) ORDER BY at",
                    ids):
                notes.setdefault(fid, []).append({"at": at, "author": author, "text": text})
        return [{"id": r[0], "kind": r[1], "severity": r[2], "device": r[3], "evidence": json.loads(r[4]),
                 "first_seen": r[5], "last_seen": r[6], "occurrences": r[7], "resolved_at": r[8],
                 "notes": notes.get(r[0], [])} for r in rows]


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
