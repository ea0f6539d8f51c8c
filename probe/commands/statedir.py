"""The probe's state directory, as the commands that read or change its database take it: one
`--state-dir` option and one way to open the store or say on stderr why it cannot be opened."""
from __future__ import annotations

import argparse
import os
import sys

HELP = "where the probe's database lives (default /var/lib/sitevigil as root)"


def add_state_dir(p, *, top: bool = True, help: str = HELP) -> None:
    """--state-dir on a command (top) or again on its sub-commands, so it may come before or after the
    action without the sub-command's default overwriting the command's."""
    p.add_argument("--state-dir", dest="state_dir", default=None if top else argparse.SUPPRESS, metavar="DIR",
                   help=help)


def open_store(command: str, state_dir: str | None, *, must_exist: bool = False):
    """The Store in `state_dir` (None: the machine's default), or None after printing
    "sitevigil COMMAND: why" on stderr. With `must_exist`, a directory without a database is refused
    rather than given a new, empty one."""
    from probe.config.machine import default_state_dir
    from probe.state.store import DB_NAME, Store, StoreError

    state_dir = state_dir or default_state_dir()
    if must_exist and not os.path.exists(os.path.join(state_dir, DB_NAME)):
        print(f"sitevigil {command}: no probe database in {state_dir} (give --state-dir)", file=sys.stderr)
        return None
    try:
        return Store(state_dir)
    except StoreError as exc:
        print(f"sitevigil {command}: {exc}", file=sys.stderr)
        return None
