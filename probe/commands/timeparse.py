"""Times a technician types: a duration back from now (30d, 12h) or a local date and time."""
from __future__ import annotations

import time
from datetime import datetime

from probe.config import Duration

_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d")


def parse_when(text: str) -> float:
    """A local date and time (2026-11-14 09:30, or 2026-11-14 for midnight) as seconds since the epoch."""
    for fmt in _FORMATS:
        try:
            return datetime.strptime(text.strip(), fmt).timestamp()
        except ValueError:
            continue
    raise ValueError(f"{text!r} is not a date and time (expected e.g. 2026-11-14 09:30 or 2026-11-14)")


def parse_since(text: str, now: float | None = None) -> float:
    """A duration back from now (30d) or a local date and time."""
    now = time.time() if now is None else now
    try:
        return now - Duration.parse(text)
    except ValueError:
        pass
    try:
        return parse_when(text)
    except ValueError:
        raise ValueError(f"--since: {text!r} is neither a duration back (30d, 12h) nor a date "
                         f"(2026-11-14)") from None
