"""What the fuzz harnesses check on one input, shared by the Atheris targets (fuzz_parse.py, fuzz_capfile.py)
and by the replay of tests/fuzz/regressions/ (test_regressions.py), so a kept crash is replayed exactly.

parse: one input is one frame; its first byte sets the wire length (see frame_input), the rest is the frame.
The compiled parser (whichever build is passed: checked, ASan or release) and the pure-Python twin must give
the same records byte for byte and the same malformed count.

capfile: one input is a whole capture file. read_batches must yield well-formed FrameBatch chunks and end,
or raise CaptureFileError saying where (an offset inside the file); any other exception is a bug. What it
yields is parsed by the compiled parser too, so a reader/parser mismatch in the batch shape shows.
"""
from __future__ import annotations

import os

import numpy as np

# the first byte of a parse input -> how many bytes beyond the captured ones were on the wire
_EXTRA = [0] * 96 + [1, 2, 3, 4, 8, 14, 20, 40, 64, 100, 255, 1000, 1500, 9000, 65535, 1 << 20] \
    + list(range(16, 16 * 145, 16))
assert len(_EXTRA) == 256


def frame_input(data: bytes) -> tuple[bytes, int]:
    """(frame, wire length): byte 0 picks the bytes the snap length cut (mostly none; 255 is a wire
    length shorter than the capture, which the parser must treat as the capture's error)."""
    if not data:
        return b"", 0
    frame = data[1:]
    if data[0] == 255:
        return frame, len(frame) // 2
    return frame, len(frame) + _EXTRA[data[0]]


def seed_input(frame: bytes, wirelen: int) -> bytes:
    """The parse input that frame_input turns into (frame, a wire length at least wirelen)."""
    extra = max(0, wirelen - len(frame))
    if extra == 0:
        return b"\x00" + frame
    best = min(range(255), key=lambda b: (_EXTRA[b] < extra, abs(_EXTRA[b] - extra)))
    return bytes([best]) + frame


def _columns(frame: bytes, wirelen: int):
    buf = np.empty(len(frame), np.uint8)  # its own allocation, exactly the frame: ASan sees one byte past it
    buf[:] = np.frombuffer(frame, np.uint8)
    return (buf, np.zeros(1, np.int64), np.array([len(frame)], np.uint32), np.array([wirelen], np.uint32),
            np.zeros(1, np.int64), np.full(1, -1, np.int32))


class Mismatch(AssertionError):
    pass


def check_parse(compiled, twin, data: bytes):
    frame, wirelen = frame_input(data)
    cols = _columns(frame, wirelen)
    rc, mc = compiled.parse_frames(*cols)
    rp, mp = twin.parse_frames(*cols)
    if rc.tobytes() != rp.tobytes() or mc != mp:
        diff = {name: (rc[name][0].item(), rp[name][0].item()) for name in rc.dtype.names
                if rc[name][0] != rp[name][0]}
        raise Mismatch(f"compiled and twin parse differ on a {len(frame)}-byte frame (wire {wirelen}): "
                       f"field: (compiled, twin) {diff}; malformed {mc} vs {mp}; frame {frame.hex()}")
    return rc


class MemFile:
    """A file in memory with a path the reader can open (/proc/self/fd/N): no disk write per input."""

    def __init__(self):
        self.fd = os.memfd_create("fuzz-capture")
        self.path = f"/proc/self/fd/{self.fd}"

    def put(self, data: bytes) -> str:
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)
        return self.path


def check_capfile(data: bytes, path: str, compiled=None) -> tuple[int, str | None]:
    """Read `data` (already at `path`) to its end; return (frames yielded, the CaptureFileError or None)."""
    from probe.sources.capfile import CaptureFileError, ReaderStats, read_batches

    frames = 0
    stats = ReaderStats()
    try:
        for batch in read_batches(path, batch_frames=64, stats=stats):
            n = len(batch)
            assert n > 0, "an empty batch was yielded"
            cols = (batch.offset, batch.caplen, batch.wirelen, batch.ts_ns, batch.vlan)
            assert all(c.ndim == 1 and c.shape[0] == n for c in cols), "batch columns differ in length"
            ends = batch.offset.astype(np.int64) + batch.caplen
            assert (batch.offset >= 0).all() and (ends <= batch.data.shape[0]).all(), "a frame outside its batch"
            assert (batch.wirelen >= batch.caplen).all(), "wire length below the captured length"
            frames += n
            if compiled is not None:
                from probe.state.aggregates import batch_columns
                compiled.parse_frames(*batch_columns(batch))
    except CaptureFileError as exc:
        assert exc.path == path and exc.message, f"CaptureFileError without its path or message: {exc!r}"
        assert 0 <= exc.offset <= len(data), f"CaptureFileError offset {exc.offset} outside the {len(data)}-byte file: {exc}"
        return frames, str(exc)
    return frames, None
