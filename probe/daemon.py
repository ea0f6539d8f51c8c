"""The daemon: composition root that wires config, state, subsystems and the HTTP API together.

Lifecycle: load config -> resolve built-in defaults from the machine (interfaces, subnets) -> open the
state database -> build subsystems -> bind HTTP -> READY=1 -> run until SIGTERM/SIGINT -> stop
subsystems within a bound -> flush state -> exit 0. SIGHUP and POST /-/reload load the config again;
a bad one is rejected and the running one stays.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import ssl
import time
from typing import Callable, Sequence

from prometheus_client import GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.registry import CollectorRegistry

from probe import fastpath
from probe.health import ClockWatch
from probe.config import Config, ConfigError, load_file, split_listen_address
from probe.config.machine import resolve_defaults
from probe.exposition.anomaly_collector import AnomalyCollector
from probe.exposition.findings_api import FindingsApi
from probe.exposition.http import HttpApi
from probe.exposition.report import write_monthly_report
from probe.exposition.self_collector import SelfCollector, TimedCollector
from probe.exposition.websecurity import WebSecurity
from probe.findings.anomaly import AnomalyAlerts
from probe.findings.ledger import PRUNE_EVERY, Ledger, LedgerCollector
from probe.findings.visits import Visits
from probe.sdnotify import Notifier
from probe.state.anomaly import AnomalyScores
from probe.state.coverage import Coverage
from probe.state.inventory import Inventory
from probe.state.store import Store
from probe.subsystems.base import Context, Health, Subsystem, activity_totals
from probe.subsystems.devices import Devices, own_addresses

_log = logging.getLogger("sitevigil")

STOP_TIMEOUT = 10.0  # seconds each subsystem gets to finish in-flight work on shutdown

# name -> factory(config, context) -> Subsystem. Filled by probe.subsystems.
SubsystemFactory = Callable[[Config, Context], Subsystem]


@dataclasses.dataclass(frozen=True)
class Overrides:
    """Command-line flags that win over the config file (and survive reloads)."""

    listen_address: str | None = None
    state_dir: str | None = None
    web_config_file: str | None = None  # --web.config.file: TLS, basic auth, headers (exporter toolkit format)

    def apply(self, cfg: Config) -> Config:
        if self.listen_address:
            cfg = cfg.replace(web=dataclasses.replace(cfg.web, listen_address=self.listen_address))
        if self.state_dir:
            cfg = cfg.replace(state_dir=self.state_dir)
        return cfg


class Daemon:
    def __init__(self, config: Config, *, config_path: str | None, overrides: Overrides,
                 factories: Sequence[tuple[str, SubsystemFactory]], notifier: Notifier | None = None):
        self.config_path = config_path
        self.overrides = overrides
        self.config = resolve_defaults(overrides.apply(config))
        self.factories = list(factories)
        self.notifier = notifier or Notifier()
        self.registry = CollectorRegistry(auto_describe=False)
        self.reload_state = {"successful": True, "success_timestamp": time.time()}
        self.timings: dict[str, tuple[float, bool]] = {}
        self.last_scrape: dict = {}
        self.clock_watch = ClockWatch()
        self.subsystems: list[Subsystem] = []
        self._ready = False
        self._stop = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self.http: HttpApi | None = None
        self.store: Store | None = None
        self.anomaly: AnomalyScores | None = None  # with the alerts and the collector, when detection is on
        self.alerts: AnomalyAlerts | None = None
        self.anomaly_collector: AnomalyCollector | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        cfg = self.config
        self.store = Store(cfg.state_dir)
        # The shared services, owned here and handed to every subsystem in its Context.
        self.ledger = Ledger(self.store, quiet_after=episode_quiet(cfg))
        self.visits = Visits(self.store)
        self.coverage = Coverage(self.store)
        # the inventory's ageing and bounds are the sweep subsystem's settings: it applies them, at start and reload
        self.devices = Devices(Inventory(self.store), self.ledger, own=own_addresses())
        if cfg.detection.enabled:  # thresholds and the hook are set by _apply_anomaly_config below
            self.alerts = AnomalyAlerts(self.ledger.record, warn_threshold=cfg.detection.anomaly_warn_threshold)
            self.anomaly = AnomalyScores(cfg.detection.anomaly_max_series)
        ctx = Context(store=self.store, ledger=self.ledger, devices=self.devices, anomaly=self.anomaly)
        for _name, factory in self.factories:
            self.subsystems.append(factory(cfg, ctx))

        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.registry.register(SelfCollector(
            fastpath=fastpath.IMPLEMENTATION, subsystems=lambda: self.subsystems, reload_state=self.reload_state,
            timings=self.timings, last_scrape=self.last_scrape, store=self.store, clock_watch=self.clock_watch))
        self.registry.register(TimedCollector("findings", LedgerCollector(self.ledger), self.timings))
        if self.anomaly is not None:
            self.anomaly_collector = AnomalyCollector(self.anomaly, top_n=cfg.detection.anomaly_top_n,
                                                      threshold=cfg.detection.anomaly_threshold)
            self.registry.register(TimedCollector("anomaly", self.anomaly_collector, self.timings))
            self._apply_anomaly_config(cfg)
        for sub in self.subsystems:
            for i, coll in enumerate(sub.collectors()):
                self.registry.register(TimedCollector(f"{sub.name}" + (f"_{i}" if i else ""), coll, self.timings))

        security = None
        if self.overrides.web_config_file:
            try:
                security = WebSecurity(self.overrides.web_config_file)
            except (ConfigError, ssl.SSLError, OSError) as exc:
                for line in (exc.problems if isinstance(exc, ConfigError) else [exc]):
                    _log.error("web config: %s", line)
                self.store.close()
                return 1
        routes = FindingsApi(self.ledger, self.visits).routes(cfg.web.route_prefix)
        for sub in self.subsystems:
            routes.extend(sub.routes())
        self.http = HttpApi(registry=self.registry, fastpath=fastpath.IMPLEMENTATION, reload=self.reload,
                            is_ready=lambda: self._ready, subsystems=lambda: self.subsystems,
                            last_scrape=self.last_scrape, route_prefix=cfg.web.route_prefix, extra_routes=routes,
                            security=security)
        host, port = split_listen_address(cfg.web.listen_address)
        try:
            await self.http.start(host, port)
        except OSError as exc:
            _log.error("cannot listen on %s: %s", cfg.web.listen_address, exc.strerror or exc)
            self.store.close()
            return 1
        _log.info("listening on %s (fast path: %s, state: %s)", ", ".join(f"{h}:{p}" for h, p in self.http.bound),
                  fastpath.IMPLEMENTATION, self.store.path)
        _log.info("watching subnets %s", ", ".join(str(s.cidr) for s in cfg.subnets) or "(none found)")

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))

        for sub in self.subsystems:
            try:
                await sub.start()
            except Exception as exc:  # a subsystem that cannot start is reported, the rest go on
                _log.exception("subsystem %s failed to start", sub.name)
                sub.status.set(Health.FAILED, f"start failed: {exc}")
        self._ready = True
        self.notifier.send("READY=1", f"STATUS=listening on {cfg.web.listen_address}")
        watchdog = asyncio.ensure_future(self._watchdog()) if self.notifier.watchdog_interval else None
        flusher = asyncio.ensure_future(self._flush_state())

        await self._stop.wait()
        _log.info("shutting down")
        self._ready = False
        self.notifier.send("STOPPING=1")
        for t in (watchdog, flusher):
            if t:
                t.cancel()
        await self._stop_subsystems()
        await self.http.stop()
        self.store.close()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        _log.info("stopped cleanly")
        return 0

    def request_stop(self) -> None:
        self._stop.set()

    async def _stop_subsystems(self) -> None:
        async def one(sub):
            try:
                await asyncio.wait_for(sub.stop(), STOP_TIMEOUT)
            except asyncio.TimeoutError:
                _log.error("subsystem %s did not stop within %.0fs; abandoning its work", sub.name, STOP_TIMEOUT)
            except Exception:
                _log.exception("subsystem %s failed while stopping", sub.name)

        await asyncio.gather(*(one(s) for s in reversed(self.subsystems)))

    async def _watchdog(self) -> None:
        while True:
            self.notifier.send("WATCHDOG=1")
            await asyncio.sleep(self.notifier.watchdog_interval)

    async def _flush_state(self) -> None:
        next_prune = 0.0
        self.coverage.heartbeat(time.time(), *activity_totals(self.subsystems))
        while True:
            await asyncio.sleep(10)
            jump = self.clock_watch.check()
            if jump is not None:
                _log.warning("the wall clock was set %s by %.0f s: finding episodes keep their quiet timers "
                             "(monotonic), capture windows start again at the new time; dates stored from "
                             "now on are the new clock's", "forward" if jump > 0 else "back", abs(jump))
            self.store.flush()
            self.coverage.heartbeat(time.time(), *activity_totals(self.subsystems))
            self.ledger.close_quiet()  # prunes resolved episodes hourly; visits go with the same retention
            if time.time() >= next_prune:
                next_prune = time.time() + PRUNE_EVERY
                self.visits.prune(retention=self.ledger.retention)
                self.coverage.prune(retention=self.ledger.retention)
                if self.config.report.monthly:
                    await write_monthly_report(self.store, self.config, time.time())

    # -- reload ---------------------------------------------------------------------------------
    def _apply_anomaly_config(self, cfg: Config) -> None:
        """Thresholds take effect at once; the series table's size only after a restart."""
        if self.anomaly is None:
            return
        det = cfg.detection
        self.anomaly.on_alert = self.alerts if det.enabled and det.anomaly_findings else None
        self.anomaly.alert_threshold = det.anomaly_threshold
        self.alerts.warn_threshold = det.anomaly_warn_threshold
        self.anomaly_collector.threshold, self.anomaly_collector.top_n = det.anomaly_threshold, det.anomaly_top_n

    async def reload(self) -> tuple[bool, str]:
        async with self._reload_lock:
            if not self.config_path:
                msg = "no --config.file given: running on built-in defaults, nothing to reload"
                _log.info(msg)
                self.reload_state.update(successful=True, success_timestamp=time.time())
                return True, msg
            try:
                new = resolve_defaults(self.overrides.apply(load_file(self.config_path)))
            except ConfigError as exc:
                self.reload_state["successful"] = False
                for problem in exc.problems:
                    _log.error("config reload rejected, keeping the running config: %s", problem)
                return False, f"config reload rejected, keeping the running config:\n{exc}"
            if new.web != self.config.web:
                _log.warning("web settings changed; they take effect after a restart")
            if new.state_dir != self.config.state_dir:
                _log.warning("state_dir changed; it takes effect after a restart")
            failed = []
            for sub in self.subsystems:
                try:
                    await sub.reload(new)
                except Exception as exc:
                    _log.exception("subsystem %s failed to take the new config", sub.name)
                    failed.append(f"{sub.name}: {exc}")
            self._apply_anomaly_config(new)
            self.ledger.quiet_after = episode_quiet(new)
            self.config = new
            if failed:
                self.reload_state["successful"] = False
                return False, "config loaded but some subsystems failed to apply it: " + "; ".join(failed)
            self.reload_state.update(successful=True, success_timestamp=time.time())
            _log.info("config reloaded from %s", self.config_path)
            return True, f"config reloaded from {self.config_path}"


def episode_quiet(cfg: Config) -> float:
    """How long a finding's episode lasts without a report: detection.episode_quiet, but never under three
    of the slowest SNMP poll's intervals, so one lost poll does not end a device's problem."""
    snmp = cfg.snmp
    slowest = max([float(snmp.counters_interval), float(snmp.inventory_interval)]) if snmp.enabled else 0.0
    return max(float(cfg.detection.episode_quiet), 3 * slowest)
