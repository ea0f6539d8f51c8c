"""The table of the daemon's subsystems: name -> factory(config, context).

Each entry is imported lazily so that a technician's one-shot command does not pay for the others.
Order matters: sources first, then what consumes them; shutdown runs in reverse.
"""
from __future__ import annotations

import importlib

from probe.config import Config
from probe.subsystems.base import Context, Subsystem

# (name, "module:factory")
SUBSYSTEMS: list[tuple[str, str]] = [
    ("capture", "probe.subsystems.capture:factory"),
    ("sweep", "probe.subsystems.sweep:factory"),
    ("snmp", "probe.subsystems.snmp:factory"),
    ("snmp_traps", "probe.subsystems.snmp_traps:factory"),  # after snmp: it polls through its poller
]


def _load(spec: str):
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def factories() -> list[tuple[str, object]]:
    return [(name, _load(spec)) for name, spec in SUBSYSTEMS]


def build(name: str, config: Config, ctx: Context) -> Subsystem:
    return _load(dict(SUBSYSTEMS)[name])(config, ctx)
