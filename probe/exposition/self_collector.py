"""The probe's metrics about itself: build info, config reloads, subsystem health, scrape timing."""
from __future__ import annotations

import logging
import platform
import time
from typing import Callable, Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from probe import __version__
from probe.health import Health

_log = logging.getLogger(__name__)
_STATES = [h.value for h in Health]


class TimedCollector(Collector):
    """Wraps a collector to record how long its collect() took, for sitevigil_scrape_collector_*."""

    def __init__(self, name: str, inner: Collector, timings: dict[str, tuple[float, bool]]):
        self.name, self.inner, self.timings = name, inner, timings

    def collect(self):
        t0 = time.perf_counter()
        ok = True
        try:
            families = list(self.inner.collect())
        except Exception:  # one broken collector must not take the whole scrape down
            _log.exception("collector %s failed", self.name)
            families, ok = [], False
        self.timings[self.name] = (time.perf_counter() - t0, ok)
        return families

    def describe(self):
        return []  # collect lazily: the inner collector's families change with what it sees


class SelfCollector(Collector):
    def __init__(self, *, fastpath: str, subsystems: Callable[[], Iterable], reload_state: dict,
                 timings: dict[str, tuple[float, bool]], last_scrape: dict, store=None, clock_watch=None):
        self._fastpath = fastpath
        self._subsystems = subsystems
        self._reload = reload_state
        self._timings = timings
        self._last_scrape = last_scrape
        self._store = store
        self._clock = clock_watch

    def collect(self):
        info = InfoMetricFamily("sitevigil_build", "Version and fast-path implementation of this probe.")
        info.add_metric([], {"version": __version__, "fastpath": self._fastpath,
                             "pythonversion": platform.python_version()})
        yield info

        ok = GaugeMetricFamily("sitevigil_config_last_reload_successful",
                               "Whether the last configuration reload attempt was successful.")
        ok.add_metric([], 1.0 if self._reload["successful"] else 0.0)
        yield ok
        ts = GaugeMetricFamily("sitevigil_config_last_reload_success_timestamp_seconds",
                               "Timestamp of the last successful configuration reload.")
        ts.add_metric([], self._reload["success_timestamp"])
        yield ts

        up = GaugeMetricFamily("sitevigil_subsystem_up", "Whether the subsystem is doing its job (ok or degraded).",
                               labels=["subsystem"])
        state = GaugeMetricFamily("sitevigil_subsystem_state", "Health state of each subsystem (1 for the current one).",
                                  labels=["subsystem", "state"])
        since = GaugeMetricFamily("sitevigil_subsystem_state_since_timestamp_seconds",
                                  "When the subsystem entered its current state.", labels=["subsystem"])
        for sub in self._subsystems():
            h = sub.status.health
            up.add_metric([sub.name], 1.0 if h in (Health.OK, Health.DEGRADED) else 0.0)
            for s in _STATES:
                state.add_metric([sub.name, s], 1.0 if s == h.value else 0.0)
            since.add_metric([sub.name], sub.status.since)
        yield up
        yield state
        yield since

        dur = GaugeMetricFamily("sitevigil_scrape_collector_duration_seconds",
                                "How long each collector took in the previous scrape.", labels=["collector"])
        succ = GaugeMetricFamily("sitevigil_scrape_collector_success",
                                 "Whether each collector succeeded in the previous scrape.", labels=["collector"])
        for name, (seconds, good) in sorted(self._timings.items()):
            dur.add_metric([name], seconds)
            succ.add_metric([name], 1.0 if good else 0.0)
        yield dur
        yield succ
        last = GaugeMetricFamily("sitevigil_scrape_duration_seconds",
                                 "How long the previous /metrics scrape took to render.")
        last.add_metric([], self._last_scrape.get("seconds", 0.0))
        yield last

        if self._clock is not None:
            jumps = CounterMetricFamily("sitevigil_clock_jumps", "Times the wall clock was set (forward or back "
                                        "by more than 2s against the monotonic clock).")
            jumps.add_metric([], float(self._clock.jumps_total))
            yield jumps
            last = GaugeMetricFamily("sitevigil_clock_last_jump_seconds",
                                     "How far the wall clock was last set: forward (+) or back (-); 0 if never.")
            last.add_metric([], self._clock.last_jump)
            yield last
        if self._store is not None:
            failed = GaugeMetricFamily("sitevigil_state_write_backlog", "Writes to the state database waiting for a retry.")
            failed.add_metric([], float(self._store.backlog))
            yield failed
            wf = CounterMetricFamily("sitevigil_state_write_failures", "Writes to the state database that failed (e.g. disk full).")
            wf.add_metric([], float(self._store.writes_failed_total))
            yield wf
            wd = CounterMetricFamily("sitevigil_state_writes_dropped", "Writes dropped because the backlog bound was reached.")
            wd.add_metric([], float(self._store.writes_dropped_total))
            yield wd
