"""The fast path's checked builds (scripts/fuzz-build), loaded beside the release one.

build/checked/probe/_fastpath*.so is the bounds-checked build (SITEVIGIL_DEBUG_BUILD=1), build/asan/ the same
with AddressSanitizer and libFuzzer's coverage (SITEVIGIL_SANITIZE=1, clang). Neither is ever imported as the
package's probe._fastpath: load() gives the module object for the harnesses and tests to call directly.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent.parent  # the checkout


def build(variant: str = "checked") -> Path:
    """Build (or reuse, when its sources are unchanged) the variant; return its .so. Raises RuntimeError."""
    args = [str(REPO_ROOT / "scripts" / "fuzz-build")] + (["--asan"] if variant == "asan" else [])
    p = subprocess.run(args, capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        raise RuntimeError(f"scripts/fuzz-build {' '.join(args[1:])} failed (rc {p.returncode}):\n{p.stderr[-3000:]}")
    return so_path(variant)


def so_path(variant: str = "checked") -> Path:
    found = sorted((REPO_ROOT / "build" / variant / "probe").glob("_fastpath*.so"))
    if not found:
        raise RuntimeError(f"no {variant} build in build/{variant}/probe/: run scripts/fuzz-build"
                           + (" --asan" if variant == "asan" else ""))
    return found[0]


def load(path: Path):
    """The extension module at `path`, under its own name (probe._fastpath), not entered in sys.modules."""
    loader = importlib.machinery.ExtensionFileLoader("probe._fastpath", str(path))
    spec = importlib.util.spec_from_file_location("probe._fastpath", str(path), loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def so_path_release() -> Path:
    """The release build the editable install made in place (probe/_fastpath*.so)."""
    found = sorted((REPO_ROOT / "probe").glob("_fastpath*.so"))
    if not found:
        raise RuntimeError("no release build in probe/: run scripts/bootstrap --test")
    return found[0]


def have_clang() -> bool:
    import shutil
    return bool(shutil.which("clang") or shutil.which("clang-14"))


def asan_env(base: dict) -> dict:
    """The environment a target runs the asan build in: atheris' ASan + libFuzzer runtime preloaded (the
    module's -fsanitize=address calls need it in the process before CPython starts), leak checks off (CPython's
    own allocations at exit are not the kernels'), a small quarantine so long runs stay within -rss_limit_mb."""
    import atheris
    env = dict(base)
    env["LD_PRELOAD"] = str(Path(atheris.path()) / "asan_with_fuzzer.so")
    env["ASAN_OPTIONS"] = "detect_leaks=0:allocator_may_return_null=1:quarantine_size_mb=32"
    return env
