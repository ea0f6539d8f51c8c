"""The SNMP subsystem: the poller on its schedule, its metrics, and the /snmp multi-target endpoint.

- Targets: snmp.targets, plus (snmp.poll_discovered) every device the inventory knows answering SNMP
  (ctx.devices.discovered() at start, then each agent a sweep finds, announced through
  ctx.devices.on_agent the moment it is found, with the credential that worked).
- After each poll, probe/subsystems/snmp_feed.py turns the result into findings (ctx.ledger), anomaly
  series (ctx.anomaly) and inventory sightings (ctx.devices).
- /metrics serves the latest results (probe/exposition/snmp_poll_collector.py and the SNMP data
  collector), never waiting on a device.
- GET /snmp (probe/exposition/snmp_endpoint.py) polls one device now, snmp_exporter style, and answers
  Prometheus text. Only devices inside the client subnets (Config.subnets) or configured as snmp
  targets may be asked: anything else is HTTP 403 with the reason, so the probe cannot be used to
  scan other networks. The poll is bounded by the scrape's timeout
  (X-Prometheus-Scrape-Timeout-Seconds); past it, the latest results of that device are served.
"""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from aiohttp import web

from probe import fastpath
from probe.exposition.snmp_endpoint import SnmpEndpoint
from probe.exposition.snmp_poll_collector import SnmpPollCollector, data_collector
from probe.findings.snmp_rules import SnmpRules
from probe.sources.snmp.poller import SnmpPoller
from probe.subsystems.base import Activity, Context, Health, Status
from probe.subsystems.snmp_feed import SnmpFeed

if TYPE_CHECKING:
    from probe.config import Config

_log = logging.getLogger(__name__)


class SnmpSubsystem:
    name = "snmp"

    def __init__(self, config: "Config", ctx: Context):
        self.config = config
        self.ctx = ctx
        self.status = Status()
        self.poller = SnmpPoller(config, store=ctx.store, clock=ctx.clock, counter_deltas=fastpath.counter_deltas)
        ctx.snmp_poller = self.poller  # the trap receiver polls a device that sent a notification
        self.feed = SnmpFeed(SnmpRules.from_config(config.snmp.findings), ledger=ctx.ledger, anomaly=ctx.anomaly,
                             devices=ctx.devices, clock=ctx.clock)
        self.poller.observers.append(self.feed.observe)
        self._tasks: list[asyncio.Task] = []

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        if not self.config.snmp.enabled:
            self.status.set(Health.DISABLED, "snmp.enabled is false")
            return
        self._tasks = [asyncio.ensure_future(self.poller.run()), asyncio.ensure_future(self._health_loop())]
        if self.config.snmp.poll_discovered:
            for host in self.ctx.devices.discovered():
                self.add_discovered(host)
            if self.add_discovered not in self.ctx.devices.on_agent:
                self.ctx.devices.on_agent.append(self.add_discovered)
        self.status.set(Health.OK, "")

    async def stop(self) -> None:
        if self.add_discovered in self.ctx.devices.on_agent:
            self.ctx.devices.on_agent.remove(self.add_discovered)
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self.poller.stop()
        if self.poller._engine is not None:
            self.poller._engine.close()
            self.poller._engine = None

    async def reload(self, config: "Config") -> None:
        was_enabled = self.config.snmp.enabled
        self.config = config
        self.poller.set_config(config)
        self.feed.rules.configure(config.snmp.findings)
        self.feed.prune({d.target for d in self.poller.devices()})
        if config.snmp.enabled and not was_enabled:
            await self.start()
        elif not config.snmp.enabled and was_enabled:
            await self.stop()
            self.status.set(Health.DISABLED, "snmp.enabled is false")

    def collectors(self):
        return [SnmpPollCollector(self.poller.devices), data_collector(self.poller.devices)]

    def activity(self) -> Activity:
        return Activity(polls=sum(max((st.polls for st in d.modules.values()), default=0)
                                  for d in self.poller.devices()))

    def describe(self) -> dict:
        devs = self.poller.devices()
        return {
            "targets": [d.target for d in devs if not d.discovered],
            "discovered": sum(1 for d in devs if d.discovered),
            "up": sum(1 for d in devs if d.up),
            "credentials": [c.name for c in self.config.snmp.credentials],  # names only, never secrets
            "counters_interval_seconds": float(self.config.snmp.counters_interval),
            "inventory_interval_seconds": float(self.config.snmp.inventory_interval),
        }

    def routes(self):
        return [web.get(self.config.web.route_prefix.rstrip("/") + "/snmp", SnmpEndpoint(self.poller, lambda: self.config))]

    def add_discovered(self, host) -> bool:
        """A device the inventory knows answering SNMP (probe.subsystems.devices.DiscoveredHost): poll it,
        starting with the credential its agent answered to. Returns whether it was new to the poller."""
        if not self.config.snmp.poll_discovered:
            return False
        ip, cred = str(host.ip), host.credential
        if cred and self.poller.cred_memory.get(ip, 161) is None and \
                cred in {c.name for c in self.config.snmp.credentials}:
            self.poller.cred_memory.remember(ip, 161, cred)
        return bool(self.poller.add_target(ip))

    # -- background -----------------------------------------------------------------------------
    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(5)
            self.feed.prune({d.target for d in self.poller.devices()})
            polled = [d for d in self.poller.devices() if d.modules]
            down = [d for d in polled if not d.up]
            if down:
                self.status.set(Health.DEGRADED, f"{len(down)} of {len(polled)} devices not answering "
                                                 f"(e.g. {down[0].target}: {down[0].last_error})")
            else:
                self.status.set(Health.OK, "")


def factory(config: "Config", ctx: Context) -> SnmpSubsystem:
    return SnmpSubsystem(config, ctx)
