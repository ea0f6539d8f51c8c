"""The SNMP poller: every device on the probe's own schedule, results kept for /metrics to serve.

    poller = SnmpPoller(config, store=store)
    task = asyncio.create_task(poller.run())      # polls until cancelled
    poller.add_target("192.168.1.20")             # a device the sweep found
    poller.observers.append(fn)                   # fn(device, result) after each poll
    for dev in poller.devices(): ...              # latest results, never waiting on a device

Schedule: a fast round (counters: system, interfaces, host resources, printer, UPS) every
`snmp.counters_interval` and a slow one (inventory: ENTITY, LLDP, FDB, ARP) every
`snmp.inventory_interval`, per device, phase-spread so a site's devices are not all asked at once.
One poll in flight per device (a lock), at most `snmp.max_concurrent_devices` devices at once (a
semaphore). A device whose poll overruns its interval is simply polled again when it is done: polls
never pile up.

The device's modules come from the SNMP modules package (probe.sources.snmp.modules, one module per
kind of data and a table of them), through this interface:
    MODULES: {name: module}; SLOW_MODULES: names polled on the inventory schedule; ALWAYS
    DeviceMemory(): per-device state between polls (.modules: the automatic module choice)
    await poll_device(client, memory, target=, modules=None|[names], now=, max_rows=) -> DeviceResult
        with .modules {name: ModuleResult(.ok, .data, .error_class, .error, .duration_seconds,
        .finished_at, .pdus, .retries, .timeouts)}, .up and .data()
    ModuleResult(name, False, error_class=, error=, finished_at=) for a device that cannot be asked.
One failing module never hides the others: each keeps its own latest result and last success.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

from probe.sources.snmp import credentials as credmod
from probe.sources.snmp.engine import Engine, RequestStats, Session

if TYPE_CHECKING:
    from probe.config import Config
    from probe.sources.snmp.modules.base import CounterDeltas
    from probe.state.store import Store

_log = logging.getLogger(__name__)

MAX_DISCOVERED = 4096          # devices added by the sweep (explicit targets are not counted)
MAX_TRANSIENT = 256            # devices asked only through /snmp, remembered for their label caches
RESELECT_AFTER_FAILURES = 3    # polls without any answer before the credentials are tried again
MAX_BACKOFF = 16               # a device that does not answer is still tried every 16 intervals


def backoff(failures: int) -> float:
    """How many counters intervals to wait after `failures` polls without an answer: 1 for the first
    three, then doubling up to MAX_BACKOFF. A dead device (a discovered one unplugged, a wrong
    credential everywhere) then costs a bounded share of the concurrency slots, not one per interval."""
    return float(min(MAX_BACKOFF, 2 ** max(0, failures - 2))) if failures > 2 else 1.0


def split_target(target: str, port: int | None) -> tuple[str, int]:
    host, p = target, None
    if target.startswith("["):
        host, _, rest = target[1:].partition("]")
        p = rest[1:] if rest.startswith(":") else None
    elif target.count(":") == 1:
        host, p = target.split(":")
    if p is not None:
        if not p.isdigit() or not 0 < int(p) < 65536:
            raise ValueError(f"invalid port in target {target!r}")
    return host, port or (int(p) if p else 161)


def modules_package():
    """The SNMP modules (see the module docstring for the interface used)."""
    from probe.sources.snmp import modules

    return modules


@dataclass
class ModuleState:
    result: object | None = None       # the latest ModuleResult
    data: dict = field(default_factory=dict)  # the latest successful data of this module
    last_success: float | None = None
    polls: int = 0
    pdus: int = 0
    retries: int = 0
    timeouts: int = 0
    errors: dict[str, int] = field(default_factory=dict)


class Device:
    def __init__(self, address: str, port: int = 161, *, name: str | None = None,
                 credentials: Sequence[str] = (), modules: Sequence[str] = (), discovered: bool = False,
                 timeout: float | None = None, retries: int | None = None):
        self.address = address
        self.timeout = timeout           # per-device overrides of snmp.timeout / snmp.retries
        self.retries = retries
        self.port = port
        self.name = name
        self.explicit_credentials = tuple(credentials)
        self.configured_modules = tuple(modules)
        self.discovered = discovered
        self.memory = None               # the modules' DeviceMemory, created on first poll
        self.session: Session | None = None
        self.credential: str | None = None
        self.refusals: list = []         # credentials tried before the one that worked, and why
        self.lock = asyncio.Lock()
        self.modules: dict[str, ModuleState] = {}
        self.failures = 0
        self.rechoose = False            # choose the modules again on the next fast poll (after a restart)
        self.busy = False
        self.next_fast = 0.0
        self.next_slow = 0.0
        self.last_poll: float | None = None
        self.last_error: str | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.address, self.port)

    @property
    def target(self) -> str:
        """The `target` label: the address, with the port when it is not 161."""
        if self.port == 161:
            return self.address
        return f"[{self.address}]:{self.port}" if ":" in self.address else f"{self.address}:{self.port}"

    @property
    def up(self) -> bool:
        return any(st.result is not None and st.result.ok for st in self.modules.values())

    def data(self) -> dict:
        """Every module's latest successful data (the `sitevigil snmp` JSON shape)."""
        out: dict = {}
        for st in self.modules.values():
            out.update(st.data)
        return out

    def record(self, result) -> None:
        for name, r in result.modules.items():
            st = self.modules.setdefault(name, ModuleState())
            st.result = r
            st.polls += 1
            st.pdus += r.pdus
            st.retries += r.retries
            st.timeouts += r.timeouts
            if r.ok:
                st.data = r.data
                st.last_success = r.finished_at
            else:
                st.errors[r.error_class or "internal"] = st.errors.get(r.error_class or "internal", 0) + 1

    def charge_selection(self, spent: RequestStats) -> None:
        """What choosing a credential cost (GETs of sysObjectID) counts as the system module's."""
        st = self.modules.setdefault("system", ModuleState())
        st.pdus += spent.pdus
        st.retries += spent.retries
        st.timeouts += spent.timeouts

    def status(self) -> dict:
        """Per-module outcome of the latest poll, for the JSON output."""
        return {name: {"ok": st.result.ok, "error_class": st.result.error_class, "error": st.result.error,
                       "duration_seconds": round(st.result.duration_seconds, 6), "pdus": st.result.pdus,
                       "retries": st.result.retries, "timeouts": st.result.timeouts,
                       "last_success": st.last_success}
                for name, st in self.modules.items() if st.result is not None}


class SnmpPoller:
    def __init__(self, config: "Config", *, store: "Store | None" = None, clock=time.time, monotonic=time.monotonic,
                 engine: Engine | None = None, counter_deltas: CounterDeltas | None = None):
        """`counter_deltas`: the counter arithmetic the modules use (the composer hands in the fast path's
        kernel; default: the specification, probe/sources/snmp/counters.py)."""
        self.config = config
        self.counter_deltas = counter_deltas
        self.clock = clock
        self.monotonic = monotonic
        self._engine = engine
        self.cred_memory = credmod.CredentialMemory(store)
        self._devices: dict[tuple[str, int], Device] = {}
        self._transient: OrderedDict[tuple[str, int], Device] = OrderedDict()
        self._sem = asyncio.Semaphore(config.snmp.max_concurrent_devices)
        self._tasks: set[asyncio.Task] = set()
        self._waiter: asyncio.Future | None = None
        self.rounds = 0
        self.discovered_dropped = 0
        # Called with (Device, DeviceResult) after each poll of a polled (not transient) device,
        # answered or not: findings, anomaly series and the inventory are built from these.
        self.observers: list = []
        self.set_config(config)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = Engine.for_running_loop()
        return self._engine

    # -- targets --------------------------------------------------------------------------------
    def set_config(self, config: "Config") -> None:
        old = self._devices
        creds_changed = hasattr(self, "config") and (
            self.config.snmp.credentials != config.snmp.credentials
            or [(s.cidr, s.credentials) for s in self.config.subnets] != [(s.cidr, s.credentials) for s in config.subnets])
        self.config = config
        new: dict[tuple[str, int], Device] = {}
        for t in config.snmp.targets:
            key = (t.address, t.port)
            dev = old.get(key)
            if dev is None or dev.discovered:
                dev = Device(t.address, t.port, name=t.name, credentials=t.credentials, modules=t.modules,
                             timeout=t.timeout, retries=t.retries)
                if key in old:  # keep what the poller learned about a discovered device made explicit
                    dev.memory, dev.modules = old[key].memory, old[key].modules
            else:
                dev.name, dev.configured_modules = t.name, tuple(t.modules)
                if (dev.timeout, dev.retries) != (t.timeout, t.retries):
                    dev.timeout, dev.retries, dev.session = t.timeout, t.retries, None
                if dev.explicit_credentials != tuple(t.credentials):
                    dev.explicit_credentials, dev.session = tuple(t.credentials), None
            new[key] = dev
        if config.snmp.poll_discovered:
            for key, dev in old.items():
                if dev.discovered and key not in new and self.allowed(dev.address):
                    new[key] = dev
        for key, dev in old.items():
            if key not in new or new[key] is not dev or creds_changed:
                dev.session = None  # credentials may have changed: select again
        if self._sem._value != config.snmp.max_concurrent_devices and not self._tasks:
            self._sem = asyncio.Semaphore(config.snmp.max_concurrent_devices)
        self._devices = new
        self._wakeup()

    def add_target(self, address: str, port: int = 161) -> bool:
        """A device found by the sweep. Polled when snmp.poll_discovered is on and it is inside the
        client subnets; the number of such devices is bounded."""
        if not self.config.snmp.enabled or not self.config.snmp.poll_discovered:
            return False
        key = (str(address), port)
        if key in self._devices:
            return True
        if not self.allowed(key[0]):
            return False
        if sum(1 for d in self._devices.values() if d.discovered) >= MAX_DISCOVERED:
            self.discovered_dropped += 1
            return False
        self._devices[key] = Device(key[0], port, discovered=True)
        self._wakeup()
        return True

    def allowed(self, address: str) -> str | None:
        """Why a device may be asked (inside a client subnet, or an explicit target), or None."""
        for t in self.config.snmp.targets:
            if t.address == address:
                return f"configured snmp target {address}"
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None
        for s in self.config.subnets:
            if ip.version == s.cidr.version and ip in s.cidr:
                return f"inside client subnet {s.cidr}"
        return None

    def devices(self) -> list[Device]:
        return list(self._devices.values())

    def device(self, address: str, port: int = 161, *, transient: bool = True) -> Device | None:
        """A polled device, or a transient one (kept in a bounded LRU) for one-off polls."""
        key = (address, port)
        dev = self._devices.get(key) or self._transient.get(key)
        if dev is None and transient:
            dev = Device(address, port)
            self._transient[key] = dev
            while len(self._transient) > MAX_TRANSIENT:
                self._transient.popitem(last=False)
        if key in self._transient:
            self._transient.move_to_end(key)
        return dev

    # -- polling --------------------------------------------------------------------------------
    def _modules_for(self, dev: Device, kind: str) -> list[str] | None:
        mp = modules_package()
        if dev.configured_modules:
            chosen = list(dev.configured_modules)
        elif dev.memory is None or dev.memory.modules is None or (kind == "fast" and dev.rechoose):
            dev.rechoose = False
            return None  # first poll, or the device restarted: let the modules choose (and run them all)
        else:
            chosen = list(dev.memory.modules)
        slow = set(mp.SLOW_MODULES)
        if kind == "fast":
            mods = [m for m in chosen if m not in slow]
        else:
            mods = [m for m in chosen if m in slow]
            if mods and "system" not in mods:
                mods.insert(0, "system")  # cheap, and tells a restart
        return mods

    async def poll(self, dev: Device, modules: Sequence[str] | None = None, *, kind: str = "fast"):
        """Poll one device now (waits for its lock and a concurrency slot); returns the DeviceResult."""
        mp = modules_package()
        if modules is None:
            modules = self._modules_for(dev, kind)
            if modules is not None and not modules:
                return None
        async with dev.lock:
            async with self._sem:
                result = await self._poll_locked(dev, modules, mp)
        if result is not None and self._devices.get(dev.key) is dev:
            self._notify(dev, result)
        return result

    def _notify(self, dev: Device, result) -> None:
        for observer in list(self.observers):
            try:
                observer(dev, result)
            except Exception:  # what is built on the results must not stop the polling
                _log.exception("SNMP: handling the poll result of %s failed", dev.target)

    async def _poll_locked(self, dev: Device, modules, mp):
        cfg = self.config.snmp
        if dev.memory is None:
            dev.memory = mp.DeviceMemory()
        now = self.clock()
        dev.last_poll = now
        if dev.session is None:
            creds = credmod.candidates(self.config, dev.address, dev.explicit_credentials)
            spent = RequestStats()
            try:
                dev.session, dev.refusals = await credmod.select(
                    self.engine, dev.address, creds, port=dev.port,
                    timeout=dev.timeout if dev.timeout is not None else cfg.timeout,
                    retries=dev.retries if dev.retries is not None else cfg.retries,
                    max_repetitions=cfg.max_repetitions, memory=self.cred_memory, spent=spent)
                dev.credential = dev.session.credential_name
                for r in dev.refusals:
                    _log.info("SNMP %s: credential %s refused (%s); %s answers", dev.target, r.credential, r.kind,
                              dev.credential)
            except credmod.NoCredentialAnswered as exc:
                if dev.failures == 0:
                    _log.warning("SNMP %s: %s", dev.target, exc)
                dev.last_error = str(exc)
                dev.credential = None
                names = modules if modules is not None else (dev.memory.modules or mp.ALWAYS)
                result = _Unreachable(dev.target, {
                    n: mp.ModuleResult(n, False, error_class=exc.kind, error=str(exc), finished_at=self.clock())
                    for n in names})
                dev.record(result)
                dev.charge_selection(spent)
                dev.failures += 1
                return result
            dev.charge_selection(spent)
        result = await mp.poll_device(dev.session, dev.memory, target=dev.target, modules=modules, now=now,
                                      max_rows=cfg.max_rows_per_table, counter_deltas=self.counter_deltas)
        dev.record(result)
        sys_result = result.modules.get("system")
        if sys_result is not None and sys_result.ok and (sys_result.data.get("sys") or {}).get("rebooted"):
            dev.rechoose = True  # a restart may come with new firmware or a new role: choose modules again
        if result.up:
            if dev.failures:
                _log.info("SNMP %s answers again (credential %s)", dev.target, dev.credential)
            dev.failures = 0
            dev.last_error = None
        else:
            dev.failures += 1
            errs = [r for r in result.modules.values() if not r.ok]
            dev.last_error = errs[0].error if errs else None
            if dev.failures == 1:  # log the change, not every failed poll
                _log.warning("SNMP %s stopped answering: %s", dev.target, dev.last_error)
            if any(r.error_class == "auth" for r in errs) or dev.failures >= RESELECT_AFTER_FAILURES:
                dev.session = None  # the credential may have changed on the device: select again
        return result

    async def _scheduled(self, dev: Device, kind: str) -> None:
        try:
            await self.poll(dev, kind=kind)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug must not stop the poller; the device is retried next interval
            _log.exception("SNMP poll of %s failed", dev.target)
        finally:
            dev.busy = False
            self._wakeup()

    def _due(self, now: float) -> list[tuple[Device, str]]:
        cfg = self.config.snmp
        due = []
        for dev in self._devices.values():
            if dev.busy:
                continue
            if dev.next_fast == 0.0:  # new device: spread first polls over the first seconds
                dev.next_fast = now + random.uniform(0, min(5.0, cfg.counters_interval))
                dev.next_slow = dev.next_fast + cfg.inventory_interval
                continue
            if now >= dev.next_fast:
                interval = cfg.counters_interval * backoff(dev.failures)
                dev.next_fast = max(dev.next_fast + interval, now + 0.5 * interval)
                due.append((dev, "fast"))
            elif now >= dev.next_slow and not dev.failures:  # inventory waits until it answers again
                dev.next_slow = max(dev.next_slow + cfg.inventory_interval, now + 0.5 * cfg.inventory_interval)
                due.append((dev, "slow"))
        return due

    async def run(self) -> None:
        """Poll on schedule until cancelled."""
        try:
            while True:
                for dev, kind in self._due(self.monotonic()):
                    dev.busy = True
                    task = asyncio.ensure_future(self._scheduled(dev, kind))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                await self._sleep(self._tick())
        finally:
            await self.stop()

    async def _sleep(self, seconds: float) -> None:
        """Sleep until the next due time or a wake-up (a poll finished, a target added).

        Not asyncio.wait_for(event.wait()): before Python 3.12 it can swallow the cancellation
        that arrives as the event fires, and the scheduler would then never stop."""
        loop = asyncio.get_running_loop()
        fut = self._waiter = loop.create_future()
        timer = loop.call_later(seconds, _resolve, fut)
        try:
            await fut
        finally:
            timer.cancel()
            self._waiter = None

    def _wakeup(self) -> None:
        if self._waiter is not None:
            _resolve(self._waiter)

    def _tick(self) -> float:
        now = self.monotonic()
        nxt = [d.next_fast for d in self._devices.values() if not d.busy] + \
              [d.next_slow for d in self._devices.values() if not d.busy]
        return min(1.0, max(0.01, min(nxt) - now)) if nxt else 1.0

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for dev in list(self._devices.values()) + list(self._transient.values()):
            if dev.session is not None:
                await dev.session.close()

    async def poll_round(self, kind: str = "fast") -> list:
        """Poll every device once now, concurrently within the bound (benchmarks, one-shot use)."""
        results = await asyncio.gather(*(self.poll(d, kind=kind) for d in self.devices()))
        self.rounds += 1
        return results


def _resolve(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


@dataclass
class _Unreachable:
    """A DeviceResult for a device that answered no credential."""

    target: str
    modules: dict

    @property
    def up(self) -> bool:
        return False

    def data(self) -> dict:
        return {"errors": {n: {"class": r.error_class, "error": r.error} for n, r in self.modules.items()}}
