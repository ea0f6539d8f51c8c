"""List what the probe found (the findings ledger), or add a note of what was done about one.

    sitevigil findings                       open findings, newest first
    sitevigil findings --all --since 30d     every finding of the last 30 days
    sitevigil findings --note 42 "Replaced the black toner" --author alice
"""
from __future__ import annotations

import json
import sys
import time

from probe.config import Duration


def add_arguments(p):
    p.add_argument("--state-dir", dest="state_dir", default=None, metavar="DIR",
                   help="where the probe's database lives (default /var/lib/sitevigil as root)")
    p.add_argument("--all", action="store_true", help="closed findings too, not only open ones")
    p.add_argument("--since", default="30d", help="with --all: how far back (default 30d)")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--note", nargs=2, metavar=("ID", "TEXT"), help="attach a note to finding ID")
    p.add_argument("--author", default="technician", help="who wrote the note")


def run(args) -> int:
    from probe.config.machine import default_state_dir
    from probe.findings.ledger import Ledger
    from probe.state.store import Store, StoreError

    try:
        store = Store(args.state_dir or default_state_dir())
    except StoreError as exc:
        print(f"sitevigil findings: {exc}", file=sys.stderr)
        return 1
    try:
        ledger = Ledger(store)
        if args.note:
            fid, text = args.note
            try:
                ledger.add_note(int(fid), text, args.author)
            except (KeyError, ValueError) as exc:
                print(f"sitevigil findings: {exc.args[0] if exc.args else exc}", file=sys.stderr)
                return 1
            print(f"note added to finding {fid}")
            return 0
        try:
            since = time.time() - Duration.parse(args.since)
        except ValueError as exc:
            print(f"sitevigil findings: --since: {exc}", file=sys.stderr)
            return 2
        rows = ledger.history(since=since) if args.all else [e.as_dict() for e in ledger.open_episodes()][::-1]
        if args.format == "json":
            print(json.dumps(rows, indent=2, default=str))
            return 0
        if not rows:
            print("no findings")
            return 0
        print(f"{'ID':>5}  {'FIRST SEEN':<19}  {'SEVERITY':<8}  {'KIND':<24}  {'DEVICE':<20}  SEEN")
        for r in rows:
            first = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["first_seen"]))
            state = "" if r.get("resolved_at") is None else " (resolved)"
            print(f"{r['id']:>5}  {first:<19}  {r['severity']:<8}  {r['kind']:<24}  {r['device']:<20}  "
                  f"{r['occurrences']}x{state}")
            for n in r.get("notes", []):
                print(f"{'':>7}note by {n['author']}: {n['text']}")
        return 0
    finally:
        store.close()
