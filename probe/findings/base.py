"""The detector interface and the engine that turns per-window observations into episodes.

A detector looks at one closed capture window (probe.state.aggregates.WindowAggregates) and returns
Finding observations for that window. The engine keeps one open Finding per (kind, device): a new
observation of an open episode only extends it (last_seen, evidence, worst severity), so each problem
is raised once per episode; an episode ends after `episode_quiet` seconds without an observation.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Callable, Protocol

from probe.config.detection import DetectionConfig
from probe.findings.model import SEVERITIES, Finding
from probe.state.aggregates import WindowAggregates


@dataclass
class WindowContext:
    """Shared between the detectors of one window: configuration, and who was already flagged."""
    config: DetectionConfig
    flagged: dict[str, set[str]] = field(default_factory=dict)  # kind -> devices flagged in this window

    def flag(self, kind: str, device: str) -> None:
        self.flagged.setdefault(kind, set()).add(device)

    def is_flagged(self, device: str, *kinds: str) -> bool:
        return any(device in self.flagged.get(k, ()) for k in kinds)


class Detector(Protocol):
    kinds: tuple[str, ...]

    def detect(self, window: WindowAggregates, ctx: WindowContext) -> list[Finding]:
        """Findings observed in this window (first_seen/last_seen = the evidence's time span)."""


class FindingEngine:
    """Runs detectors over each closed window and keeps findings as episodes (bounded history)."""

    def __init__(self, config: DetectionConfig, detectors: list[Detector], *, history: int = 10_000,
                 max_open: int = 10_000):
        self.config = config
        self.detectors = detectors
        self.open: dict[tuple[str, str], Finding] = {}
        self.closed: collections.deque[Finding] = collections.deque(maxlen=history)
        self.raised_total: collections.Counter[tuple[str, str]] = collections.Counter()  # (kind, severity at start)
        self.max_open = max_open
        self.dropped_total = 0  # observations of new episodes refused because max_open were open
        # observations that are no finding (the probe's own traffic); still flagged for the other detectors
        self.ignore: Callable[[Finding], bool] | None = None

    def process(self, window: WindowAggregates) -> list[Finding]:
        """Feed one window; returns the findings that started a new episode in it."""
        now = window.end_ns / 1e9
        for key, f in list(self.open.items()):
            if now - f.last_seen > self.config.episode_quiet:
                self.closed.append(self.open.pop(key))
        ctx = WindowContext(self.config)
        new = []
        for det in self.detectors:
            for obs in det.detect(window, ctx):
                ctx.flag(obs.kind, obs.device)
                if isinstance(obs.evidence.get("mac"), str):  # an IP finding also covers the MAC it came from
                    ctx.flag(obs.kind, obs.evidence["mac"])
                if self.ignore is not None and self.ignore(obs):
                    continue
                cur = self.open.get(obs.key)
                if cur is None:
                    if len(self.open) >= self.max_open:
                        self.dropped_total += 1
                        continue
                    self.open[obs.key] = obs
                    self.raised_total[(obs.kind, obs.severity)] += 1
                    new.append(obs)
                    continue
                cur.last_seen = max(cur.last_seen, obs.last_seen)
                if SEVERITIES.index(obs.severity) > SEVERITIES.index(cur.severity):
                    cur.severity = obs.severity
                cur.evidence = _merge_evidence(cur.evidence, obs.evidence)
        return new

    def all_findings(self) -> list[Finding]:
        return sorted([*self.closed, *self.open.values()], key=lambda f: (f.first_seen, f.kind, f.device))


def _merge_evidence(old: dict, new: dict) -> dict:
    """Numbers keep the episode's worst (largest) value; anything else takes the latest; windows counts."""
    merged = dict(old)
    for k, v in new.items():
        o = merged.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and isinstance(o, (int, float)) and not isinstance(o, bool):
            merged[k] = max(o, v)
        else:
            merged[k] = v
    merged["windows"] = old.get("windows", 1) + 1
    return merged
