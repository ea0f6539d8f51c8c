# SNMP counter arithmetic: deltas between two polls with 32-bit wrap handling.

__all__ += ["counter_deltas"]

cdef double _TWO_32 = 4294967296.0


def counter_deltas(const uint64_t[:] prev, const uint64_t[:] cur, const uint8_t[:] bits):
    """Per-counter increase between two polls.

    bits[i] is the counter's width (32 or 64). A 32-bit counter that went down wrapped once; a 64-bit
    counter that went down was reset (device reboot or counter clear) and gives NaN, never a huge
    bogus rate.
    """
    cdef Py_ssize_t n = cur.shape[0], i
    if prev.shape[0] != n or bits.shape[0] != n:
        raise ValueError(f"counter_deltas: length mismatch prev={prev.shape[0]} cur={n} bits={bits.shape[0]}")
    out = np.empty(n, dtype=np.float64)
    cdef double[::1] o = out
    with nogil:
        for i in range(n):
            if cur[i] >= prev[i]:
                o[i] = <double>(cur[i] - prev[i])
            elif bits[i] == 32 and prev[i] < <uint64_t>_TWO_32 and cur[i] < <uint64_t>_TWO_32:
                o[i] = <double>(cur[i] + <uint64_t>_TWO_32 - prev[i])
            else:
                o[i] = NAN
    return out
