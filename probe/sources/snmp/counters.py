"""SNMP counter arithmetic (RFC 2578 Counter32/Counter64), specified in plain Python.

This is the definition the SNMP modules compute with by default. The fast path's kernel
(probe/fastpath/kernels/counters.pxi) computes the same, and the SNMP subsystem hands it to the poller
(PollContext.counter_deltas); the fast path's twin is this function, re-exported."""
import numpy as np

__all__ = ["counter_deltas"]

COUNTER32_MODULUS = 1 << 32  # a Counter32 wraps to 0 after 2**32 - 1 (RFC 2578)


def counter_deltas(prev, cur, bits):
    """Per-counter increase between two polls; bits[i] is counter i's width (32 or 64).

    A counter that went up increased by the difference. A 32-bit counter that went down wrapped once
    (polls are far more frequent than a wrap). A 64-bit counter that went down was reset (device reboot,
    counter clear): NaN, never a huge bogus rate; so is a "32-bit" counter holding a value above 32 bits,
    which is no Counter32.
    """
    prev = np.asarray(prev, dtype=np.uint64)
    cur = np.asarray(cur, dtype=np.uint64)
    bits = np.asarray(bits, dtype=np.uint8)
    n = cur.shape[0]
    if prev.shape[0] != n or bits.shape[0] != n:
        raise ValueError(f"counter_deltas: length mismatch prev={prev.shape[0]} cur={n} bits={bits.shape[0]}")
    out = np.empty(n, dtype=np.float64)
    for i, (before, now, width) in enumerate(zip(prev.tolist(), cur.tolist(), bits.tolist())):
        if now >= before:
            out[i] = float(now - before)
        elif width == 32 and before < COUNTER32_MODULUS and now < COUNTER32_MODULUS:
            out[i] = float(now + COUNTER32_MODULUS - before)
        else:
            out[i] = np.nan
    return out
