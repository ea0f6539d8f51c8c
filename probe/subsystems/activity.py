"""What the subsystems have done since they started, for the coverage record: SNMP device polls made and
frames seen, read from the counters they already keep for their metrics (no extra work per poll or frame)."""
from __future__ import annotations

from typing import Iterable


def activity_totals(subsystems: Iterable) -> tuple[int, int]:
    """(SNMP polls, capture frames), cumulative. A device poll is counted once (its most polled module's
    count); a device the poller dropped takes its polls with it, which the coverage record treats as a restart."""
    polls = frames = 0
    for sub in subsystems:
        poller = getattr(sub, "poller", None)
        if sub.name == "snmp" and poller is not None:
            polls += sum(max((st.polls for st in d.modules.values()), default=0) for d in poller.devices())
        elif sub.name == "capture" and hasattr(sub, "snapshot"):
            frames += int(sub.snapshot()["counters"].frames)
    return polls, frames
