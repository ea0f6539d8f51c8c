"""Sweep subnets for devices now (ARP on local subnets, ICMP beyond, then SNMP) and print what answered.

With no CIDR it sweeps the subnets of the config file (those with sweep on) or, with no config, the
subnets of this machine's interfaces. The rate limit (sweep.rate_pps, or --rate) keeps it gentle on
the client's network. Needs root or CAP_NET_RAW. With --record the devices go into the inventory in
the state directory and the findings this raises (new device, changed IP or name, gone) are printed.

JSON output: {"subnets": [...], "duration_seconds": ..., "complete": ..., "warnings": [...],
"devices": [{"mac", "ip", "vendor", "type", "name", "names", "snmp", ...}], "findings": [...]}.
"""
from __future__ import annotations

import ipaddress
import json
import sys
import time

from probe.config import ConfigError, Secret, SnmpCredential, default_config, load_file


def add_arguments(p):
    p.add_argument("cidrs", nargs="*", metavar="CIDR", help="subnets to sweep (default: the configured or local ones)")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--config.file", dest="config_file", default=None, metavar="FILE",
                   help="take subnets, SNMP credentials and rate from this config")
    p.add_argument("--rate", type=int, default=None, metavar="PPS",
                   help="probe packets per second (default: sweep.rate_pps, 500)")
    p.add_argument("--method", choices=["auto", "arp", "icmp"], default="auto",
                   help="auto: ARP where this machine is on the subnet, ICMP elsewhere")
    p.add_argument("--community", action="append", default=[], metavar="COMMUNITY",
                   help="an SNMP v2c community to try first (repeatable)")
    p.add_argument("--no-snmp", dest="snmp", action="store_false", help="skip the SNMP probe of live hosts")
    p.add_argument("--record", action="store_true", help="record the devices in the inventory and print findings")
    p.add_argument("--state-dir", dest="state_dir", default=None, metavar="DIR", help="state directory for --record")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar on stderr")


class ProgressBar:
    """One line on stderr, redrawn at most 20 times a second."""

    def __init__(self, stream=sys.stderr, width: int = 30):
        self.stream, self.width = stream, width
        self._last = 0.0
        self._t0 = time.monotonic()

    def __call__(self, phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self._last < 0.05:
            return
        self._last = now
        frac = done / total if total else 1.0
        filled = int(frac * self.width)
        self.stream.write(f"\r{phase:<5} [{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} "
                          f"{now - self._t0:5.1f}s")
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\r" + " " * (self.width + 40) + "\r")
        self.stream.flush()


def _config(args):
    """The config with the machine's defaults filled in, as the daemon fills them."""
    from probe.config.machine import resolve_defaults

    cfg = load_file(args.config_file) if args.config_file else default_config()
    if args.state_dir:
        cfg = cfg.replace(state_dir=args.state_dir)
    return resolve_defaults(cfg)


def run(args) -> int:
    from probe.subsystems import sweep as discovery
    from probe.subsystems.devices import as_finding, record_sweep
    from probe.sources.sweep import SweepError
    from probe.state.inventory import Inventory

    try:
        cfg = _config(args)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    cidrs = []
    for text in args.cidrs:
        try:
            cidrs.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            print(f"sitevigil sweep: invalid subnet {text!r} (expected a CIDR such as 192.168.1.0/24)", file=sys.stderr)
            return 2
    extra = tuple(SnmpCredential(name=f"cli-community-{i + 1}", version="2c", community=Secret(c, "command line"))
                  for i, c in enumerate(args.community))
    if args.rate is not None and not 1 <= args.rate <= 10000:
        print(f"sitevigil sweep: --rate must be between 1 and 10000, got {args.rate}", file=sys.stderr)
        return 2
    try:
        targets = discovery.plan(cfg, cidrs, method=args.method, extra_credentials=extra)
    except SweepError as exc:
        print(f"sitevigil sweep: {exc}", file=sys.stderr)
        return 2
    if not targets:
        print("sitevigil sweep: nothing to sweep (no CIDR given, none configured, no interface with an address)",
              file=sys.stderr)
        return 2
    bar = ProgressBar() if args.progress and sys.stderr.isatty() else None
    # The vendor table takes ~0.1 s to read: read it while the sweep waits on the wire.
    import threading

    from probe.state.oui import default_table

    loader = threading.Thread(target=default_table, daemon=True, name="oui-load")
    loader.start()
    try:
        result = discovery.run_sweep(cfg, targets, rate_pps=args.rate, snmp=args.snmp, progress=bar)
    except SweepError as exc:
        print(f"sitevigil sweep: {exc}", file=sys.stderr)
        return 1
    finally:
        if bar:
            bar.close()

    loader.join()
    store = None
    if args.record:
        from probe.state.store import Store, StoreError

        try:
            store = Store(cfg.state_dir)
        except StoreError as exc:
            print(f"sitevigil sweep: {exc}", file=sys.stderr)
            return 1
    sc = cfg.sweep
    inv = Inventory(store, gone_after=float(sc.device_gone_after), forget_after=float(sc.device_forget_after),
                    max_devices=sc.max_devices)
    findings = record_sweep(inv, result) if args.record else None
    if not args.record:
        record_sweep(inv, result)
    rows = []
    for h in result.hosts:
        dev = inv.get(h.mac or h.ip)
        if dev is not None:
            rows.append(discovery.device_json(dev, h))
    if store is not None:
        store.close()
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)

    if args.format == "json":
        doc = {"subnets": [str(t.network) for t in targets], "methods": {str(t.network): t.method for t in targets},
               "duration_seconds": round(result.duration, 3), "complete": result.complete,
               "addresses": result.addresses, "packets_sent": result.sent, "warnings": result.warnings,
               "devices": rows}
        if findings is not None:
            doc["findings"] = [as_finding(c).to_dict() for c in findings]
        print(json.dumps(doc, indent=2, default=str))
    else:
        print_table(rows)
        print(f"\n{len(rows)} hosts up of {result.addresses} addresses in {', '.join(str(t.network) for t in targets)}"
              f" ({result.duration:.1f}s, {sum(1 for r in rows if r['snmp'])} with SNMP)"
              + ("" if result.complete else "; CUT SHORT at the time bound"))
        for f in findings or []:
            ev = f.evidence
            print(f"finding: {f.kind} ({f.severity}) {ev.get('name') or ev.get('ip') or f.device} [{f.device}]")
    return 0


def print_table(rows, *, extra_state: bool = False) -> None:
    head = ["IP", "MAC", "VENDOR", "TYPE", "NAME", "SNMP"] + (["STATE", "LAST SEEN"] if extra_state else [])
    table = []
    for r in rows:
        snmp = r.get("snmp") or {}
        vendor = r.get("vendor") or ("(randomised MAC)" if r.get("randomised") else
                                     "(locally administered)" if r.get("mac_kind") == "local" else "")
        line = [r.get("ip") or "", r.get("mac") or "", vendor[:28], r.get("type") or "", (r.get("name") or "")[:28],
                (snmp.get("sys_descr") or "")[:48].replace("\n", " ")]
        if extra_state:
            line += [r.get("state") or "", time.strftime("%Y-%m-%d %H:%M", time.localtime(r.get("last_seen") or 0))]
        table.append(line)
    widths = [max([len(h)] + [len(row[i]) for row in table]) for i, h in enumerate(head)]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip())
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
