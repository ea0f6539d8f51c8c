"""FrameBatch: a batch of captured frames, the one shape every frame source hands the fast path.

The live ring (probe/fastpath/kernels/ring.pxi) and the capture-file reader (probe/sources/capfile.py)
both produce it; the parse kernel (probe.fastpath.parse_frames) consumes it. Frame bytes are
concatenated in `data`; frame i is data[offset[i] : offset[i] + caplen[i]].
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NO_VLAN = -1


@dataclass
class FrameBatch:
    data: np.ndarray     # uint8, all frames' captured bytes back to back
    offset: np.ndarray   # int64 per frame: start of the frame in data
    caplen: np.ndarray   # uint32 per frame: bytes captured
    wirelen: np.ndarray  # uint32 per frame: bytes on the wire (>= caplen)
    ts_ns: np.ndarray    # int64 per frame: capture time, ns since the epoch
    vlan: np.ndarray     # int32 per frame: VLAN id the kernel stripped into metadata, or NO_VLAN

    def __len__(self) -> int:
        return int(self.offset.shape[0])

    @classmethod
    def empty(cls) -> "FrameBatch":
        return cls(np.zeros(0, np.uint8), np.zeros(0, np.int64), np.zeros(0, np.uint32),
                   np.zeros(0, np.uint32), np.zeros(0, np.int64), np.zeros(0, np.int32))

    @classmethod
    def from_frames(cls, frames: list[bytes], ts_ns: list[int] | None = None,
                    wirelen: list[int] | None = None, vlan: list[int] | None = None) -> "FrameBatch":
        """Build a batch from a list of frames (tests, scapy-built frames)."""
        n = len(frames)
        caplen = np.fromiter((len(f) for f in frames), np.uint32, n)
        offset = np.zeros(n, np.int64)
        if n:
            offset[1:] = np.cumsum(caplen[:-1], dtype=np.int64)
        data = np.frombuffer(b"".join(frames), np.uint8).copy() if n else np.zeros(0, np.uint8)
        return cls(
            data, offset, caplen,
            np.asarray(wirelen, np.uint32) if wirelen is not None else caplen.copy(),
            np.asarray(ts_ns if ts_ns is not None else [0] * n, np.int64),
            np.asarray(vlan if vlan is not None else [NO_VLAN] * n, np.int32),
        )

    def frame(self, i: int) -> bytes:
        start = int(self.offset[i])
        return self.data[start:start + int(self.caplen[i])].tobytes()
