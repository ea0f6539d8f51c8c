"""Build the Cython fast path.

`pip install .` compiles probe/_fastpath.pyx and fails loudly if it cannot.
SITEVIGIL_NO_EXTENSIONS=1 skips the compile on purpose; the package then runs on the pure-Python twin
(probe/fastpath/twin/), as the facade probe/fastpath/__init__.py reports.
"""
import os

from setuptools import Extension, setup

NO_EXTENSIONS = os.environ.get("SITEVIGIL_NO_EXTENSIONS", "") not in ("", "0")
DEBUG = os.environ.get("SITEVIGIL_DEBUG_BUILD", "") not in ("", "0")


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

    directives = {"language_level": "3"}
    if DEBUG:  # fuzz/debug build: bounds checks back on
        directives.update(boundscheck=True, wraparound=True)
    ext = [
        Extension(
            "probe._fastpath",
            ["probe/_fastpath.pyx"],
            include_dirs=[numpy.get_include()],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            extra_compile_args=["-O3"],
        ),
    ]
    return cythonize(ext, compiler_directives=directives, quiet=True)


setup(ext_modules=extensions())
