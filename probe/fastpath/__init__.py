"""Facade that picks the fast-path implementation once, at import.

The compiled kernels (probe/_fastpath.pyx) are used unless SITEVIGIL_NO_EXTENSIONS is set to a
non-empty value other than "0", in which case the pure-Python twin (probe/fastpath/twin/) is used on
purpose. Both export the same names with the same signatures and give the same answers; the tests
hold them to it. IMPLEMENTATION says which one is live ("cython" or "python"); the daemon publishes
it in sitevigil_build_info and `sitevigil --version`.
"""
import logging
import os

_log = logging.getLogger(__name__)

NO_EXTENSIONS = os.environ.get("SITEVIGIL_NO_EXTENSIONS", "") not in ("", "0")
LOAD_ERROR = None  # why the compiled module did not load, when it did not

if NO_EXTENSIONS:
    from probe.fastpath.twin import *  # noqa: F401,F403
    from probe.fastpath.twin import __all__  # noqa: F401

    IMPLEMENTATION = "python"
else:
    try:
        from probe._fastpath import *  # noqa: F401,F403
        from probe._fastpath import __all__  # noqa: F401

        IMPLEMENTATION = "cython"
    except ImportError as exc:  # not built (e.g. running from a source tree without build_ext)
        LOAD_ERROR = str(exc)
        _log.warning("compiled fast path not loaded (%s); using the pure-Python twin", exc)
        from probe.fastpath.twin import *  # noqa: F401,F403
        from probe.fastpath.twin import __all__  # noqa: F401

        IMPLEMENTATION = "python"
