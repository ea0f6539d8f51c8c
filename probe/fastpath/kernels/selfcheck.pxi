# Build self-check: which bounds directives the module was compiled with, observed rather than declared.
# Not in __all__ (the twin has no compiled directives): tests/fuzz/test_checked_build.py calls it.


def _unchecked_index_read(const uint8_t[::1] buf, Py_ssize_t i):
    """buf[i] exactly as the kernels index a memoryview, with no check of its own.

    In the checked build (SITEVIGIL_DEBUG_BUILD=1: boundscheck, wraparound) an i outside the view raises
    IndexError and a negative i counts from the end. In the release build the read is unchecked: i past
    the end reads whatever follows the view, a negative i reads before it (the test passes a slice of a
    larger array, so that memory is the parent's)."""
    return buf[i]
