# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled fast path: the kernels that touch every packet and every counter sample.

Each kernel lives in its own include file under probe/fastpath/kernels/ and has a pure-Python twin of the same
name in probe/fastpath/twin/ (re-exported by probe/fastpath/twin/). probe/fastpath/__init__.py chooses between them.
"""
import numpy as np
cimport numpy as cnp
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t
from libc.math cimport NAN

cnp.import_array()

__all__ = []

include "fastpath/kernels/layout.pxi"  # generated from probe/fastpath/layout.py: the shared layouts
include "fastpath/kernels/counters.pxi"
include "fastpath/kernels/parse.pxi"
include "fastpath/kernels/aggregate.pxi"
include "fastpath/kernels/score.pxi"
include "fastpath/kernels/ring.pxi"
