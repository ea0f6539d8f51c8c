"""The detector interface, and the runner that asks every detector about one capture window.

A detector looks at one closed capture window (probe.state.aggregates.WindowAggregates) and returns
what it sees in it as Findings. The runner reports them all, every window the problem is there, and
keeps nothing between windows: the ledger (probe.findings.ledger) is the one episode tracker, so a
problem that lasts two hours is one episode that stays open for two hours.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

from probe.config.detection import DetectionConfig
from probe.findings.model import SEVERITIES, Finding
from probe.state.aggregates import WindowAggregates


@dataclass
class WindowContext:
    """Shared between the detectors of one window: configuration, and who was already flagged."""
    config: DetectionConfig
    # the newest closed window alone: the view a detector sees may merge it with the one before, so
    # a detector that keeps totals across windows adds this one (each window is `latest` exactly once)
    latest: WindowAggregates | None = None
    flagged: dict[str, set[str]] = field(default_factory=dict)  # kind -> devices flagged in this window

    def flag(self, kind: str, device: str) -> None:
        self.flagged.setdefault(kind, set()).add(device)

    def is_flagged(self, device: str, *kinds: str) -> bool:
        return any(device in self.flagged.get(k, ()) for k in kinds)


class Detector(Protocol):
    kinds: tuple[str, ...]

    def detect(self, window: WindowAggregates, ctx: WindowContext) -> list[Finding]:
        """Findings observed in this window (first_seen/last_seen = the evidence's time span)."""


class WindowDetectors:
    """Runs the detectors over each closed window; returns what they saw, one report per key."""

    def __init__(self, config: DetectionConfig, detectors: list[Detector]):
        self.config = config
        self.detectors = detectors
        # observations that are no finding (the probe's own traffic); still flagged for the other detectors
        self.ignore: Callable[[Finding], bool] | None = None

    def process(self, window: WindowAggregates, latest: WindowAggregates | None = None) -> list[Finding]:
        """`window`: what the detectors judge (the newest window, or it merged with the one before);
        `latest`: the newest window alone (None: `window` is it)."""
        ctx = WindowContext(self.config, latest if latest is not None else window)
        seen: dict[tuple, Finding] = {}
        for det in self.detectors:
            for obs in det.detect(window, ctx):
                ctx.flag(obs.kind, obs.device)
                if isinstance(obs.evidence.get("mac"), str):  # an IP finding also covers the MAC it came from
                    ctx.flag(obs.kind, obs.evidence["mac"])
                if self.ignore is not None and self.ignore(obs):
                    continue
                obs.evidence_merge = "peak"  # a scan's or a flood's worst window is its evidence
                cur = seen.get(obs.key)
                if cur is None:
                    seen[obs.key] = obs
                elif SEVERITIES.index(obs.severity) > SEVERITIES.index(cur.severity):
                    seen[obs.key] = obs
        return list(seen.values())
