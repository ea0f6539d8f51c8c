"""A bounded coverage-guided fuzz run of each target, part of every test run (marked `fuzz`: `-m fuzz` runs
only these). scripts/fuzz runs the same targets for as long as asked; README "Fuzzing".

Each run starts from the target's seeds (the shared captures when present, the crafted ones, the kept
regressions) in a fresh corpus, with a fixed libFuzzer seed and a fixed number of executions, against the
bounds-checked build (build/checked/, scripts/fuzz-build) and, for the parser, also against the same build
with AddressSanitizer and libFuzzer's coverage of the compiled kernels (build/asan/, scripts/fuzz-build --asan,
clang from TEST_APT; about 35 s to build). It fails on any input the check refuses (a
compiled/twin difference, an exception from the reader other than CaptureFileError, an IndexError from the
checked build), on a hang (-timeout) and on a run that did not execute what it was asked to. The failing input
is kept in build/fuzz/TARGET/artifacts/ to be added to tests/fuzz/regressions/TARGET/.

It runs once, in the compiled pass: the parse target drives both implementations itself, and the reader is
pure Python, so the twin pass (SITEVIGIL_NO_EXTENSIONS=1) would only repeat it.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

from tests.fuzz import builds, seeds

pytestmark = pytest.mark.fuzz

RUNS = {("parse", "checked"): 300_000, ("capfile", "checked"): 100_000, ("parse", "asan"): 40_000}
MAX_LEN = {"parse": 4096, "capfile": 16384}


@pytest.fixture(scope="module")
def checked_build():
    if os.environ.get("SITEVIGIL_NO_EXTENSIONS", "") not in ("", "0"):
        pytest.skip("the bounded fuzz runs in the compiled pass (it drives both implementations itself)")
    return builds.build("checked")


@pytest.fixture(scope="module")
def asan_build(checked_build):
    if not builds.have_clang():
        pytest.skip("the asan build needs clang: apt-get install clang-14 libclang-rt-14-dev (in TEST_APT)")
    return builds.build("asan")


@pytest.mark.parametrize("target,variant", list(RUNS), ids=[f"{t}-{v}" for t, v in RUNS])
def test_bounded_fuzz(target, variant, request, tmp_path):
    request.getfixturevalue("asan_build" if variant == "asan" else "checked_build")
    runs = RUNS[target, variant]
    corpus = tmp_path / "corpus"
    seeds.seed(target, corpus, seeds.shared_data())
    n_seeds = len(list(corpus.iterdir()))
    artifacts = builds.REPO_ROOT / "build" / "fuzz" / target / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "tests.fuzz.targets", target, "--build", variant, f"-runs={runs}",
           "-seed=1", "-timeout=10", "-rss_limit_mb=2048", f"-max_len={MAX_LEN[target]}",
           f"-artifact_prefix={artifacts}/", "-print_final_stats=1", str(corpus)]
    start = time.monotonic()
    env = builds.asan_env(os.environ) if variant == "asan" else dict(os.environ)
    p = subprocess.run(cmd, cwd=builds.REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    took = time.monotonic() - start
    out = p.stderr
    written = re.findall(r"Test unit written to (\S+)", out)
    assert p.returncode == 0, (f"fuzz {target} failed (rc {p.returncode}); the input is kept in {written or artifacts}: "
                               f"add it to tests/fuzz/regressions/{target}/ with the fix\n{out[-4000:]}")
    executed = int(re.search(r"stat::number_of_executed_units:\s*(\d+)", out).group(1))
    cov = re.findall(r"cov: (\d+) ft: (\d+) corp: (\d+)", out)
    assert executed >= runs, f"only {executed} of {runs} executions ran\n{out[-2000:]}"
    assert cov and int(cov[-1][0]) > 0, f"no coverage reported: is the code instrumented?\n{out[-2000:]}"
    print(f"fuzz {target} ({variant} build): {executed} executions in {took:.1f} s ({executed / took:.0f}/s), {n_seeds} seeds, "
          f"final cov {cov[-1][0]} ft {cov[-1][1]} corpus {cov[-1][2]}", file=sys.stderr)
