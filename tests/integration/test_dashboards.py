"""The Grafana dashboards (mixin/dashboards/*.json, written by gen.py) against the rules of grafana's
dashboard-linter, implemented here (no Go toolchain is at hand): template-datasource-rule,
template-job-rule, template-instance-rule, template-on-time-change-reload-rule, panel-datasource-rule,
panel-title-description-rule, panel-units-rule, panel-no-targets-rule, target-promql-rule (every query
parsed by promtool, Prometheus's own parser), target-rate-interval-rule, target-job-rule,
target-instance-rule and target-counter-agg-rule; and every metric a query names is one the probe's
collectors export (tests/lab/test_dashboards_lab.py checks names and labels against a real scrape)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.integration.test_mixin import ROOT, exported_names

DIR = ROOT / "mixin" / "dashboards"
BOARDS = sorted(DIR.glob("*.json"))
RANGE_FUNCS = ("rate", "irate", "increase")
# words of PromQL that look like metric names
KEYWORDS = {"sum", "count", "avg", "min", "max", "by", "without", "on", "ignoring", "group_left", "group_right",
            "or", "and", "unless", "vector", "offset", "bool", "label_values", *RANGE_FUNCS}


def targets():
    for path in BOARDS:
        board = json.loads(path.read_text())
        for p in board["panels"]:
            for t in p.get("targets", []):
                yield path.name, p["title"], t["expr"]


def selectors(expr: str) -> list[tuple[str, str]]:
    """(metric name, its matchers) for each vector selector of `expr`."""
    no_grouping = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)
    out = []
    for m in re.finditer(r'(?<![a-zA-Z0-9_:$])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![a-zA-Z0-9_:])(?!\s*\()\s*(\{[^}]*\})?',
                         no_grouping):
        name, matchers = m.group(1), m.group(2) or ""
        if name in KEYWORDS or re.fullmatch(r"\d+", name):
            continue
        # skip label names and values inside a selector's braces
        before = no_grouping[:m.start()]
        if before.count("{") > before.count("}") or before.count('"') % 2:
            continue
        out.append((name, matchers))
    return out


def test_the_json_files_are_what_gen_writes():
    r = subprocess.run([sys.executable, str(DIR / "gen.py"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert {p.name for p in BOARDS} == {"overview.json", "device.json", "interfaces.json", "printers-ups.json",
                                        "capture.json", "probe.json"}


@pytest.mark.parametrize("path", BOARDS, ids=lambda p: p.name)
def test_templates(path):
    board = json.loads(path.read_text())
    by_name = {v["name"]: v for v in board["templating"]["list"]}
    ds = by_name["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    for name in ("job", "instance"):
        v = by_name[name]
        assert v["type"] == "query" and v["datasource"]["uid"] == "${datasource}"
        assert v["refresh"] == 2, f"{name}: refresh on time range change"
        assert v["includeAll"] and v["multi"] and v["allValue"] == ".+"
    assert "$job" in by_name["instance"]["query"]
    assert board["uid"].startswith("sitevigil-") and board["title"].startswith("sitevigil / ")
    assert board["uid"] not in {json.loads(p.read_text())["uid"] for p in BOARDS if p != path}


@pytest.mark.parametrize("path", BOARDS, ids=lambda p: p.name)
def test_panels(path):
    for p in json.loads(path.read_text())["panels"]:
        where = f"{path.name}: {p['title']!r}"
        assert p["datasource"]["uid"] == "${datasource}", where
        assert p["title"].strip() and len(p.get("description", "")) > 15, f"{where}: title and description"
        assert p["fieldConfig"]["defaults"].get("unit"), f"{where}: unit"
        assert p["targets"], f"{where}: no targets"
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}" and t["legendFormat"], where


def test_every_selector_names_the_job_and_the_instance():
    for board, title, expr in targets():
        for name, matchers in selectors(expr):
            assert 'job=~"$job"' in matchers and 'instance=~"$instance"' in matchers, (board, title, name, expr)


def test_rates_use_the_rate_interval_and_counters_only_appear_in_rates():
    for board, title, expr in targets():
        for m in re.finditer(r"\b(rate|irate|increase)\(([^()]*)\)", expr):
            assert m.group(2).rstrip().endswith("[$__rate_interval]"), (board, title, expr)
        counters = [n for n, _ in selectors(expr) if n.endswith("_total")]
        in_rates = re.findall(r"\b(?:rate|irate|increase)\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\{", expr)
        assert sorted(counters) == sorted(n for n in in_rates if n.endswith("_total")), (board, title, expr)
        assert not [n for n in in_rates if not n.endswith("_total")], f"rate of a gauge: {(board, title, expr)}"


def test_every_metric_is_one_the_probe_exports():
    names = exported_names()
    for board, title, expr in targets():
        for name, _ in selectors(expr):
            assert name in names or name.startswith("process_"), (board, title, name)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (Debian package prometheus)")
def test_every_query_parses(tmp_path):
    """promtool parses each query (with Grafana's variables as values), as it parses a recording rule."""
    rules = [{"record": f"dashboard:query:{i}", "expr": expr.replace("$__rate_interval", "5m")}
             for i, (_, _, expr) in enumerate(targets())]
    for path in BOARDS:
        for v in json.loads(path.read_text())["templating"]["list"]:
            if v["type"] == "query":  # label_values(selector, label): its selector parses too
                sel = re.fullmatch(r"label_values\((.*), *\w+\)", v["query"]).group(1)
                rules.append({"record": f"dashboard:variable:{len(rules)}", "expr": f"count({sel})"})
    f = tmp_path / "queries.yml"
    f.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    r = subprocess.run(["promtool", "check", "rules", str(f)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(rules) > 60


def test_selectors_helper():
    assert selectors('sum by (kind) (rate(a_total{job=~"$job"}[$__rate_interval])) / b{x="y{"} or vector(0)') == [
        ("a_total", '{job=~"$job"}'), ("b", '{x="y{"}')]
