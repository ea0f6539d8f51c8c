"""--web.config.file parsing: the exporter toolkit's format, strictly, every problem with file, line and key."""
from __future__ import annotations

import textwrap

import pytest

from probe.config.schema import ConfigError
from probe.config.webconfig import load_web_config

HASH = "$2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG"


def problems(tmp_path, text):
    p = tmp_path / "web.yml"
    p.write_text(textwrap.dedent(text))
    with pytest.raises(ConfigError) as exc:
        load_web_config(str(p))
    return [str(x).replace(str(p), "web.yml") for x in exc.value.problems]


def test_a_node_exporter_file_loads_as_it_is(tmp_path):
    (tmp_path / "a.crt").write_text("x")
    (tmp_path / "a.key").write_text("x")
    p = tmp_path / "web.yml"
    p.write_text(textwrap.dedent(f"""\
        tls_server_config:
          cert_file: a.crt
          key_file: a.key
          min_version: TLS13
        http_server_config:
          http2: false
          headers: {{Strict-Transport-Security: max-age=31536000}}
        basic_auth_users:
          alice: {HASH}
        """))
    cfg = load_web_config(str(p))
    assert cfg.tls_server_config.cert_file == str(tmp_path / "a.crt")   # relative to the file
    assert cfg.tls_server_config.min_version == "TLS13"
    assert dict(cfg.http_server_config.headers) == {"Strict-Transport-Security": "max-age=31536000"}
    assert cfg.basic_auth_users["alice"].reveal() == HASH and HASH not in repr(cfg)


@pytest.mark.parametrize("text, expected", [
    ("colour: blue\n",
     ["web.yml:1: colour: unknown key (expected one of: basic_auth_users, http_server_config, rate_limit, "
      "tls_server_config)"]),
    ("tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n  min_version: TLS14\n",
     ["web.yml:4: tls_server_config.min_version: unknown value 'TLS14' (expected one of TLS10, TLS11, TLS12, TLS13)"]),
    ("tls_server_config:\n  key_file: a.key\n",
     ["web.yml:2: tls_server_config: give the certificate as cert_file or as cert (one of them)"]),
    ("tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n  client_auth_type: RequireAndVerifyClientCert\n",
     ["web.yml:2: tls_server_config: client_auth_type RequireAndVerifyClientCert needs "
      "client_ca_file"]),
    ("tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n  client_auth_type: RequestClientCert\n",
     ["web.yml:2: tls_server_config: client_auth_type: RequestClientCert (a client "
      "certificate that is not verified) is not supported: use VerifyClientCertIfGiven or "
      "RequireAndVerifyClientCert with client_ca_file"]),
    ("tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n  min_version: TLS13\n  max_version: TLS12\n",
     ["web.yml:2: tls_server_config: min_version TLS13 is above max_version TLS12"]),
    ("tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n",
     ["web.yml:4: tls_server_config.cipher_suites: unknown cipher suite 'TLS_RSA_WITH_RC4_128_SHA' (expected Go "
      "names, e.g. TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)"]),
    ("http_server_config:\n  headers:\n    X-Frame-Options: allowall\n",
     ["web.yml:3: http_server_config.headers: invalid value 'allowall' for X-Frame-Options (expected deny or "
      "sameorigin)"]),
    ("http_server_config:\n  headers:\n    X-Powered-By: me\n",
     ["web.yml:3: http_server_config.headers: header 'X-Powered-By' cannot be set (expected one of "
      "Content-Security-Policy, X-Frame-Options, X-Content-Type-Options, X-XSS-Protection, "
      "Strict-Transport-Security)"]),
    ("basic_auth_users:\n  alice: hunter2\n",
     ["web.yml:2: basic_auth_users.alice: expected a bcrypt hash ($2y$10$ and 53 characters; make one with "
      "htpasswd -nBC 10 \"\" | tr -d ':\\n')"]),
    ("tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n",
     ["web.yml:2: tls_server_config.cert_file: no such file: {dir}/nope.crt",
      "web.yml:3: tls_server_config.key_file: no such file: {dir}/nope.key"]),
    ("tls_server_config: [\n", ["web.yml:2: (file): not valid YAML: expected the node content, but found '<stream end>'"]),
])
def test_bad_files_say_what_and_where(tmp_path, text, expected):
    for name in ("a.crt", "a.key"):
        (tmp_path / name).write_text("x")
    got = problems(tmp_path, text)
    assert got == [e.format(dir=tmp_path) for e in expected]
    assert "hunter2" not in " ".join(got)
