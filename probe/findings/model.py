"""The Finding record: what is wrong, how bad, on which device, the evidence, first and last seen."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

SEVERITIES = ("info", "warning", "critical")


@dataclass
class Finding:
    kind: str              # e.g. "port_scan", "arp_spoofing" (see probe.findings.lan.KINDS)
    severity: str          # one of SEVERITIES
    device: str            # MAC "aa:bb:cc:dd:ee:ff", IP address, or "lan" for LAN-wide findings
    evidence: dict = field(default_factory=dict)  # the numbers that triggered it (JSON-serialisable)
    first_seen: float = 0.0  # seconds since the epoch
    last_seen: float = 0.0

    def __post_init__(self):
        if self.severity not in SEVERITIES:
            raise ValueError(f"finding {self.kind}: unknown severity {self.severity!r} (expected one of {SEVERITIES})")

    @property
    def key(self) -> tuple[str, str]:
        """Episode identity: one open finding per kind and device."""
        return (self.kind, self.device)

    def to_dict(self) -> dict:
        return asdict(self)
