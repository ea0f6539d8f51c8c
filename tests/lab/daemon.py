"""Run `sitevigil run` inside a lab's probe namespace and talk to it over the lab network."""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
import time

from tests.lab.netns import Host, Lab

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PORT = 9847


class ProbeDaemon:
    def __init__(self, lab: Lab, proc: subprocess.Popen, log_path: str, client: Host):
        self.lab, self.proc, self.log_path, self.client = lab, proc, log_path, client
        self.url = f"http://{lab.probe.ip}:{PORT}"

    def fetch(self, path: str, timeout: float = 5.0) -> dict:
        """GET `path` from the client host: {"status": the HTTP status (0: no answer), "body", "seconds"}."""
        r = self.lab.run(self.client, ["curl", "-sS", "--max-time", str(timeout), "-w", "\n%{http_code} %{time_total}",
                                       self.url + path], check=False, timeout=timeout + 10)
        body, _, tail = r.stdout.rpartition("\n")
        status, _, seconds = tail.partition(" ")
        return {"status": int(status or 0), "body": body, "seconds": float(seconds or timeout),
                "error": r.stderr.strip()}

    def post(self, path: str, doc: dict, timeout: float = 5.0) -> tuple[int, dict]:
        """POST `doc` as JSON from the client host: (HTTP status, the JSON answer)."""
        r = self.lab.run(self.client, ["curl", "-sS", "--max-time", str(timeout), "-X", "POST", "-H",
                                       "Content-Type: application/json", "-d", json.dumps(doc), "-w", "\n%{http_code}",
                                       self.url + path], check=False, timeout=timeout + 10)
        body, _, status = r.stdout.rpartition("\n")
        return int(status or 0), (json.loads(body) if body.strip() else {})

    def get(self, path: str) -> str:
        """The body of a GET that must answer 200."""
        r = self.fetch(path)
        if r["status"] != 200:
            raise RuntimeError(f"GET {path}: HTTP {r['status']} {r['error']}\n--- daemon log ---\n{self.log()[-3000:]}")
        return r["body"]

    def findings(self, state: str = "open") -> list[dict]:
        return json.loads(self.get(f"/api/findings?state={state}"))["findings"]

    def wait_finding(self, kinds: set[str], timeout: float = 60.0, device: str | None = None,
                     state: str = "open") -> dict:
        """The first finding of one of `kinds` (for `device` if given) within `timeout` seconds: an open
        one, or with state="all" one whose episode may already be resolved (its condition cleared)."""
        deadline = time.monotonic() + timeout
        seen: list[dict] = []
        while time.monotonic() < deadline:
            seen = self.findings(state)
            for f in seen:
                if f["kind"] in kinds and (device is None or f["device"] == device):
                    return f
            time.sleep(1.0)
        raise AssertionError(f"no {sorted(kinds)} finding within {timeout:.0f}s; {state} findings: "
                             f"{json.dumps(seen, indent=1)[:3000]}\n--- daemon log ---\n{self.log()[-3000:]}")

    def log(self) -> str:
        with open(self.log_path) as fh:
            return fh.read()


@contextlib.contextmanager
def probe_daemon(lab: Lab, tmp_path, config: str, *, client: Host | None = None, ready_timeout: float = 30,
                 env: dict | None = None):
    """Start the daemon in lab.probe's namespace with `config` (YAML; web and state_dir are added) and
    `env` added to its environment."""
    conf = tmp_path / "sitevigil.yml"
    conf.write_text(textwrap.dedent(f"""\
        web: {{listen_address: "{lab.probe.ip}:{PORT}"}}
        state_dir: {tmp_path / 'state'}
        """) + textwrap.dedent(config))
    log_path = str(tmp_path / "daemon.log")
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, **(env or {}))
    env.pop("NOTIFY_SOCKET", None)
    with open(log_path, "a") as log:
        proc = lab.popen(lab.probe, [sys.executable, "-m", "probe", "--log.level", "debug", "run",
                                     "--config.file", str(conf)], env=env, stdout=log, stderr=subprocess.STDOUT)
    d = ProbeDaemon(lab, proc, log_path, client or lab.gateway)
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {proc.returncode}:\n{d.log()[-3000:]}")
            r = lab.run(d.client, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2",
                                   d.url + "/-/ready"], check=False)
            if r.stdout == "200":
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"daemon not ready within {ready_timeout}s:\n{d.log()[-3000:]}")
            time.sleep(0.3)
        yield d
    finally:
        lab.stop(proc)
