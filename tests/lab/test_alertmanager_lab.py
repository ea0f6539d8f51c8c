"""The alerting path end to end (issue 11): a real nmap scan on the lab LAN, the probe on its mirror
port finds it, a real Prometheus scrapes the probe and evaluates the mixin's rules
(mixin/alerts/sitevigil.rules.yml), Debian's real prometheus-alertmanager routes the alert with the
example config (mixin/alertmanager.example.yml, only its webhook URLs pointed at the lab and its timers
shortened) and a webhook receiver (the PSA bridge's place) gets it: the warning route's URL, the alert's
labels, its summary, description and runbook. Everything runs in the lab's own namespaces."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import time
from urllib.parse import urlsplit, urlunsplit

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.lab.daemon import PORT, probe_daemon

pytestmark = [pytest.mark.lab, pytest.mark.peer]

RULES = REPO_ROOT / "mixin" / "alerts" / "sitevigil.rules.yml"
EXAMPLE = REPO_ROOT / "mixin" / "alertmanager.example.yml"
HOOK_PORT = 9099

RECEIVER = """\
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with open(sys.argv[2], "a") as fh:
            fh.write(self.path + " " + body.decode().replace("\\n", " ") + "\\n")
        self.send_response(200)
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def _alertmanager_config() -> dict:
    """The example, with each webhook's scheme and host pointed at the lab receiver (path and query,
    which carry the priority, kept) and its timers in seconds."""
    cfg = yaml.safe_load(EXAMPLE.read_text())
    for r in cfg["receivers"]:
        for hook in r.get("webhook_configs", []):
            u = urlsplit(hook["url"])
            hook["url"] = urlunsplit(("http", f"127.0.0.1:{HOOK_PORT}", u.path, u.query, ""))
    routes = [cfg["route"], *cfg["route"].get("routes", [])]
    for r in routes:
        for timer in ("group_wait", "group_interval"):
            if timer in r:
                r[timer] = "1s"
    return cfg


def test_a_real_scan_reaches_the_webhook_through_prometheus_and_alertmanager(lab_factory, tmp_path):
    for tool in ("prometheus", "prometheus-alertmanager", "nmap", "curl"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: scripts/bootstrap --test installs it")
    lab = lab_factory(hosts=3)
    scanner, victim, noc = lab.hosts
    (tmp_path / "am.yml").write_text(yaml.safe_dump(_alertmanager_config()))
    (tmp_path / "prom.yml").write_text(textwrap.dedent(f"""\
        global: {{scrape_interval: 1s, evaluation_interval: 1s}}
        rule_files: [{RULES}]
        alerting:
          alertmanagers: [{{static_configs: [{{targets: ["127.0.0.1:9093"]}}]}}]
        scrape_configs:
          - job_name: sitevigil
            static_configs: [{{targets: ["{lab.probe.ip}:{PORT}"]}}]
        """))
    hooks = tmp_path / "hooks.txt"
    hooks.write_text("")
    config = f"subnets: [{{cidr: {lab.subnet}}}]\nsnmp: {{enabled: false}}\nsweep: {{enabled: false}}\n" \
             "capture: {interface: mirror0, window: 2s}\n"
    procs = []
    try:
        with probe_daemon(lab, tmp_path, config) as d:
            procs.append(lab.popen(noc, [sys.executable, "-c", RECEIVER, str(HOOK_PORT), str(hooks)]))
            procs.append(lab.popen(noc, ["prometheus-alertmanager", f"--config.file={tmp_path / 'am.yml'}",
                                         f"--storage.path={tmp_path / 'am'}", "--web.listen-address=127.0.0.1:9093",
                                         "--cluster.listen-address="],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            procs.append(lab.popen(noc, ["prometheus", f"--config.file={tmp_path / 'prom.yml'}",
                                         f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                         "--web.listen-address=127.0.0.1:9090"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            lab.run(scanner, ["timeout", "40", "nmap", "-n", "-Pn", "--disable-arp-ping", "-sS", "-p", "1-500",
                              "-T4", "--max-retries", "0", "--host-timeout", "30s", str(victim.ip)],
                    check=False, timeout=60)
            d.wait_finding({"port_scan"}, timeout=60)
            deadline = time.monotonic() + 90
            got = []
            while time.monotonic() < deadline and not got:
                for line in hooks.read_text().splitlines():
                    path, _, body = line.partition(" ")
                    doc = json.loads(body)
                    got += [(path, doc, a) for a in doc["alerts"] if a["labels"]["alertname"] == "SitevigilScanOrFlood"]
                time.sleep(1)
            if not got:
                alerts = lab.run(noc, ["curl", "-sS", "http://127.0.0.1:9090/api/v1/alerts"], check=False).stdout
                raise AssertionError(f"no SitevigilScanOrFlood webhook in 90 s; Prometheus alerts: {alerts[:2000]}; "
                                     f"webhooks: {hooks.read_text()[:2000]}")
    finally:
        for p in procs:
            lab.stop(p)
    path, doc, alert = got[0]
    assert path == "/hooks/sitevigil?priority=normal"  # the warning route's receiver
    assert doc["receiver"] == "psa-normal" and doc["status"] == "firing" and alert["status"] == "firing"
    labels, notes = alert["labels"], alert["annotations"]
    assert labels["severity"] == "warning" and labels["kind"] == "port_scan"
    assert labels["instance"] == f"{lab.probe.ip}:{PORT}"
    assert notes["summary"] == f"Scan or flood on the LAN on {lab.probe.ip}:{PORT}"
    assert "open port_scan finding" in notes["description"]
    assert notes["runbook_url"].endswith("docs/runbooks/scan-flood.md")
    assert (REPO_ROOT / "docs" / "runbooks" / "scan-flood.md").exists()
