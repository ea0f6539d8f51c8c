"""Every Grafana dashboard query against what the probe really exports (issue 11), so a renamed metric or
label breaks this test, not a dashboard. A probe runs in the lab on its mirror port, polls a real
Net-SNMP agent and an address where nothing answers, sees a real nmap scan (its finding then resolved by
a technician through the API) and ordinary pings; its /metrics is scraped. The printer and UPS series,
which no lab host has, come from the real device recordings in ../shared/data (every one, polled through
the same modules and collector). Each metric a query or a variable names must be in that exposition,
and each label it matches on, groups by or puts in a legend must be one of that metric's labels (or
job/instance, which Prometheus adds)."""
from __future__ import annotations

import asyncio
import json
import re
import time
from collections import defaultdict

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.registry import Collector

from probe.exposition.snmp_collector import families
from probe.sources.snmp.modules import MODULES, DeviceMemory, poll_device
from probe.sources.snmp.snmprec import SnmprecClient
from tests.conftest import shared_data_dir
from tests.helpers import samples, wait_for
from tests.integration.test_dashboards import BOARDS, selectors
from tests.lab.daemon import probe_daemon

pytestmark = [pytest.mark.lab, pytest.mark.peer]

COMMUNITY = "lab-dashboards"
ADDED = {"job", "instance"}  # by Prometheus's scrape


def _labels(text: str) -> dict[str, set[str]]:
    """Sample name -> the label names its samples carry, from a text exposition."""
    out: dict[str, set[str]] = defaultdict(set)
    for s in samples(text):
        out[s.name] |= set(s.labels)
    return out


class _Results(Collector):
    def __init__(self, results):
        self.results = results

    def collect(self):
        return families(self.results)


def _recordings_exposition() -> str:
    """The SNMP collector's exposition for every shared device recording, polled twice (rates need two)."""
    recs = sorted((shared_data_dir() / "snmp" / "librenms" / "snmprec").glob("*.snmprec"))
    if not recs:
        pytest.fail("no device recordings under ../shared/data/snmp/librenms: the printer and UPS panels "
                    "cannot be checked")
    results = []
    for rec in recs:
        client, mem = SnmprecClient.from_file(rec), DeviceMemory()
        asyncio.run(poll_device(client, mem, target=rec.stem, now=1000.0, modules=list(MODULES)))
        results.append(asyncio.run(poll_device(client, mem, target=rec.stem, now=1060.0, modules=list(MODULES))))
    reg = CollectorRegistry()
    reg.register(_Results(results))
    return generate_latest(reg).decode()


def test_every_dashboard_query_names_exported_metrics_and_labels(lab_factory, tmp_path):
    lab = lab_factory(hosts=3)
    scanner, agent, silent = lab.hosts
    lab.start_snmpd(agent, community=COMMUNITY)
    config = f"""\
subnets: [{{cidr: {lab.subnet}}}]
sweep: {{interval: 1h}}
capture: {{interface: mirror0, window: 2s}}
snmp:
  timeout: 1s
  retries: 0
  credentials: [{{name: lab, version: 2c, community: {COMMUNITY}}}]
  targets: [{{address: {agent.ip}}}, {{address: {silent.ip}}}]
"""
    with probe_daemon(lab, tmp_path, config) as d:
        log = lambda: d.log()[-3000:]  # noqa: E731

        def polled():
            body = d.get("/metrics")
            up = {s.labels["target"].split(":")[0] for s in samples(body, "sitevigil_snmp_up") if s.value == 1}
            failed = {s.labels["target"].split(":")[0] for s in samples(body, "sitevigil_snmp_poll_errors_total")}
            return str(agent.ip) in up and str(silent.ip) in failed

        wait_for(polled, 60, "the agent polled and the silent address failing", context=log)
        lab.run(scanner, ["timeout", "40", "nmap", "-n", "-Pn", "--disable-arp-ping", "-sS", "-p", "1-300", "-T4",
                          "--max-retries", "0", "--host-timeout", "30s", str(agent.ip)], check=False, timeout=60)
        scan = d.wait_finding({"port_scan"}, timeout=60)
        status, _ = d.post(f"/api/findings/{scan['id']}/resolve", {"note": "our backup server's check", "by": "carol"})
        assert status == 200
        lab.run(scanner, ["ping", "-c", "4", "-i", "0.3", "-W", "1", str(agent.ip)], check=False)
        time.sleep(5)  # a capture window with the pings closes
        scraped = d.get("/metrics")
    exported = _labels(scraped)
    for name, labels in _labels(_recordings_exposition()).items():
        exported[name] |= labels

    problems = []
    for path in BOARDS:
        board = json.loads(path.read_text())
        queries = [(p["title"], t["expr"], t.get("legendFormat", "")) for p in board["panels"] for t in p["targets"]]
        queries += [(f"variable {v['name']}", v["query"].replace("label_values(", "(").rsplit(",", 1)[0] + ")",
                     "{{" + v["query"].rsplit(",", 1)[1].strip(" )") + "}}")
                    for v in board["templating"]["list"] if v["type"] == "query"]
        for title, expr, legend in queries:
            used = selectors(expr)
            have = set(ADDED)
            for name, matchers in used:
                if name not in exported:
                    problems.append(f"{path.name} {title!r}: {name} is not exported")
                    continue
                have |= exported[name]
                for label in re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", matchers):
                    if label not in exported[name] | ADDED:
                        problems.append(f"{path.name} {title!r}: {name} has no label {label!r}")
            grouped = {g.strip() for m in re.finditer(r"\b(?:by|without)\s*\(([^)]*)\)", expr) for g in m.group(1).split(",")}
            for label in grouped | set(re.findall(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}", legend)):
                if label and label not in have:
                    problems.append(f"{path.name} {title!r}: label {label!r} is on none of its metrics")
    assert not problems, "\n".join(problems)
