"""--web.config.file: TLS, basic authentication and response headers for every HTTP endpoint, in the
Prometheus exporter toolkit's format (docs/web-configuration.md of prometheus/exporter-toolkit), so a
file written for node_exporter or snmp_exporter works here as it is.

    tls_server_config:
      cert_file: /etc/sitevigil/probe.crt
      key_file: /etc/sitevigil/probe.key
      client_auth_type: RequireAndVerifyClientCert
      client_ca_file: /etc/sitevigil/ca.crt
      min_version: TLS12
    http_server_config:
      headers:
        X-Frame-Options: deny
    basic_auth_users:
      prometheus: $2y$10$...            # bcrypt: htpasswd -nBC 10 "" | tr -d ':\\n'

Parsed strictly, like the main config: every problem at once, with file, line and key path. What
Python's TLS cannot do as Go's does is refused with the reason rather than silently ignored.
"""
from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from typing import Literal, Optional

import yaml

from probe.config.schema import ConfigError, Problem, Secret, load_node, setting

CLIENT_AUTH = ("NoClientCert", "RequestClientCert", "RequireAnyClientCert", "VerifyClientCertIfGiven",
               "RequireAndVerifyClientCert")
TLS_VERSIONS = ("TLS10", "TLS11", "TLS12", "TLS13")
# the headers the exporter toolkit lets a file set, and the values it accepts where it restricts them
HEADERS = {"Content-Security-Policy": None, "X-Frame-Options": ("deny", "sameorigin"),
           "X-Content-Type-Options": ("nosniff",), "X-XSS-Protection": None, "Strict-Transport-Security": None}
# Go's names of the TLS 1.2 suites (crypto/tls CipherSuites()) and OpenSSL's
CIPHER_SUITES = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
}
_BCRYPT = re.compile(r"^\$2[abxy]?\$(\d\d)\$[./A-Za-z0-9]{53}$")


def _suites(value: tuple[str, ...]) -> str | None:
    unknown = [s for s in value if s not in CIPHER_SUITES]
    return f"unknown cipher suite {unknown[0]!r} (expected Go names, e.g. {next(iter(CIPHER_SUITES))})" \
        if unknown else None


def _headers(value) -> str | None:
    for name, v in value.items():
        if name not in HEADERS:
            return f"header {name!r} cannot be set (expected one of {', '.join(HEADERS)})"
        allowed = HEADERS[name]
        if allowed and v.lower() not in allowed:
            return f"invalid value {v!r} for {name} (expected {' or '.join(allowed)})"
    return None


@dataclass(frozen=True)
class TlsServerConfig:
    cert_file: str = setting("", doc="server certificate (PEM)")
    key_file: str = setting("", doc="its private key (PEM)")
    cert: str = setting("", doc="the certificate inline, instead of cert_file")
    key: Optional[Secret] = setting(None, doc="the key inline, instead of key_file")
    client_auth_type: Literal[CLIENT_AUTH] = setting("NoClientCert")  # type: ignore[valid-type]
    client_ca_file: str = setting("", doc="CA that signs the clients' certificates")
    client_ca: str = setting("", doc="that CA inline, instead of client_ca_file")
    client_allowed_sans: tuple[str, ...] = setting((), doc="client certificate SANs allowed (exact match)")
    min_version: Literal[TLS_VERSIONS] = setting("TLS12")  # type: ignore[valid-type]
    max_version: Literal[TLS_VERSIONS] = setting("TLS13")  # type: ignore[valid-type]
    cipher_suites: tuple[str, ...] = setting((), doc="TLS 1.2 suites, Go names", check=_suites)
    prefer_server_cipher_suites: bool = setting(True)
    curve_preferences: tuple[str, ...] = setting(())

    def __post_init__(self):
        if bool(self.cert) == bool(self.cert_file):
            raise ValueError("give the certificate as cert_file or as cert (one of them)")
        if bool(self.key) == bool(self.key_file):
            raise ValueError("give the key as key_file or as key (one of them)")
        if self.client_ca and self.client_ca_file:
            raise ValueError("give the client CA as client_ca_file or as client_ca, not both")
        if self.client_auth_type in ("RequestClientCert", "RequireAnyClientCert"):
            raise ValueError(f"client_auth_type: {self.client_auth_type} (a client certificate "
                             f"that is not verified) is not supported: use VerifyClientCertIfGiven or "
                             f"RequireAndVerifyClientCert with client_ca_file")
        if self.client_auth_type != "NoClientCert" and not (self.client_ca or self.client_ca_file):
            raise ValueError(f"client_auth_type {self.client_auth_type} needs client_ca_file")
        if self.client_allowed_sans and self.client_auth_type != "RequireAndVerifyClientCert":
            raise ValueError("client_allowed_sans needs client_auth_type "
                             "RequireAndVerifyClientCert")
        if TLS_VERSIONS.index(self.min_version) > TLS_VERSIONS.index(self.max_version):
            raise ValueError(f"min_version {self.min_version} is above max_version "
                             f"{self.max_version}")
        if self.curve_preferences:
            raise ValueError("curve_preferences is not supported (OpenSSL's defaults apply: "
                             "X25519, P-256, P-384)")


@dataclass(frozen=True)
class HttpServerConfig:
    http2: bool = setting(True, doc="accepted for compatibility; the probe serves HTTP/1.1")
    headers: dict[str, str] = setting(default_factory=dict, check=_headers)


@dataclass(frozen=True)
class RateLimit:
    interval: float = setting(0.0)
    burst: int = setting(0)


@dataclass(frozen=True)
class WebConfigFile:
    tls_server_config: Optional[TlsServerConfig] = setting(None)
    http_server_config: HttpServerConfig = setting(default_factory=HttpServerConfig)
    basic_auth_users: dict[str, Secret] = setting(default_factory=dict)
    rate_limit: Optional[RateLimit] = setting(None)
    path: str = field(default="", metadata={"internal": True})


def load_web_config(path: str) -> WebConfigFile:
    """Parse the file at `path`; ConfigError lists every problem (file:line: key: what)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ConfigError([Problem(path, 0, "(file)", f"cannot read: {exc.strerror}")]) from None
    try:
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError([Problem(path, mark.line + 1 if mark else 0, "(file)",
                                   f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from None
    base = os.path.dirname(os.path.abspath(path))
    cfg = load_node(node, WebConfigFile, file=path, base_dir=base)
    problems = []
    for user, secret in cfg.basic_auth_users.items():
        if not _BCRYPT.match(secret.reveal()):
            problems.append(Problem(path, _line(node, "basic_auth_users", user), f"basic_auth_users.{user}",
                                    "expected a bcrypt hash ($2y$10$ and 53 characters; make one with "
                                    "htpasswd -nBC 10 \"\" | tr -d ':\\n')"))
    tls = cfg.tls_server_config
    if tls is not None:
        for key in ("cert_file", "key_file", "client_ca_file"):
            name = getattr(tls, key)
            if name and not os.path.isfile(_resolve(base, name)):
                problems.append(Problem(path, _line(node, "tls_server_config", key), f"tls_server_config.{key}",
                                        f"no such file: {_resolve(base, name)}"))
    if problems:
        raise ConfigError(problems)
    # relative file names are relative to the web config file, as in the exporter toolkit
    if tls is not None:
        tls = dataclasses.replace(tls, **{k: _resolve(base, getattr(tls, k))
                                          for k in ("cert_file", "key_file", "client_ca_file") if getattr(tls, k)})
    return dataclasses.replace(cfg, tls_server_config=tls, path=path)


def _resolve(base: str, name: str) -> str:
    return name if os.path.isabs(name) else os.path.join(base, name)


def _line(root, section: str, key: str) -> int:
    if not isinstance(root, yaml.MappingNode):
        return 0
    for k, v in root.value:
        if k.value == section and isinstance(v, yaml.MappingNode):
            for k2, _v2 in v.value:
                if k2.value == key:
                    return k2.start_mark.line + 1
    return 0
