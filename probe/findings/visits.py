"""Visits and remote sessions: when, who, on site or remote, how long, why (the findings it served, or
planned maintenance, or a client's request) and what was done. The monthly report ties each visit to
the detection that caused it, so the client sees why a technician came.

Stored beside the findings ledger in the probe's database; a visit is saved before it is acknowledged
(`Store.write_now`) and never changed afterwards. Visits older than the ledger's retention are
deleted with it.
"""
from __future__ import annotations

import time
from typing import Callable, Iterable

from probe.findings.ledger import RETENTION_SECONDS, LedgerError, NoSuchFinding
from probe.state.store import Store

MODES = ("on_site", "remote")
REASONS = ("finding", "planned", "client_request")  # a finding it served, planned maintenance, a client's request

_DDL = [
    """CREATE TABLE IF NOT EXISTS visits (
        id INTEGER PRIMARY KEY AUTOINCREMENT, start REAL NOT NULL, minutes REAL NOT NULL,
        technician TEXT NOT NULL, mode TEXT NOT NULL, reason TEXT NOT NULL, summary TEXT NOT NULL,
        recorded_at REAL NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS visits_start ON visits(start)",
    """CREATE TABLE IF NOT EXISTS visit_findings (
        visit_id INTEGER NOT NULL REFERENCES visits(id), finding_id INTEGER NOT NULL,
        PRIMARY KEY (visit_id, finding_id))""",
]


class Visits:
    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time):
        self.store = store
        self.clock = clock
        store.ensure_schema("visits", 1, _DDL)

    def add(self, *, start: float, minutes: float, technician: str, mode: str, summary: str,
            findings: Iterable[int] = (), reason: str | None = None) -> dict:
        """Record a visit or remote session. With finding ids the reason is "finding" (say so or leave
        it out); without, it must be "planned" or "client_request". LedgerError says what is wrong."""
        ids = sorted(set(int(i) for i in findings))
        reason = reason or ("finding" if ids else None)
        if reason not in REASONS:
            raise LedgerError(f"a visit needs a reason: the finding ids it served, or planned or client_request "
                              f"(got {reason!r})")
        if reason == "finding" and not ids:
            raise LedgerError("a visit for a finding names the finding ids it served")
        if mode not in MODES:
            raise LedgerError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if not (0 < minutes <= 24 * 60):
            raise LedgerError(f"duration must be more than 0 and at most 24 hours, got {minutes:g} minutes")
        technician, summary = (technician or "").strip(), (summary or "").strip()
        if not technician:
            raise LedgerError("a visit needs the technician's name")
        if not summary:
            raise LedgerError("a visit needs a summary of what was done")
        if ids:
            q = ",".join("?" * len(ids))
            known = {r[0] for r in self.store.query(f"SELECT id FROM findings WHERE id IN ({q})", ids)}
            missing = [i for i in ids if i not in known]
            if missing:
                raise NoSuchFinding(f"no finding with id {', '.join(map(str, missing))}")
        # one transaction (BEGIN IMMEDIATE holds the write lock): the visit's id is the largest, also
        # with another process writing visits at once
        done = self.store.write_now([
            ("INSERT INTO visits(id, start, minutes, technician, mode, reason, summary, recorded_at) "
             "VALUES ((SELECT COALESCE(MAX(id), 0) + 1 FROM visits), ?, ?, ?, ?, ?, ?, ?)",
             (start, minutes, technician, mode, reason, summary, self.clock())),
            *[("INSERT INTO visit_findings(visit_id, finding_id) SELECT MAX(id), ? FROM visits", (i,)) for i in ids],
        ])
        vid = done[0][1]
        return self.show(vid)

    def show(self, visit_id: int) -> dict:
        rows = self.store.query("SELECT id, start, minutes, technician, mode, reason, summary FROM visits WHERE id=?",
                                (visit_id,))
        if not rows:
            raise NoSuchFinding(f"no visit with id {visit_id}")
        return self._dicts(rows)[0]

    def listing(self, since: float = 0.0, until: float | None = None, limit: int = 1000) -> list[dict]:
        """Visits that started in [since, until], oldest first."""
        rows = self.store.query(
            "SELECT id, start, minutes, technician, mode, reason, summary FROM visits "
            "WHERE start >= ? AND start <= ? ORDER BY start, id LIMIT ?",
            (since, until if until is not None else 1e18, limit))
        return self._dicts(rows)

    def for_finding(self, finding_id: int) -> list[dict]:
        rows = self.store.query(
            "SELECT v.id, v.start, v.minutes, v.technician, v.mode, v.reason, v.summary FROM visits v "
            "JOIN visit_findings vf ON vf.visit_id = v.id WHERE vf.finding_id = ? ORDER BY v.start", (finding_id,))
        return self._dicts(rows)

    def prune(self, now: float | None = None, retention: float = RETENTION_SECONDS) -> int:
        cutoff = (self.clock() if now is None else now) - retention
        n = self.store.query("SELECT COUNT(*) FROM visits WHERE start < ?", (cutoff,))[0][0]
        if n:
            self.store.write("DELETE FROM visit_findings WHERE visit_id IN (SELECT id FROM visits WHERE start < ?)",
                             (cutoff,))
            self.store.write("DELETE FROM visits WHERE start < ?", (cutoff,))
        return n

    def _dicts(self, rows) -> list[dict]:
        served: dict[int, list[int]] = {}
        if rows:
            q = ",".join("?" * len(rows))
            for vid, fid in self.store.query(
                    f"SELECT visit_id, finding_id FROM visit_findings WHERE visit_id IN ({q}) ORDER BY finding_id",
                    [r[0] for r in rows]):
                served.setdefault(vid, []).append(fid)
        return [{"id": vid, "start": start, "minutes": minutes, "technician": tech, "mode": mode, "reason": reason,
                 "summary": summary, "findings": served.get(vid, [])}
                for vid, start, minutes, tech, mode, reason, summary in rows]
