# cython: language_level=3, cdivision=True
# (boundscheck, wraparound and initializedcheck are set per build by setup.py: off in the release build,
# on in the checked one, SITEVIGIL_DEBUG_BUILD=1. A header setting would override setup.py's, so none is here;
# tests/fuzz/test_checked_build.py fails if one comes back.)
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
include "fastpath/kernels/selfcheck.pxi"
