"""The one small interface every long-running part of the daemon implements.

A subsystem (SNMP poller, capture, sweep, detectors...) is built from the frozen Config and a shared
Context, started once, asked for its Prometheus collectors and its health, given a new Config on
reload, and stopped within a time bound on shutdown. The daemon knows nothing else about it.
"""
from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Protocol

if TYPE_CHECKING:
    from prometheus_client.registry import Collector

    from probe.config import Config
    from probe.state.store import Store


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


@dataclass
class Context:
    """What the daemon hands every subsystem: shared services, never globals."""

    store: "Store"
    clock: Callable[[], float] = time.time
    # Findings raised by any subsystem go through here to the ledger (probe.findings).
    emit_finding: Callable[[Any], None] = lambda finding: None
    # Anomaly scores of every series the subsystems feed: `anomaly.update(keys, ts, values)` with keys
    # (device, series name) (probe.state.anomaly.AnomalyScores); None where scoring is off.
    anomaly: Any = None
    # Other subsystems' public objects, by name, for the few that feed each other (sweep -> snmp).
    peers: dict[str, Any] = field(default_factory=dict)


class Subsystem(Protocol):
    name: str
    status: Status

    async def start(self) -> None:
        """Begin work. Return once running; long work goes on in tasks the subsystem owns."""

    async def stop(self) -> None:
        """Stop accepting work, finish or cancel in-flight work, flush state. Bounded by the caller."""

    async def reload(self, config: "Config") -> None:
        """Take a new, already validated config."""

    def collectors(self) -> Iterable["Collector"]:
        """Prometheus collectors; each collect() yields fresh metric families."""

    def describe(self) -> dict:
        """What it is watching, for the landing page and `sitevigil diag` (no secrets)."""
