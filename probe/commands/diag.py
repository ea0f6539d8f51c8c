"""Check this probe box and explain what is wrong, as a table (or --format json), with an exit code.

    sitevigil diag                               every check on the built-in defaults
    sitevigil diag --config.file /etc/sitevigil/sitevigil.yml --target 192.168.1.20
    sitevigil diag --listen 5s --format json

Checks: the fast path, the config, the capabilities capture and sweeps need, the interfaces and their
offloads, whether the capture interface is receiving (a short listen) and dropping, the ring settings,
SNMP reachability of --target with each configured credential, the state database, and the running
daemon's own metrics linted by promtool. Each says ok, warn, fail or skip, what it saw, and for warn
and fail what to do. Exit 0 when nothing failed, 1 when a check failed, 2 on bad usage.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import shutil
import socket
import sqlite3
import struct
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass

from probe.config import ConfigError, Secret, default_config, load_file

CAP_NET_ADMIN, CAP_NET_RAW = 12, 13
ETH_P_ALL = 0x0003
SOL_PACKET, PACKET_STATISTICS = 263, 6
# offloads that merge or split frames before the capture sees them (packet counts and sizes then lie)
MERGING_OFFLOADS = ("generic-receive-offload", "large-receive-offload", "rx-gro-hw")
MIN_RING_BYTES = 8 << 20
LOW_DISK_BYTES = 1 << 30


@dataclass
class Check:
    name: str
    status: str          # ok, warn, fail, skip
    detail: str
    hint: str = ""


def add_arguments(p):
    p.add_argument("--config.file", dest="config_file", default=None, metavar="FILE")
    p.add_argument("--state-dir", dest="state_dir", default=None, metavar="DIR")
    p.add_argument("--target", default=None, metavar="HOST",
                   help="an SNMP device to try with each configured credential")
    p.add_argument("--listen", default="2s", metavar="DURATION",
                   help="how long to listen on the capture interface (default 2s; 0 to skip)")
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


def gather(args) -> tuple[dict, object]:
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
    return report, cfg


def _can_capture() -> bool:
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0).close()
        return True
    except (PermissionError, OSError, AttributeError):
        return False


# -- the checks -------------------------------------------------------------------------------------
def check_fastpath(report) -> Check:
    if report["fastpath"] == "cython":
        return Check("fast path", "ok", "compiled (Cython)")
    if report["fastpath_load_error"]:
        return Check("fast path", "warn", f"pure-Python twin: the compiled module did not load "
                                          f"({report['fastpath_load_error']})",
                     "rebuild it: scripts/bootstrap (the twin is about 50x slower on a busy mirror port)")
    return Check("fast path", "ok", "pure-Python twin, asked for (SITEVIGIL_NO_EXTENSIONS)")


def check_config(report) -> Check:
    if report.get("config_errors"):
        return Check("config", "fail", f"{len(report['config_errors'])} problems: " + "; ".join(report["config_errors"]),
                     "fix the file (sitevigil check-config FILE lists every problem)")
    return Check("config", "ok", report.get("config_source", "built-in defaults"))


def capabilities(status_text: str | None = None) -> set[str]:
    if status_text is None:
        with open("/proc/self/status") as f:
            status_text = f.read()
    eff = next(int(line.split()[1], 16) for line in status_text.splitlines() if line.startswith("CapEff:"))
    return {name for name, bit in (("CAP_NET_RAW", CAP_NET_RAW), ("CAP_NET_ADMIN", CAP_NET_ADMIN)) if eff >> bit & 1}


def check_capabilities(have: set[str] | None = None) -> Check:
    have = capabilities() if have is None else have
    missing = [c for c in ("CAP_NET_RAW", "CAP_NET_ADMIN") if c not in have]
    if not missing:
        return Check("capabilities", "ok", "CAP_NET_RAW and CAP_NET_ADMIN held")
    return Check("capabilities", "fail", f"missing {', '.join(missing)}: no capture"
                 + (" or ARP sweep" if "CAP_NET_RAW" in missing else "") + (", no promiscuous mode"
                                                                          if "CAP_NET_ADMIN" in missing else ""),
                 "run as root, or with AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN (systemd/sitevigil.service)")


def offloads(iface: str) -> dict[str, bool] | None:
    """ethtool -k's merging offloads for iface (None when ethtool is missing or refuses)."""
    tool = shutil.which("ethtool")
    if tool is None:
        return None
    r = subprocess.run([tool, "-k", iface], capture_output=True, text=True, timeout=10)
    if r.returncode != 0:
        return None
    out = {}
    for line in r.stdout.splitlines():
        name, sep, value = line.strip().partition(":")
        if sep and name in MERGING_OFFLOADS:
            out[name] = value.strip().startswith("on")
    return out


def check_interfaces(report, cfg) -> list[Check]:
    out = []
    cap = cfg.capture.interface
    names = [i["name"] for i in report["interfaces"]]
    for i in report["interfaces"]:
        if i["name"] == "lo":
            continue
        state = _read(f"/sys/class/net/{i['name']}/operstate") or "unknown"
        role = " (capture)" if i["name"] == cap else ""
        detail = f"{state}, {i['mac'] or 'no MAC'}, {', '.join(i['addresses']) or 'no address'}"
        offl = offloads(i["name"]) or {}
        on = [k for k, v in offl.items() if v]
        if i["name"] == cap and on:
            out.append(Check(f"interface {i['name']}{role}", "warn", detail + f"; {', '.join(on)} on",
                             f"merged frames distort packet counts: ethtool -K {i['name']} gro off lro off"))
        elif state == "down" and i["name"] == cap:
            out.append(Check(f"interface {i['name']}{role}", "fail", detail, f"ip link set {i['name']} up"))
        else:
            out.append(Check(f"interface {i['name']}{role}", "ok", detail))
    if cap and cap not in names and not os.path.exists(f"/sys/class/net/{cap}"):
        out.append(Check(f"interface {cap} (capture)", "fail", "no such interface",
                         "set capture.interface to the mirror port's interface (ip -br link lists them)"))
    return out


def listen(iface: str, seconds: float) -> tuple[int, int]:
    """(frames seen, kernel drops) on iface in `seconds` (AF_PACKET, promiscuous not set)."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:
        s.bind((iface, 0))
        s.settimeout(0.2)
        frames = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and frames < 1_000_000:
            try:
                s.recv(65535)
                frames += 1
            except socket.timeout:
                pass
        packets, drops = struct.unpack("II", s.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
        return frames, drops
    finally:
        s.close()


def check_capture(report, cfg, seconds: float) -> list[Check]:
    iface = cfg.capture.interface
    out = []
    ring = int(cfg.capture.block_size) * cfg.capture.block_count
    page = os.sysconf("SC_PAGE_SIZE")
    if int(cfg.capture.block_size) % page:
        out.append(Check("capture ring", "fail", f"block_size {int(cfg.capture.block_size)} is not a multiple of "
                                                 f"the page size {page}", "set capture.block_size to e.g. 1MiB"))
    elif ring < MIN_RING_BYTES:
        out.append(Check("capture ring", "warn", f"{ring >> 20} MiB ({cfg.capture.block_count} blocks of "
                                                 f"{int(cfg.capture.block_size) >> 10} KiB)",
                         "a busy mirror port overruns a small ring: capture.block_count 64 x 1MiB or more"))
    else:
        out.append(Check("capture ring", "ok", f"{ring >> 20} MiB ({cfg.capture.block_count} blocks of "
                                               f"{int(cfg.capture.block_size) >> 10} KiB), fanout {cfg.capture.fanout}"))
    if not iface:
        out.append(Check("capture", "skip", "no capture interface (no default route, none configured)"))
        return out
    if not report["capture_capable"]:
        out.append(Check("capture", "skip", "cannot open a packet socket (see capabilities)"))
        return out
    rx_dropped = _read(f"/sys/class/net/{iface}/statistics/rx_dropped")
    if seconds <= 0:
        out.append(Check(f"capture on {iface}", "skip", "--listen 0"))
        return out
    try:
        frames, drops = listen(iface, seconds)
    except OSError as exc:
        out.append(Check(f"capture on {iface}", "fail", f"cannot listen: {exc.strerror or exc}",
                         "check capture.interface and the capabilities"))
        return out
    detail = f"{frames} frames in {seconds:g}s, {drops} dropped by the kernel" + (
        f"; the interface has dropped {rx_dropped} since it came up" if rx_dropped not in (None, "0") else "")
    if frames == 0:
        out.append(Check(f"capture on {iface}", "warn", detail,
                         "nothing arrived: is the switch's mirror (SPAN) session on and pointed at this port?"))
    elif drops:
        out.append(Check(f"capture on {iface}", "warn", detail, "raise capture.block_count, or capture.fanout"))
    else:
        out.append(Check(f"capture on {iface}", "ok", detail))
    return out


def check_snmp(cfg, target: str | None) -> list[Check]:
    if not target:
        return [Check("snmp", "skip", "no --target given")]
    import asyncio

    from probe.commands.snmp import poll_once
    from probe.sources.snmp.poller import split_target

    try:
        host, port = split_target(target, None)
    except ValueError as exc:
        return [Check(f"snmp {target}", "fail", str(exc))]
    out = []
    for cred in cfg.snmp.credentials:
        one = cfg.replace(snmp=dataclasses.replace(cfg.snmp, credentials=(cred,), targets=()), subnets=())
        t0 = time.monotonic()
        dev = asyncio.run(poll_once(one, host, port, ["system"]))
        took = time.monotonic() - t0
        name = f"snmp {target} as {cred.name} (v{cred.version})"
        if dev.up:
            descr = str(dev.data().get("system", {}).get("descr", ""))[:60]
            out.append(Check(name, "ok", f"answered in {took:.1f}s" + (f": {descr}" if descr else "")))
        else:
            errors = [st.result.error for st in dev.modules.values() if st.result is not None and st.result.error]
            out.append(Check(name, "fail", errors[0] if errors else "no answer",
                             "check the device's SNMP settings, the credential, and UDP 161 on the way"))
    return out or [Check(f"snmp {target}", "fail", "no credentials configured", "add snmp.credentials")]


def check_state(report, cfg) -> Check:
    db = report["state_database"]
    free = report.get("state_disk_free_bytes")
    where = f"{db['path']}"
    if not os.path.isdir(cfg.state_dir):
        parent = os.path.dirname(os.path.abspath(cfg.state_dir)) or "/"
        if not os.access(parent, os.W_OK):
            return Check("state database", "fail", f"{cfg.state_dir} does not exist and cannot be made",
                         "create it, writable by the probe's user (StateDirectory= under systemd)")
        return Check("state database", "ok", f"{where} (not created yet)")
    if not os.access(cfg.state_dir, os.W_OK):
        return Check("state database", "fail", f"{cfg.state_dir} is not writable", "fix its owner or mode")
    if db["exists"]:
        try:
            con = sqlite3.connect(f"file:{db['path']}?mode=ro", uri=True, timeout=2)
            ok = con.execute("PRAGMA quick_check").fetchone()[0]
            con.close()
        except sqlite3.Error as exc:
            return Check("state database", "fail", f"{where}: {exc}", "restore it from a backup, or move it aside")
        if ok != "ok":
            return Check("state database", "fail", f"{where}: damaged ({ok})", "restore it, or move it aside")
    detail = f"{where} ({db['bytes'] >> 10} KiB)" if db["exists"] else f"{where} (not created yet)"
    if free is not None:
        detail += f", {free / 2**30:.1f} GiB free"
        if free < LOW_DISK_BYTES:
            return Check("state database", "warn", detail, "free disk space: the ledger keeps what it cannot write "
                                                           "in memory until it can, bounded")
    return Check("state database", "ok", detail)


def check_metrics(cfg) -> Check:
    from probe.config import split_listen_address

    host, port = split_listen_address(cfg.web.listen_address)
    host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}{cfg.web.route_prefix.rstrip('/')}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            body = r.read().decode()
    except Exception as exc:  # not running, or protected by --web.config.file
        return Check("own metrics", "skip", f"no daemon answering at {url} ({getattr(exc, 'reason', exc)})")
    promtool = shutil.which("promtool")
    if promtool is None:
        return Check("own metrics", "ok", f"{url}: {len(body.splitlines())} lines (promtool not installed to lint)")
    lint = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, text=True, timeout=30)
    problems = (lint.stdout + lint.stderr).strip()
    if lint.returncode != 0 or problems:
        return Check("own metrics", "warn", f"{url}: promtool: {problems.splitlines()[0] if problems else lint.returncode}",
                     "report it: the probe's exposition should lint clean")
    return Check("own metrics", "ok", f"{url}: linted clean by promtool")


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def run_checks(args, report, cfg) -> list[Check]:
    from probe.config import Duration

    seconds = float(Duration.parse(args.listen)) if args.listen not in ("0", "") else 0.0
    checks = [check_fastpath(report), check_config(report), check_capabilities()]
    checks += check_interfaces(report, cfg)
    checks += check_capture(report, cfg, seconds)
    checks += check_snmp(cfg, args.target)
    checks += [check_state(report, cfg), check_metrics(cfg)]
    return checks


def run(args) -> int:
    try:
        from probe.config import Duration
        Duration.parse(args.listen) if args.listen not in ("0", "") else None
    except ValueError as exc:
        print(f"sitevigil diag: --listen: {exc}", file=sys.stderr)
        return 2
    report, cfg = gather(args)
    checks = run_checks(args, report, cfg)
    report["checks"] = [dataclasses.asdict(c) for c in checks]
    failed = any(c.status == "fail" for c in checks)
    if args.format == "json":
        print(json.dumps(report, indent=2, default=str))
        return 1 if failed else 0
    print(f"sitevigil {report['version']}  fast path: {report['fastpath']}  python {report['python']}")
    print(f"subnets watched: {', '.join(s['cidr'] for s in report['config']['subnets']) or '(none)'}")
    width = max(len(c.name) for c in checks)
    print(f"{'CHECK':<{width}}  STATUS  DETAIL")
    for c in checks:
        print(f"{c.name:<{width}}  {c.status.upper():<6}  {c.detail}")
        if c.hint and c.status in ("warn", "fail"):
            print(f"{'':<{width}}  {'':<6}  -> {c.hint}")
    counts = {s: sum(1 for c in checks if c.status == s) for s in ("ok", "warn", "fail", "skip")}
    print(", ".join(f"{n} {s}" for s, n in counts.items() if n))
    return 1 if failed else 0
