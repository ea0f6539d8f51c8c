"""Run the benchmarks in benchmarks/, each against a real peer measured in the same run.

Each prints our figure, the peer's figure and the ratio, and says what it is doing on stderr while it
runs. With no names, lists them. `--format json` prints, once all have run, one JSON document on stdout:
every benchmark's figures (ours, the peer's, the ratio, the target where an issue sets one), exit status
and duration; the human-readable lines then go to stderr with the progress. Needs a source checkout
(benchmarks/ is not installed).

A benchmark reports through `report()`: `report().progress("...")` while it works, and
`report().figure(...)` for each figure it prints.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field


@dataclass
class Figure:
    """One measured figure beside its peer's from the same run. `ratio` is ours / peer's unless the
    benchmark defines it otherwise (it says how in `ratio_meaning`); `met` whether the target is met."""
    what: str
    ours: float
    unit: str
    peer: float | None = None
    peer_name: str | None = None
    ratio: float | None = None
    ratio_meaning: str = "ours / peer"
    target: str | None = None
    met: bool | None = None


@dataclass
class Report:
    """What one benchmark run measured, and where it is."""
    name: str = ""
    figures: list[Figure] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def progress(self, message: str) -> None:
        print(f"[{self.name or 'bench'} {time.monotonic() - self.started:6.1f}s] {message}", file=sys.stderr, flush=True)

    def figure(self, what: str, ours: float, unit: str, *, peer: float | None = None, peer_name: str | None = None,
               ratio: float | None = None, ratio_meaning: str = "ours / peer", target: str | None = None,
               met: bool | None = None) -> Figure:
        if ratio is None and peer:
            ratio = ours / peer
        f = Figure(what, _finite(ours), unit, _finite(peer), peer_name, _finite(ratio), ratio_meaning, target,
                   None if met is None else bool(met))
        self.figures.append(f)
        return f


def _finite(x) -> float | None:
    """A plain float (numpy's too), or None for no figure or a NaN/infinite one (JSON has neither)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


_current = Report()


def report() -> Report:
    """The report of the benchmark running now (a fresh one for each benchmark `run` starts)."""
    return _current


def add_arguments(p):
    p.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (default: list them); 'all' runs every one")
    p.add_argument("--dir", default=None, help="benchmarks directory (default: the checkout's benchmarks/)")
    p.add_argument("--quick", action="store_true", help="smaller inputs, for a smoke run")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="json: the figures of every benchmark as one JSON document on stdout, the text on stderr")


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
    global _current
    rc = 0
    done = {}
    as_json = getattr(args, "format", "text") == "json"
    for name in names:
        _current = Report(name)
        argv = ["--quick"] if args.quick else []
        out = sys.stderr if as_json else sys.stdout
        print(f"== {name}", file=out, flush=True)
        _current.progress("started")
        error = None
        try:
            with contextlib.redirect_stdout(out):
                status = int(benches[name].main(argv) or 0)
        except Exception as exc:  # one benchmark's failure loses neither its figures so far nor the others
            traceback.print_exc(file=sys.stderr)
            status, error = 1, f"{type(exc).__name__}: {exc}"
        seconds = time.monotonic() - _current.started
        _current.progress(f"done in {seconds:.1f} s (exit status {status})" + (f": {error}" if error else ""))
        done[name] = {"exit_status": status, "seconds": round(seconds, 3), "error": error,
                      "figures": [asdict(f) for f in _current.figures]}
        rc |= status
    if as_json:
        json.dump({"quick": bool(args.quick), "benchmarks": done}, sys.stdout, indent=1)
        sys.stdout.write("\n")
    return rc
