"""--web.config.file at work on a real server on loopback: TLS with a client CA and allowed SANs, basic
auth with bcrypt, headers, a changed file taking effect without a restart (a bad change refused), and a
real Prometheus scraping through TLS and basic auth."""
from __future__ import annotations

import base64
import datetime
import json
import shutil
import socket
import ssl
import subprocess
import textwrap
import time
import urllib.error
import urllib.request

import bcrypt
import pytest

from probe.exposition.websecurity import WebSecurity
from probe.findings.ledger import Ledger
from probe.findings.visits import Visits
from probe.state.store import Store
from tests.helpers import ServedApi


def _pki(d):
    """A CA, a server certificate for 127.0.0.1 and two client certificates (SANs 'prometheus' and 'intruder')."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    now = datetime.datetime.now(datetime.timezone.utc)

    def make(name, issuer_key, issuer_name, sans, ca=False):
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name or subject)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = b.sign(issuer_key or key, hashes.SHA256())
        (d / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (d / f"{name}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
        return key, subject

    ca_key, ca_name = make("ca", None, None, None, ca=True)
    make("server", ca_key, ca_name, [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")])
    make("prometheus", ca_key, ca_name, [x509.DNSName("prometheus")])
    make("intruder", ca_key, ca_name, [x509.DNSName("intruder")])


HASH = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode()  # cost 4: fast tests; the format is the same


@pytest.fixture
def served(tmp_path):
    _pki(tmp_path)
    web = tmp_path / "web.yml"
    web.write_text(textwrap.dedent(f"""\
        tls_server_config:
          cert_file: server.crt
          key_file: server.key
          client_auth_type: RequireAndVerifyClientCert
          client_ca_file: ca.crt
          client_allowed_sans: [prometheus]
        http_server_config:
          headers:
            X-Frame-Options: deny
            X-Content-Type-Options: nosniff
        basic_auth_users:
          prometheus: {HASH}
        """))
    store = Store(str(tmp_path / "state"))
    sec = WebSecurity(str(web))
    with ServedApi(Ledger(store), Visits(store), security=sec) as api:
        api.dir, api.web, api.sec = tmp_path, web, sec
        yield api
    store.close()


def _get(api, path, *, user=None, password=None, client="prometheus"):
    ctx = ssl.create_default_context(cafile=str(api.dir / "ca.crt"))
    if client:
        ctx.load_cert_chain(str(api.dir / f"{client}.crt"), str(api.dir / f"{client}.key"))
    req = urllib.request.Request(api.url + path)
    if user is not None:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


@pytest.mark.parametrize("path", ["/metrics", "/", "/api/findings", "/-/status.json", "/api/annotations"])
def test_every_endpoint_needs_the_password_and_carries_the_headers(served, path):
    status, headers, _ = _get(served, path)
    assert status == 401 and headers["WWW-Authenticate"] == 'Basic realm="sitevigil"'
    assert headers["X-Frame-Options"] == "deny" and headers["X-Content-Type-Options"] == "nosniff"
    assert _get(served, path, user="prometheus", password="wrong")[0] == 401
    assert _get(served, path, user="nobody", password="s3cret")[0] == 401
    status, headers, _ = _get(served, path, user="prometheus", password="s3cret")
    assert status == 200 and headers["X-Frame-Options"] == "deny"


def test_tls_refuses_a_client_without_a_certificate_or_with_another_san(served):
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        _get(served, "/metrics", user="prometheus", password="s3cret", client=None)
    assert _get(served, "/metrics", user="prometheus", password="s3cret", client="intruder")[0] == 403
    plain = socket.create_connection(("127.0.0.1", served.port), timeout=5)
    plain.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
    assert b"sitevigil" not in plain.recv(4096)   # no plain HTTP on the TLS port
    plain.close()


def test_an_unknown_user_takes_as_long_as_a_wrong_password(served):
    """Both run one bcrypt check of the same cost: the answer's time does not say which users exist."""
    def timed(user):
        t = time.perf_counter()
        assert _get(served, "/metrics", user=user, password="nope")[0] == 401
        return time.perf_counter() - t
    for _ in range(3):  # warm the connection path
        timed("prometheus")
    known = sorted(timed("prometheus") for _ in range(15))[7]
    unknown = sorted(timed("nobody") for _ in range(15))[7]
    assert 0.5 < unknown / known < 2.0, (known, unknown)


def test_a_changed_file_applies_at_once_and_a_bad_change_is_refused(served):
    new_hash = bcrypt.hashpw(b"n3w", bcrypt.gensalt(4)).decode()
    text = served.web.read_text().replace(HASH, new_hash).replace("X-Frame-Options: deny", "X-Frame-Options: sameorigin")
    served.web.write_text(text)
    assert _get(served, "/metrics", user="prometheus", password="s3cret")[0] == 401
    status, headers, _ = _get(served, "/metrics", user="prometheus", password="n3w")
    assert status == 200 and headers["X-Frame-Options"] == "sameorigin"
    served.web.write_text(text.replace("X-Frame-Options: sameorigin", "X-Frame-Options: allowall"))
    status, headers, _ = _get(served, "/metrics", user="prometheus", password="n3w")
    assert status == 200 and headers["X-Frame-Options"] == "sameorigin"   # the last good file stays
    assert served.sec.reload_failures == 1


def test_a_real_prometheus_scrapes_through_tls_and_basic_auth(served, tmp_path):
    prom = shutil.which("prometheus")
    if prom is None:
        pytest.skip("needs prometheus (scripts/test installs it)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    d = served.dir
    (d / "prometheus.yml").write_text(textwrap.dedent(f"""\
        global: {{scrape_interval: 1s, scrape_timeout: 1s}}
        scrape_configs:
          - job_name: sitevigil
            scheme: https
            basic_auth: {{username: prometheus, password: s3cret}}
            tls_config: {{ca_file: {d / 'ca.crt'}, cert_file: {d / 'prometheus.crt'}, key_file: {d / 'prometheus.key'}}}
            static_configs: [{{targets: ["127.0.0.1:{served.port}"]}}]
        """))
    p = subprocess.Popen([prom, f"--config.file={d / 'prometheus.yml'}", f"--storage.tsdb.path={d / 'tsdb'}",
                          f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 40
        last = None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/targets", timeout=5) as r:
                    last = json.loads(r.read())["data"]["activeTargets"]
            except (urllib.error.URLError, ConnectionError):
                last = None
            if last and last[0]["health"] == "up":
                return
            time.sleep(0.5)
        raise AssertionError(f"Prometheus never scraped the probe: {last}")
    finally:
        p.terminate()
        p.wait(timeout=20)


def test_a_missing_page_is_404_with_the_headers(served):
    status, headers, _ = _get(served, "/no/such/page", user="prometheus", password="s3cret")
    assert status == 404 and headers["X-Frame-Options"] == "deny"
