"""The facade picks one implementation; the compiled one must not silently fail to load."""
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import probe.fastpath.twin as twin
from probe import fastpath


def test_fastpath_c_loaded():
    """Guard: unless the twin was asked for on purpose, the compiled module is what runs."""
    if os.environ.get("SITEVIGIL_NO_EXTENSIONS", "") not in ("", "0"):
        assert fastpath.IMPLEMENTATION == "python"
        pytest.skip("pure-Python twin requested with SITEVIGIL_NO_EXTENSIONS")
    assert fastpath.LOAD_ERROR is None, f"compiled fast path failed to load: {fastpath.LOAD_ERROR}"
    assert fastpath.IMPLEMENTATION == "cython"
    assert fastpath.counter_deltas.__module__ == "probe._fastpath" or "cython" in type(fastpath.counter_deltas).__name__


def test_twin_and_compiled_export_the_same_names():
    compiled = pytest.importorskip("probe._fastpath")
    assert sorted(compiled.__all__) == sorted(twin.__all__)
    for name in twin.__all__:
        assert hasattr(compiled, name) and hasattr(twin, name)


def test_counter_deltas_wrap_and_reset(impl):
    prev = np.array([5, 2**32 - 2, 10, 2**40], dtype=np.uint64)
    cur = np.array([7, 3, 4, 5], dtype=np.uint64)
    bits = np.array([64, 32, 64, 32], dtype=np.uint8)
    out = impl.counter_deltas(prev, cur, bits)
    assert out[0] == 2 and out[1] == 5  # 32-bit wrap: 2 to the top, then 3
    assert np.isnan(out[2])            # 64-bit counter went down: reset, not a huge rate
    assert np.isnan(out[3])            # a "32-bit" counter above 2**32 is a lie: no guess


def test_counter_deltas_rejects_mismatched_lengths(impl):
    with pytest.raises(ValueError, match="length mismatch"):
        impl.counter_deltas(np.zeros(2, np.uint64), np.zeros(3, np.uint64), np.zeros(3, np.uint8))


u64 = st.integers(0, 2**64 - 1)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(u64, u64, st.sampled_from([32, 64])), max_size=50))
def test_counter_deltas_both_implementations_agree(rows):
    compiled = pytest.importorskip("probe._fastpath")
    prev = np.array([r[0] for r in rows], dtype=np.uint64)
    cur = np.array([r[1] for r in rows], dtype=np.uint64)
    bits = np.array([r[2] for r in rows], dtype=np.uint8)
    a = compiled.counter_deltas(prev, cur, bits)
    b = twin.counter_deltas(prev, cur, bits)
    np.testing.assert_array_equal(a, b)
