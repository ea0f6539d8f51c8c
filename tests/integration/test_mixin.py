"""The monitoring mixin (mixin/): promtool check + unit tests, conventions of every rule, and every metric an
expression uses is one the probe exports (names taken from the collectors' source, so a rename breaks this)."""
from __future__ import annotations

import pathlib
import re
import shutil
import subprocess

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
RULES = ROOT / "mixin" / "alerts" / "sitevigil.rules.yml"
TESTS = ROOT / "mixin" / "tests" / "sitevigil.test.yml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package prometheus)")


def _rules():
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def exported_names() -> set[str]:
    """Sample names the probe's collectors can expose, from their family constructors in probe/."""
    names: set[str] = set()
    ctor = re.compile(r'(Counter|Gauge|Info|Histogram)MetricFamily\(\s*(?:f?"(sitevigil_[a-z0-9_{}]+)"|(?:P|_P)\s*\+\s*"([a-z0-9_]+)"|'
                      r'\(\s*"([a-z0-9_]+)")')
    helper = re.compile(r'\b_(g|c)\(\s*"([a-z0-9_]+)"')
    suffix = {"Counter": ["_total"], "Gauge": [""], "Info": ["_info"], "Histogram": ["_bucket", "_sum", "_count"]}
    for path in (ROOT / "probe").rglob("*.py"):
        src = path.read_text()
        prefix = re.search(r'^_?P = "(sitevigil_[a-z_]+)"', src, re.M)
        for m in ctor.finditer(src):
            base = m.group(2) or ((prefix.group(1) if prefix else "") + (m.group(3) or ""))
            if m.group(4) or "{" in (base or ""):
                continue
            for s in suffix[m.group(1)]:
                names.add(base + s)
        if prefix:
            for m in helper.finditer(src):
                names.add(prefix.group(1) + m.group(2) + ("_total" if m.group(1) == "c" else ""))
        # (name, help, value) tables, as in capture_ring_collector.py
        for m in re.finditer(r'\(\s*"(sitevigil_[a-z0-9_]+)",', src):
            names.add(m.group(1))
            names.add(m.group(1) + "_total")
    return names


def used_names(expr: str) -> set[str]:
    no_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    no_matchers = re.sub(r"\{[^}]*\}", "", no_strings)
    no_grouping = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", no_matchers)
    return {n for n in re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b", no_grouping) if n.startswith("sitevigil_")}


@needs_promtool
def test_promtool_check_rules():
    r = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@needs_promtool
def test_promtool_unit_tests():
    r = subprocess.run([PROMTOOL, "test", "rules", str(TESTS)], capture_output=True, text=True, cwd=TESTS.parent)
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_rule_fires_and_stays_quiet_in_a_unit_test():
    cases = [t["alert_rule_test"][0] for t in yaml.safe_load(TESTS.read_text())["tests"]]
    for rule in _rules():
        mine = [c for c in cases if c["alertname"] == rule["alert"]]
        assert any(c["exp_alerts"] for c in mine), f"{rule['alert']}: no firing test"
        assert any(not c["exp_alerts"] for c in mine), f"{rule['alert']}: no quiet test"


def test_conventions():
    seen = set()
    for rule in _rules():
        name = rule["alert"]
        assert re.fullmatch(r"Sitevigil[A-Z][A-Za-z0-9]+", name), name
        assert name not in seen, f"duplicate {name}"
        seen.add(name)
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), name
        ann = rule["annotations"]
        assert ann.get("summary") and ann.get("description"), name
        page = ann["runbook_url"].rsplit("/docs/runbooks/", 1)[1]
        assert (ROOT / "docs" / "runbooks" / page).is_file(), f"{name}: runbook {page} missing"


def test_exported_names_are_found():
    names = exported_names()
    for n in ("sitevigil_snmp_up", "sitevigil_findings_open", "sitevigil_findings_raised_total",
              "sitevigil_snmp_if_receive_errors_total", "sitevigil_capture_kernel_drops_total", "sitevigil_build_info"):
        assert n in names, n
    assert used_names('rate(sitevigil_x_total{a="b"}[5m]) and on (sitevigil_y) up') == {"sitevigil_x_total"}


def test_every_metric_in_an_expression_is_exported():
    names = exported_names()
    for rule in _rules():
        missing = used_names(rule["expr"]) - names
        assert not missing, f"{rule['alert']} uses {sorted(missing)}, not exported by the probe"


AMTOOL = shutil.which("amtool")


@pytest.mark.skipif(AMTOOL is None, reason="amtool not installed (Debian package prometheus-alertmanager)")
def test_alertmanager_example_config_is_valid():
    cfg = ROOT / "mixin" / "alertmanager.example.yml"
    r = subprocess.run([AMTOOL, "check-config", str(cfg)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    route = yaml.safe_load(cfg.read_text())["route"]
    routed = {m for sub in route["routes"] for m in sub["matchers"]}
    for sev in ("critical", "warning", "info"):
        assert f'severity="{sev}"' in routed, f"no route for severity {sev}"


@needs_promtool
def test_the_example_edge_collector_config_is_valid_for_agent_mode():
    cfg = ROOT / "examples" / "prometheus-agent.yml"
    r = subprocess.run([PROMTOOL, "check", "config", "--agent", str(cfg)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    labels = yaml.safe_load(cfg.read_text())["global"]["external_labels"]
    assert {"customer", "site", "probe"} <= set(labels)  # docs/fleet.md's per-site labels
