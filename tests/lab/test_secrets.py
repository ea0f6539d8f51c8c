"""No secret leaves the daemon (issue 12): it runs with every kind configured — a v2c community (from
the environment), SNMPv3 auth and priv keys (one from the environment, one from a file), web users
with bcrypt hashes (--web.config.file) — polls real Net-SNMP agents with them, is asked for everything
it serves (metrics, status, the technician page, the findings and visits API, /snmp) and a failed login
with a wrong password, then `sitevigil diag` and `sitevigil report` run on its config and state. None of
the secrets, nor the bcrypt hash, nor the wrong password appears in anything it emitted: HTTP answers,
its log at debug level, diag's output, the report."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import bcrypt
import pytest

from tests.helpers import samples, wait_for
from tests.lab.daemon import PORT, REPO_ROOT
from tests.lab.fixtures import lab_fixture

pytestmark = [pytest.mark.lab, pytest.mark.peer]

COMMUNITY = "sv-Community-3c1e9a"
AUTH_KEY = "sv-AuthKey-8d2f4b1"
PRIV_KEY = "sv-PrivKey-5e7a0c9"
WEB_USER, WEB_PASSWORD = "msp-noc", "sv-WebPass-91b3d"
WRONG_PASSWORD = "sv-WrongPass-77e0"
HASH = bcrypt.hashpw(WEB_PASSWORD.encode(), bcrypt.gensalt(4)).decode()
SECRETS = (COMMUNITY, AUTH_KEY, PRIV_KEY, WEB_PASSWORD, WRONG_PASSWORD, HASH, HASH[7:])  # [7:]: past "$2b$04$"

lab = lab_fixture(hosts=2, needs=("snmpd", "curl"))


def _config(lab, tmp_path) -> str:
    v2, v3 = lab.hosts
    (tmp_path / "priv.key").write_text(PRIV_KEY + "\n")
    return textwrap.dedent(f"""\
        web: {{listen_address: "{lab.probe.ip}:{PORT}"}}
        state_dir: {tmp_path / 'state'}
        subnets: [{{cidr: {lab.subnet}}}]
        sweep: {{enabled: false}}
        capture: {{interface: mirror0}}
        snmp:
          timeout: 2s
          credentials:
            - {{name: office-v2, version: 2c, community: {{env: SV_COMMUNITY}}}}
            - name: office-v3
              version: 3
              username: labv3
              auth_protocol: SHA256
              auth_key: {{env: SV_AUTH_KEY}}
              priv_protocol: AES256
              priv_key: {{file: {tmp_path / 'priv.key'}}}
          targets:
            - {{address: {v2.ip}, credentials: [office-v2]}}
            - {{address: {v3.ip}, credentials: [office-v3]}}
        """)


def test_no_secret_in_anything_the_daemon_emits(lab, tmp_path):
    v2, v3 = lab.hosts
    lab.start_snmpd(v2, community=COMMUNITY, v3_users=[])
    lab.start_snmpd(v3, community="lab-unused", v3_users=[{"user": "labv3", "auth": "SHA-256", "auth_key": AUTH_KEY,
                                                           "priv": "AES-256", "priv_key": PRIV_KEY}])
    conf = tmp_path / "sitevigil.yml"
    conf.write_text(_config(lab, tmp_path))
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  {WEB_USER}: {HASH}\n")
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, SV_COMMUNITY=COMMUNITY, SV_AUTH_KEY=AUTH_KEY)
    env.pop("NOTIFY_SOCKET", None)
    log_path = tmp_path / "daemon.log"
    url = f"http://{lab.probe.ip}:{PORT}"
    client = lab.gateway
    emitted: list[tuple[str, str]] = []  # (what, text): every answer and output, in order

    def get(path: str, *auth: str) -> tuple[int, str]:
        r = lab.run(client, ["curl", "-sS", "--max-time", "10", *auth, "-w", "\n%{http_code}", url + path],
                    check=False, timeout=20)
        body, _, status = r.stdout.rpartition("\n")
        emitted.append((f"GET {path} ({'no user' if not auth else auth[1].split(':')[0]}) -> {status}", body + r.stderr))
        return int(status or 0), body

    user = ["-u", f"{WEB_USER}:{WEB_PASSWORD}"]
    with open(log_path, "a") as log:
        proc = lab.popen(lab.probe, [sys.executable, "-m", "probe", "--log.level", "debug", "run", "--config.file",
                                     str(conf), "--web.config.file", str(web)], env=env, stdout=log,
                         stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: get("/-/ready", *user)[0] == 200, 30, "the daemon ready",
                 context=lambda: log_path.read_text()[-3000:])

        def both_polled():
            status, body = get("/metrics", *user)
            up = {s.labels["target"] for s in samples(body, "sitevigil_snmp_up") if s.value == 1}
            return body if status == 200 and {str(v2.ip), str(v3.ip)} <= {t.split(":")[0] for t in up} else None

        body = wait_for(both_polled, 60, "both agents polled (v2c and v3 authPriv)",
                        context=lambda: log_path.read_text()[-3000:])
        creds = {s.labels["credential"] for s in samples(body, "sitevigil_snmp_credential_info")}
        assert creds == {"office-v2", "office-v3"}
        # a wrong password and no password: refused, and neither the attempt nor the right one is logged
        assert get("/metrics", "-u", f"{WEB_USER}:{WRONG_PASSWORD}")[0] == 401
        assert get("/metrics")[0] == 401
        for path in ("/", "/-/status.json", "/api/findings?state=all", "/api/visits", "/api/annotations",
                     f"/snmp?target={v3.ip}&module=system", f"/snmp?target={v2.ip}&module=system"):
            status, _ = get(path, *user)
            assert status == 200, (path, status, emitted)
    finally:
        lab.stop(proc)
    diag = lab.run(lab.probe, [sys.executable, "-m", "probe", "--log.level", "debug", "diag", "--config.file",
                               str(conf), "--format", "json", "--target", str(v3.ip), "--listen", "1s"],
                   env=env, check=False, timeout=120)
    checks = {c["name"]: c for c in json.loads(diag.stdout)["checks"]}
    assert checks[f"snmp {v3.ip} as office-v3 (v3)"]["status"] == "ok", checks
    emitted.append(("diag", diag.stdout + diag.stderr))
    report = tmp_path / "report.html"
    r = subprocess.run([sys.executable, "-m", "probe", "--log.level", "debug", "report", "--month",
                        time.strftime("%Y-%m"), "--out", str(report), "--config.file", str(conf)],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    emitted.append(("report", report.read_text() + r.stdout + r.stderr))
    emitted.append(("log", log_path.read_text()))
    assert "level=debug" in emitted[-1][1]  # the log really is at debug level
    leaks = [(where, s) for where, text in emitted for s in SECRETS if s in text]
    assert not leaks, leaks
