# Type stub for the compiled fast path (probe/_fastpath.pyx). C types in comments.
import numpy as np
import numpy.typing as npt

def counter_deltas(
    prev: npt.NDArray[np.uint64],  # const uint64_t[:]
    cur: npt.NDArray[np.uint64],   # const uint64_t[:]
    bits: npt.NDArray[np.uint8],   # const uint8_t[:], 32 or 64 per counter
) -> npt.NDArray[np.float64]: ...

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
    def fileno(self) -> int: ...
    def next_batch(self, timeout: float = ..., max_frames: int = ...) -> "FrameBatch": ...  # noqa: F821
    def statistics(self) -> dict[str, int]: ...  # packets, drops, freeze_queue_count since open
    def close(self) -> None: ...
    def __enter__(self) -> "PacketRing": ...
    def __exit__(self, *exc: object) -> None: ...
