"""Print the device inventory (every device the probe has seen, what it is, since when).

Reads the state database the daemon keeps (default /var/lib/sitevigil as root, or --state-dir).
"""
from __future__ import annotations

import json
import os
import sys

from probe.config import ConfigError, default_config, load_file


def add_arguments(p):
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--state-dir", dest="state_dir", default=None, metavar="DIR")
    p.add_argument("--config.file", dest="config_file", default=None, metavar="FILE")
    p.add_argument("--state", choices=["present", "gone", "all"], default="all", help="which devices to list")


def run(args) -> int:
    from probe.subsystems import sweep as discovery
    from probe.commands.sweep import print_table
    from probe.config.machine import default_state_dir
    from probe.state.inventory import Inventory
    from probe.state.store import DB_NAME, Store, StoreError

    try:
        cfg = load_file(args.config_file) if args.config_file else default_config()
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    state_dir = args.state_dir or cfg.state_dir or default_state_dir()
    if not os.path.exists(os.path.join(state_dir, DB_NAME)):
        print(f"sitevigil devices: no inventory yet: {os.path.join(state_dir, DB_NAME)} does not exist "
              f"(the daemon or `sitevigil sweep --record` creates it)", file=sys.stderr)
        if args.format == "json":
            print(json.dumps({"state_dir": state_dir, "devices": []}))
        return 0
    try:
        store = Store(state_dir)
    except StoreError as exc:
        print(f"sitevigil devices: {exc}", file=sys.stderr)
        return 1
    try:
        inv = Inventory(store, max_devices=max(cfg.sweep.max_devices, 1))
        devs = [d for d in inv.snapshot() if args.state == "all" or d.state == args.state]
    finally:
        store.close()
    rows = [discovery.device_json(d) for d in devs]
    if args.format == "json":
        print(json.dumps({"state_dir": state_dir, "devices": rows}, indent=2, default=str))
    else:
        print_table(rows, extra_state=True)
        print(f"\n{len(rows)} devices ({sum(1 for d in devs if d.state == 'present')} present, "
              f"{sum(1 for d in devs if d.state == 'gone')} gone)")
    return 0
