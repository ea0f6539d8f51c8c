"""The findings ledger: list what the probe found, and record what was done about each.

    sitevigil findings                                    open and acknowledged findings, newest first
    sitevigil findings list --state all --since 30d       every finding of the last 30 days
    sitevigil findings show 42                            one finding, its evidence and its history
    sitevigil findings ack 42 --note "toner ordered" --by alice
    sitevigil findings resolve 42 --note "replaced the black toner" --by alice
    sitevigil findings dismiss 43 --note "the client's new printer: expected" --by alice
    sitevigil findings note 42 --note "the client asked for a spare cartridge"
    sitevigil findings add --kind printer_jam --device printer-2f --note "jams since Monday" --reported-by client

Every subcommand takes --state-dir DIR (default: the daemon's). A change is saved before the command
says so; when it cannot be (a full disk, another technician closed it meanwhile), the command says why
and exits 1, having changed nothing.
"""
from __future__ import annotations

import argparse
import getpass
import json
import sys
import time

from probe.commands.statedir import add_state_dir, open_store
from probe.commands.timeparse import parse_since

ACTIONS = {"ack": "acknowledged", "resolve": "resolved", "dismiss": "dismissed"}


def _list_options(p, suppress: bool):
    d = (lambda v: argparse.SUPPRESS) if suppress else (lambda v: v)
    p.add_argument("--state", default=d("active"),
                   help="open, acknowledged, resolved, dismissed, active (open or acknowledged: the default) "
                        "or all; several comma-separated")
    p.add_argument("--since", default=d(None), help="only findings going on since then: a duration back (30d) or "
                                                    "a date (2026-11-01)")
    p.add_argument("--format", choices=["table", "json"], default=d("table"))


def _by(p):
    p.add_argument("--by", default=None, help="who did it (default: the login name)")


def add_arguments(p):
    add_state_dir(p)
    _list_options(p, suppress=False)
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    ls = sub.add_parser("list", help="list findings (the default)")
    add_state_dir(ls, top=False)
    _list_options(ls, suppress=True)
    show = sub.add_parser("show", help="one finding with its evidence and history")
    add_state_dir(show, top=False)
    show.add_argument("id", type=int)
    show.add_argument("--format", choices=["table", "json"], default=argparse.SUPPRESS)
    for name, state in ACTIONS.items():
        a = sub.add_parser(name, help=f"mark a finding {state}, with a note")
        add_state_dir(a, top=False)
        a.add_argument("id", type=int)
        a.add_argument("--note", required=True, help="what was done" + (" (for a dismissal: why it is expected)"
                                                                         if name == "dismiss" else ""))
        _by(a)
    note = sub.add_parser("note", help="add a note to a finding without changing its state")
    add_state_dir(note, top=False)
    note.add_argument("id", type=int)
    note.add_argument("--note", required=True)
    _by(note)
    add = sub.add_parser("add", help="record a problem the probe did not find")
    add_state_dir(add, top=False)
    add.add_argument("--kind", required=True, help="a short name for the problem, e.g. printer_jam")
    add.add_argument("--device", required=True, help="the device or place, e.g. printer-2f, meeting room")
    add.add_argument("--note", required=True, help="what was reported")
    add.add_argument("--reported-by", dest="reported_by", required=True, choices=["client", "visit"],
                     help="client: the client called it in; visit: a technician found it on a visit")
    add.add_argument("--severity", default="warning", choices=["info", "warning", "critical"])
    _by(add)


def run(args) -> int:
    from probe.findings.ledger import Ledger, LedgerError, parse_states
    from probe.findings.visits import Visits
    from probe.state.store import StoreError

    action = args.action or "list"
    if (store := open_store("findings", args.state_dir)) is None:
        return 1
    try:
        ledger = Ledger(store)
        by = getattr(args, "by", None) or _login()
        if action == "list":
            try:
                states = parse_states(args.state)
                since = parse_since(args.since) if args.since else 0.0
                rows = ledger.listing(states=states, since=since)
            except (ValueError, LedgerError) as exc:
                print(f"sitevigil findings: {'--state: ' if isinstance(exc, LedgerError) else ''}{exc}",
                      file=sys.stderr)
                return 2
            return _print_list(rows, args.format)
        if action == "show":
            ep = ledger.show(args.id)
            ep["visits"] = Visits(store).for_finding(args.id)
            if args.format == "json":
                print(json.dumps(ep, indent=2, default=str))
            else:
                _print_one(ep)
            return 0
        if action in ACTIONS:
            ep = ledger.transition(args.id, ACTIONS[action], args.note, by)
            print(f"finding {ep['id']} ({ep['kind']} on {ep['device']}) is now {ep['state']}")
            return 0
        if action == "note":
            ledger.add_note(args.id, args.note, by)
            print(f"note added to finding {args.id}")
            return 0
        if action == "add":
            ep = ledger.add_reported(args.kind, args.device, args.note, args.reported_by, by, severity=args.severity)
            print(f"finding {ep['id']} recorded: {ep['kind']} on {ep['device']}, reported by {args.reported_by}")
            return 0
        raise AssertionError(action)
    except (LedgerError, StoreError) as exc:
        print(f"sitevigil findings: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()


def _login() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (a container): say so rather than invent one
        return "unknown"


def _when(t: float | None) -> str:
    return "" if t is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


def _print_list(rows: list[dict], fmt: str) -> int:
    if fmt == "json":
        print(json.dumps(rows, indent=2, default=str))
        return 0
    if not rows:
        print("no findings")
        return 0
    print(f"{'ID':>5}  {'FOUND':<16}  {'STATE':<12}  {'SEVERITY':<8}  {'KIND':<24}  {'DEVICE':<24}  SEEN")
    for r in rows:
        where = r["device"] + (f" ({r['subject']})" if r["subject"] else "")
        seen = f"{r['occurrences']}x" + ("" if r["source"] == "probe" else f", reported by {r['source']}")
        print(f"{r['id']:>5}  {_when(r['first_seen']):<16}  {r['state']:<12}  {r['severity']:<8}  {r['kind']:<24}  "
              f"{where:<24}  {seen}")
    return 0


def _print_one(ep: dict) -> None:
    where = ep["device"] + (f" ({ep['subject']})" if ep["subject"] else "")
    print(f"finding {ep['id']}: {ep['kind']} on {where}, {ep['severity']}, {ep['state']}")
    print(f"  found {_when(ep['first_seen'])} by {ep['source']}, last seen {_when(ep['last_seen'])}, "
          f"{ep['occurrences']} reports" + (f", ended {_when(ep['resolved_at'])}" if ep["resolved_at"] else ""))
    for k, v in sorted(ep["evidence"].items()):
        print(f"  {k}: {v}")
    for e in ep["events"]:
        print(f"  {_when(e['at'])}  {e['action']:<12} by {e['by']}" + (f": {e['note']}" if e["note"] else ""))
    for v in ep.get("visits", []):
        print(f"  visit {v['id']} {_when(v['start'])} {v['mode']} by {v['technician']}: {v['summary']}")
