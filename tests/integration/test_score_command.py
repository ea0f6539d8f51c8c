"""`sitevigil score FILE.csv... --out DIR` end to end, through the real command line."""
from __future__ import annotations

import csv
import subprocess

import numpy as np


def sitevigil(cmd, env, *args):
    return subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, timeout=120)


def write_series(path, n=600, spike_at=500):
    rng = np.random.default_rng(0)
    with open(path, "w", newline="") as f:
        f.write("timestamp,value\n")
        for i in range(n):
            v = 10.0 + rng.normal(0, 0.5) + (40.0 if i == spike_at else 0.0)
            f.write(f"2024-03-01 {i // 60:02d}:{i % 60:02d}:00,{v:.3f}\n")


def test_scores_every_row_in_streaming_order(tmp_path, sitevigil_cmd, sitevigil_env):
    src = tmp_path / "in"
    src.mkdir()
    write_series(src / "cpu.csv")
    out = tmp_path / "out"
    r = sitevigil(sitevigil_cmd, sitevigil_env, "score", str(src / "cpu.csv"), "--out", str(out))
    assert r.returncode == 0, r.stderr
    rows = list(csv.reader(open(out / "cpu.csv")))
    assert rows[0] == ["timestamp", "value", "score"]
    original = list(csv.reader(open(src / "cpu.csv")))
    assert [row[:2] for row in rows[1:]] == original[1:]       # the input repeated as written
    scores = np.array([float(row[2]) for row in rows[1:]])
    assert ((scores >= 0) & (scores <= 1)).all()
    assert scores.argmax() == 500 and scores[500] >= 0.5
    # the same answer as the kernel run directly: no look-ahead, nothing per-file
    from probe.commands.score import score_series
    from probe.sources.csvseries import read_series
    s = read_series(str(src / "cpu.csv"))
    np.testing.assert_array_equal(score_series(s.ts, s.values), scores)


def test_bad_timestamp_names_file_and_line(tmp_path, sitevigil_cmd, sitevigil_env):
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,value\n2024-03-01 00:00:00,1.5\n2024-03-01 00:05:00,2\n2024-13-01 00:10:00,3\n")
    good = tmp_path / "good.csv"
    write_series(good, n=50)
    out = tmp_path / "out"
    r = sitevigil(sitevigil_cmd, sitevigil_env, "score", str(bad), str(good), "--out", str(out))
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == (
        f"sitevigil score: {bad}:4: bad timestamp '2024-13-01 00:10:00' is neither ISO 8601 "
        "(e.g. 2014-04-01 00:05:00) nor Unix seconds")
    assert not (out / "bad.csv").exists()
    assert (out / "good.csv").exists()      # one bad file does not stop the others


def test_malformed_rows_name_file_and_line(tmp_path, sitevigil_cmd, sitevigil_env):
    cases = {
        "cols.csv": ("timestamp,value\n1700000000,1\n1700000060,2,3\n",
                     "cols.csv:3: expected 2 columns (timestamp,value), got 3"),
        "value.csv": ("1700000000,1\n1700000060,twelve\n", "value.csv:2: value 'twelve' is not a number"),
    }
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        r = sitevigil(sitevigil_cmd, sitevigil_env, "score", str(tmp_path / name), "--out", str(tmp_path / "o"))
        assert r.returncode == 1
        assert r.stderr.strip() == f"sitevigil score: {tmp_path / name}:{message.split(':', 1)[1]}"


def test_missing_values_and_epoch_timestamps(tmp_path, sitevigil_cmd, sitevigil_env):
    f = tmp_path / "gaps.csv"
    f.write_text("1700000000,1\n1700000060,\n1700000120,nan\n1700000180,2\n")
    r = sitevigil(sitevigil_cmd, sitevigil_env, "score", str(f), "--out", str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr
    rows = list(csv.reader(open(tmp_path / "o" / "gaps.csv")))
    assert [row[1] for row in rows[1:]] == ["1", "", "nan", "2"]
    assert [float(row[2]) for row in rows[1:]] == [0.0, 0.0, 0.0, 0.0]
