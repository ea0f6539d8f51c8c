"""End to end: `sitevigil run` inside the lab's probe namespace, scraped over the lab network by curl
and by a real Prometheus server, linted by promtool, reloaded with a bad then a good config by SIGHUP
and by POST /-/reload, notifying systemd through NOTIFY_SOCKET, and stopped cleanly by SIGTERM."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.lab, pytest.mark.peer]

PORT = 9847
COMMUNITY = "e2e-Secret-Community-7f3a"


def _config(lab, state_dir: str, *, timeout: str = "2s") -> str:
    agent = lab.snmpds[0]
    return textwrap.dedent(f"""\
        web:
          listen_address: "{lab.probe.ip}:{PORT}"
        state_dir: {state_dir}
        subnets:
          - cidr: {lab.subnet}
        snmp:
          credentials:
            - name: lab
              version: 2c
              community: {{env: E2E_COMMUNITY}}
          targets:
            - address: {agent.host.ip}
          timeout: {timeout}
        capture:
          interface: mirror0
        sweep:
          interval: 1h
        """)


class Notify:
    """A stand-in for systemd's notification socket, drained by a thread as systemd would."""

    def __init__(self, path: str):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self):
        while not self._closed.is_set():
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except (socket.timeout, OSError):
                pass

    def wait_for(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in m.split("\n") for m in list(self.messages)):
                return True
            time.sleep(0.05)
        return False

    def close(self):
        self._closed.set()
        self._thread.join(2)
        self.sock.close()


def _curl(lab, host, url: str, *args: str) -> subprocess.CompletedProcess:
    return lab.run(host, ["curl", "-sS", "--max-time", "10", *args, url], check=False)


def _metric(text: str, name: str, labels: str = "") -> float | None:
    m = re.search(rf"^{re.escape(name)}{re.escape(labels)}(?:{{[^}}]*}})? (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


@pytest.fixture
def e2e(lab_factory, tmp_path):
    for tool in ("curl", "promtool", "snmpd"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool}")
    lab = lab_factory(hosts=2)
    lab.start_snmpd(lab.hosts[0], community=COMMUNITY)  # the community the config takes from the environment
    state_dir = tmp_path / "state"
    conf = tmp_path / "sitevigil.yml"
    conf.write_text(_config(lab, str(state_dir)))
    notify = Notify(str(tmp_path / "notify.sock"))
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), E2E_COMMUNITY=COMMUNITY,
               NOTIFY_SOCKET=notify.path, WATCHDOG_USEC="1000000")
    log = open(tmp_path / "daemon.log", "a")  # O_APPEND: reading the file never moves the daemon's writes
    proc = lab.popen(lab.probe, [sys.executable, "-m", "probe", "--log.level", "debug", "run",
                                 "--config.file", str(conf)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield lab, proc, conf, notify, log, tmp_path
    finally:
        lab.stop(proc)
        notify.close()
        log.close()


def test_daemon_end_to_end(e2e):
    lab, proc, conf, notify, log, tmp_path = e2e
    url = f"http://{lab.probe.ip}:{PORT}"
    client = lab.hosts[1]

    assert notify.wait_for("READY=1", 30), f"no READY=1; log:\n{_read(log)}"
    assert notify.wait_for("WATCHDOG=1", 5), "no WATCHDOG=1 at half of WATCHDOG_USEC"

    # Scraped over the lab network from another host.
    r = _curl(lab, client, url + "/metrics")
    assert r.returncode == 0, r.stderr
    body = r.stdout
    want_impl = "python" if os.environ.get("SITEVIGIL_NO_EXTENSIONS", "") not in ("", "0") else "cython"
    assert re.search(rf'^sitevigil_build_info{{[^}}]*fastpath="{want_impl}"[^}}]*}} 1\.0$', body, re.M), body[:2000]
    assert _metric(body, "sitevigil_config_last_reload_successful") == 1.0
    assert _metric(body, "process_resident_memory_bytes") > 0

    status = json.loads(_curl(lab, client, url + "/-/status.json").stdout)
    from probe.subsystems import SUBSYSTEMS
    assert sorted(s["name"] for s in status["subsystems"]) == sorted(n for n, _ in SUBSYSTEMS)
    for sub in status["subsystems"]:
        assert sub["health"] in ("ok", "degraded", "starting"), sub
        assert _metric(body, "sitevigil_subsystem_up", "") is not None

    assert _curl(lab, client, url + "/-/healthy").stdout.strip() == "sitevigil is healthy."
    assert _curl(lab, client, url + "/-/ready").stdout.strip() == "sitevigil is ready."
    landing = _curl(lab, client, url + "/").stdout
    assert "sitevigil probe" in landing and str(lab.subnet) in landing or "What this probe is watching" in landing

    # promtool lints the exposition.
    (tmp_path / "metrics.txt").write_text(body)
    lint = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, text=True)
    assert lint.returncode == 0 and not lint.stdout.strip() and not lint.stderr.strip(), lint.stdout + lint.stderr

    # OpenMetrics when the scraper asks for it.
    om = _curl(lab, client, url + "/metrics", "-H", "Accept: application/openmetrics-text; version=1.0.0",
               "-D", "-")
    assert "application/openmetrics-text" in om.stdout.split("\r\n\r\n")[0]
    assert om.stdout.rstrip().endswith("# EOF")

    # A real Prometheus server scrapes the probe across the lab network.
    _prometheus_scrapes(lab, client, f"{lab.probe.ip}:{PORT}", tmp_path, want_impl)

    # SIGHUP with a bad config: rejected, the running config stays, the failure is published.
    good_text = conf.read_text()
    conf.write_text(good_text + "snmp_typo: 1\n")
    ts_before = _metric(_curl(lab, client, url + "/metrics").stdout,
                        "sitevigil_config_last_reload_success_timestamp_seconds")
    os.kill(proc.pid, signal.SIGHUP)
    body = _wait_metric(lab, client, url, "sitevigil_config_last_reload_successful", 0.0)
    assert _metric(body, "sitevigil_config_last_reload_success_timestamp_seconds") == ts_before
    assert "config reload rejected" in _read(log) and "snmp_typo: unknown key" in _read(log)

    # POST /-/reload with the same bad file: 500 with the reason.
    r = _curl(lab, client, url + "/-/reload", "-X", "POST", "-w", "\n%{http_code}")
    assert r.stdout.rstrip().endswith("500") and "snmp_typo" in r.stdout

    # A good config by SIGHUP: accepted, published, timestamp moves.
    time.sleep(0.01)
    conf.write_text(_config(lab, str(tmp_path / "state"), timeout="3s"))
    os.kill(proc.pid, signal.SIGHUP)
    body = _wait_metric(lab, client, url, "sitevigil_config_last_reload_successful", 1.0)
    assert _metric(body, "sitevigil_config_last_reload_success_timestamp_seconds") > ts_before
    r = _curl(lab, client, url + "/-/reload", "-X", "POST", "-w", "\n%{http_code}")
    assert r.stdout.rstrip().endswith("200"), r.stdout

    # Secrets never appear in logs, metrics or diag.
    diag = lab.run(lab.probe, [sys.executable, "-m", "probe", "diag", "--config.file", str(conf), "--format", "json",
                               "--target", str(lab.snmpds[0].host.ip), "--listen", "1s"],
                   env=dict(os.environ, PYTHONPATH=str(REPO_ROOT), E2E_COMMUNITY=COMMUNITY), check=False)
    assert diag.returncode == 0, diag.stdout + diag.stderr
    assert "<secret: env:E2E_COMMUNITY>" in diag.stdout
    checks = {c["name"]: c for c in json.loads(diag.stdout)["checks"]}
    assert checks[f"snmp {lab.snmpds[0].host.ip} as lab (v2c)"]["status"] == "ok", checks
    assert checks["own metrics"]["status"] == "ok" and "linted clean" in checks["own metrics"]["detail"], checks
    assert checks["capabilities"]["status"] == "ok" and checks["config"]["status"] == "ok"
    for text in (diag.stdout, diag.stderr, _curl(lab, client, url + "/metrics").stdout,
                 _curl(lab, client, url + "/-/status.json").stdout, _read(log)):
        assert COMMUNITY not in text

    # SIGTERM: clean exit 0, within the bound.
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, _read(log)
    assert notify.wait_for("STOPPING=1", 1)
    assert "stopped cleanly" in _read(log)


def _read(log) -> str:
    with open(log.name) as fh:
        return fh.read()


def _wait_metric(lab, host, url, name, value, timeout=15.0) -> str:
    deadline = time.monotonic() + timeout
    body = ""
    while time.monotonic() < deadline:
        r = _curl(lab, host, url + "/metrics")
        body = r.stdout or r.stderr
        if _metric(body, name) == value:
            return body
        time.sleep(0.2)
    raise AssertionError(f"{name} never became {value}; last scrape:\n{body[:3000]}")


def _prometheus_scrapes(lab, host, target: str, tmp_path, want_impl: str) -> None:
    prom = shutil.which("prometheus")
    if prom is None:
        pytest.skip("needs prometheus")
    d = tmp_path / "prom"
    d.mkdir()
    (d / "prometheus.yml").write_text(textwrap.dedent(f"""\
        global: {{scrape_interval: 1s, scrape_timeout: 1s}}
        scrape_configs:
          - job_name: sitevigil
            static_configs: [{{targets: ["{target}"]}}]
        """))
    p = lab.popen(host, [prom, f"--config.file={d / 'prometheus.yml'}", f"--storage.tsdb.path={d / 'data'}",
                         "--web.listen-address=127.0.0.1:9090"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 40
        last = ""
        while time.monotonic() < deadline:
            r = _curl(lab, host, "http://127.0.0.1:9090/api/v1/query?query=sitevigil_build_info")
            last = r.stdout
            if r.returncode == 0 and '"result":[{' in r.stdout:
                doc = json.loads(r.stdout)
                labels = doc["data"]["result"][0]["metric"]
                assert labels["fastpath"] == want_impl and labels["job"] == "sitevigil"
                up = json.loads(_curl(lab, host, "http://127.0.0.1:9090/api/v1/query?query=up").stdout)
                assert up["data"]["result"][0]["value"][1] == "1"
                return
            time.sleep(0.5)
        raise AssertionError(f"Prometheus never scraped sitevigil_build_info: {last}")
    finally:
        lab.stop(p)
