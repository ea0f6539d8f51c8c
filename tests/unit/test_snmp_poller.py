"""The SNMP poller and subsystem with a fake engine and fake modules: credential selection and memory,
concurrency bounds, schedule, per-module bookkeeping, the collector, and /snmp's access rules."""
from __future__ import annotations

import asyncio
import ipaddress
import time
from dataclasses import dataclass, field

import pytest
from prometheus_client.registry import CollectorRegistry

from probe.config import Config, Secret, SnmpConfig, SnmpCredential, SnmpTarget, SubnetConfig
from probe.config.schema import Duration
from probe.exposition.snmp_poll_collector import SnmpPollCollector
from probe.sources.snmp import credentials as credmod
from probe.sources.snmp import poller as pollmod
from probe.sources.snmp.client import SnmpAuthError, SnmpTimeout
from probe.sources.snmp.engine import RequestStats
from probe.state.store import Store


# -- fakes ------------------------------------------------------------------------------------------

@dataclass
class FakeResult:
    module: str
    ok: bool
    data: dict = field(default_factory=dict)
    error_class: str | None = None
    error: str | None = None
    duration_seconds: float = 0.0
    finished_at: float = 0.0
    pdus: int = 0
    retries: int = 0
    timeouts: int = 0


@dataclass
class FakeDeviceResult:
    target: str
    modules: dict

    @property
    def up(self):
        return any(r.ok for r in self.modules.values())


class FakeMemory:
    def __init__(self):
        self.modules = None


class FakeModules:
    """Stands in for probe.sources.snmp.modules (the snmpmod branch) with the same interface."""

    MODULES = {"system": None, "interfaces": None, "inventory": None}
    SLOW_MODULES = ("inventory",)
    ALWAYS = ("system", "interfaces")
    DeviceMemory = FakeMemory
    ModuleResult = FakeResult

    def __init__(self):
        self.calls: list[tuple[str, tuple | None]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.per_device_in_flight: dict[str, int] = {}
        self.delay: dict[str, float] = {}
        self.failing: dict[str, str] = {}   # module -> error class

    async def poll_device(self, client, memory, *, target, modules, now, max_rows, counter_deltas=None):
        self.calls.append((target, tuple(modules) if modules is not None else None))
        self.in_flight += 1
        self.per_device_in_flight[target] = self.per_device_in_flight.get(target, 0) + 1
        assert self.per_device_in_flight[target] == 1, "two polls of one device at once"
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay.get(target, 0.001))
            names = modules if modules is not None else ("system", "interfaces", "inventory")
            if memory.modules is None:
                memory.modules = ("system", "interfaces", "inventory")
            out = {}
            for n in names:
                client.stats.pdus += 2
                if n in self.failing:
                    out[n] = FakeResult(n, False, error_class=self.failing[n], error=f"{n}: broken", pdus=2,
                                        finished_at=time.time())
                else:
                    out[n] = FakeResult(n, True, {n: {"from": target}}, pdus=2, finished_at=time.time())
            return FakeDeviceResult(target, out)
        finally:
            self.in_flight -= 1
            self.per_device_in_flight[target] -= 1


class FakeSession:
    def __init__(self, address, cred, answers):
        self.address, self.cred, self.answers = address, cred, answers
        self.credential_name = cred.name
        self.stats = RequestStats()
        self.retries = 1

    async def get(self, oids):
        self.stats.pdus += 1
        verdict = self.answers.get(self.address, {}).get(self.cred.name, "timeout")
        if verdict == "ok":
            return []
        self.stats.timeouts += 1
        if verdict == "auth":
            raise SnmpAuthError(f"{self.address}:161: refused")
        raise SnmpTimeout(f"{self.address}:161: no answer")

    async def close(self):
        pass


class FakeEngine:
    def __init__(self, answers):
        self.answers = answers   # address -> {credential name: "ok" | "auth" | "timeout"}
        self.tried: list[tuple[str, str]] = []

    async def session(self, address, cred, **kw):
        self.tried.append((address, cred.name))
        return FakeSession(address, cred, self.answers)

    def close(self):
        pass


def cred(name, community=None):
    return SnmpCredential(name=name, version="2c", community=Secret(community or name))


def config(**snmp) -> Config:
    snmp.setdefault("credentials", (cred("a"), cred("b"), cred("c")))
    subnets = snmp.pop("subnets", (SubnetConfig(cidr=ipaddress.ip_network("192.0.2.0/24")),))
    return Config(snmp=SnmpConfig(**snmp), subnets=subnets)


@pytest.fixture
def fake_modules(monkeypatch):
    fm = FakeModules()
    monkeypatch.setattr(pollmod, "modules_package", lambda: fm)
    return fm


def run(coro):
    return asyncio.run(coro)


# -- credentials ------------------------------------------------------------------------------------

def test_candidates_target_then_subnet_then_all():
    cfg = Config(snmp=SnmpConfig(credentials=(cred("a"), cred("b"), cred("c"))),
                 subnets=(SubnetConfig(cidr=ipaddress.ip_network("192.0.2.0/25"), credentials=("c", "a")),
                          SubnetConfig(cidr=ipaddress.ip_network("192.0.2.0/24"))))
    assert [c.name for c in credmod.candidates(cfg, "192.0.2.5", ("b",))] == ["b"]
    assert [c.name for c in credmod.candidates(cfg, "192.0.2.5")] == ["c", "a"]
    assert [c.name for c in credmod.candidates(cfg, "192.0.2.200")] == ["a", "b", "c"]
    assert [c.name for c in credmod.candidates(cfg, "switch1.example")] == ["a", "b", "c"]


def test_selection_tries_in_order_remembers_the_winner_in_the_store(tmp_path, fake_modules):
    store = Store(str(tmp_path))
    answers = {"192.0.2.10": {"a": "timeout", "b": "ok", "c": "ok"}}
    eng = FakeEngine(answers)
    poller = pollmod.SnmpPoller(config(), store=store, engine=eng)
    dev = poller.device("192.0.2.10")
    run(poller.poll(dev))
    assert eng.tried == [("192.0.2.10", "a"), ("192.0.2.10", "b")]
    assert dev.credential == "b"
    # "a" was silent but "b" answered: a wrong community, reported as auth, not as a timeout.
    assert [(r.credential, r.kind) for r in dev.refusals] == [("a", "auth")]
    # The probing counts as the system module's traffic.
    assert dev.modules["system"].pdus == 2 + 2 and dev.modules["system"].timeouts == 1
    store.close()

    store = Store(str(tmp_path))
    eng2 = FakeEngine(answers)
    poller2 = pollmod.SnmpPoller(config(), store=store, engine=eng2)
    run(poller2.poll(poller2.device("192.0.2.10")))
    assert eng2.tried == [("192.0.2.10", "b")]  # remembered across a restart
    store.close()


def test_no_credential_answered_marks_every_module_with_the_class(fake_modules):
    eng = FakeEngine({"192.0.2.11": {"a": "auth", "b": "timeout", "c": "timeout"},
                      "192.0.2.12": {}})
    poller = pollmod.SnmpPoller(config(), engine=eng)
    refused, silent = poller.device("192.0.2.11"), poller.device("192.0.2.12")
    run(poller.poll(refused))
    run(poller.poll(silent))
    assert {n: st.result.error_class for n, st in refused.modules.items()} == {"system": "auth", "interfaces": "auth"}
    assert {n: st.result.error_class for n, st in silent.modules.items()} == {"system": "timeout",
                                                                             "interfaces": "timeout"}
    assert "a: refused" in refused.last_error
    assert not refused.up and fake_modules.calls == []


# -- polling ----------------------------------------------------------------------------------------

def test_one_failing_module_keeps_the_others_and_its_last_success(fake_modules):
    poller = pollmod.SnmpPoller(config(), engine=FakeEngine({"192.0.2.20": {"a": "ok"}}))
    dev = poller.device("192.0.2.20")
    run(poller.poll(dev))
    first_success = dev.modules["interfaces"].last_success
    fake_modules.failing["interfaces"] = "protocol"
    run(poller.poll(dev, kind="fast"))
    st = dev.modules["interfaces"]
    assert not st.result.ok and st.result.error_class == "protocol"
    assert st.last_success == first_success and st.errors == {"protocol": 1}
    assert dev.modules["system"].result.ok and dev.up
    assert dev.data()["interfaces"] == {"from": "192.0.2.20"}  # the last good data stays served

    reg = CollectorRegistry(auto_describe=False)
    reg.register(SnmpPollCollector(poller.devices))  # transient devices are not listed...
    assert reg.get_sample_value("sitevigil_snmp_targets") == 0
    reg = CollectorRegistry(auto_describe=False)
    reg.register(SnmpPollCollector(lambda: [dev]))   # ...but render the same way
    labels = {"target": "192.0.2.20", "module": "interfaces"}
    assert reg.get_sample_value("sitevigil_snmp_up", labels) == 0
    assert reg.get_sample_value("sitevigil_snmp_up", dict(labels, module="system")) == 1
    assert reg.get_sample_value("sitevigil_snmp_last_success_timestamp_seconds", labels) == first_success
    assert reg.get_sample_value("sitevigil_snmp_poll_errors_total", dict(labels, **{"class": "protocol"})) == 1
    assert reg.get_sample_value("sitevigil_snmp_poll_error_info", dict(labels, **{"class": "protocol"})) == 1
    assert reg.get_sample_value("sitevigil_snmp_polls_total", labels) == 2
    assert reg.get_sample_value("sitevigil_snmp_pdus_total", labels) == 4
    assert reg.get_sample_value("sitevigil_snmp_credential_info", {"target": "192.0.2.20", "credential": "a"}) == 1


def test_fast_and_slow_rounds_split_the_chosen_modules(fake_modules):
    poller = pollmod.SnmpPoller(config(), engine=FakeEngine({"192.0.2.21": {"a": "ok"}}))
    dev = poller.device("192.0.2.21")
    run(poller.poll(dev))                 # first poll: the modules choose, all run
    run(poller.poll(dev, kind="fast"))
    run(poller.poll(dev, kind="slow"))
    assert [m for _, m in fake_modules.calls] == [None, ("system", "interfaces"), ("system", "inventory")]


def test_auth_failure_after_working_makes_it_select_again(fake_modules):
    answers = {"192.0.2.22": {"a": "ok"}}
    eng = FakeEngine(answers)
    poller = pollmod.SnmpPoller(config(), engine=eng)
    dev = poller.device("192.0.2.22")
    run(poller.poll(dev))
    fake_modules.failing = {"system": "auth", "interfaces": "auth", "inventory": "auth"}
    run(poller.poll(dev))
    assert dev.session is None
    answers["192.0.2.22"] = {"a": "auth", "b": "ok"}
    fake_modules.failing = {}
    run(poller.poll(dev))
    assert dev.credential == "b"


def test_concurrency_is_bounded_globally_and_per_device(fake_modules):
    answers = {f"192.0.2.{i}": {"a": "ok"} for i in range(30, 50)}
    poller = pollmod.SnmpPoller(config(max_concurrent_devices=3), engine=FakeEngine(answers))
    for ip in answers:
        poller.add_target(ip)
        fake_modules.delay[ip] = 0.02

    async def go():
        devs = poller.devices()
        # Two polls of each device asked at once: they must queue on the device.
        await asyncio.gather(*(poller.poll(d) for d in devs), *(poller.poll(d) for d in devs))

    run(go())
    assert fake_modules.max_in_flight == 3
    assert len(fake_modules.calls) == 40


def test_schedule_polls_every_device_and_a_slow_one_does_not_hold_the_others(fake_modules):
    answers = {f"192.0.2.{i}": {"a": "ok"} for i in range(60, 64)}
    cfg = config(counters_interval=Duration(0.1), inventory_interval=Duration(0.35), max_concurrent_devices=4,
                 targets=tuple(SnmpTarget(address=ip) for ip in answers))
    poller = pollmod.SnmpPoller(cfg, engine=FakeEngine(answers))
    fake_modules.delay["192.0.2.60"] = 0.6  # far slower than its interval

    async def go():
        task = asyncio.ensure_future(poller.run())
        await asyncio.sleep(1.4)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=10)
        assert done, "the scheduler did not stop when cancelled"

    run(go())
    counts = {ip: sum(1 for t, _ in fake_modules.calls if t == ip) for ip in answers}
    assert counts["192.0.2.60"] <= 3              # never more than one poll at a time, no pile-up
    for ip in ("192.0.2.61", "192.0.2.62", "192.0.2.63"):
        assert counts[ip] >= 6, counts           # ~12 intervals in 1.4 s minus the start spread
        slow = [m for t, m in fake_modules.calls if t == ip and m and "inventory" in m]
        assert 1 <= len(slow) <= 4


def test_add_target_only_inside_client_subnets_and_bounded(fake_modules, monkeypatch):
    poller = pollmod.SnmpPoller(config(), engine=FakeEngine({}))
    assert poller.add_target("192.0.2.7")
    assert not poller.add_target("198.51.100.7")  # outside the client subnets
    monkeypatch.setattr(pollmod, "MAX_DISCOVERED", 3)
    for i in range(10):
        poller.add_target(f"192.0.2.{100 + i}")
    assert sum(d.discovered for d in poller.devices()) == 3
    assert poller.discovered_dropped == 8
    off = pollmod.SnmpPoller(config(poll_discovered=False), engine=FakeEngine({}))
    assert not off.add_target("192.0.2.7")


def test_reload_keeps_learned_state_and_drops_removed_targets(fake_modules):
    answers = {"192.0.2.70": {"a": "ok"}, "192.0.2.71": {"a": "ok"}}
    cfg = config(targets=(SnmpTarget(address="192.0.2.70"), SnmpTarget(address="192.0.2.71")))
    poller = pollmod.SnmpPoller(cfg, engine=FakeEngine(answers))
    run(poller.poll_round())
    kept = poller.device("192.0.2.70", transient=False)
    poller.set_config(config(targets=(SnmpTarget(address="192.0.2.70"),)))
    assert [d.address for d in poller.devices()] == ["192.0.2.70"]
    assert poller.device("192.0.2.70", transient=False) is kept and kept.session is not None


def test_split_target():
    assert pollmod.split_target("192.0.2.1", None) == ("192.0.2.1", 161)
    assert pollmod.split_target("192.0.2.1:1161", None) == ("192.0.2.1", 1161)
    assert pollmod.split_target("[2001:db8::1]:1161", None) == ("2001:db8::1", 1161)
    assert pollmod.split_target("2001:db8::1", None) == ("2001:db8::1", 161)
    with pytest.raises(ValueError):
        pollmod.split_target("192.0.2.1:99999", None)


# -- the subsystem and /snmp ------------------------------------------------------------------------

def test_snmp_endpoint_refuses_outside_targets_and_polls_inside_ones(fake_modules):
    import aiohttp.test_utils as aiohttp_test
    from aiohttp import web

    from probe.subsystems import snmp as snmp_service
    from probe.subsystems.base import Context

    cfg = config(targets=(SnmpTarget(address="203.0.113.9"),))
    sub = snmp_service.SnmpSubsystem(cfg, Context(store=Store("", memory=True)))
    sub.poller._engine = FakeEngine({"192.0.2.80": {"a": "ok"}, "203.0.113.9": {"b": "ok"}})

    async def go():
        app = web.Application()
        app.add_routes(sub.routes())
        async with aiohttp_test.TestClient(aiohttp_test.TestServer(app)) as client:
            r = await client.get("/snmp", params={"target": "198.51.100.1"})
            assert r.status == 403
            assert "outside the client subnets (192.0.2.0/24)" in await r.text()
            r = await client.get("/snmp")
            assert r.status == 400
            r = await client.get("/snmp", params={"target": "192.0.2.80", "module": "bogus"})
            assert r.status == 400 and "unknown module" in await r.text()
            r = await client.get("/snmp", params={"target": "192.0.2.80", "module": "system,interfaces"})
            assert r.status == 200, await r.text()
            body = await r.text()
            assert 'sitevigil_snmp_up{module="interfaces",target="192.0.2.80"} 1.0' in body
            assert r.headers["Content-Type"].startswith("text/plain")
            r = await client.get("/snmp", params={"target": "203.0.113.9:161"})  # an explicit target
            assert r.status == 200
            fake_modules.delay["192.0.2.80"] = 3.0
            r = await client.get("/snmp", params={"target": "192.0.2.80"},
                                 headers={"X-Prometheus-Scrape-Timeout-Seconds": "1"})
            assert r.status == 200 and "X-Sitevigil-Stale" in r.headers
        await sub.stop()

    run(go())
    assert fake_modules.calls[0] == ("192.0.2.80", ("system", "interfaces"))
    # /snmp devices are not added to the polled set.
    assert [d.target for d in sub.poller.devices()] == ["203.0.113.9"]


def test_subsystem_polls_the_agents_the_inventory_knows_and_those_a_sweep_announces(fake_modules):
    from probe.subsystems import snmp as snmp_service
    from probe.subsystems.base import Context
    from probe.subsystems.devices import DiscoveredHost

    ctx = Context(store=Store("", memory=True))
    ctx.devices.discovered = lambda: [DiscoveredHost("192.0.2.90", None, "c", None, None, None),
                                      DiscoveredHost("198.51.100.90", None, "c", None, None, None)]
    sub = snmp_service.SnmpSubsystem(config(), ctx)

    async def go():
        await sub.start()
        assert [d.address for d in sub.poller.devices()] == ["192.0.2.90"]  # the other is outside the subnets
        assert sub.poller.cred_memory.get("192.0.2.90", 161) == "c"
        assert sub.add_discovered in ctx.devices.on_agent
        for listener in ctx.devices.on_agent:   # what Devices.record_sweep does for an agent a sweep found
            listener(DiscoveredHost("192.0.2.91", None, "b", None, None, None))
        assert sorted(d.address for d in sub.poller.devices()) == ["192.0.2.90", "192.0.2.91"]
        await sub.stop()
        assert sub.add_discovered not in ctx.devices.on_agent
    asyncio.run(go())
    d = sub.describe()
    assert d["discovered"] == 2 and d["credentials"] == ["a", "b", "c"]
    assert "community" not in repr(d)


def test_per_target_timeout_and_retries_reach_the_session(fake_modules):
    seen = {}

    class Recording(FakeEngine):
        async def session(self, address, cred, **kw):
            seen[address] = (kw["timeout"], kw["retries"])
            return await super().session(address, cred, **kw)

    cfg = config(timeout=Duration(2), retries=1,
                 targets=(SnmpTarget(address="192.0.2.50", timeout=Duration(7), retries=4),
                          SnmpTarget(address="192.0.2.51")))
    poller = pollmod.SnmpPoller(cfg, engine=Recording({"192.0.2.50": {"a": "ok"}, "192.0.2.51": {"a": "ok"}}))
    run(poller.poll_round())
    assert seen == {"192.0.2.50": (7.0, 4), "192.0.2.51": (2.0, 1)}


def test_target_overrides_load_from_yaml_with_located_errors():
    from probe.config import ConfigError, load_text

    cfg = load_text("snmp:\n  targets:\n    - {address: 192.0.2.9, timeout: 5s, retries: 3}\n")
    t = cfg.snmp.targets[0]
    assert (t.timeout, t.retries) == (5.0, 3)
    with pytest.raises(ConfigError) as exc:
        load_text("snmp:\n  targets:\n    - {address: 192.0.2.9, retries: 50}\n", file="x.yml")
    assert "x.yml:3: snmp.targets[0].retries: must be between 0 and 10, got 50" in str(exc.value)


def test_the_scheduler_always_stops_when_cancelled_even_while_polls_finish(fake_modules):
    answers = {f"192.0.2.{i}": {"a": "ok"} for i in range(100, 110)}
    cfg = config(counters_interval=Duration(0.01), inventory_interval=Duration(0.02),
                 targets=tuple(SnmpTarget(address=ip) for ip in answers))
    poller = pollmod.SnmpPoller(cfg, engine=FakeEngine(answers))
    for d in poller.devices():
        d.next_fast = 1.0  # due at once: polls finish (and wake the scheduler) all the time

    async def go():
        for i in range(40):
            task = asyncio.ensure_future(poller.run())
            await asyncio.sleep(0.001 * (i % 7))
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=5)
            assert done, f"scheduler ignored cancellation on try {i}"

    run(go())
    assert len(fake_modules.calls) > 10


def test_reload_with_changed_credentials_selects_again(fake_modules):
    answers = {"192.0.2.72": {"a": "ok", "b": "ok"}}
    eng = FakeEngine(answers)
    cfg = config(targets=(SnmpTarget(address="192.0.2.72"),))
    poller = pollmod.SnmpPoller(cfg, engine=eng)
    run(poller.poll_round())
    dev = poller.devices()[0]
    assert dev.session is not None
    poller.set_config(config(targets=(SnmpTarget(address="192.0.2.72"),)))  # the same: keep the session
    assert dev.session is not None
    poller.set_config(config(targets=(SnmpTarget(address="192.0.2.72"),),
                             credentials=(cred("a", "new-community"), cred("b"))))
    assert dev.session is None


def test_a_name_that_does_not_resolve_is_a_reported_error_not_a_crash(fake_modules):
    from probe.sources.snmp.client import SnmpError

    class Unresolvable(FakeEngine):
        async def session(self, address, cred, **kw):
            raise SnmpError(f"cannot resolve {address!r}: Name or service not known")

    cfg = config(targets=(SnmpTarget(address="printer.invalid"),))
    poller = pollmod.SnmpPoller(cfg, engine=Unresolvable({}))
    run(poller.poll_round())
    dev = poller.devices()[0]
    assert dev.modules["system"].result.error_class == "unreachable"
    assert "cannot resolve 'printer.invalid'" in dev.last_error


def test_backoff_for_devices_that_do_not_answer():
    assert [pollmod.backoff(n) for n in range(9)] == [1, 1, 1, 2, 4, 8, 16, 16, 16]


def test_a_dead_device_is_asked_less_often(fake_modules):
    answers = {"192.0.2.110": {"a": "ok"}}  # .111 answers nothing at all
    cfg = config(counters_interval=Duration(0.05), inventory_interval=Duration(10),
                 targets=(SnmpTarget(address="192.0.2.110"), SnmpTarget(address="192.0.2.111")))
    eng = FakeEngine(answers)
    poller = pollmod.SnmpPoller(cfg, engine=eng)

    async def go():
        task = asyncio.ensure_future(poller.run())
        await asyncio.sleep(1.5)
        task.cancel()
        await asyncio.wait({task}, timeout=5)

    run(go())
    live = sum(1 for t, _ in fake_modules.calls if t == "192.0.2.110")
    dead_polls = poller.device("192.0.2.111", transient=False).modules["system"].polls
    assert live >= 15
    assert dead_polls <= 8 < live  # 1.5 s / 0.05 s = 30 intervals, but backing off: 1,1,1,2,4,8,16


def test_modules_are_chosen_again_after_the_device_restarted(fake_modules):
    poller = pollmod.SnmpPoller(config(), engine=FakeEngine({"192.0.2.120": {"a": "ok"}}))
    dev = poller.device("192.0.2.120")
    run(poller.poll(dev))
    orig = fake_modules.poll_device

    async def rebooted(client, memory, **kw):
        res = await orig(client, memory, **kw)
        res.modules["system"].data = {"sys": {"rebooted": True}}
        return res

    fake_modules.poll_device = rebooted
    run(poller.poll(dev, kind="fast"))
    fake_modules.poll_device = orig
    run(poller.poll(dev, kind="fast"))
    run(poller.poll(dev, kind="fast"))
    assert [m for _, m in fake_modules.calls] == [None, ("system", "interfaces"), None, ("system", "interfaces")]
