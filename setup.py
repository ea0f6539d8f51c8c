"""Build the Cython fast path.

`pip install .` compiles probe/_fastpath.pyx and fails loudly if it cannot.
SITEVIGIL_NO_EXTENSIONS=1 skips the compile on purpose; the package then runs on the pure-Python twin
(probe/fastpath/twin/), as the facade probe/fastpath/__init__.py reports.

Builds (the Cython bounds directives are set here only, never in the .pyx header, which would override them):
- release (default): boundscheck, wraparound and initializedcheck off; what runs and what the benchmarks measure.
- checked, SITEVIGIL_DEBUG_BUILD=1: the three on, so an out-of-range memoryview index raises IndexError.
  Cythonized into build/checked/ (never over probe/_fastpath.c, which the release build would then reuse).
- sanitized, SITEVIGIL_SANITIZE=1 (implies checked; build with CC=clang): -fsanitize=address,fuzzer-no-link
  for Atheris/libFuzzer, cythonized into build/asan/. scripts/fuzz-build builds the last two out of tree.
"""
import os

from setuptools import Extension, setup

NO_EXTENSIONS = os.environ.get("SITEVIGIL_NO_EXTENSIONS", "") not in ("", "0")
SANITIZE = os.environ.get("SITEVIGIL_SANITIZE", "") not in ("", "0")
DEBUG = SANITIZE or os.environ.get("SITEVIGIL_DEBUG_BUILD", "") not in ("", "0")


def extensions():
    if NO_EXTENSIONS:
        return []
    import importlib.util

    import numpy
    from Cython.Build import cythonize

    # the kernels' copy of the shared layouts, generated from probe/fastpath/layout.py (loaded by path: the
    # package itself may not import before it is built)
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location("_sitevigil_layout", os.path.join(here, "probe", "fastpath", "layout.py"))
    layout = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(layout)
    layout.write_pxi(here)

    checks = DEBUG  # the checked (fuzz/debug) build: bounds checks on; the release build: off, for speed
    directives = {"language_level": "3", "boundscheck": checks, "wraparound": checks, "initializedcheck": checks}
    compile_args, link_args, build_dir = ["-O3"], [], None
    if SANITIZE:
        compile_args = ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,fuzzer-no-link"]
        link_args = ["-fsanitize=address,fuzzer-no-link"]
        build_dir = os.path.join("build", "asan")
    elif DEBUG:
        compile_args = ["-O1", "-g"]  # faster to compile; the fuzzer's time goes to the Python around it
        build_dir = os.path.join("build", "checked")
    ext = [
        Extension(
            "probe._fastpath",
            ["probe/_fastpath.pyx"],
            include_dirs=[numpy.get_include()],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            extra_compile_args=compile_args,
            extra_link_args=link_args,
        ),
    ]
    return cythonize(ext, compiler_directives=directives, quiet=True, build_dir=build_dir)


setup(ext_modules=extensions())
