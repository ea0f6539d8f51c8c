"""The command line as a technician meets it (run as subprocesses, like a person would)."""
import json
import subprocess

import pytest

from probe.cli import COMMANDS
from tests.conftest import REPO_ROOT

CONFIGS = REPO_ROOT / "tests" / "data" / "config"


def _run(cmd, env, *args):
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env=env, timeout=60)


def test_version_names_the_fast_path(sitevigil_cmd, sitevigil_env):
    from probe import __version__, fastpath
    r = _run(sitevigil_cmd, sitevigil_env, "--version")
    assert r.returncode == 0
    assert r.stdout.startswith(f"sitevigil {__version__} (fast path: {fastpath.IMPLEMENTATION};")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_subcommand_explains_itself(sitevigil_cmd, sitevigil_env, command):
    r = _run(sitevigil_cmd, sitevigil_env, command, "--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"usage: sitevigil {command}")
    assert len(r.stdout.splitlines()) > 3  # a description, not just usage


def test_check_config_exit_codes(sitevigil_cmd, sitevigil_env):
    bad = _run(sitevigil_cmd, sitevigil_env, "check-config", str(CONFIGS / "invalid-types.yml"))
    assert bad.returncode == 1
    assert "invalid-types.yml:2: snmp.retries: expected an integer, got 'many'" in bad.stderr
    assert bad.stderr.rstrip().endswith("6 problems found")
    env = dict(sitevigil_env, TEST_AUTH_KEY="authkey-from-env")
    good = _run(sitevigil_cmd, env, "check-config", str(CONFIGS / "valid-full.yml"))
    assert good.returncode == 0, good.stderr
    assert "OK" in good.stdout and "authkey-from-env" not in good.stdout


def test_run_with_bad_config_fails_fast(sitevigil_cmd, sitevigil_env):
    r = _run(sitevigil_cmd, sitevigil_env, "run", "--config.file", str(CONFIGS / "invalid-values.yml"))
    assert r.returncode == 1
    assert "log.level: unknown value 'verbose'" in r.stderr


def test_log_format_json(sitevigil_cmd, sitevigil_env):
    import json
    r = _run(sitevigil_cmd, sitevigil_env, "--log.format", "json", "run", "--config.file",
             str(CONFIGS / "invalid-values.yml"))
    first = json.loads(r.stderr.splitlines()[0])
    assert first["level"] == "error" and "web.listen_address" in first["msg"]


def test_bench_lists_benchmarks(sitevigil_cmd, sitevigil_env):
    r = _run(sitevigil_cmd, sitevigil_env, "bench")
    assert r.returncode == 0, r.stderr
    names = [line.split()[0] for line in r.stdout.splitlines() if line.strip()]
    on_disk = sorted(p.stem[len("bench_"):] for p in (REPO_ROOT / "benchmarks").glob("bench_*.py"))
    assert names == on_disk


_FAKE_BENCH = '''"""A benchmark of nothing: two figures, one beside a peer."""
from probe.commands.bench import report


def main(argv):
    report().progress("measuring")
    print("ours 200 things/s, peer 100 things/s, ratio 2.00")
    report().figure("things", 200.0, "things/s", peer=100.0, peer_name="the peer", target=">= 1x", met=True)
    import numpy as np  # figures computed with numpy are plain JSON numbers and booleans
    report().figure("cost", np.float64(3.0), "CPU s", peer=6.0, peer_name="the peer", ratio=2.0,
                    ratio_meaning="peer / ours", met=np.bool_(False))
    report().figure("nothing to compare", float("nan"), "things", peer=0.0)
    if "--quick" in argv:
        raise RuntimeError("no quick way to measure nothing")
    return 0
'''


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_bench_reports_progress_and_figures(sitevigil_cmd, sitevigil_env, tmp_path, fmt):
    (tmp_path / "bench_fake.py").write_text(_FAKE_BENCH)
    r = _run(sitevigil_cmd, sitevigil_env, "bench", "--dir", str(tmp_path), "--format", fmt, "fake")
    assert r.returncode == 0, r.stderr
    assert "[fake" in r.stderr and "measuring" in r.stderr and "done in" in r.stderr  # progress, on stderr
    human = "ours 200 things/s, peer 100 things/s, ratio 2.00"
    if fmt == "text":
        assert human in r.stdout and "[fake" not in r.stdout
        return
    assert human in r.stderr  # the human lines move to stderr: stdout is one JSON document
    doc = json.loads(r.stdout)
    fake = doc["benchmarks"]["fake"]
    assert doc["quick"] is False and fake["exit_status"] == 0 and fake["seconds"] >= 0 and fake["error"] is None
    assert fake["figures"] == [
        {"what": "things", "ours": 200.0, "unit": "things/s", "peer": 100.0, "peer_name": "the peer", "ratio": 2.0,
         "ratio_meaning": "ours / peer", "target": ">= 1x", "met": True},
        {"what": "cost", "ours": 3.0, "unit": "CPU s", "peer": 6.0, "peer_name": "the peer", "ratio": 2.0,
         "ratio_meaning": "peer / ours", "target": None, "met": False},
        {"what": "nothing to compare", "ours": None, "unit": "things", "peer": 0.0, "peer_name": None, "ratio": None,
         "ratio_meaning": "ours / peer", "target": None, "met": None}]
    quick = _run(sitevigil_cmd, sitevigil_env, "bench", "--dir", str(tmp_path), "--format", "json", "--quick", "fake")
    # a benchmark that raises: its figures so far are kept, the error said, the exit status 1
    failed = json.loads(quick.stdout)["benchmarks"]["fake"]
    assert quick.returncode == 1 and failed["exit_status"] == 1 and len(failed["figures"]) == 3
    assert failed["error"] == "RuntimeError: no quick way to measure nothing" and "Traceback" in quick.stderr
