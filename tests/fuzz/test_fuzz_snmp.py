"""The SNMP decoder under fuzzing (tests/fuzz/snmp_harness.py holds the property and the seeds):
the seeds and every kept crash hold the property, pyasn1 agrees on real answers, and a bounded
coverage-guided Atheris run (fixed seed) finds nothing new. A crash it finds is copied into
tests/fuzz/regressions/snmp/ so the next run replays it as a plain test."""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz import snmp_harness as h

HERE = Path(__file__).resolve().parent
REGRESSIONS = HERE / "regressions" / "snmp"
RUNS = int(os.environ.get("SITEVIGIL_SNMP_FUZZ_RUNS", "20000"))


@pytest.fixture(scope="module")
def seeds(shared_data):
    s = h.seeds()
    if len(s) < 100:
        pytest.fail(f"only {len(s)} SNMP seeds from {h.shared_data()}: recordings or captures missing")
    return s


def test_every_seed_holds_the_property_and_pyasn1_agrees_on_them(seeds):
    both = 0
    for data in seeds:
        h.check(data)
        ours = h.check_decoders(data)
        theirs = h._pyasn1_decode(data)
        if ours is not None and theirs is not None and ours[2] == 0xA2:
            both += 1
    # The seeds are real answers: nearly all must be decoded by both (the differential check ran on them).
    assert both >= 0.9 * len(seeds), (both, len(seeds))


def test_differential_check_sees_a_disagreement():
    """The comparison with pyasn1 is not vacuous: our result with one value changed is told apart."""
    from probe.sources.snmp import ber
    from probe.sources.snmp.client import COUNTER32, Varbind

    data = h.encode_response(ber, ber.V2C, b"public", 5, [Varbind((1, 3, 6, 1, 2, 1, 2, 2, 1, 10, 1), COUNTER32, 7)])
    ours = h.check_decoders(data)
    h.differential(data, ours)
    wrong = ours[:-1] + ([Varbind(ours[-1][0].oid, COUNTER32, 8)],)
    with pytest.raises(h.PropertyViolation, match="differs from pyasn1"):
        h.differential(data, wrong)


@pytest.mark.parametrize("path", sorted(REGRESSIONS.iterdir()), ids=lambda p: p.name)
def test_kept_crashes_replay(path):
    h.check(path.read_bytes())


def test_bounded_atheris_run(tmp_path, seeds):
    corpus, art = tmp_path / "corpus", tmp_path / "artifacts"
    art.mkdir()
    cmd = [sys.executable, str(HERE / "snmp_harness.py"), "-seed=1", f"-runs={RUNS}", "-max_total_time=60",
           "-timeout=5", "-rss_limit_mb=1024", "-max_len=8192", f"-artifact_prefix={art}/", str(corpus)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    found = sorted(art.iterdir())
    kept = []
    for f in found:  # keep them: the next run replays them in test_kept_crashes_replay
        dest = REGRESSIONS / f"{f.name.split('-')[0]}-{hashlib.sha1(f.read_bytes()).hexdigest()[:16]}.ber"
        shutil.copy(f, dest)
        kept.append(str(dest))
    tail = r.stderr[-3000:]
    assert r.returncode == 0 and not found, f"atheris rc={r.returncode}, kept {kept}:\n{tail}"
    done = re.search(r"Done (\d+) runs in", r.stderr)
    assert done and int(done.group(1)) >= min(RUNS, 2000), tail  # the time cap may end it early, not at once
    assert "INFO: Instrumenting probe.sources.snmp.ber" in r.stderr  # coverage-guided, not blind
