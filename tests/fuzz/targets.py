"""The Atheris fuzz targets, run as programs (libFuzzer flags and corpus folders follow the options):

    python -m tests.fuzz.targets parse   [--build checked|asan|release] [libFuzzer flags] [CORPUS...]
    python -m tests.fuzz.targets capfile [--build checked|asan|release] [libFuzzer flags] [CORPUS...]

parse fuzzes the frame parser: the compiled module of the chosen build against the pure-Python twin
(tests/fuzz/harness.py:check_parse); capfile fuzzes probe/sources/capfile.py on whole files (check_capfile).
Python coverage (the twin, the reader) guides both; the asan build adds the compiled kernels' own coverage
and AddressSanitizer, and needs the preload scripts/fuzz sets up. A failing input is written where
-artifact_prefix says. scripts/fuzz is the usual way in; tests/fuzz/test_fuzz_bounded.py runs both briefly.
"""
from __future__ import annotations

import os
import sys

os.environ["SITEVIGIL_NO_EXTENSIONS"] = "1"  # the facade must not load the release build beside the one fuzzed

import atheris  # noqa: E402


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] not in ("parse", "capfile"):
        sys.exit(__doc__)
    target, args = argv[1], argv[2:]
    variant = "checked"
    if args[:1] == ["--build"]:
        variant, args = args[1], args[2:]
    with atheris.instrument_imports(include=["probe"]):  # before anything imports them uninstrumented
        import probe.fastpath.twin as twin
        import probe.sources.capfile  # noqa: F401
        import probe.state.aggregates  # noqa: F401
    from tests.fuzz import builds, harness

    compiled = builds.load(builds.so_path_release() if variant == "release" else builds.so_path(variant))
    if target == "parse":
        def one_input(data: bytes):
            harness.check_parse(compiled, twin, data)
    else:
        mem = harness.MemFile()

        def one_input(data: bytes):
            harness.check_capfile(data, mem.put(data), compiled)
    print(f"fuzz {target}: compiled parser from {compiled.__file__}", file=sys.stderr, flush=True)
    atheris.Setup([argv[0]] + args, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
