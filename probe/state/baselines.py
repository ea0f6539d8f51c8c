"""Per-device baselines of a ratio (retransmitted or refused share of a device's TCP), bounded.

    base = RatioBaseline(alpha=0.1, warmup=6, max_devices=4096)
    limit = base.limit("10.0.0.5", floor=0.02, cold=0.05, spread_factor=4.0)   # what counts as "above normal"
    base.update("10.0.0.5", ratio)                                             # after judging the window

Each device keeps an exponentially weighted mean of the ratio and of its absolute deviation from that
mean (a robust spread), and how many samples it has. Until `warmup` samples the device has no baseline
and the caller's absolute `cold` limit applies; after that the limit is the mean plus `spread_factor`
spreads (at least the window's own sampling noise), never below `floor`. At most `max_devices`
devices are kept, the least recently updated go first.
"""
from __future__ import annotations

import collections
import math
from dataclasses import dataclass

__all__ = ["RatioBaseline", "Baseline"]


@dataclass
class Baseline:
    mean: float
    spread: float
    samples: int


class RatioBaseline:
    def __init__(self, *, alpha: float = 0.1, warmup: int = 6, max_devices: int = 4096):
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"RatioBaseline: alpha must be in (0, 1], got {alpha}")
        if warmup < 1 or max_devices < 1:
            raise ValueError(f"RatioBaseline: warmup and max_devices must be at least 1, got {warmup}, {max_devices}")
        self.alpha, self.warmup, self.max_devices = float(alpha), int(warmup), int(max_devices)
        self._state: collections.OrderedDict[str, Baseline] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._state)

    def get(self, device: str) -> Baseline | None:
        return self._state.get(device)

    def warmed(self, device: str) -> bool:
        b = self._state.get(device)
        return b is not None and b.samples >= self.warmup

    def limit(self, device: str, *, floor: float, cold: float, spread_factor: float, trials: int = 0) -> float:
        """The ratio at or above which this device's window is abnormal for it. `trials`: how many
        segments (attempts) the window's ratio is of; its sampling noise, sqrt(p(1-p)/trials), is the
        least spread assumed, so a steady ratio measured on few trials is not news when it wobbles."""
        b = self._state.get(device)
        if b is None or b.samples < self.warmup:
            return max(cold, floor)
        noise = math.sqrt(b.mean * (1.0 - b.mean) / trials) if trials > 0 and 0.0 < b.mean < 1.0 else 0.0
        return max(floor, b.mean + spread_factor * max(b.spread, noise))

    def update(self, device: str, ratio: float) -> None:
        b = self._state.pop(device, None)
        if b is None:
            b = Baseline(float(ratio), 0.0, 1)
        else:
            # the spread follows the deviation from the mean before this sample
            b.spread += self.alpha * (abs(ratio - b.mean) - b.spread)
            b.mean += self.alpha * (ratio - b.mean)
            b.samples += 1
        self._state[device] = b
        while len(self._state) > self.max_devices:
            self._state.popitem(last=False)
