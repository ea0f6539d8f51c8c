"""The commands' one way to open the probe's database: refused with the reason on stderr, never a traceback,
and a missing database is not silently created where the command only reads."""
from __future__ import annotations

import os

from probe.commands.statedir import open_store


def test_must_exist_refuses_a_directory_without_a_database(tmp_path, capsys):
    assert open_store("report", str(tmp_path), must_exist=True) is None
    assert capsys.readouterr().err.strip() == f"sitevigil report: no probe database in {tmp_path} (give --state-dir)"
    assert os.listdir(tmp_path) == []


def test_opens_and_creates_where_the_command_may_write(tmp_path):
    store = open_store("visits", str(tmp_path))
    try:
        assert store is not None
        assert os.path.exists(tmp_path / "sitevigil.db")
    finally:
        store.close()
    again = open_store("report", str(tmp_path), must_exist=True)
    assert again is not None
    again.close()


def test_a_store_that_cannot_open_is_said_with_the_command_name(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert open_store("findings", str(blocker / "state")) is None
    err = capsys.readouterr().err
    assert err.startswith("sitevigil findings: ") and str(blocker) in err and "Traceback" not in err
