"""Print what a technician needs to know about this probe box.

Build and fast path, interfaces and subnets, capture capability, real peers installed, the config in
effect (secrets redacted) and the state database.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import shutil
import sys

from probe.config import ConfigError, Secret, default_config, load_file


def add_arguments(p):
    p.add_argument("--config.file", dest="config_file", default=None, metavar="FILE")
    p.add_argument("--state-dir", dest="state_dir", default=None, metavar="DIR")
    p.add_argument("--format", choices=["text", "json"], default="text")


def redact(value):
    """A config value as plain data, with every Secret replaced by where it comes from."""
    if isinstance(value, Secret):
        return f"<secret: {value.source}>"
    if dataclasses.is_dataclass(value):
        return {f.name: redact(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [redact(v) for v in value]
    if isinstance(value, (ipaddress.IPv4Network, ipaddress.IPv6Network, ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return str(value)
    return value


def gather(args) -> dict:
    from probe import __version__, fastpath
    from probe.config.machine import resolve_defaults
    from probe.sources import interfaces

    report: dict = {"version": __version__, "fastpath": fastpath.IMPLEMENTATION,
                    "fastpath_load_error": fastpath.LOAD_ERROR, "python": sys.version.split()[0]}
    try:
        cfg = load_file(args.config_file) if args.config_file else default_config()
        report["config_source"] = cfg.source
    except ConfigError as exc:
        report["config_errors"] = [str(p) for p in exc.problems]
        cfg = default_config()
    if args.state_dir:
        cfg = cfg.replace(state_dir=args.state_dir)
    cfg = resolve_defaults(cfg)
    report["interfaces"] = [{"name": i.name, "mac": i.mac, "addresses": [str(a) for a in i.addresses]}
                            for i in interfaces.local_interfaces()]
    report["default_route_interface"] = interfaces.default_route_interface()
    report["config"] = redact(cfg)
    report["capture_capable"] = _can_capture()
    report["peers"] = {tool: shutil.which(tool) for tool in
                       ("tcpdump", "snmpbulkwalk", "snmpd", "promtool", "trafgen", "tcpreplay", "nmap", "arp-scan")}
    db = os.path.join(cfg.state_dir, "sitevigil.db")
    report["state_database"] = {"path": db, "exists": os.path.exists(db),
                                "bytes": os.path.getsize(db) if os.path.exists(db) else 0}
    try:
        st = os.statvfs(cfg.state_dir if os.path.isdir(cfg.state_dir) else "/")
        report["state_disk_free_bytes"] = st.f_bavail * st.f_frsize
    except OSError:
        pass
    return report


def _can_capture() -> bool:
    import socket

    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0).close()
        return True
    except (PermissionError, OSError, AttributeError):
        return False


def run(args) -> int:
    report = gather(args)
    if args.format == "json":
        print(json.dumps(report, indent=2, default=str))
        return 0 if "config_errors" not in report else 1
    print(f"sitevigil {report['version']}  fast path: {report['fastpath']}  python {report['python']}")
    if report["fastpath_load_error"]:
        print(f"  compiled fast path not loaded: {report['fastpath_load_error']}")
    print(f"config: {report.get('config_source', '(errors)')}")
    for err in report.get("config_errors", []):
        print(f"  ERROR {err}")
    print("interfaces:")
    for i in report["interfaces"]:
        print(f"  {i['name']:<16} {i['mac'] or '-':<18} {', '.join(i['addresses'])}")
    print(f"default route interface: {report['default_route_interface'] or '(none)'}")
    print(f"subnets watched: {', '.join(s['cidr'] for s in report['config']['subnets']) or '(none)'}")
    print(f"capture: interface {report['config']['capture']['interface'] or '(none)'}, "
          f"raw sockets {'available' if report['capture_capable'] else 'NOT available (needs root or CAP_NET_RAW)'}")
    print("snmp credentials:")
    for c in report["config"]["snmp"]["credentials"]:
        secret = c.get("community") or c.get("auth_key") or "-"
        print(f"  {c['name']:<16} v{c['version']:<3} {c.get('username') or ''} {secret}")
    print("peers installed:")
    for tool, path in report["peers"].items():
        print(f"  {tool:<14} {path or '-'}")
    db = report["state_database"]
    print(f"state database: {db['path']} ({'%d bytes' % db['bytes'] if db['exists'] else 'not created yet'})"
          + (f", {report['state_disk_free_bytes'] / 2**30:.1f} GiB free" if "state_disk_free_bytes" in report else ""))
    return 0 if "config_errors" not in report else 1
