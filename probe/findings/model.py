"""The one shape every finding has, whichever detector raised it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SEVERITIES = ("info", "warning", "critical")


@dataclass
class Finding:
    kind: str                      # stable machine name, e.g. "device_new", "device_gone"
    severity: str                  # one of SEVERITIES
    device: str                    # what it is about: a MAC, an IP or a device name
    evidence: dict[str, Any] = field(default_factory=dict)
    first_seen: float = 0.0
    last_seen: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "severity": self.severity, "device": self.device, "evidence": self.evidence,
                "first_seen": self.first_seen, "last_seen": self.last_seen}
