# Type stub for the compiled fast path (probe/_fastpath.pyx). C types in comments.
import numpy as np
import numpy.typing as npt

def counter_deltas(
    prev: npt.NDArray[np.uint64],  # const uint64_t[:]
    cur: npt.NDArray[np.uint64],   # const uint64_t[:]
    bits: npt.NDArray[np.uint8],   # const uint8_t[:], 32 or 64 per counter
) -> npt.NDArray[np.float64]: ...

# --- parse (probe/_kernels/parse.pxi) --------------------------------------------------------------
def parse_frames(
    data: npt.NDArray[np.uint8],     # const uint8_t[::1]: frames back to back (FrameBatch.data)
    offset: npt.NDArray[np.int64],   # const int64_t[::1]: frame i starts at data[offset[i]]
    caplen: npt.NDArray[np.uint32],  # const uint32_t[::1]: bytes captured
    wirelen: npt.NDArray[np.uint32], # const uint32_t[::1]: bytes on the wire
    ts_ns: npt.NDArray[np.int64],    # const int64_t[::1]
    vlan: npt.NDArray[np.int32],     # const int32_t[::1]: metadata VLAN or -1
) -> tuple[np.ndarray, int]:
    """(records of probe._layout.FRAME_DTYPE (C struct FrameRecord), number flagged MALFORMED)."""

# --- aggregate (probe/_kernels/aggregate.pxi) -----------------------------------------------------
# a table: (slots int32_t[S], keys uint64_t[R, 2], counts uint64_t[R, N_COUNTERS], hll uint8_t[R, W],
#           meta int64_t[2] = [rows used, frames overflowed]); see probe.state.aggregates.AggTable
def aggregate_frames(
    records: np.ndarray,  # FRAME_DTYPE, C-contiguous (read as const FrameRecord*)
    mac_table: tuple,     # keyed (src MAC, 0); row capacity+1 holds the window totals
    ip_table: tuple,      # keyed (0, 0xFFFF00000000 | IPv4) or (IPv6 hi, IPv6 lo)
    arp_table: tuple,     # keyed (ARP sender IPv4, sender MAC), W = 0
) -> None: ...
