"""The service unit: hardened to systemd's own measure, holding exactly the capabilities the
unprivileged test runs the daemon with."""
from __future__ import annotations

import configparser
import re
import shutil
import subprocess

import pytest

from tests.conftest import REPO_ROOT

UNIT = REPO_ROOT / "systemd" / "sitevigil.service"
MAX_EXPOSURE = 2.0


def _directives():
    cp = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    cp.optionxform = str
    cp.read(UNIT)
    return cp


def test_systemd_analyze_security_rates_the_unit_at_2_or_better():
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("needs systemd-analyze (Debian's systemd package; scripts/test installs it)")
    r = subprocess.run([tool, "security", "--offline=true", "--no-pager", str(UNIT)], capture_output=True,
                       text=True, timeout=60)
    m = re.search(r"Overall exposure level for sitevigil\.service: (\d+\.\d+)", r.stdout + r.stderr)
    assert m, r.stdout + r.stderr
    score = float(m.group(1))
    print(f"systemd-analyze security --offline=true: exposure {score} (at most {MAX_EXPOSURE} wanted)")
    assert score <= MAX_EXPOSURE, r.stdout


def test_the_unit_holds_exactly_the_capabilities_the_unprivileged_test_grants():
    from tests.lab.test_unprivileged import CAPS

    svc = _directives()["Service"]
    want = {c.strip("+").upper() for c in CAPS.split(",")}
    for key in ("AmbientCapabilities", "CapabilityBoundingSet"):
        assert {c.removeprefix("CAP_") for c in svc[key].split()} == want, key
    assert svc["DynamicUser"] == "yes" and svc["NoNewPrivileges"] == "yes"
    assert svc["Type"] == "notify" and int(svc["WatchdogSec"]) > 0
