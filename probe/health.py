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


class ClockWatch:
    """Notices the wall clock being set (NTP stepping it after a boot without a real-time clock, a
    technician fixing the date): between two looks, the wall clock moved by more than the monotonic
    clock, or less, by over `tolerance` seconds. What uses time copes by itself (quiet timers run on
    the monotonic clock, capture windows restart at the new time); this says that it happened."""

    def __init__(self, tolerance: float = 2.0, *, wall=time.time, mono=time.monotonic):
        self.tolerance, self._wall, self._mono = tolerance, wall, mono
        self._last = (wall(), mono())
        self.jumps_total = 0
        self.last_jump = 0.0       # seconds the wall clock was set by, forward (+) or back (-)
        self.last_jump_at = 0.0    # wall-clock time it was noticed (after the jump)

    def check(self) -> float | None:
        """The jump since the last look (seconds, signed), or None if the clocks agree."""
        wall, mono = self._wall(), self._mono()
        (w0, m0), self._last = self._last, (wall, mono)
        skew = (wall - w0) - (mono - m0)
        if abs(skew) <= self.tolerance:
            return None
        self.jumps_total += 1
        self.last_jump, self.last_jump_at = skew, wall
        return skew
