"""Twin of probe/fastpath/kernels/counters.pxi."""
import numpy as np

__all__ = ["counter_deltas"]

_TWO_32 = 1 << 32


def counter_deltas(prev, cur, bits):
    prev = np.asarray(prev, dtype=np.uint64)
    cur = np.asarray(cur, dtype=np.uint64)
    bits = np.asarray(bits, dtype=np.uint8)
    n = cur.shape[0]
    if prev.shape[0] != n or bits.shape[0] != n:
        raise ValueError(f"counter_deltas: length mismatch prev={prev.shape[0]} cur={n} bits={bits.shape[0]}")
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        p, c = int(prev[i]), int(cur[i])
        if c >= p:
            out[i] = float(c - p)
        elif bits[i] == 32 and p < _TWO_32 and c < _TWO_32:
            out[i] = float(c + _TWO_32 - p)
        else:
            out[i] = np.nan
    return out
