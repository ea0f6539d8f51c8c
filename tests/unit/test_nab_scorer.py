"""The NAB scorer (probe/nab.py) on hand-made corpora whose answers are worked out by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from probe import nab
from probe.nab import LabelledFile


def sig(y):
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


def corpus():
    # 100 rows each: probation is floor(0.15 * 100) = 15 rows
    return [LabelledFile("a.csv", 100, [(40, 49)]), LabelledFile("b.csv", 100, [(20, 29), (70, 79)]),
            LabelledFile("quiet.csv", 100, [])]


def zeros(files):
    return [np.zeros(f.n_rows) for f in files]


@pytest.mark.parametrize("profile", list(nab.PROFILES))
def test_perfect_detector_scores_100_and_null_0(profile):
    files = corpus()
    perfect = zeros(files)
    for f, s in zip(files, perfect):
        for a, _ in f.windows:
            s[a] = 1.0
    r = nab.sweep(files, perfect, profile)
    assert r.score == pytest.approx(100.0) and r.detected_windows == 3 and r.false_positives == 0
    null = nab.sweep(files, zeros(files), profile)
    assert null.score == 0.0 and null.threshold == nab.NO_DETECTION
    # a constant score is the null detector too: firing everywhere is worse than never
    assert nab.sweep(files, [np.full(f.n_rows, 0.5) for f in files], profile).score == 0.0


def test_weights_follow_the_scaled_sigmoid():
    p = nab.PROFILES["standard"]
    w, win = nab.row_weights(100, [(40, 49)], p)
    assert (win[40:50] == 0).all() and (win[:40] == -1).all() and (win[50:] == -1).all()
    assert w[40] == pytest.approx(1.0)                               # left edge: full reward
    assert w[49] == pytest.approx(sig(-1 / 10) / sig(-1.0))          # right edge: almost nothing
    assert w[10] == pytest.approx(-0.11)                             # before any window
    assert w[50] == pytest.approx(0.11 * sig(1 / 9))                 # just after: cheap
    assert w[99] == pytest.approx(-0.11)                             # 50/9 > 3 widths after: full cost
    assert nab.probation_length(100) == 15 and nab.probation_length(10_000) == 750


def test_hand_computed_case_one_late_detection_and_one_false_positive():
    files = corpus()
    s = zeros(files)
    s[0][45] = 0.9          # a.csv: detection in the middle of its window: y = -(49-45+1)/10 = -0.5
    s[1][60] = 0.8          # b.csv: 31 rows after window (20, 29) of width 10: y = 31/9 > 3 -> -0.11
    s[2][5] = 1.0           # quiet.csv: inside probation: ignored
    r = nab.sweep(files, s, "standard")
    # at theta = 0.9: one window found, two missed -> sig(-0.5)/maxTP - 2; theta = 0.8 adds the FP
    expected = sig(-0.5) / sig(-1.0) - 2.0
    assert r.threshold == 0.9 and r.raw == pytest.approx(expected)
    assert r.score == pytest.approx(100 * (expected + 3) / 6)
    low_fn = nab.sweep(files, s, "reward_low_FN_rate")
    assert low_fn.raw == pytest.approx(sig(-0.5) / sig(-1.0) - 4.0)
    assert low_fn.score == pytest.approx(100 * (low_fn.raw + 6) / 9)


def test_only_the_earliest_detection_in_a_window_counts_and_every_fp_costs():
    files = corpus()
    s = zeros(files)
    for f, x in zip(files, s):
        for a, b in f.windows:
            x[a:b + 1] = 1.0                       # every row of every window
    s[2][50:60] = 1.0                              # ten FPs in the quiet file, before any window there
    r = nab.sweep(files, s, "standard")
    assert r.detected_windows == 3 and r.false_positives == 10
    assert r.raw == pytest.approx(3.0 - 10 * 0.11)
    r = nab.sweep(files, s, "reward_low_FP_rate")
    assert r.raw == pytest.approx(3.0 - 10 * 0.22)


def test_ties_are_detected_together():
    files = corpus()
    s = zeros(files)
    s[0][40] = 0.7
    s[2][50:80] = 0.7       # 30 FPs share the window's score: cost 3.3 > gain 2
    assert nab.sweep(files, s, "standard").score == 0.0
    s[0][40] = 0.71         # now the window can be taken alone
    r = nab.sweep(files, s, "standard")
    assert r.threshold == 0.71 and r.raw == pytest.approx(1.0 - 2.0)


def test_window_inside_probation_is_not_counted():
    files = [LabelledFile("early.csv", 100, [(2, 8)]), LabelledFile("late.csv", 100, [(50, 59)])]
    r = nab.sweep(files, zeros(files), "standard")
    assert r.windows == 1


def test_length_mismatch_and_nan_are_refused():
    files = corpus()
    with pytest.raises(ValueError, match="a.csv: 99 scores for 100 rows"):
        nab.sweep(files, [np.zeros(99), np.zeros(100), np.zeros(100)])
    bad = zeros(files)
    bad[1][50] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        nab.sweep(files, bad)


def test_real_corpus_loads_and_random_scores_like_nab_random(shared_data):
    nab_dir = shared_data / "nab"
    if not nab_dir.is_dir():
        pytest.skip("no nab/ in the shared data")
    files = nab.load_corpus(str(nab_dir))
    assert len(files) == 41 and sum(len(f.windows) for f in files) == 64
    assert nab.sweep(files, zeros(files)).score == 0.0
    rng = np.random.default_rng(0)
    r = nab.sweep(files, [rng.random(f.n_rows) for f in files])
    assert 5.0 < r.score < 20.0   # NAB's own random detector: 11.0 on the full corpus
