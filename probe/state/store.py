"""The probe's embedded SQLite database (one file in the state directory).

Each component owns its tables and declares them with `ensure_schema(component, version, ddl)`; the
store keeps a per-component schema version so upgrades run once. Writes that fail because the disk is
full (or the database is read-only) are kept in a bounded in-memory backlog and retried on the next
write or flush, so a full disk loses nothing until the backlog bound, and that loss is counted.
"""
from __future__ import annotations

import collections
import logging
import os
import sqlite3
import threading
from typing import Any, Iterable, Sequence

_log = logging.getLogger(__name__)

DB_NAME = "sitevigil.db"


class StoreError(Exception):
    pass


class Store:
    def __init__(self, state_dir: str, *, backlog_limit: int = 100_000, memory: bool = False):
        self.state_dir = state_dir
        self.path = ":memory:" if memory else os.path.join(state_dir, DB_NAME)
        if not memory:
            try:
                os.makedirs(state_dir, mode=0o750, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create state directory {state_dir}: {exc.strerror}") from None
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open state database {self.path}: {exc}") from None
        self._lock = threading.Lock()
        self._backlog: collections.deque[tuple[str, Sequence[Any] | None, list | None]] = collections.deque()
        self.backlog_limit = backlog_limit
        self.writes_failed_total = 0
        self.writes_dropped_total = 0
        self.last_error = ""

    # -- schema ---------------------------------------------------------------------------------
    def ensure_schema(self, component: str, version: int, ddl: Iterable[str]) -> None:
        """Run `ddl` once for (component, version). DDL should use IF NOT EXISTS so it is idempotent."""
        with self._lock:
            row = self._db.execute("SELECT version FROM schema_versions WHERE component=?", (component,)).fetchone()
            if row and row[0] >= version:
                return
            self._db.execute("BEGIN")
            try:
                for stmt in ddl:
                    self._db.execute(stmt)
                self._db.execute("INSERT OR REPLACE INTO schema_versions(component, version) VALUES (?, ?)",
                                 (component, version))
                self._db.execute("COMMIT")
            except sqlite3.DatabaseError:
                self._db.execute("ROLLBACK")
                raise

    # -- writes ---------------------------------------------------------------------------------
    def write(self, sql: str, params: Sequence[Any] = ()) -> bool:
        """Run one write. On a full disk the write is kept and retried later; returns False then."""
        return self._write(sql, params, None)

    def write_many(self, sql: str, rows: list[Sequence[Any]]) -> bool:
        return self._write(sql, None, rows)

    def _write(self, sql, params, rows) -> bool:
        with self._lock:
            self._drain_locked()
            if self._backlog:  # still failing: keep order, queue behind
                self._enqueue_locked(sql, params, rows)
                return False
            try:
                self._exec_locked(sql, params, rows)
                return True
            except sqlite3.OperationalError as exc:
                self._failed_locked(exc)
                self._enqueue_locked(sql, params, rows)
                return False

    def write_now(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[tuple[int, int]]:
        """Run `statements` in one transaction now, or raise StoreError (nothing is kept for later): for a
        person's action, which must be saved or refused while they wait. Returns each one's (rowcount,
        lastrowid). The backlog goes first, so the writes stay in order."""
        with self._lock:
            self._drain_locked()
            if self._backlog:
                raise StoreError(f"state database {self.path} cannot be written ({self.last_error}); "
                                 f"nothing was changed")
            counts = []
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    for sql, params in statements:
                        cur = self._db.execute(sql, params)
                        counts.append((cur.rowcount, cur.lastrowid))
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:  # SQLITE_FULL may have rolled it back already
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:
                self._failed_locked(exc)
                raise StoreError(f"state database {self.path}: write failed: {exc}; nothing was changed") from None
            return counts

    def flush(self) -> bool:
        """Retry the backlog; True when nothing is left pending."""
        with self._lock:
            self._drain_locked()
            return not self._backlog

    @property
    def backlog(self) -> int:
        return len(self._backlog)

    def _exec_locked(self, sql, params, rows):
        if rows is not None:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(sql, rows)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # SQLITE_FULL may have rolled it back already
                    self._db.execute("ROLLBACK")
                raise
        else:
            self._db.execute(sql, params)

    def _failed_locked(self, exc: Exception) -> None:
        self.writes_failed_total += 1
        msg = f"state database {self.path}: write failed: {exc}"
        if msg != self.last_error:
            _log.error("%s; keeping up to %d writes in memory and retrying", msg, self.backlog_limit)
        self.last_error = msg

    def _enqueue_locked(self, sql, params, rows):
        if len(self._backlog) >= self.backlog_limit:
            self._backlog.popleft()
            self.writes_dropped_total += 1
        self._backlog.append((sql, params, rows))

    def _drain_locked(self):
        while self._backlog:
            sql, params, rows = self._backlog[0]
            try:
                self._exec_locked(sql, params, rows)
            except sqlite3.OperationalError as exc:
                self._failed_locked(exc)
                return
            except sqlite3.IntegrityError as exc:  # a queued write another process made impossible meanwhile
                _log.error("state database %s: dropping a queued write that no longer fits: %s", self.path, exc)
                self.writes_dropped_total += 1
            self._backlog.popleft()
        self.last_error = ""

    # -- reads ----------------------------------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            self._drain_locked()
            if self._backlog:
                _log.error("state database %s: %d writes could not be saved at shutdown: %s",
                           self.path, len(self._backlog), self.last_error)
            self._db.close()
