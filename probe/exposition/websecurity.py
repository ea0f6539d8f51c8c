"""The web config file at work: basic authentication, client-certificate SANs and response headers on
every endpoint (metrics, API, technician page, report, /snmp), and the TLS context.

The file is checked for changes at every request and every TLS handshake (a stat), as the exporter
toolkit re-reads it: new users, headers and certificates apply at once, without a restart. A file that
no longer parses is refused and logged; the last good one stays in force. Turning TLS on or off needs a
restart (the listening socket is TLS or it is not).

Basic authentication takes the same time for an unknown user as for a wrong password (one bcrypt check
either way, against a hash of the same cost), off the event loop; a correct password is remembered
(bounded) so Prometheus's scrape every 15 s costs no bcrypt.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import hashlib
import hmac
import logging
import os
import ssl
import tempfile

from aiohttp import web

from probe.config.schema import ConfigError
from probe.config.webconfig import CIPHER_SUITES, WebConfigFile, load_web_config

_log = logging.getLogger(__name__)
_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1, "TLS12": ssl.TLSVersion.TLSv1_2,
             "TLS13": ssl.TLSVersion.TLSv1_3}
_VERIFY = {"NoClientCert": ssl.CERT_NONE, "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
           "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}
MAX_REMEMBERED = 64
_REALM = 'Basic realm="sitevigil"'


class WebSecurity:
    def __init__(self, path: str):
        self.path = path
        self.config: WebConfigFile = load_web_config(path)  # ConfigError at start: the daemon refuses to run
        self._stamp = _stamp(path)
        self._ssl: ssl.SSLContext | None = build_ssl_context(self.config) if self.config.tls_server_config else None
        self._dummy = _dummy_hash(self.config)
        self._good: collections.OrderedDict[bytes, None] = collections.OrderedDict()
        self.reload_failures = 0

    # -- the file -------------------------------------------------------------------------------
    def refresh(self) -> WebConfigFile:
        """The config in force, re-read first if the file changed."""
        stamp = _stamp(self.path)
        if stamp == self._stamp:
            return self.config
        self._stamp = stamp
        try:
            new = load_web_config(self.path)
            ctx = build_ssl_context(new) if new.tls_server_config else None
        except (ConfigError, ssl.SSLError, OSError) as exc:
            self.reload_failures += 1
            _log.error("web config %s changed but cannot be used, keeping the last good one: %s", self.path,
                       "; ".join(str(p) for p in exc.problems) if isinstance(exc, ConfigError) else exc)
            return self.config
        if (new.tls_server_config is None) != (self.config.tls_server_config is None):
            _log.error("web config %s: turning TLS %s needs a restart; keeping the last good one", self.path,
                       "on" if new.tls_server_config else "off")
            self.reload_failures += 1
            return self.config
        self.config, self._ssl, self._dummy = new, ctx, _dummy_hash(new)
        self._good.clear()
        _log.info("web config %s reloaded", self.path)
        return new

    def server_ssl_context(self) -> ssl.SSLContext | None:
        """The context to listen with: the one built at start, whose sni_callback hands each handshake
        the current certificates (a context rebuilt when the file changed). The protocol versions are
        the ones in force at start: a ClientHello is read before the callback runs."""
        listen = self._ssl
        if listen is None:
            return None

        def pick(sock, _name, _ctx):
            self.refresh()
            if self._ssl is not None and self._ssl is not sock.context:
                sock.context = self._ssl
        listen.sni_callback = pick
        return listen

    # -- requests -------------------------------------------------------------------------------
    @web.middleware
    async def middleware(self, request: web.Request, handler):
        cfg = self.refresh()
        tls = cfg.tls_server_config
        if tls is not None and tls.client_allowed_sans and not _san_allowed(request, tls.client_allowed_sans):
            resp = web.Response(status=403, text="client certificate not allowed\n")
        elif cfg.basic_auth_users and not await self._authorised(request, cfg):
            resp = web.Response(status=401, text="Unauthorized\n", headers={"WWW-Authenticate": _REALM})
        else:
            try:
                resp = await handler(request)
            except web.HTTPException as exc:  # the handler's own 404s and 405s carry the headers too
                resp = web.Response(status=exc.status, reason=exc.reason, text=exc.text, headers=exc.headers)
        for name, value in cfg.http_server_config.headers.items():
            resp.headers[name] = value
        return resp

    async def _authorised(self, request: web.Request, cfg: WebConfigFile) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, cred = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(cred.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        if not sep:
            return False
        secret = cfg.basic_auth_users.get(user)
        hashed = secret.reveal().encode() if secret is not None else self._dummy
        key = hashlib.sha256(hashed + b"\0" + user.encode() + b"\0" + password.encode()).digest()
        if secret is not None and key in self._good:
            self._good.move_to_end(key)
            return True
        ok = await asyncio.get_running_loop().run_in_executor(None, _checkpw, password.encode(), hashed)
        if ok and secret is not None:
            self._good[key] = None
            while len(self._good) > MAX_REMEMBERED:
                self._good.popitem(last=False)
            return True
        return False


def _checkpw(password: bytes, hashed: bytes) -> bool:
    import bcrypt

    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:
        return False


def _dummy_hash(cfg: WebConfigFile) -> bytes:
    """A hash of the same cost as the configured users', checked for an unknown user (equal timing)."""
    import bcrypt

    cost = 10
    for secret in cfg.basic_auth_users.values():
        cost = int(secret.reveal().split("$")[2])
        break
    return bcrypt.hashpw(os.urandom(16).hex().encode(), bcrypt.gensalt(cost))


def _stamp(path: str):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _san_allowed(request: web.Request, allowed) -> bool:
    cert = request.transport.get_extra_info("peercert") if request.transport else None
    if not cert:
        return False
    names = {value for _kind, value in cert.get("subjectAltName", ())}
    return any(hmac.compare_digest(a, n) for a in allowed for n in names)


def build_ssl_context(cfg: WebConfigFile) -> ssl.SSLContext:
    """An SSLContext for `cfg.tls_server_config`; ssl.SSLError/OSError say what is wrong with the files."""
    tls = cfg.tls_server_config
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = _VERSIONS[tls.min_version]
    ctx.maximum_version = _VERSIONS[tls.max_version]
    if tls.cipher_suites:
        ctx.set_ciphers(":".join(CIPHER_SUITES[s] for s in tls.cipher_suites))
    if tls.prefer_server_cipher_suites:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    with _pem_files(tls) as (certfile, keyfile):
        try:
            ctx.load_cert_chain(certfile, keyfile)
        except ssl.SSLError as exc:
            raise ssl.SSLError(f"{cfg.path}: tls_server_config: cannot load the certificate and key "
                               f"({tls.cert_file or 'inline'}, {tls.key_file or 'inline'}): {exc.reason or exc}") from None
    ctx.verify_mode = _VERIFY[tls.client_auth_type]
    if tls.client_auth_type != "NoClientCert":
        try:
            if tls.client_ca_file:
                ctx.load_verify_locations(cafile=tls.client_ca_file)
            else:
                ctx.load_verify_locations(cadata=tls.client_ca)
        except ssl.SSLError as exc:
            raise ssl.SSLError(f"{cfg.path}: tls_server_config: cannot load the client CA: {exc.reason or exc}") from None
    return ctx


class _pem_files:
    """Inline PEM to private temporary files for the time of loading (OpenSSL reads files)."""

    def __init__(self, tls):
        self.tls = tls
        self.tmp: list[str] = []

    def _file(self, given: str, inline: str) -> str:
        if given:
            return given
        fd, name = tempfile.mkstemp(prefix="sitevigil-tls-")
        with os.fdopen(fd, "w") as f:
            f.write(inline)
        self.tmp.append(name)
        return name

    def __enter__(self):
        key = self.tls.key.reveal() if self.tls.key is not None else ""
        return self._file(self.tls.cert_file, self.tls.cert), self._file(self.tls.key_file, key)

    def __exit__(self, *exc):
        for name in self.tmp:
            os.unlink(name)
