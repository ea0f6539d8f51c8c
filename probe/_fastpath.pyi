# Type stub for the compiled fast path (probe/_fastpath.pyx). C types in comments.
import numpy as np
import numpy.typing as npt

def counter_deltas(
    prev: npt.NDArray[np.uint64],  # const uint64_t[:]
    cur: npt.NDArray[np.uint64],   # const uint64_t[:]
    bits: npt.NDArray[np.uint8],   # const uint8_t[:], 32 or 64 per counter
) -> npt.NDArray[np.float64]: ...

# --- layout (probe/fastpath/kernels/layout.pxi, generated from probe/fastpath/layout.py) -------------------
# compiled module only (not in __all__: the twin has no C struct to check)
def frame_record_fields() -> tuple[tuple[str, int, int], ...]:
    """(name, offsetof(FrameRecord, name), sizeof(FrameRecord.name)) per field, in struct order."""
def check_frame_record(dtype: np.dtype) -> None:
    """Raise ImportError naming the first field whose offset or size differs from dtype's (run at import
    with FRAME_DTYPE)."""

# --- ring layout (probe/fastpath/kernels/ring.pxi), compiled module only
def tpacket_fields() -> tuple[tuple[str, str | None, int, int], ...]:
    """(struct, field or None for the struct itself, offsetof, sizeof) of the tpacket fields the walk reads."""
def check_tpacket_layout(block_desc: np.dtype, frame_hdr: np.dtype) -> None:
    """Raise ImportError naming the first field whose offset or size differs (run at import with
    probe.sources.afpacket's TPACKET_BLOCK_DESC and TPACKET3_HDR)."""

# --- parse (probe/fastpath/kernels/parse.pxi) --------------------------------------------------------------
def parse_frames(
    data: npt.NDArray[np.uint8],     # const uint8_t[::1]: frames back to back (FrameBatch.data)
    offset: npt.NDArray[np.int64],   # const int64_t[::1]: frame i starts at data[offset[i]]
    caplen: npt.NDArray[np.uint32],  # const uint32_t[::1]: bytes captured
    wirelen: npt.NDArray[np.uint32], # const uint32_t[::1]: bytes on the wire
    ts_ns: npt.NDArray[np.int64],    # const int64_t[::1]
    vlan: npt.NDArray[np.int32],     # const int32_t[::1]: metadata VLAN or -1
    out: np.ndarray | None = None,   # FRAME_DTYPE buffer to reuse (records = out[:n], memset per record)
) -> tuple[np.ndarray, int]:
    """(records of probe.fastpath.layout.FRAME_DTYPE (C struct FrameRecord), number flagged MALFORMED)."""

# --- aggregate (probe/fastpath/kernels/aggregate.pxi) -----------------------------------------------------
# a table: (slots int32_t[S], keys uint64_t[R, 2], counts uint64_t[R, N_COUNTERS], hll uint8_t[R, W],
#           meta int64_t[2] = [rows used, frames overflowed]); see probe.state.aggregates.AggTable
def aggregate_frames(
    records: np.ndarray,  # FRAME_DTYPE, C-contiguous (read as const FrameRecord*)
    mac_table: tuple,     # keyed (src MAC, 0); row capacity+1 holds the window totals
    ip_table: tuple,      # keyed (0, 0xFFFF00000000 | IPv4) or (IPv6 hi, IPv6 lo)
    arp_table: tuple,     # keyed (ARP sender IPv4, sender MAC), W = 0
    recent: tuple | None = None,  # (uint64_t[D, 2] repeated-frame table, uint64_t[F, 2] TCP flow table), D and F
                                  # powers of two (probe.fastpath.layout.DUP_SLOTS/FLOW_SLOTS); None: no dup/retrans counters
) -> None: ...
def record_totals(
    records: np.ndarray,      # FRAME_DTYPE, C-contiguous (read as const FrameRecord*)
    flag_counts: np.ndarray,  # int64_t[>= 32], flag bit counts added in place
) -> tuple[int, int, int]: ...  # (sum of uint32_t wirelen as uint64_t, min int64_t ts_ns, max ts_ns)
class PacketRing:
    """AF_PACKET TPACKET_V3 receive ring (compiled); twin: a plain AF_PACKET recv loop.
    C side: the ring is mmap()ed block_count x block_size bytes; next_batch polls the socket, walks the
    ready blocks' struct tpacket3_hdr chains with the GIL released and memcpy()s each frame into the
    batch arrays (uint8_t data, int64_t offset, uint32_t caplen/wirelen, int64_t ts_ns, int32_t vlan).
    """
    interface: str
    ifindex: int
    closed: bool
    def __init__(self, interface: str, *, block_size: int = ..., block_count: int = ..., block_timeout: float = ...,
                 promiscuous: bool = ..., bpf: object = ..., fanout_group: int | None = ..., frame_size: int = ...) -> None: ...
    # The same ring over caller memory laid out as the kernel lays out TPACKET_V3 blocks (uint8_t[block_size
    # x block_count], struct tpacket_block_desc + struct tpacket3_hdr chains; probe.sources.afpacket's
    # TPACKET_BLOCK_DESC / TPACKET3_HDR): no socket, the same walk; blocks go back by clearing block_status.
    @classmethod
    def over_buffer(cls, buffer: npt.NDArray[np.uint8], *, block_size: int, block_count: int) -> "PacketRing": ...
    def fileno(self) -> int: ...
    def next_batch(self, timeout: float = ..., max_frames: int = ...) -> "FrameBatch": ...  # noqa: F821
    # The capture's hot path: the same walk, but each frame is parsed where the kernel wrote it
    # (parse_frame on const uint8_t* + caplen) into `out` (FRAME_DTYPE, FrameRecord*), record_totals'
    # sums taken and flag bits counted (int64_t flag_counts[32], optional) on the way; only rare frames'
    # bytes (RARE_FLAGS, not malformed) are memcpy()d, into a block_size buffer the ring keeps.
    # With `aggregate` (the open window's tables, recent-frame state and end), each record is also added
    # to the tables in the walk (agg_frame, as aggregate_frames does) until the first at or past the end.
    # With `linger` > 0 the walk, once frames came, polls for further blocks until that deadline.
    def next_records(self, out: np.ndarray, timeout: float = ..., max_frames: int = ...,
                     flag_counts: npt.NDArray[np.int64] | None = ...,
                     aggregate: tuple[tuple, tuple, tuple, tuple | None, int] | None = ...,
                     linger: float = ...) -> tuple[np.ndarray, int, tuple[npt.NDArray[np.int64], "FrameBatch"] | None,  # noqa: F821
                                tuple[int, int, int], int]: ...
    # (records = out[:n], malformed, None or (index into records, rare frames),
    #  (uint64_t sum of wire lengths, min int64_t ts_ns, max ts_ns) as record_totals gives them,
    #  how many leading records were aggregated)
    def statistics(self) -> dict[str, int]: ...  # packets, drops, freeze_queue_count since open
    def close(self) -> None: ...
    def __enter__(self) -> "PacketRing": ...
    def __exit__(self, *exc: object) -> None: ...
# -- streaming anomaly scores (probe/fastpath/kernels/score.pxi; the model is described in probe/fastpath/twin/score.py)
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
