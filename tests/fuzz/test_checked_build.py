"""The checked build really checks bounds, and the release build really does not.

The `# cython:` header of probe/_fastpath.pyx once set boundscheck=False, which overrode what setup.py asked
for: SITEVIGIL_DEBUG_BUILD=1 then built an unchecked module. Now setup.py alone sets the directives, and these
tests observe them through _unchecked_index_read (probe/fastpath/kernels/selfcheck.pxi), which indexes a
memoryview as the kernels do: in the checked build an index past the end raises IndexError and a negative one
counts from the end; in the release build both read the memory around the view (a slice of a larger array,
so what is read is known). A header that sets any of the directives again fails one of the two tests.
"""
from __future__ import annotations

import numpy as np
import pytest

from tests.fuzz import builds

PARENT = np.arange(100, 116, dtype=np.uint8)  # the view is PARENT[4:12]: 104..111, between 103 and 112


@pytest.fixture(scope="module")
def checked():
    return builds.load(builds.build("checked"))


def test_checked_build_raises_on_an_out_of_range_read(checked):
    view = PARENT[4:12]
    assert checked._unchecked_index_read(view, 7) == 111
    with pytest.raises(IndexError, match="[Oo]ut of bounds"):
        checked._unchecked_index_read(view, 8)  # one past the end: the release build reads PARENT[12]
    with pytest.raises(IndexError):
        checked._unchecked_index_read(view, 1 << 40)
    assert checked._unchecked_index_read(view, -1) == 111  # wraparound on: Python's meaning
    with pytest.raises(IndexError):
        checked._unchecked_index_read(view, -9)


def test_checked_build_parses_as_the_release_build(checked):
    """The checked build is the same parser: a frame parses to the release build's record, byte for byte."""
    import probe._fastpath as release
    frame = bytes.fromhex("ffffffffffff0200000000010806") + bytes(28)
    cols = (np.frombuffer(frame, np.uint8), np.zeros(1, np.int64), np.array([len(frame)], np.uint32),
            np.array([len(frame)], np.uint32), np.zeros(1, np.int64), np.full(1, -1, np.int32))
    a, _ = checked.parse_frames(*cols)
    b, _ = release.parse_frames(*cols)
    assert a.tobytes() == b.tobytes()


def test_release_build_reads_unchecked():
    """The release build (what runs, what the benchmarks time) has the checks off: no directive crept in."""
    try:
        import probe._fastpath as release
    except ImportError:
        pytest.skip("compiled fast path not built")
    view = PARENT[4:12]
    assert release._unchecked_index_read(view, 8) == 112   # PARENT[12]: read past the view, unchecked
    assert release._unchecked_index_read(view, -1) == 103  # PARENT[3]: no wraparound
