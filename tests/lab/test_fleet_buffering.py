"""A fleet of sites (issue 11): at the site, two edge collectors scrape the probe with external labels
customer/site/probe and remote-write to a central store, as a probe behind client NAT must push: a
Prometheus in agent mode and VictoriaMetrics' vmagent (Debian's victoria-metrics package). The central
store (a real Prometheus with the remote-write receiver and an out-of-order window, as Mimir, Thanos
Receive and VictoriaMetrics take late samples) goes away for 12 s, comes back, then goes away for 24 s,
and halfway through the second outage both edge collectors restart too, as a site's box reboots.
Printed and checked: which of the outages' samples reach the central store once it is back.

  - Both keep every sample of an outage they live through (checked).
  - vmagent keeps its queue on disk (-remoteWrite.tmpDataPath): it also delivers what it held when it
    restarted (checked).
  - Prometheus in agent mode keeps a WAL, but after its own restart it sends only samples scraped after
    it started again: what it held unsent when it stopped is lost (printed; measured here: none of it
    arrived).

docs/fleet.md says the same for operators."""
from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
import time

import pytest

from tests.lab.daemon import PORT, probe_daemon

pytestmark = [pytest.mark.lab, pytest.mark.peer]

OUTAGE_S = 24
LABELS = {"customer": "acme-dental", "site": "main-office", "probe": "probe-01"}


def test_edge_collectors_buffer_while_the_central_store_is_away(lab_factory, tmp_path):
    for tool in ("prometheus", "vmagent", "curl"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: scripts/bootstrap --test installs it")
    lab = lab_factory(hosts=2)
    edge, central = lab.hosts
    target = f"{lab.probe.ip}:{PORT}"
    write_url = f"http://{central.ip}:9090/api/v1/write"
    ext = ", ".join(f"{k}: {v}" for k, v in LABELS.items())
    scrape = f"""\
        scrape_configs:
          - job_name: sitevigil
            scrape_interval: 1s
            scrape_timeout: 1s
            static_configs: [{{targets: ["{target}"]}}]
        """
    (tmp_path / "agent.yml").write_text(textwrap.dedent(f"""\
        global: {{scrape_interval: 1s, external_labels: {{{ext}, collector: prometheus-agent}}}}
        remote_write:
          - url: {write_url}
            queue_config: {{batch_send_deadline: 1s, min_backoff: 100ms, max_backoff: 2s}}
        """) + textwrap.dedent(scrape))
    (tmp_path / "vmagent.yml").write_text(textwrap.dedent(f"""\
        global: {{scrape_interval: 1s, external_labels: {{{ext}, collector: vmagent}}}}
        """) + textwrap.dedent(scrape))

    # a queue drained after an outage arrives beside fresh samples, so the central store must take
    # samples out of order, as Mimir, Thanos Receive and VictoriaMetrics do (Prometheus: a window for them)
    (tmp_path / "central.yml").write_text("storage: {tsdb: {out_of_order_time_window: 30m}}\n")

    def start_central():
        return lab.popen(central, ["prometheus", f"--config.file={tmp_path / 'central.yml'}",
                                   f"--storage.tsdb.path={tmp_path / 'central'}",
                                   f"--web.listen-address={central.ip}:9090", "--web.enable-remote-write-receiver"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start_agent():
        return lab.popen(edge, ["prometheus", "--enable-feature=agent", f"--config.file={tmp_path / 'agent.yml'}",
                                f"--storage.agent.path={tmp_path / 'agent'}", "--web.listen-address=127.0.0.1:9091"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start_vmagent():
        return lab.popen(edge, ["vmagent", f"-promscrape.config={tmp_path / 'vmagent.yml'}",
                                f"-remoteWrite.url={write_url}", f"-remoteWrite.tmpDataPath={tmp_path / 'vmq'}",
                                "-httpListenAddr=127.0.0.1:8429", "-loggerLevel=ERROR"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def samples(collector: str, start: float, end: float) -> list[float]:
        """Timestamps of the central store's sitevigil_build_info samples from `collector` in [start, end)."""
        q = f'sitevigil_build_info{{collector="{collector}",site="main-office"}}[{int(end - start) + 5}s]'
        r = lab.run(central, ["curl", "-sS", "--max-time", "5", "--data-urlencode", f"query={q}",
                              "--data-urlencode", f"time={end}", f"http://{central.ip}:9090/api/v1/query"], check=False)
        if r.returncode != 0 or not r.stdout.startswith("{"):
            return []
        result = json.loads(r.stdout)["data"]["result"]
        if result:
            assert {k: result[0]["metric"][k] for k in LABELS} == LABELS
        return [float(t) for s in result for t, _ in s["values"] if start <= float(t) < end]

    cfg = f"subnets: [{{cidr: {lab.subnet}}}]\nsnmp: {{enabled: false}}\nsweep: {{enabled: false}}\ncapture: {{enabled: false}}\n"
    procs: dict[str, subprocess.Popen] = {}
    try:
        with probe_daemon(lab, tmp_path, cfg):
            procs["central"], procs["agent"], procs["vmagent"] = start_central(), start_agent(), start_vmagent()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                now = time.time()
                if all(samples(c, now - 5, now) for c in ("prometheus-agent", "vmagent")):
                    break
                time.sleep(1)
            else:
                raise AssertionError("the central store never got the probe's samples from both edge collectors")
            time.sleep(12)  # a baseline: what each delivers with everything up
            base_end = time.time()
            # A: the central store is away for OUTAGE_S / 2; the edge collectors keep running
            a_down = time.time()
            lab.stop(procs.pop("central"))
            time.sleep(OUTAGE_S / 2)
            a_up = time.time()
            procs["central"] = start_central()
            time.sleep(15)
            # B: away again for OUTAGE_S; halfway through, both edge collectors restart (the box reboots)
            t_down = time.time()
            lab.stop(procs.pop("central"))
            time.sleep(OUTAGE_S / 2)
            t_restart = time.time()
            for name, start in (("agent", start_agent), ("vmagent", start_vmagent)):
                lab.stop(procs.pop(name))
                procs[name] = start()
            time.sleep(OUTAGE_S / 2)
            t_up = time.time()
            procs["central"] = start_central()
            time.sleep(25)  # the queues drain (backoff at most 2 s; vmagent retries from its disk queue)
            spans = {"base": (base_end - 11, base_end - 1), "A": (a_down + 1, a_up - 1),
                     "B before restart": (t_down + 1, t_restart - 1), "B after restart": (t_restart + 3, t_up)}
            got = {c: {k: samples(c, *span) for k, span in spans.items()} for c in ("prometheus-agent", "vmagent")}
    finally:
        for p in procs.values():
            lab.stop(p)
    share = {}
    for c, by in got.items():
        rate = len(by["base"]) / 10  # samples per second with everything up (the scrapes that succeeded)
        share[c] = {k: len(v) / (rate * (spans[k][1] - spans[k][0])) for k, v in by.items() if k != "base"}
        print(f"{c}: {rate:.1f} samples/s with the central store up; of the outages' samples, arrived: "
              + ", ".join(f"{k} {v:.0%}" for k, v in share[c].items()))
    assert all(len(got[c]["base"]) >= 5 for c in got), got  # both delivered with everything up
    assert share["prometheus-agent"]["A"] >= 0.8 and share["vmagent"]["A"] >= 0.8, share
    assert share["vmagent"]["B before restart"] >= 0.8 and share["vmagent"]["B after restart"] >= 0.8, share
