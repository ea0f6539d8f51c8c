# score kernels: streaming anomaly scores for many series at once.
# probe/fastpath/twin/score.py is the pure-Python twin (same names, same answers) and documents the model.
#
# One row of `state` (float64[SCORE_STATE_WIDTH]) per series holds everything that series needs
# (constant memory); score_samples() takes samples of any series interleaved, in arrival order, and
# scores each from its own series' past only.

__all__ += ["SCORE_STATE_WIDTH", "SCORE_N_PARAMS", "score_default_params", "score_state_new", "score_samples"]

from libc.math cimport pow, log1p, fabs, sqrt, erfc, log10, floor, fmod, isfinite, fmin, fmax

cdef extern from *:
    """
    #if defined(__GNUC__)
    #define SV_PREFETCH(p) __builtin_prefetch((p), 1, 3)
    #else
    #define SV_PREFETCH(p) ((void)0)
    #endif
    """
    void SV_PREFETCH(const void *p) nogil

# state columns (C_*, N_TAIL, N_SEAS, SCORE_WIDTH) and parameter indices (P_*, N_PARAMS): generated into
# layout.pxi from probe/fastpath/layout.py's SCORE_STATE and SCORE_PARAM_NAMES, which the twin reads too
DEF LEARN_AFTER = 20.0   # samples before the surprise statistics start learning

SCORE_STATE_WIDTH = SCORE_WIDTH
SCORE_N_PARAMS = N_PARAMS

cdef double _HUGE = 1e150    # values beyond are clipped: squares stay finite
cdef double _TINY = 1e-300
cdef double _RMAX = 1e6


cdef inline double _ew(double old, double new, double alpha) noexcept nogil:
    return old + alpha * (new - old)


cdef inline double _zstat(double *st, int col, double u, double alpha, bint learn) noexcept nogil:
    # z of u against the running mean and variance in st[col], st[col + 1]; then learn u
    cdef double mu = st[col], var = st[col + 1]
    cdef double z = (u - mu) / (sqrt(var) + 1e-6)
    if learn:
        st[col + 1] = (1.0 - alpha) * (var + alpha * (u - mu) * (u - mu))
        st[col] = mu + alpha * (u - mu)
    return z


cdef inline double _hour_bucket(double t) noexcept nogil:
    cdef double b = fmod(floor(t / 3600.0), <double>N_SEAS)
    if b < 0.0:
        b += N_SEAS
    return b


cdef inline double _score_one(double *st, const double *prm, double t, double x) noexcept nogil:
    cdef double n, fl, e_step, e_hour, u_step, u_hour, u_shift, short, short_hour, shift_short
    cdef double alpha_z, z, zc, p, q, s, xc, lv, cap, a_tail, cap_lv, top_lv
    cdef double ep_left
    cdef int b, k
    cdef bint learn
    if not isfinite(x) or not isfinite(t):
        return 0.0   # a missing sample: nothing to score, nothing to learn
    if x > _HUGE:
        x = _HUGE
    elif x < -_HUGE:
        x = -_HUGE
    b = <int>_hour_bucket(t)
    n = st[C_N]
    if n == 0.0:
        for k in range(SCORE_WIDTH):
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
    # scales never below a small share of the range seen: a flat series' blips stay proportionate
    fl = prm[P_FLOOR_REL] * (st[C_MAX] - st[C_MIN]) + 1e-12 * fabs(st[C_LEVEL]) + _TINY

    # surprises, each in units of its own usual size, on a log scale (heavy tails tamed)
    # (or the level before the last sample: the drop back after a one-sample spike is no second surprise)
    e_step = fmin(fabs(x - st[C_LEVEL]), fabs(x - st[C_PREV_LEVEL]))
    e_hour = fabs(x - st[C_SEAS + b])
    u_step = log1p(fmin(e_step / fmax(st[C_ERR], fl), _RMAX))
    u_hour = log1p(fmin(e_hour / fmax(st[C_SEAS_ERR], fl), _RMAX))
    short = _ew(st[C_SHORT], u_step, prm[P_ALPHA_SHORT])
    short_hour = _ew(st[C_SHORT_HOUR], u_hour, prm[P_ALPHA_SHORT])

    # each surprise against this series' own history of it: one threshold fits every series
    learn = n > LEARN_AFTER
    alpha_z = fmax(prm[P_ALPHA_Z], 1.0 / fmax(n - LEARN_AFTER, 1.0))
    z = _zstat(st, C_Z_STEP, u_step, alpha_z, learn)
    zc = _zstat(st, C_Z_HOUR, u_hour, alpha_z, learn)
    if prm[P_USE_HOUR] > 0.0 and zc < z:
        z = zc   # a jump the daily rhythm explains is no surprise: both the level and the hour must miss
    zc = _zstat(st, C_Z_SHORT, short, alpha_z, learn)
    if zc > z:
        z = zc   # a run of middling surprises
    zc = _zstat(st, C_Z_SHORT_HOUR, short_hour, alpha_z, learn)
    if prm[P_USE_HOUR] > 0.0 and zc > z:
        z = zc   # a run of misses against the daily rhythm (e.g. the daily step did not come)
    # a level shift: the last few samples' mean against the long-run mean, in units of the usual spread
    # (one spike would move a short mean too: each sample counts at most SHIFT_CLIP usual spreads away)
    xc = fmin(fmax(x, st[C_SHIFT_LONG] - prm[P_SHIFT_CLIP] * st[C_SHIFT_DEV]),
              st[C_SHIFT_LONG] + prm[P_SHIFT_CLIP] * st[C_SHIFT_DEV])
    shift_short = _ew(st[C_SHIFT_SHORT], xc, prm[P_ALPHA_SHIFT])
    u_shift = log1p(fmin(fabs(shift_short - st[C_SHIFT_LONG]) / fmax(st[C_SHIFT_DEV], fl), _RMAX))
    zc = _zstat(st, C_Z_SHIFT, u_shift, alpha_z, learn)
    if zc > z:
        z = zc
    p = 0.5 * erfc(z * 0.7071067811865476)   # Gaussian tail probability

    # no rarer than this series' own record says: the share of samples whose z reached the highest
    # level under this z that was reached more than TAIL_MIN times (a daily spike is no news by day 3),
    # remembered over ~1/ALPHA_TAIL samples (a plain mean since the warm-up until then)
    if n > prm[P_WARMUP]:
        cap = 0.0
        cap_lv = 0.0
        top_lv = 0.0
        a_tail = fmax(prm[P_ALPHA_TAIL], 1.0 / (n - prm[P_WARMUP]))
        for k in range(N_TAIL):
            lv = prm[P_TAIL_LO] + k * prm[P_TAIL_STEP]
            if z >= lv:
                top_lv = lv
                if st[C_TAIL + k] > prm[P_TAIL_MIN] * a_tail:   # reached more than TAIL_MIN times
                    cap = st[C_TAIL + k]
                    cap_lv = lv
                st[C_TAIL + k] += a_tail * (1.0 - st[C_TAIL + k])
            else:
                st[C_TAIL + k] -= a_tail * st[C_TAIL + k]
        # beyond the highest level reached that often, each further unit of z at most 10^TAIL_DECAY rarer
        if cap > 0.0:
            cap = cap * pow(10.0, -(top_lv - cap_lv) * prm[P_TAIL_DECAY])
            if cap > p:
                p = cap
        # a value beyond every value seen so far (by more than a share of their range), once the
        # range is known from SPATIAL_AFTER samples
        lv = prm[P_SPATIAL_TOL] * (st[C_MAX] - st[C_MIN])
        if (x > st[C_MAX] + lv or x < st[C_MIN] - lv) and prm[P_SPATIAL_P] < p and n > prm[P_SPATIAL_AFTER]:
            p = prm[P_SPATIAL_P]

    # a value stuck: a run of equal values this long, counting one repeat in 1/RUN_WEIGHT as
    # independent (repeats come in runs), given how often this series repeats a value
    if x == st[C_LAST_X]:
        st[C_RUN] += 1.0
    else:
        st[C_RUN] = 0.0
    if prm[P_RUN_WEIGHT] > 0.0 and st[C_RUN] > 0.0:
        # a repeat rate under 1 in 1/ALPHA_Z samples cannot be known from that much memory
        q = pow(fmax(st[C_REPEAT], prm[P_ALPHA_Z]), st[C_RUN] * prm[P_RUN_WEIGHT])
        if q < p:
            p = q
    if learn:
        st[C_REPEAT] = _ew(st[C_REPEAT], 1.0 if st[C_RUN] > 0.0 else 0.0, alpha_z)
    st[C_LAST_X] = x

    # on a log scale: score = -log10(p) / LOG_SCALE, capped at 1
    if p < _TINY:
        p = _TINY
    s = fmin(1.0, -log10(p) / prm[P_LOG_SCALE])
    if n <= prm[P_WARMUP]:
        s = 0.0

    # learn this sample (after scoring it: no sample judges itself)
    st[C_SHORT] = short
    st[C_SHORT_HOUR] = short_hour
    st[C_ERR] = _ew(st[C_ERR], e_step, fmax(prm[P_ALPHA_ERR], 1.0 / n))
    st[C_PREV_LEVEL] = st[C_LEVEL]
    st[C_LEVEL] = _ew(st[C_LEVEL], x, prm[P_ALPHA_LEVEL])
    st[C_SEAS_ERR] = _ew(st[C_SEAS_ERR], e_hour, fmax(prm[P_ALPHA_ERR], 1.0 / n))
    st[C_SHIFT_SHORT] = shift_short
    st[C_SHIFT_DEV] = _ew(st[C_SHIFT_DEV], fabs(x - st[C_SHIFT_LONG]), fmax(prm[P_ALPHA_ERR], 1.0 / n))
    st[C_SHIFT_LONG] = _ew(st[C_SHIFT_LONG], x, fmax(prm[P_ALPHA_ERR], 1.0 / n))
    # the hour's value learns from each sample clipped to SEAS_CLIP usual misses: one spike does not
    # move it (else the next visits of that hour would miss it)
    lv = prm[P_SEAS_CLIP] * fmax(st[C_SEAS_ERR], fl)
    st[C_SEAS + b] = _ew(st[C_SEAS + b], fmin(fmax(x, st[C_SEAS + b] - lv), st[C_SEAS + b] + lv), prm[P_ALPHA_SEAS])
    if x < st[C_MIN]:
        st[C_MIN] = x
    if x > st[C_MAX]:
        st[C_MAX] = x

    # one alert per episode: after an alert, followers are silenced unless clearly stronger
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
    """The one fixed configuration (probe/fastpath/twin/score.py says what each value means)."""
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


def score_state_new(Py_ssize_t n_series):
    """Fresh state for n_series series: all zeros (a zero row is a series that has seen nothing)."""
    if n_series < 0:
        raise ValueError(f"n_series must be >= 0, got {n_series}")
    return np.zeros((n_series, SCORE_WIDTH), dtype=np.float64)


def score_samples(double[:, ::1] state, const double[::1] params, const int64_t[::1] series_idx,
                  const double[::1] ts, const double[::1] values):
    """Score each sample against its own series' past, in the order given; float64 scores in [0, 1]."""
    cdef Py_ssize_t n = series_idx.shape[0]
    cdef Py_ssize_t i, n_series = state.shape[0]
    cdef int64_t k
    if ts.shape[0] != n or values.shape[0] != n:
        raise ValueError(f"score_samples: series_idx, ts and values differ in length "
                         f"({n}, {ts.shape[0]}, {values.shape[0]})")
    if state.shape[1] != SCORE_WIDTH:
        raise ValueError(f"score_samples: state must have {SCORE_WIDTH} columns, has {state.shape[1]}")
    if params.shape[0] != N_PARAMS:
        raise ValueError(f"score_samples: params must have {N_PARAMS} values, has {params.shape[0]}")
    for i in range(n):
        k = series_idx[i]
        if k < 0 or k >= n_series:
            raise IndexError(f"score_samples: series_idx[{i}] = {k} is outside the state's {n_series} series")
    out_arr = np.zeros(n, dtype=np.float64)
    if n == 0:
        return out_arr
    cdef double[::1] out = out_arr
    cdef double *base = &state[0, 0]
    cdef double *row
    cdef const double *prm = &params[0]
    cdef double tf
    with nogil:
        for i in range(n):
            if i + 8 < n:
                # the state of a sample a few ahead: its misses overlap with this sample's work
                row = base + series_idx[i + 8] * SCORE_WIDTH
                SV_PREFETCH(row)
                SV_PREFETCH(row + 8)
                SV_PREFETCH(row + 16)
                SV_PREFETCH(row + 24)
                tf = ts[i + 8]
                if isfinite(tf):
                    SV_PREFETCH(row + C_SEAS + <int>_hour_bucket(tf))
            out[i] = _score_one(base + series_idx[i] * SCORE_WIDTH, prm, ts[i], values[i])
    return out_arr
