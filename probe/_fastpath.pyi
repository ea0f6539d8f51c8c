# Type stub for the compiled fast path (probe/_fastpath.pyx). C types in comments.
import numpy as np
import numpy.typing as npt

def counter_deltas(
    prev: npt.NDArray[np.uint64],  # const uint64_t[:]
    cur: npt.NDArray[np.uint64],   # const uint64_t[:]
    bits: npt.NDArray[np.uint8],   # const uint8_t[:], 32 or 64 per counter
) -> npt.NDArray[np.float64]: ...
