"""What the config leaves to the machine: the state directory, the subnets to watch, the capture interface.

Resolved once, at the edge, by the daemon and by the one-shot commands alike (`sitevigil sweep`).
"""
from __future__ import annotations

import dataclasses
import os

from probe.config import Config, SubnetConfig
from probe.sources import interfaces


def resolve_defaults(cfg: Config) -> Config:
    """Fill what the config leaves to the machine: state directory, subnets and capture interface."""
    if cfg.state_dir is None:
        cfg = cfg.replace(state_dir=default_state_dir())
    if not cfg.subnets:
        found = interfaces.discovered_subnets()
        cfg = cfg.replace(subnets=tuple(SubnetConfig(cidr=net) for net in found))
    if cfg.capture.interface is None:
        iface = interfaces.default_route_interface()
        if iface:
            cfg = cfg.replace(capture=dataclasses.replace(cfg.capture, interface=iface))
    return cfg


def default_state_dir() -> str:
    """/var/lib/sitevigil as root (or $STATE_DIRECTORY under systemd), else ~/.local/state/sitevigil."""
    if os.environ.get("STATE_DIRECTORY"):
        return os.environ["STATE_DIRECTORY"].split(":")[0]
    if os.geteuid() == 0:
        return "/var/lib/sitevigil"
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return os.path.join(base, "sitevigil")
