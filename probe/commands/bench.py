"""Run the benchmarks in benchmarks/, each against a real peer measured in the same run.

Each prints our figure, the peer's figure and the ratio. With no names, lists them. Needs a source
checkout (benchmarks/ is not installed).
"""
from __future__ import annotations

import importlib.util
import os
import sys


def add_arguments(p):
    p.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (default: list them); 'all' runs every one")
    p.add_argument("--dir", default=None, help="benchmarks directory (default: the checkout's benchmarks/)")
    p.add_argument("--quick", action="store_true", help="smaller inputs, for a smoke run")


def find_dir(explicit: str | None) -> str | None:
    candidates = [explicit] if explicit else [
        os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "benchmarks"),
        os.path.join(os.getcwd(), "benchmarks")]
    for c in candidates:
        if c and os.path.isdir(c):
            return os.path.normpath(c)
    return None


def discover(directory: str) -> dict[str, object]:
    found = {}
    for fname in sorted(os.listdir(directory)):
        if fname.startswith("bench_") and fname.endswith(".py"):
            name = fname[len("bench_"):-3]
            spec = importlib.util.spec_from_file_location(f"sitevigil_bench_{name}", os.path.join(directory, fname))
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            found[name] = module
    return found


def run(args) -> int:
    directory = find_dir(args.dir)
    if directory is None:
        print("sitevigil bench: no benchmarks/ directory found; run it from a source checkout or pass --dir",
              file=sys.stderr)
        return 2
    benches = discover(directory)
    if not args.names:
        for name, module in benches.items():
            doc = (module.__doc__ or "").strip().splitlines()
            print(f"{name:<16} {doc[0] if doc else ''}")
        return 0
    names = list(benches) if args.names == ["all"] else args.names
    unknown = [n for n in names if n not in benches]
    if unknown:
        print(f"sitevigil bench: unknown benchmark(s): {', '.join(unknown)} (known: {', '.join(benches)})",
              file=sys.stderr)
        return 2
    rc = 0
    for name in names:
        print(f"== {name}", flush=True)
        argv = ["--quick"] if args.quick else []
        rc |= int(benches[name].main(argv) or 0)
    return rc
