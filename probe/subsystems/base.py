"""The one small interface every long-running part of the daemon implements.

A subsystem (SNMP poller, capture, sweep, detectors...) is built from the frozen Config and a shared
Context, started once, asked for its Prometheus collectors and its health, given a new Config on
reload, and stopped within a time bound on shutdown. The daemon knows nothing else about it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Protocol

from probe.health import Health, Status  # noqa: F401  (part of the subsystem interface)

if TYPE_CHECKING:
    from prometheus_client.registry import Collector

    from probe.config import Config
    from probe.findings.ledger import Ledger
    from probe.sources.snmp.poller import SnmpPoller
    from probe.state.anomaly import AnomalyScores
    from probe.state.store import Store
    from probe.subsystems.devices import Devices


@dataclass
class Context:
    """What the daemon hands every subsystem: the shared services it owns, typed, never looked up by name.

    - `store`: the state database;
    - `ledger`: where every finding goes (probe.findings.ledger: the one episode tracker);
    - `devices`: the inventory every subsystem feeds (probe.subsystems.devices.Devices: sightings in,
      inventory findings to the ledger, SNMP agents announced to whoever polls them);
    - `anomaly`: the anomaly scores of every series the subsystems feed (`update(keys, ts, values)`
      with keys (device, series name)); None where scoring is off;
    - `snmp_poller`: the SNMP poller (probe.sources.snmp.poller.SnmpPoller), set by the SNMP subsystem when
      it is built, for whoever must poll a device now (the trap receiver's confirming poll); None without it.
    Unset services are built in memory, so a test or a one-shot command can make a Context from a store.
    """

    store: "Store | None"
    clock: Callable[[], float] = time.time
    ledger: "Ledger | None" = None
    devices: "Devices | None" = None
    anomaly: "AnomalyScores | None" = None
    snmp_poller: "SnmpPoller | None" = None

    def __post_init__(self):
        from probe.findings.ledger import Ledger
        from probe.state.inventory import Inventory
        from probe.state.store import Store
        from probe.subsystems.devices import Devices

        if self.ledger is None:
            self.ledger = Ledger(self.store or Store("", memory=True), clock=self.clock)
        if self.devices is None:
            self.devices = Devices(Inventory(self.store, clock=self.clock), self.ledger)


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

    def routes(self) -> list:
        """Its HTTP routes (aiohttp RouteDefs), added to the daemon's server; most have none."""

    def describe(self) -> dict:
        """What it is watching, for the landing page and `sitevigil diag` (no secrets)."""

    def activity(self) -> "Activity":
        """What it has done since it started, cumulative, for the coverage record (read from counters
        it keeps anyway: no extra work per poll or frame). Most do neither: Activity()."""


@dataclass(frozen=True)
class Activity:
    polls: int = 0    # SNMP device polls: a device's poll counted once (its most polled module's count)
    frames: int = 0   # frames the capture saw


def activity_totals(subsystems: Iterable[Subsystem]) -> tuple[int, int]:
    """(SNMP polls, capture frames) over all subsystems, cumulative. A device the poller dropped takes
    its polls with it, which the coverage record treats as a restart."""
    done = [sub.activity() for sub in subsystems]
    return sum(a.polls for a in done), sum(a.frames for a in done)
