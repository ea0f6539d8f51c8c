"""What a detector reports: a Finding (the problem is there, with its evidence) or a Cleared (it is gone).

Detectors report what they see each time they look (every capture window, every SNMP poll); the
ledger (probe.findings.ledger) is the one place that turns those reports into episodes.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

SEVERITIES = ("info", "warning", "critical")

# How a later report's evidence joins an open episode's: "latest" replaces it (a toner level, days to
# full: the current figure is the one to act on), "peak" keeps each number's largest value and counts
# the reports in "windows" (a scan's ports, a flood's rate: the worst moment is the evidence).
EVIDENCE_MERGES = ("latest", "peak")


@dataclass
class Finding:
    kind: str              # e.g. "port_scan", "arp_spoofing" (see probe.findings.lan.KINDS)
    severity: str          # one of SEVERITIES
    device: str            # MAC "aa:bb:cc:dd:ee:ff", IP address, or "lan" for LAN-wide findings
    evidence: dict = field(default_factory=dict)  # the numbers that triggered it (JSON-serialisable)
    first_seen: float = 0.0  # seconds since the epoch
    last_seen: float = 0.0
    subject: str = ""      # what on the device, when a device can have several: "ifIndex 3 (Gi0/3)"
    evidence_merge: str = "latest"  # one of EVIDENCE_MERGES

    def __post_init__(self):
        if self.severity not in SEVERITIES:
            raise ValueError(f"finding {self.kind}: unknown severity {self.severity!r} (expected one of {SEVERITIES})")
        if self.evidence_merge not in EVIDENCE_MERGES:
            raise ValueError(f"finding {self.kind}: unknown evidence_merge {self.evidence_merge!r}")

    @property
    def key(self) -> tuple[str, str, str]:
        """Episode identity: one open episode per kind, device and subject."""
        return (self.kind, self.device, self.subject)

    def to_dict(self) -> dict:
        d = asdict(self)
        del d["evidence_merge"]
        return d


@dataclass(frozen=True)
class Cleared:
    """The condition behind an episode is gone (a device answers again, a supply was replaced): its
    detector knows, so the episode is resolved now rather than after a quiet time."""

    kind: str
    device: str
    subject: str = ""
    at: float = 0.0

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.device, self.subject)
