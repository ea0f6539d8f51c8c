"""How a subsystem is doing: the small vocabulary the subsystems report and the exposition publishes."""
from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field


class Health(enum.Enum):
    STARTING = "starting"
    OK = "ok"
    DEGRADED = "degraded"  # running, but something it needs is failing (e.g. some devices unreachable)
    FAILED = "failed"      # not doing its job (e.g. capture interface missing)
    DISABLED = "disabled"  # switched off in config


@dataclass
class Status:
    health: Health = Health.STARTING
    reason: str = ""
    since: float = field(default_factory=time.time)

    def set(self, health: Health, reason: str = "") -> None:
        if health != self.health or reason != self.reason:
            self.health, self.reason, self.since = health, reason, time.time()
