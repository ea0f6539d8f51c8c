"""Twin of probe/fastpath/kernels/score.pxi: streaming anomaly scores for many series at once.

The model, per series, in constant memory (one row of SCORE_STATE_WIDTH float64 in `state`):

* two predictions of the next value: a fast level (one step ahead; the level before the last sample
  counts too, so the drop back after a one-sample spike is no second surprise) and the usual value
  for this hour of the day (24 buckets keyed from the timestamp, UTC: a daily rhythm is learnt where
  the series has one, and costs nothing where it has none; each sample moves it at most SEAS_CLIP
  usual misses, so one spike does not make the next visits of that hour miss);
* each miss is divided by that prediction's usual miss (learnt over ~1000 samples, never below a
  small share of the range seen, so a flat series is not alarmed by rounding) and put on a log scale
  (log1p), which tames heavy tails;
* each of these surprises, and a short-window mean (~20 samples) of each, is compared with this
  series' own long-run mean and variance of it: a z-score. A jump counts only when both the level and
  the hour miss it (so a daily step is no anomaly); a run of misses against either counts on its own
  (a daily step that did not come, a burst of noise), and so does a level shift: the mean of the last
  ~10 values (each clipped to 3 usual spreads, so one spike is not a shift) against the long-run
  mean, in units of the usual spread around it;
* the z becomes a Gaussian tail probability p, but no smaller than this series' own record allows:
  for N_TAIL levels of z (TAIL_LO, TAIL_LO + TAIL_STEP, ...) the kernel keeps how often z reached
  each, over ~1/ALPHA_TAIL samples (about five weeks of 5-minute polls: a weekly event is part of the
  record; a plain mean since the warm-up until then). The highest level under this z that was reached
  more than TAIL_MIN times in that memory gives the smallest p its frequency allows, lowered by
  10^TAIL_DECAY for each unit of z this z's own level lies above it: beyond what the series has shown
  often, a surprise is claimed at most ten times rarer per usual spread, not the Gaussian's millions
  (sparse counts and heavy-tailed series are not Gaussian: a second error in a poll that usually has
  none is one in a thousand, not one in ten million). A spike of the same size every day is routine
  by the fourth day; a much bigger one is still news;
* a value beyond every value seen so far by more than SPATIAL_TOL of their range (max - min), after
  SPATIAL_AFTER samples, has p at most SPATIAL_P (Numenta's "spatial anomaly" rule);
* a value stuck (a run of equal values) has
  probability r^(RUN_WEIGHT * run) where r is how often the series repeats a value (never taken
  below 1 in 1/ALPHA_Z: a rarer rate cannot be known from that much memory); the smaller p counts;
* the score is -log10(p) / LOG_SCALE, capped at 1: the same score means the same rarity on every
  series (0.5 is one in a million with the defaults);
* one alert per episode: after a score reaches ALERT, the next REFRACTORY samples of that series
  score 0 unless one is clearly (MARGIN) stronger than the episode's best, which starts it anew;
  silenced scores raise the episode's best too, so a slow climb stays one episode.

Samples whose value or timestamp is NaN or infinite score 0 and leave the state alone. Values beyond
1e150 in size are clipped. Timestamps need not be regular or even ordered (only the hour bucket uses
them). A series scores 0 for its first WARMUP samples.

This module is the slow reference: the same arithmetic in the same order as the compiled kernel, so
the answers are equal.
"""
import math

import numpy as np

from probe.fastpath.layout import SCORE_PARAM_NAMES, score_constants

__all__ = ["SCORE_STATE_WIDTH", "SCORE_N_PARAMS", "score_default_params", "score_state_new", "score_samples"]

# state columns and parameter indices: probe.fastpath.layout's SCORE_STATE and SCORE_PARAM_NAMES (the
# kernels get the same numbers generated into layout.pxi); each column's meaning is written there
_K = score_constants()
C_N, C_LEVEL, C_ERR, C_MIN, C_MAX = _K["C_N"], _K["C_LEVEL"], _K["C_ERR"], _K["C_MIN"], _K["C_MAX"]
C_SHORT, C_SHORT_HOUR, C_EP_MAX, C_EP_LEFT = _K["C_SHORT"], _K["C_SHORT_HOUR"], _K["C_EP_MAX"], _K["C_EP_LEFT"]
C_SEAS_ERR, C_PREV_LEVEL, C_LAST_X, C_RUN, C_REPEAT = (_K["C_SEAS_ERR"], _K["C_PREV_LEVEL"], _K["C_LAST_X"],
                                                       _K["C_RUN"], _K["C_REPEAT"])
C_Z_STEP, C_Z_HOUR, C_Z_SHORT, C_Z_SHORT_HOUR = _K["C_Z_STEP"], _K["C_Z_HOUR"], _K["C_Z_SHORT"], _K["C_Z_SHORT_HOUR"]
C_SHIFT_SHORT, C_SHIFT_LONG, C_SHIFT_DEV, C_Z_SHIFT = (_K["C_SHIFT_SHORT"], _K["C_SHIFT_LONG"], _K["C_SHIFT_DEV"],
                                                       _K["C_Z_SHIFT"])
C_TAIL, N_TAIL, C_SEAS, N_SEAS, WIDTH = _K["C_TAIL"], _K["N_TAIL"], _K["C_SEAS"], _K["N_SEAS"], _K["SCORE_WIDTH"]

PARAM_NAMES = SCORE_PARAM_NAMES
(P_ALPHA_LEVEL, P_ALPHA_ERR, P_ALPHA_Z, P_ALPHA_SHORT, P_ALPHA_SEAS, P_FLOOR_REL, P_LOG_SCALE, P_WARMUP,
 P_ALERT, P_REFRACTORY, P_MARGIN, P_USE_HOUR, P_RUN_WEIGHT, P_ALPHA_SHIFT, P_SHIFT_CLIP, P_TAIL_LO, P_TAIL_STEP,
 P_TAIL_MIN, P_SPATIAL_TOL, P_SPATIAL_P, P_SPATIAL_AFTER, P_SEAS_CLIP, P_ALPHA_TAIL, P_TAIL_DECAY) = (
    _K[f"P_{n.upper()}"] for n in ("alpha_level", "alpha_err", "alpha_z", "alpha_short", "alpha_seas", "floor_rel",
                                   "log_scale", "warmup", "alert", "refractory", "margin", "use_hour",
                                   "run_weight", "alpha_shift", "shift_clip", "tail_lo", "tail_step", "tail_min",
                                   "spatial_tol", "spatial_p", "spatial_after", "seas_clip", "alpha_tail", "tail_decay"))
N_PARAMS = _K["N_PARAMS"]
LEARN_AFTER = 20.0

SCORE_STATE_WIDTH = WIDTH
SCORE_N_PARAMS = N_PARAMS

_HUGE = 1e150
_TINY = 1e-300
_RMAX = 1e6
_SQRT1_2 = 0.7071067811865476


def _fmin(a, b):
    return a if a < b else b


def _fmax(a, b):
    return a if a > b else b


def _ew(old, new, alpha):
    return old + alpha * (new - old)


def _zstat(st, col, u, alpha, learn):
    mu = st[col]
    var = st[col + 1]
    z = (u - mu) / (math.sqrt(var) + 1e-6)
    if learn:
        st[col + 1] = (1.0 - alpha) * (var + alpha * (u - mu) * (u - mu))
        st[col] = mu + alpha * (u - mu)
    return z


def _hour_bucket(t):
    b = math.fmod(math.floor(t / 3600.0), float(N_SEAS))
    if b < 0.0:
        b += N_SEAS
    return b


def _score_one(st, prm, t, x):
    """One sample of one series; st is that series' state as a Python list (written back by the caller)."""
    if not (math.isfinite(x) and math.isfinite(t)):
        return 0.0
    if x > _HUGE:
        x = _HUGE
    elif x < -_HUGE:
        x = -_HUGE
    b = int(_hour_bucket(t))
    n = st[C_N]
    if n == 0.0:
        for k in range(WIDTH):
            st[k] = 0.0
        st[C_N] = 1.0
        st[C_LEVEL] = x
        st[C_MIN] = x
        st[C_MAX] = x
        st[C_PREV_LEVEL] = x
        st[C_LAST_X] = x
        st[C_SHIFT_SHORT] = x
        st[C_SHIFT_LONG] = x
        for k in range(N_SEAS):
            st[C_SEAS + k] = x
        return 0.0
    n = n + 1.0
    st[C_N] = n
    fl = prm[P_FLOOR_REL] * (st[C_MAX] - st[C_MIN]) + 1e-12 * abs(st[C_LEVEL]) + _TINY

    e_step = _fmin(abs(x - st[C_LEVEL]), abs(x - st[C_PREV_LEVEL]))
    e_hour = abs(x - st[C_SEAS + b])
    u_step = math.log1p(_fmin(e_step / _fmax(st[C_ERR], fl), _RMAX))
    u_hour = math.log1p(_fmin(e_hour / _fmax(st[C_SEAS_ERR], fl), _RMAX))
    short = _ew(st[C_SHORT], u_step, prm[P_ALPHA_SHORT])
    short_hour = _ew(st[C_SHORT_HOUR], u_hour, prm[P_ALPHA_SHORT])

    learn = n > LEARN_AFTER
    alpha_z = _fmax(prm[P_ALPHA_Z], 1.0 / _fmax(n - LEARN_AFTER, 1.0))
    z = _zstat(st, C_Z_STEP, u_step, alpha_z, learn)
    zc = _zstat(st, C_Z_HOUR, u_hour, alpha_z, learn)
    if prm[P_USE_HOUR] > 0.0 and zc < z:
        z = zc
    zc = _zstat(st, C_Z_SHORT, short, alpha_z, learn)
    if zc > z:
        z = zc
    zc = _zstat(st, C_Z_SHORT_HOUR, short_hour, alpha_z, learn)
    if prm[P_USE_HOUR] > 0.0 and zc > z:
        z = zc
    xc = _fmin(_fmax(x, st[C_SHIFT_LONG] - prm[P_SHIFT_CLIP] * st[C_SHIFT_DEV]),
               st[C_SHIFT_LONG] + prm[P_SHIFT_CLIP] * st[C_SHIFT_DEV])
    shift_short = _ew(st[C_SHIFT_SHORT], xc, prm[P_ALPHA_SHIFT])
    u_shift = math.log1p(_fmin(abs(shift_short - st[C_SHIFT_LONG]) / _fmax(st[C_SHIFT_DEV], fl), _RMAX))
    zc = _zstat(st, C_Z_SHIFT, u_shift, alpha_z, learn)
    if zc > z:
        z = zc
    p = 0.5 * math.erfc(z * _SQRT1_2)

    if n > prm[P_WARMUP]:
        cap = 0.0
        cap_lv = 0.0
        top_lv = 0.0
        a_tail = _fmax(prm[P_ALPHA_TAIL], 1.0 / (n - prm[P_WARMUP]))
        for k in range(N_TAIL):
            lv = prm[P_TAIL_LO] + k * prm[P_TAIL_STEP]
            if z >= lv:
                top_lv = lv
                if st[C_TAIL + k] > prm[P_TAIL_MIN] * a_tail:
                    cap = st[C_TAIL + k]
                    cap_lv = lv
                st[C_TAIL + k] += a_tail * (1.0 - st[C_TAIL + k])
            else:
                st[C_TAIL + k] -= a_tail * st[C_TAIL + k]
        if cap > 0.0:
            cap = cap * math.pow(10.0, -(top_lv - cap_lv) * prm[P_TAIL_DECAY])
            if cap > p:
                p = cap
        lv = prm[P_SPATIAL_TOL] * (st[C_MAX] - st[C_MIN])
        if (x > st[C_MAX] + lv or x < st[C_MIN] - lv) and prm[P_SPATIAL_P] < p and n > prm[P_SPATIAL_AFTER]:
            p = prm[P_SPATIAL_P]

    if x == st[C_LAST_X]:
        st[C_RUN] += 1.0
    else:
        st[C_RUN] = 0.0
    if prm[P_RUN_WEIGHT] > 0.0 and st[C_RUN] > 0.0:
        q = math.pow(_fmax(st[C_REPEAT], prm[P_ALPHA_Z]), st[C_RUN] * prm[P_RUN_WEIGHT])
        if q < p:
            p = q
    if learn:
        st[C_REPEAT] = _ew(st[C_REPEAT], 1.0 if st[C_RUN] > 0.0 else 0.0, alpha_z)
    st[C_LAST_X] = x

    if p < _TINY:
        p = _TINY
    s = _fmin(1.0, -math.log10(p) / prm[P_LOG_SCALE])
    if n <= prm[P_WARMUP]:
        s = 0.0

    st[C_SHORT] = short
    st[C_SHORT_HOUR] = short_hour
    st[C_ERR] = _ew(st[C_ERR], e_step, _fmax(prm[P_ALPHA_ERR], 1.0 / n))
    st[C_PREV_LEVEL] = st[C_LEVEL]
    st[C_LEVEL] = _ew(st[C_LEVEL], x, prm[P_ALPHA_LEVEL])
    st[C_SEAS_ERR] = _ew(st[C_SEAS_ERR], e_hour, _fmax(prm[P_ALPHA_ERR], 1.0 / n))
    st[C_SHIFT_SHORT] = shift_short
    st[C_SHIFT_DEV] = _ew(st[C_SHIFT_DEV], abs(x - st[C_SHIFT_LONG]), _fmax(prm[P_ALPHA_ERR], 1.0 / n))
    st[C_SHIFT_LONG] = _ew(st[C_SHIFT_LONG], x, _fmax(prm[P_ALPHA_ERR], 1.0 / n))
    lv = prm[P_SEAS_CLIP] * _fmax(st[C_SEAS_ERR], fl)
    st[C_SEAS + b] = _ew(st[C_SEAS + b], _fmin(_fmax(x, st[C_SEAS + b] - lv), st[C_SEAS + b] + lv), prm[P_ALPHA_SEAS])
    if x < st[C_MIN]:
        st[C_MIN] = x
    if x > st[C_MAX]:
        st[C_MAX] = x

    ep_left = st[C_EP_LEFT]
    if ep_left > 0.0:
        st[C_EP_LEFT] = ep_left - 1.0
        if s > st[C_EP_MAX] + prm[P_MARGIN]:
            st[C_EP_MAX] = s
            st[C_EP_LEFT] = prm[P_REFRACTORY]
            return s
        if s > st[C_EP_MAX]:
            st[C_EP_MAX] = s   # a slow climb is the same episode: only a sudden jump is news
        return 0.0
    if s >= prm[P_ALERT]:
        st[C_EP_MAX] = s
        st[C_EP_LEFT] = prm[P_REFRACTORY]
    return s


def score_default_params():
    p = np.zeros(N_PARAMS, dtype=np.float64)
    p[P_ALPHA_LEVEL] = 0.9
    p[P_ALPHA_ERR] = 0.001
    p[P_ALPHA_Z] = 0.001
    p[P_ALPHA_SHORT] = 0.05
    p[P_ALPHA_SEAS] = 0.05
    p[P_FLOOR_REL] = 0.001
    p[P_LOG_SCALE] = 12.0
    p[P_WARMUP] = 100.0
    p[P_ALERT] = 0.35
    p[P_REFRACTORY] = 120.0
    p[P_MARGIN] = 0.1
    p[P_USE_HOUR] = 1.0
    p[P_RUN_WEIGHT] = 0.2
    p[P_ALPHA_SHIFT] = 0.1
    p[P_SHIFT_CLIP] = 3.0
    p[P_TAIL_LO] = 4.5
    p[P_TAIL_STEP] = 2.0
    p[P_TAIL_MIN] = 2.0
    p[P_SPATIAL_TOL] = 0.05
    p[P_SPATIAL_P] = 3e-5
    p[P_SPATIAL_AFTER] = 500.0
    p[P_SEAS_CLIP] = 10.0
    p[P_ALPHA_TAIL] = 0.0001
    p[P_TAIL_DECAY] = 1.0
    return p


def score_state_new(n_series):
    n_series = int(n_series)
    if n_series < 0:
        raise ValueError(f"n_series must be >= 0, got {n_series}")
    return np.zeros((n_series, WIDTH), dtype=np.float64)


def _float_vector(a, name):
    arr = np.asarray(a)
    if arr.ndim != 1:
        raise ValueError(f"score_samples: {name} must be one-dimensional")
    return arr


def score_samples(state, params, series_idx, ts, values):
    if not (isinstance(state, np.ndarray) and state.dtype == np.float64 and state.ndim == 2
            and state.flags.c_contiguous and state.flags.writeable):
        raise ValueError("score_samples: state must be a writeable C-contiguous float64 2-D array")
    series_idx = _float_vector(series_idx, "series_idx").astype(np.int64, casting="safe", copy=False)
    ts = _float_vector(ts, "ts").astype(np.float64, casting="safe", copy=False)
    values = _float_vector(values, "values").astype(np.float64, casting="safe", copy=False)
    params = _float_vector(params, "params").astype(np.float64, casting="safe", copy=False)
    n = series_idx.shape[0]
    n_series = state.shape[0]
    if ts.shape[0] != n or values.shape[0] != n:
        raise ValueError(f"score_samples: series_idx, ts and values differ in length "
                         f"({n}, {ts.shape[0]}, {values.shape[0]})")
    if state.shape[1] != WIDTH:
        raise ValueError(f"score_samples: state must have {WIDTH} columns, has {state.shape[1]}")
    if params.shape[0] != N_PARAMS:
        raise ValueError(f"score_samples: params must have {N_PARAMS} values, has {params.shape[0]}")
    for i in range(n):
        k = int(series_idx[i])
        if k < 0 or k >= n_series:
            raise IndexError(f"score_samples: series_idx[{i}] = {k} is outside the state's {n_series} series")
    out = np.zeros(n, dtype=np.float64)
    prm = params.tolist()
    rows: dict[int, list] = {}     # each touched series' state as a list while we work on it
    idx_list = series_idx.tolist()
    ts_list = ts.tolist()
    val_list = values.tolist()
    for i in range(n):
        k = idx_list[i]
        st = rows.get(k)
        if st is None:
            st = rows[k] = state[k].tolist()
        out[i] = _score_one(st, prm, ts_list[i], val_list[i])
    for k, st in rows.items():
        state[k] = st
    return out
