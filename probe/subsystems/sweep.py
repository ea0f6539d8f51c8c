"""The "sweep" subsystem: periodic active sweeps (ARP, ICMP, SNMP) into the daemon's inventory.

    sources.sweep (plan, probe)  ->  Devices (probe.subsystems.devices)  ->  state.inventory, the ledger

The inventory itself is the daemon's (every subsystem feeds it); this subsystem sweeps on its schedule,
ages devices that went quiet, and exports the inventory. `sitevigil sweep` runs the same `plan` +
`run_sweep` once by hand.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Sequence

from probe.sources import sweep as sweeper
from probe.state.inventory import DeviceChange
from probe.subsystems.base import Activity, Context, Health, Status

if TYPE_CHECKING:
    from probe.config import Config, SnmpCredential

_log = logging.getLogger("sitevigil.sweep")


# ---------------------------------------------------------------------------------------------------
# One sweep: plan from the config, run, record into the inventory


def credentials_by_name(cfg: "Config", names: Sequence[str]) -> tuple["SnmpCredential", ...]:
    creds = cfg.snmp.credentials
    if not names:
        return tuple(creds)
    by_name = {c.name: c for c in creds}
    return tuple(by_name[n] for n in names if n in by_name)


def plan(cfg: "Config", cidrs: Sequence[ipaddress.IPv4Network] | None = None, *, method: str = "auto",
         extra_credentials: Sequence["SnmpCredential"] = (), local=None) -> list[sweeper.SweepTarget]:
    """Targets for the given CIDRs (or the config's subnets with sweep on) and their credentials."""
    pairs = []
    if cidrs:
        for net in cidrs:
            sub = next((s for s in cfg.subnets if s.cidr == net), None)
            creds = credentials_by_name(cfg, sub.credentials if sub else ())
            pairs.append((net, tuple(extra_credentials) + creds))
    else:
        for s in cfg.subnets:
            if s.sweep:
                pairs.append((s.cidr, tuple(extra_credentials) + credentials_by_name(cfg, s.credentials)))
    if not cfg.snmp.enabled and not extra_credentials:
        pairs = [(n, ()) for n, _ in pairs]
    return sweeper.plan_sweep(pairs, method=method, local=local)


def run_sweep(cfg: "Config", targets: Sequence[sweeper.SweepTarget], *, rate_pps: float | None = None,
              snmp: bool = True, progress=None, stop: threading.Event | None = None) -> sweeper.SweepResult:
    return sweeper.sweep(targets, rate_pps=rate_pps or cfg.sweep.rate_pps, max_hosts=cfg.sweep.max_hosts,
                         snmp=snmp, snmp_timeout=float(cfg.snmp.timeout), snmp_retries=cfg.snmp.retries,
                         snmp_concurrency=max(cfg.snmp.max_concurrent_devices, 32), progress=progress, stop=stop)


def device_json(dev, host: sweeper.LiveHost | None = None) -> dict[str, Any]:
    """A device as `sitevigil sweep --format json` and `sitevigil devices --format json` print it."""
    d = {"mac": dev.mac, "ip": dev.ip, "vendor": dev.vendor, "mac_kind": dev.mac_kind, "randomised": dev.randomised,
         "type": dev.type, "type_rule": dev.type_evidence.get("rule"), "type_value": dev.type_evidence.get("value"),
         "name": dev.name, "names": dev.names, "snmp": dev.snmp, "state": dev.state, "sources": sorted(dev.sources),
         "first_seen": dev.first_seen, "last_seen": dev.last_seen, "ips": dev.ips, "type_evidence": dev.type_evidence}
    if host is not None:
        d["method"] = host.method
        d["rtt_ms"] = None if host.rtt is None else round(host.rtt * 1000, 3)
    return d


# ---------------------------------------------------------------------------------------------------
# The subsystem


class SweepSubsystem:
    name = "sweep"

    def __init__(self, config: "Config", ctx: Context, *, sweep_fn=None):
        self.config = config
        self.ctx = ctx
        from probe.exposition.inventory_collector import SweepStats

        self.status = Status()
        self.stats = SweepStats()
        self.devices = ctx.devices
        self.inventory = ctx.devices.inventory
        self._configure(config)
        self._sweep_fn = sweep_fn or (lambda cfg, stop: run_sweep(cfg, plan(cfg), stop=stop))
        self._tasks: list[asyncio.Task] = []
        self._stop = threading.Event()
        self._wake = asyncio.Event()
        self._sweeping = False

    def _configure(self, config: "Config") -> None:
        sc = config.sweep
        self.inventory.gone_after, self.inventory.forget_after = float(sc.device_gone_after), float(sc.device_forget_after)
        self.inventory.max_devices = sc.max_devices

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        if not self.config.sweep.enabled:
            self.status.set(Health.DISABLED, "sweep.enabled is false")
        else:
            if not any(s.sweep for s in self.config.subnets):
                self.status.set(Health.DEGRADED, "no subnet to sweep (none configured or found)")
            self._tasks.append(asyncio.ensure_future(self._sweep_loop()))
            if self.config.sweep.device_gone_after < self.config.sweep.interval:
                _log.warning("sweep.device_gone_after (%.0fs) is shorter than sweep.interval (%.0fs): devices seen "
                             "only by the sweep will be reported gone between sweeps",
                             self.config.sweep.device_gone_after, self.config.sweep.interval)
        self._tasks.append(asyncio.ensure_future(self._age_loop()))

    async def stop(self) -> None:
        self._stop.set()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        self.inventory.flush()

    async def reload(self, config: "Config") -> None:
        sc = config.sweep
        self._configure(config)
        was_enabled = self.config.sweep.enabled
        self.config = config
        if sc.enabled and not was_enabled:
            self.status.set(Health.STARTING)
            self._tasks.append(asyncio.ensure_future(self._sweep_loop()))
        elif not sc.enabled:
            self.status.set(Health.DISABLED, "sweep.enabled is false")
        self._wake.set()

    def collectors(self):
        from probe.exposition.inventory_collector import InventoryCollector

        return [InventoryCollector(self.inventory.summaries, self.stats,
                                   info_limit=lambda: self.config.sweep.device_info_limit,
                                   evicted=lambda: self.inventory.evicted_total)]

    def routes(self) -> list:
        return []

    def activity(self) -> Activity:
        return Activity()  # its ARP/ICMP probes are not polls; the sweep's own figures are in describe()

    def describe(self) -> dict:
        sc = self.config.sweep
        return {"enabled": sc.enabled, "interval_seconds": float(sc.interval), "rate_pps": sc.rate_pps,
                "subnets": [str(s.cidr) for s in self.config.subnets if s.sweep],
                "devices": len(self.inventory), "last_sweep": self.stats.as_dict()}

    # -- sweeping ------------------------------------------------------------------------------------
    async def sweep_now(self) -> list[DeviceChange]:
        """One sweep, now (also what the periodic loop runs)."""
        if self._sweeping:
            return []
        self._sweeping = True
        cfg = self.config
        t0 = time.time()
        try:
            result = await asyncio.to_thread(self._sweep_fn, cfg, self._stop)
        except Exception as exc:
            self.stats.failed(str(exc))
            self.status.set(Health.FAILED if not self.stats.last_success else Health.DEGRADED, f"sweep failed: {exc}")
            _log.error("sweep failed: %s", exc)
            return []
        finally:
            self._sweeping = False
        findings = self.devices.record_sweep(result, ts=self.ctx.clock())
        self.stats.succeeded(result, self.ctx.clock())
        for w in result.warnings:
            _log.warning("sweep: %s", w)
        self.status.set(Health.OK if result.complete else Health.DEGRADED,
                        "" if result.complete else "last sweep was cut short at its time bound")
        _log.info("sweep of %d addresses took %.1fs: %d hosts, %d with SNMP, %d findings",
                  result.addresses, time.time() - t0, len(result.hosts), sum(1 for h in result.hosts if h.snmp),
                  len(findings))
        return findings

    # -- internals --------------------------------------------------------------------------------
    async def _sweep_loop(self) -> None:
        await asyncio.sleep(2.0)  # let the daemon finish starting
        while not self._stop.is_set() and self.config.sweep.enabled:
            await self.sweep_now()
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), float(self.config.sweep.interval))
            except asyncio.TimeoutError:
                pass

    async def _age_loop(self) -> None:
        while not self._stop.is_set():
            await asyncio.sleep(max(1.0, min(60.0, float(self.config.sweep.device_gone_after) / 4)))
            self.devices.age(self.ctx.clock())


def factory(config: "Config", ctx: Context) -> SweepSubsystem:
    return SweepSubsystem(config, ctx)
