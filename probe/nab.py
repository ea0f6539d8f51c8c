"""The Numenta Anomaly Benchmark (NAB v1.1) score, written from ../shared/data/nab/SCORING.md.

It judges anomaly scores against labelled windows, so it stands outside the data flow (sources ->
fast path -> state -> findings -> exposition) and imports nothing from it: benchmarks/bench_nab.py and
the tests use it, and anyone can score the output of `sitevigil score` with it.

The steps, as NAB's sweeper/optimizer/runner do them:
1. per file, each row gets a weight: inside window k, A_TP * sigma(-(b_k - i + 1)/W_k) / sigma(-1)
   (1 at the window's left edge, ~0 at its right edge); outside every window -A_FP before the first
   window, and A_FP * sigma(|i - b_k'| / (W_k' - 1)) after window k' (sigma(y) = 2/(1+e^{5y}) - 1,
   -1 beyond y > 3); the first P = min(floor(0.15 n), 750) rows (probation) are dropped;
2. S(theta) = sum over windows of (the best weight among its rows with score >= theta, else -A_FN)
   plus the weights of every row outside the windows with score >= theta;
3. theta* maximises S over every distinct score in the whole corpus plus 1.1 (no detection), per profile;
4. NAB = 100 (S(theta*) - S_null) / (S_perfect - S_null), S_null = -A_FN * windows,
   S_perfect = A_TP * windows, counting the windows actually scored (those with a row after probation,
   which is what NAB's sweep counts).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Profile:
    name: str
    tp: float
    fp: float
    fn: float


PROFILES: dict[str, Profile] = {
    "standard": Profile("standard", 1.0, 0.11, 1.0),
    "reward_low_FP_rate": Profile("reward_low_FP_rate", 1.0, 0.22, 1.0),
    "reward_low_FN_rate": Profile("reward_low_FN_rate", 1.0, 0.11, 2.0),
}

PROBATION_PERCENT = 0.15
NO_DETECTION = 1.1  # the threshold above every score


def scaled_sigmoid(y: float) -> float:
    if y > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


MAX_TP = scaled_sigmoid(-1.0)


def probation_length(n_rows: int) -> int:
    return int(min(math.floor(PROBATION_PERCENT * n_rows), PROBATION_PERCENT * 5000))


@dataclass
class LabelledFile:
    """One file of the corpus: its name (`category/name.csv`), row count and windows as row ranges."""
    name: str
    n_rows: int
    windows: list[tuple[int, int]]          # inclusive [first row, last row], in time order
    ts: np.ndarray | None = None            # float64 Unix seconds (when loaded from disk)
    values: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


def row_weights(n_rows: int, windows: list[tuple[int, int]], profile: Profile) -> tuple[np.ndarray, np.ndarray]:
    """(weight, window number or -1) per row, before dropping the probation rows."""
    weight = np.empty(n_rows, dtype=np.float64)
    window_of = np.full(n_rows, -1, dtype=np.int64)
    prev_right = None
    prev_width = None
    k = 0
    i = 0
    wins = sorted(windows)
    while i < n_rows:
        if k < len(wins) and i == wins[k][0]:
            a, b = wins[k]
            width = float(b - a + 1)
            for j in range(a, min(b, n_rows - 1) + 1):
                weight[j] = profile.tp * scaled_sigmoid(-(b - j + 1) / width) / MAX_TP
                window_of[j] = k
            prev_right, prev_width = b, width
            i = b + 1
            k += 1
            continue
        if prev_right is None:
            weight[i] = -profile.fp
        else:
            # a one-row window has no width to scale by; NAB divides by zero there, we take the full cost
            y = abs(prev_right - i) / (prev_width - 1.0) if prev_width > 1 else math.inf
            weight[i] = profile.fp * scaled_sigmoid(y)
        i += 1
    return weight, window_of


@dataclass(frozen=True)
class Result:
    profile: str
    threshold: float
    raw: float                # S(theta*)
    score: float              # normalised NAB score, 0 = null detector, 100 = perfect
    windows: int
    detected_windows: int
    false_positives: int      # rows outside windows at or above theta*


def _pool(files: list[LabelledFile], scores: list[np.ndarray], profile: Profile):
    all_scores, all_weights, all_window = [], [], []
    n_windows = 0
    for f, s in zip(files, scores):
        s = np.asarray(s, dtype=np.float64)
        if len(s) != f.n_rows:
            raise ValueError(f"{f.name}: {len(s)} scores for {f.n_rows} rows")
        w, win = row_weights(f.n_rows, f.windows, profile)
        p = probation_length(f.n_rows)
        w, win, s = w[p:], win[p:], s[p:]
        scored = np.unique(win[win >= 0])
        remap = np.full(len(f.windows) + 1, -1, dtype=np.int64)
        remap[scored] = np.arange(n_windows, n_windows + len(scored))
        all_window.append(np.where(win >= 0, remap[win], -1))
        n_windows += len(scored)
        all_scores.append(s)
        all_weights.append(w)
    if not files:
        return np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64), 0
    return np.concatenate(all_scores), np.concatenate(all_weights), np.concatenate(all_window), n_windows


def sweep(files: list[LabelledFile], scores: list[np.ndarray], profile: Profile | str = "standard") -> Result:
    """Best threshold over the whole corpus and its normalised NAB score, as NAB's optimizer finds it."""
    if isinstance(profile, str):
        profile = PROFILES[profile]
    s, w, win, n_windows = _pool(files, scores, profile)
    if np.isnan(s).any():
        raise ValueError("scores contain NaN; NAB needs a score in [0, 1] for every row")
    order = np.argsort(-s, kind="stable")
    s, w, win = s[order], w[order], win[order]
    window_value = np.full(n_windows, -profile.fn)
    fp_total = 0.0
    total = -profile.fn * n_windows       # S at threshold 1.1: nothing detected
    best = (total, NO_DETECTION, 0, 0)
    detected = 0
    n_fp = 0
    n = len(s)
    i = 0
    while i < n:
        # every row sharing this score is detected together
        j = i
        theta = s[i]
        while j < n and s[j] == theta:
            k = win[j]
            if k < 0:
                fp_total += w[j]
                total += w[j]
                n_fp += 1
            elif w[j] > window_value[k]:
                if window_value[k] == -profile.fn:
                    detected += 1
                total += w[j] - window_value[k]
                window_value[k] = w[j]
            j += 1
        if total > best[0]:
            best = (total, float(theta), detected, n_fp)
        i = j
    raw, theta, det, fps = best
    return Result(profile.name, theta, raw, _normalised(raw, n_windows, profile), n_windows, det, fps)


def _normalised(raw: float, n_windows: int, profile: Profile) -> float:
    """NAB's 0-100 scale: the null detector (every window missed) is 0, the perfect one 100."""
    null = -profile.fn * n_windows
    perfect = profile.tp * n_windows
    return 100.0 * (raw - null) / (perfect - null) if n_windows else 0.0


def sweep_all(files: list[LabelledFile], scores: list[np.ndarray]) -> dict[str, Result]:
    return {name: sweep(files, scores, p) for name, p in PROFILES.items()}


# -- the corpus on disk -------------------------------------------------------------------------

def _window_rows(ts: np.ndarray, start: float, end: float) -> tuple[int, int]:
    a = int(np.searchsorted(ts, start, side="left"))
    b = int(np.searchsorted(ts, end, side="right")) - 1
    return a, b


def load_corpus(nab_dir: str, *, windows_file: str = "combined_windows.json") -> list[LabelledFile]:
    """Every file named in the windows file, with its rows, in the windows file's order."""
    from probe.sources.csvseries import parse_timestamp, read_series

    with open(os.path.join(nab_dir, windows_file), encoding="utf-8") as f:
        windows = json.load(f)
    files = []
    for name, wins in windows.items():
        series = read_series(os.path.join(nab_dir, "data", name))
        rows = []
        for start, end in wins:
            # NAB matches the first 19 characters (the timestamps carry a .000000 suffix)
            a, b = _window_rows(series.ts, parse_timestamp(start[:19]), parse_timestamp(end[:19]))
            if a > b:
                raise ValueError(f"{name}: window {start} .. {end} holds no row")
            rows.append((a, b))
        files.append(LabelledFile(name, len(series.ts), rows, series.ts, series.values))
    return files


def score_at(files: list[LabelledFile], scores: list[np.ndarray], threshold: float,
             profile: Profile | str = "standard") -> Result:
    """S and the normalised score at a threshold chosen elsewhere (held-out scoring: theta is not fitted
    to these files, as sweep() fits it)."""
    if isinstance(profile, str):
        profile = PROFILES[profile]
    s, w, win, n_windows = _pool(files, scores, profile)
    hit = s >= threshold
    total = float(w[hit & (win < 0)].sum())
    detected = 0
    for k in range(n_windows):
        mine = hit & (win == k)
        if mine.any():
            total += float(w[mine].max())
            detected += 1
        else:
            total -= profile.fn
    return Result(profile.name, float(threshold), total, _normalised(total, n_windows, profile), n_windows,
                  detected, int((hit & (win < 0)).sum()))


def category(name: str) -> str:
    """`realTraffic/speed_6005.csv` -> `realTraffic`."""
    return name.split("/", 1)[0]


def pooled(results: list[Result], profile: Profile | str = "standard") -> float:
    """One normalised score from several disjoint parts' raw S (each part at its own threshold)."""
    if isinstance(profile, str):
        profile = PROFILES[profile]
    return _normalised(sum(r.raw for r in results), sum(r.windows for r in results), profile)
