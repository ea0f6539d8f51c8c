"""Small helpers several test modules share."""
from __future__ import annotations

import time

from probe.findings.ledger import Ledger


def recording_ledger(reports: list, clock=time.time) -> Ledger:
    """An in-memory ledger that also appends every finding reported to it to `reports`, in order."""
    ledger = Ledger.in_memory(clock=clock)
    record = ledger.record

    def recording(finding):
        reports.append(finding)
        return record(finding)

    ledger.record = recording
    return ledger
