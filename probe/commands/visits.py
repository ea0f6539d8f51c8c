"""Visits and remote sessions: what a technician came for and did, tied to the findings it served.

    sitevigil visits add --technician alice --mode on_site --duration 45m --finding 42 \\
        --summary "Replaced the black toner, cleaned the fuser"
    sitevigil visits add --technician bob --mode remote --duration 20m --reason planned \\
        --start "2026-11-14 09:30" --summary "Monthly patching of the file server"
    sitevigil visits list --since 30d [--format json]

Every subcommand takes --state-dir DIR (default: the daemon's). A visit is saved before the command
says so, or refused with the reason.
"""
from __future__ import annotations

import json
import sys
import time

from probe.commands.statedir import add_state_dir, open_store
from probe.commands.timeparse import parse_since, parse_when


def add_arguments(p):
    add_state_dir(p)
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="record a visit or remote session")
    add_state_dir(add, top=False)
    add.add_argument("--technician", required=True)
    add.add_argument("--mode", required=True, choices=["on_site", "remote"])
    add.add_argument("--duration", required=True, help="how long, e.g. 45m or 1h30m")
    add.add_argument("--start", default=None, help="when it began, local time (default: now minus the duration)")
    add.add_argument("--finding", type=int, action="append", default=[], metavar="ID",
                     help="a finding it served (repeat for several)")
    add.add_argument("--reason", choices=["finding", "planned", "client_request"], default=None,
                     help="why, when it served no finding: planned maintenance or a client's request")
    add.add_argument("--summary", required=True, help="what was done, in a sentence the client can read")
    ls = sub.add_parser("list", help="list visits, oldest first")
    add_state_dir(ls, top=False)
    ls.add_argument("--since", default="31d", help="a duration back (31d, the default) or a date")
    ls.add_argument("--format", choices=["table", "json"], default="table")


def run(args) -> int:
    from probe.config import Duration
    from probe.findings.ledger import LedgerError
    from probe.findings.visits import Visits
    from probe.state.store import StoreError

    if (store := open_store("visits", args.state_dir)) is None:
        return 1
    try:
        visits = Visits(store)
        if args.action == "add":
            try:
                seconds = Duration.parse(args.duration)
                start = parse_when(args.start) if args.start else time.time() - seconds
            except ValueError as exc:
                print(f"sitevigil visits: {exc}", file=sys.stderr)
                return 2
            v = visits.add(start=start, minutes=seconds / 60.0, technician=args.technician, mode=args.mode,
                           summary=args.summary, findings=args.finding, reason=args.reason)
            served = f" for finding {', '.join(map(str, v['findings']))}" if v["findings"] else f" ({v['reason']})"
            print(f"visit {v['id']} recorded{served}")
            return 0
        try:
            since = parse_since(args.since)
        except ValueError as exc:
            print(f"sitevigil visits: {exc}", file=sys.stderr)
            return 2
        rows = visits.listing(since=since)
        if args.format == "json":
            print(json.dumps(rows, indent=2))
            return 0
        if not rows:
            print("no visits")
            return 0
        print(f"{'ID':>4}  {'START':<16}  {'MINUTES':>7}  {'MODE':<7}  {'TECHNICIAN':<12}  {'FOR':<16}  SUMMARY")
        for v in rows:
            why = ",".join(map(str, v["findings"])) if v["findings"] else v["reason"]
            print(f"{v['id']:>4}  {time.strftime('%Y-%m-%d %H:%M', time.localtime(v['start'])):<16}  "
                  f"{v['minutes']:>7.0f}  {v['mode']:<7}  {v['technician']:<12}  {why:<16}  {v['summary']}")
        return 0
    except (LedgerError, StoreError) as exc:
        print(f"sitevigil visits: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
