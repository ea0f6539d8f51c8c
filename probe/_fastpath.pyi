# Type stub for the compiled fast path (probe/_fastpath.pyx). C types in comments.
import numpy as np
import numpy.typing as npt

def counter_deltas(
    prev: npt.NDArray[np.uint64],  # const uint64_t[:]
    cur: npt.NDArray[np.uint64],   # const uint64_t[:]
    bits: npt.NDArray[np.uint8],   # const uint8_t[:], 32 or 64 per counter
) -> npt.NDArray[np.float64]: ...

# -- streaming anomaly scores (probe/_kernels/score.pxi; the model is described in probe/_twin/score.py)
SCORE_STATE_WIDTH: int   # float64 columns of state per series
SCORE_N_PARAMS: int

def score_default_params() -> npt.NDArray[np.float64]: ...  # double[SCORE_N_PARAMS], the one fixed configuration
def score_state_new(n_series: int) -> npt.NDArray[np.float64]: ...  # zeros, double[n_series, SCORE_STATE_WIDTH]
def score_samples(
    state: npt.NDArray[np.float64],       # double[:, ::1], updated in place
    params: npt.NDArray[np.float64],      # const double[::1]
    series_idx: npt.NDArray[np.int64],    # const int64_t[::1], row of state for each sample
    ts: npt.NDArray[np.float64],          # const double[::1], Unix seconds
    values: npt.NDArray[np.float64],      # const double[::1]
) -> npt.NDArray[np.float64]: ...         # double[n], scores in [0, 1]
