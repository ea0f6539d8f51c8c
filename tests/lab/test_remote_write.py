"""Many sites: a Prometheus agent beside the probe scrapes it and remote_writes into a central store
(here a real Prometheus with the remote-write receiver), the site carried in external_labels."""
import json
import shutil
import subprocess
import textwrap
import time

import pytest

from tests.lab.daemon import PORT, probe_daemon

pytestmark = [pytest.mark.lab, pytest.mark.peer]


def test_agent_mode_remote_write_carries_probe_metrics(lab_factory, tmp_path):
    prom = shutil.which("prometheus")
    if prom is None or shutil.which("curl") is None:
        pytest.skip("needs prometheus and curl")
    lab = lab_factory(hosts=2)
    agent_host, central = lab.hosts
    cfg = f"subnets: [{{cidr: {lab.subnet}}}]\nsnmp: {{enabled: false}}\nsweep: {{enabled: false}}\ncapture: {{enabled: false}}\n"
    with probe_daemon(lab, tmp_path, cfg):
        recv = lab.popen(central, [prom, "--config.file=/dev/null", f"--storage.tsdb.path={tmp_path / 'central'}",
                                   f"--web.listen-address={central.ip}:9090", "--web.enable-remote-write-receiver"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        (tmp_path / "agent.yml").write_text(textwrap.dedent(f"""\
            global:
              scrape_interval: 1s
              external_labels: {{customer: lab-customer, site: lab-site}}
            scrape_configs:
              - job_name: sitevigil
                static_configs: [{{targets: ["{lab.probe.ip}:{PORT}"]}}]
            remote_write:
              - url: http://{central.ip}:9090/api/v1/write
                queue_config: {{batch_send_deadline: 1s}}
            """))
        agent = lab.popen(agent_host, [prom, "--enable-feature=agent", f"--config.file={tmp_path / 'agent.yml'}",
                                       f"--storage.agent.path={tmp_path / 'agent'}",
                                       "--web.listen-address=127.0.0.1:9091"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            last = ""
            while time.monotonic() < deadline:
                r = lab.run(central, ["curl", "-sS", "--max-time", "2",
                                      f"http://{central.ip}:9090/api/v1/query?query=sitevigil_build_info"], check=False)
                last = r.stdout
                if r.returncode == 0 and '"result":[{' in r.stdout:
                    labels = json.loads(r.stdout)["data"]["result"][0]["metric"]
                    assert labels["site"] == "lab-site" and labels["customer"] == "lab-customer"
                    assert labels["instance"] == f"{lab.probe.ip}:{PORT}"
                    return
                time.sleep(1)
            raise AssertionError(f"central store never received sitevigil_build_info: {last}")
        finally:
            lab.stop(agent)
            lab.stop(recv)
