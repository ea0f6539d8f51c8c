"""The SNMP modules, one per kind of thing a device tells, behind one small interface.

MODULES maps a module name to its implementation (as blackbox_exporter's prober table does);
`poll_device` runs a device's modules against any SnmpClient and returns a `DeviceResult`: one
`ModuleResult` per module (data or a classified error, duration, PDUs, retries, timeouts, located
problems). A failing module never hides the others; a lying agent gives a per-device, per-module
error, never an exception out of poll_device.

Module choice: `system` and `interfaces` always; the others when `applies()` says so (sysObjectID
enterprise, or a cheap presence check of their MIB). The choice is remembered in DeviceMemory until
the agent restarts, its sysObjectID changes or CHOICE_MAX_AGE passes; a configured list overrides it.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Sequence

from probe.sources.snmp.client import SnmpClient, SnmpError
from probe.sources.snmp.modules import hostresources, interfaces, inventory, printer, system, ups
from probe.sources.snmp.modules.base import CounterDeltas, DeviceMemory, Module, PollContext

_log = logging.getLogger(__name__)

MODULES: dict[str, Module] = {m.name: m for m in (
    system.MODULE, interfaces.MODULE, hostresources.MODULE, printer.MODULE, ups.MODULE, inventory.MODULE)}
ALWAYS = ("system", "interfaces")
# What the poller's fast (counters) and slow (inventory) schedules usually run.
FAST_MODULES = ("system", "interfaces", "hostresources", "ups", "printer")
SLOW_MODULES = ("inventory",)
CHOICE_MAX_AGE = 6 * 3600.0  # re-check what a device is now and then (a UPS card added, a new firmware)
ERROR_CLASSES = ("timeout", "auth", "protocol", "bad_value", "internal", "skipped")


@dataclass
class ModuleResult:
    module: str
    ok: bool
    data: dict = field(default_factory=dict)
    error_class: str | None = None    # one of ERROR_CLASSES when not ok
    error: str | None = None
    problems: list[str] = field(default_factory=list)  # located, bounded (first MAX_PROBLEMS)
    problems_total: int = 0
    duration_seconds: float = 0.0
    finished_at: float = 0.0           # wall clock
    pdus: int = 0
    retries: int = 0
    timeouts: int = 0


@dataclass
class DeviceResult:
    target: str
    modules: dict[str, ModuleResult]
    started_at: float
    duration_seconds: float
    stats: dict[str, dict] = field(default_factory=dict)  # DeviceMemory.module_stats snapshot
    restarts: int = 0

    def merged_with(self, older: "DeviceResult | None") -> "DeviceResult":
        """This poll's modules over an older result's (fast and slow schedules poll different
        modules; /metrics serves the latest of each)."""
        if older is None:
            return self
        mods = dict(older.modules)
        mods.update(self.modules)
        return DeviceResult(self.target, mods, self.started_at, self.duration_seconds, self.stats, self.restarts)

    @property
    def up(self) -> bool:
        return any(r.ok for r in self.modules.values())

    def data(self) -> dict:
        """The `sitevigil snmp --format json` shape: every ok module's keys, plus errors by module."""
        out: dict = {}
        for r in self.modules.values():
            if r.ok:
                out.update(r.data)
        errors = {n: {"class": r.error_class, "error": r.error} for n, r in self.modules.items() if not r.ok}
        if errors:
            out["errors"] = errors
        problems = {n: r.problems for n, r in self.modules.items() if r.problems}
        if problems:
            out["problems"] = problems
        return out


def _stats(client) -> tuple[int, int, int]:
    s = getattr(client, "stats", None)
    if s is None:
        return 0, 0, 0
    return int(getattr(s, "pdus", 0)), int(getattr(s, "retries", 0)), int(getattr(s, "timeouts", 0))


async def run_module(module: Module, client: SnmpClient, memory: DeviceMemory, *, now: float, shared: dict,
                     max_rows: int = 10000, clock=time.perf_counter, wall=time.time,
                     counter_deltas: CounterDeltas | None = None) -> ModuleResult:
    ctx = PollContext(client, memory, now=now, max_rows=max_rows, module=module.name, shared=shared,
                      counter_deltas=counter_deltas)
    p0, r0, t0 = _stats(client)
    start = clock()
    try:
        data = await module.poll(ctx)
        res = ModuleResult(module.name, True, data)
    except SnmpError as exc:
        res = ModuleResult(module.name, False, error_class=exc.kind if exc.kind in ERROR_CLASSES else "protocol",
                           error=f"{module.name}: {exc}")
    except Exception as exc:  # a bug or data no check foresaw: report it for this module, keep the others
        _log.exception("SNMP module %s failed", module.name)
        res = ModuleResult(module.name, False, error_class="internal", error=f"{module.name}: {type(exc).__name__}: {exc}")
    p1, r1, t1 = _stats(client)
    res.duration_seconds = clock() - start
    res.finished_at = wall()
    res.problems, res.problems_total = ctx.problems, ctx.problems_total
    res.pdus, res.retries, res.timeouts = p1 - p0, r1 - r0, t1 - t0
    return res


async def choose_modules(client: SnmpClient, memory: DeviceMemory, sys: dict, *, now: float,
                         max_rows: int = 10000) -> tuple[str, ...]:
    """The modules for this device (remembered until a restart or a new sysObjectID)."""
    if memory.modules is not None and memory.sys_object_id == sys.get("object_id") and not sys.get("rebooted") \
            and now - memory.modules_at < CHOICE_MAX_AGE:
        return memory.modules
    chosen = list(ALWAYS)
    for name, mod in MODULES.items():
        if name in chosen:
            continue
        ctx = PollContext(client, memory, now=now, max_rows=max_rows, module=name)
        try:
            if await mod.applies(ctx, sys):
                chosen.append(name)
        except SnmpError as exc:
            if exc.kind in ("timeout", "auth"):
                raise
            _log.debug("SNMP module %s: presence check failed: %s", name, exc)
    memory.modules = tuple(chosen)
    memory.modules_at = now
    return memory.modules


async def poll_device(client: SnmpClient, memory: DeviceMemory, *, target: str = "",
                      modules: Sequence[str] | None = None, now: float | None = None, max_rows: int = 10000,
                      clock=time.perf_counter, wall=time.time,
                      counter_deltas: CounterDeltas | None = None) -> DeviceResult:
    """Poll one device once. `modules`: a configured list (overrides the automatic choice);
    `counter_deltas`: the counter arithmetic (default: the specification, probe/sources/snmp/counters.py)."""
    if modules is not None:
        unknown = [m for m in modules if m not in MODULES]
        if unknown:
            raise ValueError(f"unknown SNMP modules: {', '.join(unknown)} (known: {', '.join(MODULES)})")
    now = wall() if now is None else now
    start = clock()
    shared: dict = {}
    results: dict[str, ModuleResult] = {}
    kw = dict(now=now, shared=shared, max_rows=max_rows, clock=clock, wall=wall, counter_deltas=counter_deltas)

    if modules is None or "system" in modules:
        results["system"] = await run_module(MODULES["system"], client, memory, **kw)
    sys_res = results.get("system")
    if sys_res is not None and sys_res.ok:
        sys_data = sys_res.data["sys"]
        if modules is None:
            try:
                names = await choose_modules(client, memory, sys_data, now=now, max_rows=max_rows)
            except SnmpError as exc:
                names = ()
                sys_res.problems.append(f"module choice: {exc.kind}: {exc}")
        else:
            names = tuple(modules)
        memory.sys_object_id = sys_data.get("object_id")
    elif sys_res is not None and sys_res.error_class in ("timeout", "auth"):
        # The device does not answer: do not spend a timeout per module, report them skipped.
        names = tuple(modules) if modules is not None else (memory.modules or ALWAYS)
        for n in names:
            if n != "system":
                results[n] = ModuleResult(n, False, error_class="skipped",
                                          error=f"{n}: not polled: system {sys_res.error_class}", finished_at=wall())
        return _finish(target, results, memory, now, clock() - start)
    else:
        names = tuple(modules) if modules is not None else (memory.modules or ALWAYS)

    for n in names:
        if n in results:
            continue
        results[n] = await run_module(MODULES[n], client, memory, **kw)
    return _finish(target, results, memory, now, clock() - start)


def _finish(target, results, memory: DeviceMemory, now, duration) -> DeviceResult:
    for name, r in results.items():
        st = memory.module_stats.setdefault(name, {"polls": 0, "pdus": 0, "retries": 0, "timeouts": 0,
                                                   "errors": {}, "last_success": None})
        st["polls"] += 1
        st["pdus"] += r.pdus
        st["retries"] += r.retries
        st["timeouts"] += r.timeouts
        if r.ok:
            st["last_success"] = r.finished_at
        else:
            st["errors"][r.error_class] = st["errors"].get(r.error_class, 0) + 1
    snapshot = {n: {**st, "errors": dict(st["errors"])} for n, st in memory.module_stats.items()}
    return DeviceResult(target, results, now, duration, snapshot, memory.restarts)


__all__ = ["MODULES", "ALWAYS", "FAST_MODULES", "SLOW_MODULES", "ERROR_CLASSES", "ModuleResult", "DeviceResult",
           "DeviceMemory", "poll_device", "run_module", "choose_modules"]
