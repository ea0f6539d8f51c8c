# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled fast path: the kernels that touch every packet and every counter sample.

Each kernel lives in its own include file under probe/_kernels/ and has a pure-Python twin of the same
name in probe/_twin/ (re-exported by probe/_fastpath_py.py). probe/fastpath.py chooses between them.
"""
import numpy as np
cimport numpy as cnp
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t
from libc.math cimport NAN

cnp.import_array()

__all__ = []

include "_kernels/counters.pxi"
include "_kernels/parse.pxi"
include "_kernels/aggregate.pxi"
include "_kernels/score.pxi"
include "_kernels/ring.pxi"
