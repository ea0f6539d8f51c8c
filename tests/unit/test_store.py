"""The state database keeps what it cannot write yet (full disk) and loses nothing until its bound."""

import pytest

from probe.state.store import Store, StoreError


def _fill_up(store: Store, pages: int) -> None:
    # SQLITE_FULL the cheap way: cap the database size, exactly what a full disk returns.
    store._db.execute(f"PRAGMA max_page_count={pages}")


def test_survives_restart(tmp_path):
    s = Store(str(tmp_path))
    s.ensure_schema("t", 1, ["CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT)"])
    assert s.write("INSERT INTO kv VALUES (?, ?)", ("a", "1"))
    s.close()
    s2 = Store(str(tmp_path))
    s2.ensure_schema("t", 1, ["CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)"])  # not run again
    assert s2.query("SELECT v FROM kv WHERE k='a'") == [("1",)]
    s2.close()


def test_full_disk_keeps_writes_and_retries(tmp_path):
    s = Store(str(tmp_path))
    s.ensure_schema("t", 1, ["CREATE TABLE IF NOT EXISTS blob (b BLOB)"])
    page = s.query("PRAGMA page_count")[0][0]
    _fill_up(s, page + 2)
    results = [s.write("INSERT INTO blob VALUES (?)", (b"x" * 8192,)) for _ in range(5)]
    assert results[-1] is False
    assert s.backlog > 0 and s.writes_failed_total > 0
    assert "full" in s.last_error
    _fill_up(s, 1_000_000)  # space again
    assert s.flush() is True
    assert s.query("SELECT count(*) FROM blob")[0][0] == 5  # nothing lost
    s.close()


def test_backlog_is_bounded_and_counts_drops(tmp_path):
    s = Store(str(tmp_path), backlog_limit=3)
    s.ensure_schema("t", 1, ["CREATE TABLE IF NOT EXISTS blob (b BLOB)"])
    _fill_up(s, s.query("PRAGMA page_count")[0][0])
    for _ in range(10):
        s.write("INSERT INTO blob VALUES (?)", (b"x" * 8192,))
    assert s.backlog == 3
    assert s.writes_dropped_total == 7
    s.close()


def test_unwritable_state_dir_is_a_clear_error(tmp_path):
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(StoreError, match="cannot create state directory"):
        Store(str(f / "sub"))


def test_corrupt_database_is_a_clear_error(tmp_path):
    (tmp_path / "sitevigil.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot open state database"):
        Store(str(tmp_path))
