"""Check a configuration file and report every problem in it, with file, line and key path.

Exits 0 when the file is valid, 1 otherwise. Runs the same code the daemon uses to load its config.
"""
from __future__ import annotations

import sys

from probe.config import ConfigError, load_file


def add_arguments(p):
    p.add_argument("file", metavar="FILE", help="YAML configuration file to check")


def run(args) -> int:
    try:
        cfg = load_file(args.file)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        n = len(exc.problems)
        print(f"{args.file}: {n} problem{'s' if n != 1 else ''} found", file=sys.stderr)
        return 1
    creds = len(cfg.snmp.credentials)
    print(f"{args.file}: OK ({len(cfg.subnets) or 'auto-discovered'} subnets, {creds} SNMP credentials, "
          f"{len(cfg.snmp.targets)} SNMP targets)")
    return 0
