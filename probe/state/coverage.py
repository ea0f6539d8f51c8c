"""Coverage: when the probe was watching, so a report can show its hours and its gaps honestly.

One row per interval the probe was running: the daemon opens one when it starts and extends it from
its state loop (`heartbeat`); a heartbeat later than `gap` seconds after the last (the machine slept,
the loop stalled) or in another local month opens a new one, so the stretch between them is a gap and
an interval's counts belong to one month. Each interval also counts the SNMP polls made and frames
seen during it (from the subsystems' cumulative totals, as deltas). A replayed capture records its
span as source "replay", which a report names "replayed capture" beside "live".

Bounded: intervals that ended before the retention are pruned with the ledger's, and at most
`max_rows` are kept (the oldest go first).
"""
from __future__ import annotations

import time
from typing import Callable

from probe.state.store import Store

SOURCES = ("live", "replay")
GAP_SECONDS = 60.0     # heartbeats further apart than this: the probe was not watching in between
MAX_ROWS = 50_000      # a restart loop must not fill the disk

_DDL = [
    """CREATE TABLE IF NOT EXISTS coverage (
        id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, start REAL NOT NULL, end REAL NOT NULL,
        polls INTEGER NOT NULL DEFAULT 0, frames INTEGER NOT NULL DEFAULT 0, label TEXT NOT NULL DEFAULT '')""",
    "CREATE INDEX IF NOT EXISTS coverage_start ON coverage(start)",
]


def _month_of(ts: float) -> tuple[int, int]:
    t = time.localtime(ts)
    return t.tm_year, t.tm_mon


class Coverage:
    def __init__(self, store: Store, *, gap: float = GAP_SECONDS, max_rows: int = MAX_ROWS,
                 clock: Callable[[], float] = time.time):
        self.store = store
        self.gap = gap
        self.max_rows = max_rows
        self.clock = clock
        store.ensure_schema("coverage", 1, _DDL)
        self._current: int | None = None  # this process's interval
        self._end = 0.0
        self._totals = (0, 0)  # the subsystems' cumulative polls and frames at the last heartbeat

    def heartbeat(self, now: float | None = None, polls_total: int = 0, frames_total: int = 0) -> int:
        """The probe is running at `now`; the subsystems have made `polls_total` polls and seen
        `frames_total` frames since they started. Returns the interval's id."""
        now = self.clock() if now is None else now
        last_polls, last_frames = self._totals
        # a total that went down is a subsystem that started again: all it has counted is new
        polls = polls_total - last_polls if polls_total >= last_polls else polls_total
        frames = frames_total - last_frames if frames_total >= last_frames else frames_total
        self._totals = (polls_total, frames_total)
        if self._current is None or now - self._end > self.gap or now < self._end \
                or _month_of(now) != _month_of(self._end):
            self._current = self._new_id()
            self.store.write("INSERT INTO coverage(id, source, start, end, polls, frames) VALUES (?, 'live', ?, ?, ?, ?)",
                             (self._current, now, now, polls, frames))
        else:
            self.store.write("UPDATE coverage SET end=?, polls=polls+?, frames=frames+? WHERE id=?",
                             (now, polls, frames, self._current))
        self._end = now
        return self._current

    def record_span(self, start: float, end: float, *, source: str = "replay", polls: int = 0, frames: int = 0,
                    label: str = "") -> int:
        """A span the probe watched, known afterwards (a replayed capture: its first and last frame)."""
        if source not in SOURCES:
            raise ValueError(f"coverage source must be one of {', '.join(SOURCES)}, got {source!r}")
        if end < start:
            raise ValueError(f"coverage span ends ({end}) before it starts ({start})")
        fid = self._new_id()
        self.store.write("INSERT INTO coverage(id, source, start, end, polls, frames, label) VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (fid, source, start, end, polls, frames, label[:200]))
        return fid

    def _new_id(self) -> int:
        # allocated here, like the ledger's ids, so a write queued on a full disk keeps the id its updates name
        mine = self._current or 0
        return max(mine, int(self.store.query("SELECT COALESCE(MAX(id), 0) FROM coverage")[0][0])) + 1

    def intervals(self, since: float, until: float) -> list[dict]:
        """Intervals overlapping [since, until), oldest first, as stored (not clipped)."""
        rows = self.store.query("SELECT id, source, start, end, polls, frames, label FROM coverage "
                                "WHERE end >= ? AND start < ? ORDER BY start, id", (since, until))
        return [{"id": r[0], "source": r[1], "start": r[2], "end": r[3], "polls": r[4], "frames": r[5],
                 "label": r[6]} for r in rows]

    def prune(self, now: float | None = None, retention: float = 400 * 86400.0) -> int:
        now = self.clock() if now is None else now
        n = self.store.query("SELECT COUNT(*) FROM coverage WHERE end < ?", (now - retention,))[0][0]
        if n:
            self.store.write("DELETE FROM coverage WHERE end < ?", (now - retention,))
        total = self.store.query("SELECT COUNT(*) FROM coverage")[0][0] - n
        if total > self.max_rows:
            self.store.write("DELETE FROM coverage WHERE id IN (SELECT id FROM coverage ORDER BY start, id LIMIT ?)",
                             (total - self.max_rows,))
            n += total - self.max_rows
        return n


def covered(intervals: list[dict], since: float, until: float) -> list[tuple[float, float, str]]:
    """The union of the intervals within [since, until): (start, end, sources) stretches, oldest first;
    sources is "live", "replay" or "live+replay" where both covered a stretch."""
    spans = sorted((max(since, i["start"]), min(until, i["end"]), i["source"]) for i in intervals)
    out: list[list] = []
    for s, e, src in spans:
        if e <= s:
            continue
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
            out[-1][2].add(src)
        else:
            out.append([s, e, {src}])
    return [(s, e, "+".join(sorted(src))) for s, e, src in out]


def gaps(stretches: list[tuple[float, float, str]], since: float, until: float,
         min_gap: float = 5 * 60.0) -> list[tuple[float, float]]:
    """Stretches of [since, until) not covered, at least `min_gap` seconds long."""
    out, at = [], since
    for s, e, _ in stretches:
        if s - at >= min_gap:
            out.append((at, s))
        at = max(at, e)
    if until - at >= min_gap:
        out.append((at, until))
    return out
