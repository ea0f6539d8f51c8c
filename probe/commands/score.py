"""Score timestamp,value CSV files with the streaming anomaly kernel, one score per row.

Each file is one series, read in file order and scored as it would be live: every row only from
the rows before it, with the same kernel and fixed configuration the daemon uses. Writes
DIR/<same file name> with the columns timestamp,value,score (score in [0, 1]; 0.5 means about one in
a million for that series; the first rows score 0 while the series is learnt). Bad rows stop that file
with its name and line; the other files are still scored.
"""
from __future__ import annotations

import csv
import io
import os
import sys

import numpy as np


def add_arguments(p):
    p.add_argument("files", nargs="+", metavar="FILE.csv", help="timestamp,value CSV files (one series each)")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the scored copies (created if missing)")


def score_series(ts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Scores of one series, in streaming order, with the daemon's kernel and configuration."""
    from probe import fastpath

    state = fastpath.score_state_new(1)
    idx = np.zeros(len(values), dtype=np.int64)
    return fastpath.score_samples(state, fastpath.score_default_params(), idx,
                                  np.ascontiguousarray(ts, dtype=np.float64),
                                  np.ascontiguousarray(values, dtype=np.float64))


def run(args) -> int:
    from probe.files import write_atomically
    from probe.sources.csvseries import SeriesFileError, read_series

    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as exc:
        print(f"sitevigil score: cannot create output directory {args.out}: {exc.strerror}", file=sys.stderr)
        return 2
    outputs = {}
    rc = 0
    for path in args.files:
        name = os.path.basename(path)
        target = os.path.join(args.out, name)
        if os.path.abspath(target) == os.path.abspath(path):
            print(f"sitevigil score: {path}: output would overwrite the input; choose another --out",
                  file=sys.stderr)
            rc = 1
            continue
        if name in outputs:
            print(f"sitevigil score: {path}: same file name as {outputs[name]}; both would write {target}",
                  file=sys.stderr)
            rc = 1
            continue
        outputs[name] = path
        try:
            series = read_series(path)
        except SeriesFileError as exc:
            print(f"sitevigil score: {exc}", file=sys.stderr)
            rc = 1
            continue
        scores = score_series(series.ts, series.values)
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["timestamp", "value", "score"])
        for text, value, score in zip(series.timestamp_text, series.value_text, scores.tolist()):
            w.writerow([text, value, repr(score)])
        write_atomically(target, out.getvalue(), newline="")
        print(f"{path}: {len(scores)} rows, {int((scores >= 0.5).sum())} at or above 0.5 -> {target}")
    return rc
