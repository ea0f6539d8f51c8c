"""What the SNMP subsystem builds from each poll (probe/subsystems/snmp_feed.py): findings into the ledger,
anomaly series per interface and storage, inventory sightings. Real modules over a recording
whose values change between polls; the ledger, the scores and the inventory are the real ones."""
from __future__ import annotations

import asyncio

import pytest

from probe.findings.ledger import Ledger
from probe.subsystems.devices import Devices
from probe.findings.snmp_rules import SnmpRules
from probe.subsystems.snmp_feed import SnmpFeed, interface_labels
from probe.sources.snmp.modules import MODULES, DeviceMemory, ModuleResult, poll_device
from probe.sources.snmp.poller import _Unreachable
from probe.sources.snmp.snmprec import SnmprecClient
from probe.state.anomaly import AnomalyScores
from probe.state.inventory import Inventory
from probe.state.store import Store
from tests.unit.test_snmp_collector import PRINTER_UPS
from tests.unit.test_snmp_modules import IF, IFX, INVENTORY, UPTIME

HR_USED = "1.3.6.1.2.1.25.2.3.1.6.1"
IN_OCTETS_1 = "1.3.6.1.2.1.31.1.1.1.6.1"   # ifHCInOctets.1 (the row has the 64-bit counter)


class Dev:
    """What the feed reads from the poller's Device."""

    def __init__(self, address="10.0.0.5"):
        self.address, self.target, self.credential = address, address, "lab"


class FakeSweep(Devices):
    """The daemon's Devices over a real Inventory, keeping the tables it was given."""

    def __init__(self):
        super().__init__(Inventory(None), Ledger.in_memory())
        self.tables: list[tuple[str, list]] = []

    def observe_table(self, rows, source, ts=None):
        rows = list(rows)
        self.tables.append((source, rows))
        return super().observe_table(rows, source, ts)


class Rig:
    def __init__(self, tmp_path, text=PRINTER_UPS, *, rules=None, sweep=None, max_series=1000):
        self.client = SnmprecClient.from_text(text)
        self.mem = DeviceMemory()
        self.now, self.ticks = 1_000_000.0, 100000
        self.ledger = Ledger(Store(str(tmp_path / "state.db")), clock=lambda: self.now)
        self.scores = AnomalyScores(max_series)
        self.feed = SnmpFeed(rules or SnmpRules(), ledger=self.ledger, anomaly=self.scores, devices=sweep,
                             clock=lambda: self.now)
        self.dev = Dev()

    def poll(self, advance=60.0, modules=None, **changes):
        self.now += advance
        self.ticks += int(advance * 100)
        self.client.set(UPTIME, self.ticks)
        for oid, value in changes.items():
            self.client.set(oid.replace("_", "."), value)
        r = asyncio.run(poll_device(self.client, self.mem, target=self.dev.target, now=self.now,
                                    modules=list(modules or MODULES)))
        return self._opened(lambda: self.feed.observe(self.dev, r))

    def fail(self, advance=60.0):
        self.now += advance
        r = _Unreachable(self.dev.target, {n: ModuleResult(n, False, error_class="timeout", error="no answer",
                                                           finished_at=self.now) for n in ("system", "interfaces")})
        return self._opened(lambda: self.feed.observe(self.dev, r))

    def _opened(self, poll):
        """The kinds whose ledger episode this poll opened."""
        before = {e.id for e in self.ledger.open_episodes()}
        poll()
        return sorted(e.finding.kind for e in self.ledger.open_episodes() if e.id not in before)

    def open_kinds(self):
        return {ep.finding.kind for ep in self.ledger.open_episodes()}


def test_findings_reach_the_ledger_once_per_episode(tmp_path):
    rig = Rig(tmp_path)
    first = rig.poll(advance=0)
    assert set(first) == {"ups_on_battery", "ups_runtime_short", "ups_battery_low"}
    assert rig.poll() == []                                   # same episodes: nothing new
    assert rig.poll(**{f"{IF}.14.2": 500}) == ["interface_errors_rising"]
    ep = next(e for e in rig.ledger.open_episodes() if e.finding.kind == "interface_errors_rising")
    assert ep.finding.device == "10.0.0.5" and ep.finding.evidence["in_errors_delta"] == 495
    assert ep.finding.evidence["subject"] == "ifIndex 2 (Gi0/2)"


def test_ongoing_conditions_are_reported_every_poll_and_cleared_ones_resolved(tmp_path):
    """The ledger is the one episode tracker: every poll reports what holds (so a week-long problem stays
    one open episode), and a condition clear for clear_polls polls resolves its episode at once."""
    rig = Rig(tmp_path, rules=SnmpRules(clear_polls=2))
    rig.poll(advance=0)
    for _ in range(3):
        assert rig.poll(advance=3000) == []               # far past any refresh: still the same episodes
    ep = next(e for e in rig.ledger.open_episodes() if e.finding.kind == "ups_on_battery")
    assert ep.occurrences == 4 and ep.finding.last_seen == rig.now
    rig.poll(**{f"{IF}.14.2": 500})
    assert "interface_errors_rising" in rig.open_kinds()
    rig.poll()
    assert "interface_errors_rising" in rig.open_kinds()  # one clear poll is not the end
    rig.poll()
    assert "interface_errors_rising" not in rig.open_kinds()
    row = rig.ledger.store.query("SELECT resolved_at FROM findings WHERE kind='interface_errors_rising'")
    assert row == [(rig.now,)]


def test_device_unreachable_after_n_failed_polls_and_cleared_by_an_answer(tmp_path):
    rig = Rig(tmp_path, rules=SnmpRules(unreachable_polls=3))
    rig.poll(advance=0)
    assert rig.fail() == [] and rig.fail() == []
    assert rig.fail() == ["device_unreachable"]
    assert rig.fail() == []                                   # still the same episode
    f = next(e for e in rig.ledger.open_episodes() if e.finding.kind == "device_unreachable").finding
    assert f.severity == "critical" and f.evidence["failed_polls"] == 4 and f.evidence["error_class"] == "timeout"  # latest
    assert f.evidence["answered_before"] is True and "no longer answers" in f.evidence["summary"]
    rig.poll()
    assert "device_unreachable" not in {k[0] for k in rig.feed.rules.active()}
    assert rig.fail() == [] and rig.fail() == []
    assert rig.fail() == ["device_unreachable"]               # a new episode in the rules after the answer


def test_a_device_that_never_answered_says_so(tmp_path):
    rig = Rig(tmp_path, rules=SnmpRules(unreachable_polls=2))
    assert rig.fail() == [] and rig.fail() == ["device_unreachable"]
    f = rig.ledger.open_episodes()[0].finding
    assert f.evidence["answered_before"] is False and "never answered" in f.evidence["summary"]


def test_interface_rates_and_storage_growth_are_scored_and_forgotten(tmp_path):
    rig = Rig(tmp_path)
    fed = {}
    update = rig.scores.update

    def spy(keys, ts, values):
        fed.update(zip(keys, values))
        return update(keys, ts, values)

    rig.scores.update = spy
    rig.poll(advance=0)
    rig.poll(advance=10, **{IN_OCTETS_1: 1000 + 1250, HR_USED: 300})   # 1250 octets in 10 s
    assert fed[("10.0.0.5", "if:Gi0/1:in_bps")] == pytest.approx(1000.0)
    assert fed[("10.0.0.5", "storage:/:growth_bytes_per_second")] == pytest.approx(50 * 4096 / 10)
    keys = set(rig.scores._slots)
    t = "10.0.0.5"
    assert (t, "if:Gi0/1:in_bps") in keys and (t, "if:Gi0/2:out_discards_per_second") not in keys
    assert (t, "if:Gi0/2:in_errors_per_second") in keys
    assert (t, "storage:/:growth_bytes_per_second") in keys
    assert rig.feed.samples_fed == len(keys)
    # the rate fed is delta * 8 / interval: an ordinary rate past the kernel's warm-up, then a burst
    octets = 1000 + 1250
    for i in range(110):
        octets += 1200 + 100 * (i % 3)
        rig.poll(advance=10, modules=["system", "interfaces"], **{IN_OCTETS_1: octets})
    calm = rig.scores.score_of((t, "if:Gi0/1:in_bps"))
    rig.poll(advance=10, **{IN_OCTETS_1: octets + 10**8})
    assert rig.scores.score_of((t, "if:Gi0/1:in_bps")) > max(calm, 0.3)
    # interface 2 disappears from the device: its series are forgotten, interface 1's kept
    for line in PRINTER_UPS.splitlines():
        oid = line.split("|")[0]
        if oid.startswith((f"{IF}.", IFX + ".")) and oid.endswith(".2"):
            rig.client.delete(oid)
    rig.client.set("1.3.6.1.2.1.2.1.0", 1)
    rig.poll(advance=10)
    keys = set(rig.scores._slots)
    assert not [k for k in keys if k[1].startswith("if:Gi0/2")]
    assert (t, "if:Gi0/1:in_bps") in keys
    # the device is no longer polled: all its series go
    assert rig.feed.prune(set()) == 1
    assert len(rig.scores) == 0 and not rig.feed.rules.devices()


def test_series_stay_within_the_scores_bound(tmp_path):
    rig = Rig(tmp_path, max_series=3)
    for _ in range(4):
        rig.poll(advance=10)
    assert len(rig.scores) <= 3 and rig.scores.evicted_total > 0


def test_interface_labels_are_unique():
    rows = [{"index": 1, "name": "eth0"}, {"index": 2, "name": "eth0"}, {"index": 3, "descr": "lo"}, {"index": 4}]
    assert interface_labels(rows) == {1: "eth0#1", 2: "eth0#2", 3: "lo", 4: "#4"}


def test_inventory_learns_the_agent_and_its_tables(tmp_path):
    sweep = FakeSweep()
    # the sweep knew the device by its MAC, with the credential its probe saw work
    sweep.inventory.observe("00:11:22:33:44:01", "10.0.0.5", source="sweep_arp", ts=1.0,
                            facts={"snmp": {"credential": "lab", "sys_descr": "old"}})
    rig = Rig(tmp_path, INVENTORY, sweep=sweep)
    rig.poll(advance=0)
    dev = sweep.inventory.get("00:11:22:33:44:01")
    assert dev.names["snmp"] == "sw1" and dev.snmp["sys_descr"] == "Test switch"
    assert dev.snmp["credential"] == "lab" and dev.snmp["sys_object_id"] == "1.3.6.1.4.1.8072.3.2.10"
    assert dev.type_evidence.get("rule", "").startswith("snmp.")   # classified from what the agent said
    assert len([d for d in sweep.inventory.devices.values() if d.ip == "10.0.0.5"]) == 1  # no duplicate by IP
    sources = {s for s, _ in sweep.tables}
    assert sources == {"snmp_arp", "snmp_fdb"}
    arp = dict((s, rows) for s, rows in sweep.tables)["snmp_arp"]
    assert ("00:aa:bb:cc:dd:07", "10.0.0.7") in arp
    assert sweep.inventory.get("00:aa:bb:cc:dd:07").ip == "10.0.0.7"
    assert "snmp_fdb" in sweep.inventory.get("00:11:22:33:44:55").sources


def test_unknown_agent_is_recorded_by_address(tmp_path):
    sweep = FakeSweep()
    rig = Rig(tmp_path, sweep=sweep)
    rig.poll(advance=0, modules=["system"])
    dev = sweep.inventory.get("ip:10.0.0.5")
    assert dev is not None and dev.snmp["sys_name"] == "sw1" and dev.snmp["credential"] == "lab"


def test_a_failing_part_does_not_stop_the_others(tmp_path):
    class Broken:
        def update(self, *a):
            raise RuntimeError("boom")

        def forget(self, keys):
            pass

    rig = Rig(tmp_path)
    rig.feed.anomaly = Broken()
    assert "ups_on_battery" in rig.poll(advance=0)


@pytest.mark.parametrize("bad", [{"interfaces": "nonsense"}, {"interfaces": [{"index": 1, "delta": None}]}])
def test_malformed_module_data_is_skipped(tmp_path, bad):
    rig = Rig(tmp_path)
    r = _Unreachable("10.0.0.5", {"interfaces": ModuleResult("interfaces", True, data=bad)})
    rig.feed._scores(rig.dev, r, rig.now)
    assert len(rig.scores) == 0 and rig.feed.samples_fed == 0  # nothing fed: no rate to score


def test_the_subsystem_wires_the_feed_and_exports_each_family_once(tmp_path):
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from probe.config import Config, SnmpConfig, SnmpTarget
    from probe.config.snmp import SnmpFindingsConfig
    from probe.subsystems.snmp import SnmpSubsystem
    from probe.subsystems.base import Context

    scores = AnomalyScores(100)
    cfg = Config(snmp=SnmpConfig(targets=(SnmpTarget(address="10.0.0.5"),),
                                 findings=SnmpFindingsConfig(unreachable_polls=4)))
    sub = SnmpSubsystem(cfg, Context(store=Store(str(tmp_path / "s.db")), anomaly=scores))
    assert sub.feed.observe in sub.poller.observers and sub.feed.rules.unreachable_polls == 4
    dev = sub.poller.devices()[0]
    client, mem = SnmprecClient.from_text(PRINTER_UPS), DeviceMemory()
    for now in (1000.0, 1060.0):
        r = asyncio.run(poll_device(client, mem, target=dev.target, now=now, modules=list(MODULES)))
        dev.record(r)
        sub.poller._notify(dev, r)
    assert {e.finding.kind for e in sub.ctx.ledger.open_episodes()} >= {"ups_on_battery", "ups_runtime_short"}
    assert len(scores) > 0
    reg = CollectorRegistry(auto_describe=False)
    for c in sub.collectors():
        reg.register(c)
    names = [fam.name for fam in text_string_to_metric_families(generate_latest(reg).decode())]
    assert "sitevigil_snmp_up" in names and "sitevigil_snmp_if_receive_errors" in names
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    # the device is dropped from the config: its state goes with it
    asyncio.run(sub.reload(Config(snmp=SnmpConfig(findings=SnmpFindingsConfig(unreachable_polls=2)))))
    assert sub.feed.rules.unreachable_polls == 2 and len(scores) == 0 and not sub.feed.rules.devices()
