"""From a checkout to an installed, enabled service (issue 11): `scripts/install --no-start` as root, in a
private mount namespace whose /opt/sitevigil, /etc/sitevigil, /var/lib/sitevigil and /etc/systemd/system
are fresh tmpfs (the machine's own are never touched). Checked: the code and its venv in /opt/sitevigil,
the unit installed and enabled (multi-user.target wants it), a config on the built-in defaults readable
by the service's dynamic user and a secrets file only root reads, `systemd-analyze verify` clean, and
the unit's own ExecStart line, run in a lab namespace as the service would run it, serving /-/ready and
/metrics. (This machine's systemd is not PID 1, so systemd does not start it: test_unprivileged.py runs
the daemon with the unit's user and capabilities.)"""
from __future__ import annotations

import os
import shlex
import subprocess
import textwrap

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.lab

MOUNTS = ("/opt/sitevigil", "/etc/sitevigil", "/var/lib/sitevigil", "/etc/systemd/system")


def test_install_lays_out_an_enabled_service_that_runs(lab_factory, tmp_path):
    lab = lab_factory(hosts=1)
    made = [m for m in MOUNTS if not os.path.exists(m)]  # mount points created here are removed after
    script = textwrap.dedent(f"""\
        set -euo pipefail
        for m in {' '.join(MOUNTS)}; do mkdir -p "$m"; mount -t tmpfs -o mode=0755 tmpfs "$m"; done
        {shlex.quote(str(REPO_ROOT / 'scripts' / 'install'))} --no-start
        echo "== layout"
        stat -c '%n %a %U' /etc/sitevigil /etc/sitevigil/sitevigil.yml /etc/sitevigil/secrets.env
        readlink /etc/systemd/system/multi-user.target.wants/sitevigil.service
        /opt/sitevigil/.venv/bin/sitevigil --version
        echo "== verify"
        systemd-analyze verify /etc/systemd/system/sitevigil.service 2>&1 | grep -v "^$" || true
        echo "== run"
        exec_start=$(sed -n 's/^ExecStart=//p' /etc/systemd/system/sitevigil.service)
        ip netns exec {lab.probe.ns} $exec_start > {tmp_path / 'daemon.log'} 2>&1 &
        pid=$!
        for i in $(seq 1 100); do
            if ip netns exec {lab.probe.ns} curl -sf --max-time 1 http://127.0.0.1:9847/-/ready >/dev/null; then break; fi
            sleep 0.3
        done
        ip netns exec {lab.probe.ns} curl -sS --max-time 5 http://127.0.0.1:9847/metrics | grep -c '^sitevigil_' || true
        kill -TERM $pid || true
        wait $pid && echo "exit 0" || echo "exit $?"
        """)
    try:
        r = subprocess.run(["unshare", "--mount", "--propagation", "private", "bash", "-c", script],
                           capture_output=True, text=True, timeout=900)
    finally:
        for m in made:
            try:
                os.rmdir(m)
            except OSError:
                pass
    out = r.stdout
    assert r.returncode == 0, out[-3000:] + r.stderr[-3000:]
    layout, _, rest = out.partition("== layout\n")[2].partition("== verify\n")
    verify, _, run = rest.partition("== run\n")
    assert "/etc/sitevigil 755 root" in layout and "/etc/sitevigil/sitevigil.yml 644 root" in layout
    assert "/etc/sitevigil/secrets.env 600 root" in layout
    assert layout.splitlines()[3].endswith("/etc/systemd/system/sitevigil.service")
    assert layout.splitlines()[4].startswith("sitevigil ")
    assert not [line for line in verify.splitlines() if "sitevigil" in line], verify
    lines = run.split()
    assert int(lines[0]) > 50, run + open(tmp_path / "daemon.log").read()[-3000:]  # sitevigil_ samples served
    assert lines[-2:] == ["exit", "0"], run + open(tmp_path / "daemon.log").read()[-3000:]
    assert not [m for m in made if os.path.exists(m)], "the machine's own directories were left changed"
