"""Poll one SNMP device once and print what it says (JSON or Prometheus text).

Credentials come from the flags, from environment variables (so secrets stay off the command line:
SITEVIGIL_SNMP_COMMUNITY, SITEVIGIL_SNMP_V3_USER, SITEVIGIL_SNMP_AUTH_KEY, SITEVIGIL_SNMP_PRIV_KEY),
or, when none is given, from the config file's snmp.credentials tried in order as the daemon does.

    sitevigil snmp 192.168.1.20 --community public
    SITEVIGIL_SNMP_AUTH_KEY=... SITEVIGIL_SNMP_PRIV_KEY=... sitevigil snmp switch1 --v3-user monitor \\
        --auth-proto SHA256 --priv-proto AES --module system,interfaces --format prom

Exit status: 0 every module answered, 1 some modules failed, 2 bad usage, 3 the device answered no
credential (timeout or refused).
"""
from __future__ import annotations

import asyncio
import json
import os
import sys

from probe.config.snmp import AUTH_PROTOCOLS, PRIV_PROTOCOLS

ENV = {"community": "SITEVIGIL_SNMP_COMMUNITY", "v3_user": "SITEVIGIL_SNMP_V3_USER",
       "auth_key": "SITEVIGIL_SNMP_AUTH_KEY", "priv_key": "SITEVIGIL_SNMP_PRIV_KEY"}


def add_arguments(p):
    p.add_argument("target", metavar="TARGET", help="device address or name; HOST:PORT or [V6]:PORT also work")
    p.add_argument("--port", type=int, default=None, help="UDP port (default 161)")
    p.add_argument("--version", dest="snmp_version", choices=["1", "2c", "3"], default=None,
                   help="SNMP version (default: 3 with --v3-user, else 2c)")
    p.add_argument("--community", default=None, help=f"v1/v2c community (or ${ENV['community']})")
    p.add_argument("--v3-user", dest="v3_user", default=None, help=f"v3 user (or ${ENV['v3_user']})")
    p.add_argument("--auth-proto", dest="auth_proto", type=str.upper, choices=AUTH_PROTOCOLS, default=None)
    p.add_argument("--auth-key", dest="auth_key", default=None, help=f"v3 auth passphrase (or ${ENV['auth_key']})")
    p.add_argument("--priv-proto", dest="priv_proto", type=str.upper, choices=PRIV_PROTOCOLS, default=None)
    p.add_argument("--priv-key", dest="priv_key", default=None, help=f"v3 privacy passphrase (or ${ENV['priv_key']})")
    p.add_argument("--context", default="", help="v3 context name")
    p.add_argument("--config.file", dest="config_file", default=None, metavar="FILE",
                   help="take credentials, timeout and retries from this config when no credential flag is given")
    p.add_argument("--module", dest="modules", default=None, metavar="M,...",
                   help="modules to poll (default: chosen from the device's sysObjectID/sysDescr)")
    p.add_argument("--format", choices=["json", "prom"], default="json")
    p.add_argument("--timeout", type=float, default=None, help="seconds per request (default: config, 2)")
    p.add_argument("--retries", type=int, default=None, help="retries per request (default: config, 1)")
    p.add_argument("--max-repetitions", dest="max_repetitions", type=int, default=None,
                   help="GETBULK max-repetitions to start from (default: config, 25)")


def credential_from_args(args, env=os.environ):
    """A SnmpCredential from flags and environment, or None when none was given."""
    from probe.config import Secret, SnmpCredential

    def pick(flag, name):
        if flag is not None:
            return Secret(flag, "command line")
        if env.get(ENV[name]):
            return Secret(env[ENV[name]], f"env:{ENV[name]}")
        return None

    user = args.v3_user or env.get(ENV["v3_user"]) or None
    community = pick(args.community, "community")
    version = args.snmp_version or ("3" if user else "2c")
    if version == "3":
        if not user:
            raise ValueError(f"SNMPv3 needs --v3-user (or ${ENV['v3_user']})")
        auth_key, priv_key = pick(args.auth_key, "auth_key"), pick(args.priv_key, "priv_key")
        auth_proto = args.auth_proto or ("SHA" if auth_key else None)
        priv_proto = args.priv_proto or ("AES" if priv_key else None)
        if auth_proto and auth_key is None:
            raise ValueError(f"--auth-proto needs --auth-key (or ${ENV['auth_key']})")
        if priv_proto and priv_key is None:
            raise ValueError(f"--priv-proto needs --priv-key (or ${ENV['priv_key']})")
        return SnmpCredential(name="command-line", version="3", username=user, auth_protocol=auth_proto,
                              auth_key=auth_key, priv_protocol=priv_proto, priv_key=priv_key, context=args.context)
    if community is None:
        if args.snmp_version:
            raise ValueError(f"SNMP v{version} needs --community (or ${ENV['community']})")
        return None
    return SnmpCredential(name="command-line", version=version, community=community)


async def poll_once(config, host: str, port: int, modules):
    from probe import fastpath
    from probe.sources.snmp.poller import SnmpPoller

    poller = SnmpPoller(config, counter_deltas=fastpath.counter_deltas)
    dev = poller.device(host, port)
    try:
        await poller.poll(dev, modules)
    finally:
        await poller.stop()
        poller.engine.close()
    return dev


def render_json(dev) -> str:
    out = {"target": dev.target, "credential": dev.credential}
    out.update(dev.data())
    errors = {n: {"class": st.result.error_class, "error": st.result.error}
              for n, st in dev.modules.items() if st.result is not None and not st.result.ok}
    if errors:
        out["errors"] = errors
    out["poll"] = dev.status()
    return json.dumps(out, indent=2, default=_json_default)


def _json_default(o):
    if isinstance(o, bytes):
        return o.decode("utf-8", "replace")
    if isinstance(o, tuple):
        return list(o)
    return str(o)


def render_prom(devices) -> str:
    from prometheus_client import generate_latest
    from prometheus_client.registry import CollectorRegistry

    from probe.exposition import snmp_poll_collector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(snmp_poll_collector.SnmpPollCollector(lambda: devices))
    registry.register(snmp_poll_collector.data_collector(lambda: devices))
    return generate_latest(registry).decode()


def run(args) -> int:
    import dataclasses

    from probe.config import ConfigError, default_config, load_file

    try:
        from probe.sources.snmp.poller import split_target

        host, port = split_target(args.target, args.port)
        cred = credential_from_args(args)
        config = load_file(args.config_file) if args.config_file else default_config()
    except ConfigError as exc:
        print(f"sitevigil snmp: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"sitevigil snmp: {exc}", file=sys.stderr)
        return 2
    snmp = config.snmp
    changes = {}
    if cred is not None:
        changes["credentials"] = (cred,)
        changes["targets"] = ()
    for field in ("timeout", "retries", "max_repetitions"):
        if getattr(args, field) is not None:
            changes[field] = getattr(args, field)
    try:
        snmp = dataclasses.replace(snmp, **changes)
    except ValueError as exc:
        print(f"sitevigil snmp: {exc}", file=sys.stderr)
        return 2
    # Only this device, with its config target's settings if it has one; no subnet restriction here.
    config = config.replace(snmp=snmp, subnets=tuple(s for s in config.subnets if s.credentials) if cred is None else ())
    modules = [m.strip() for m in args.modules.split(",") if m.strip()] if args.modules else None
    from probe.sources.snmp import poller as pollmod

    known = pollmod.modules_package().MODULES
    if modules:
        unknown = [m for m in modules if m not in known]
        if unknown:
            print(f"sitevigil snmp: unknown module(s): {', '.join(unknown)} (known: {', '.join(known)})",
                  file=sys.stderr)
            return 2
    dev = asyncio.run(poll_once(config, host, port, modules))
    print(render_json(dev) if args.format == "json" else render_prom([dev]), end="" if args.format == "prom" else "\n")
    results = [st.result for st in dev.modules.values() if st.result is not None]
    if not dev.up:
        for r in results[:1]:
            print(f"sitevigil snmp: {r.error}", file=sys.stderr)
        return 3
    return 0 if all(r.ok for r in results) else 1
