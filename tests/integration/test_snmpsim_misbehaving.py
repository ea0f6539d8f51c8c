"""Agents that answer late, answer wrong or stop mid-walk, served by snmpsim (the real peer) with its
`error` and `delay` variation modules on loopback, polled in one round by the daemon's SNMP poller
beside a healthy agent. Each misbehaving target is classified in the metrics (sitevigil_snmp_up and
sitevigil_snmp_poll_error_info{class} per target and module, timeouts, module problems), the other
targets get exactly what they get alone, and /metrics keeps answering at once while a slow device's
poll is in flight.

The recordings (tests/data/snmp/misbehaving/) are ../shared/data/snmp/librenms/snmprec/
edgeswitch_usw-5-flex-v2.snmprec with one or two lines changed (test_recordings_are_the_real_one_
with_a_few_lines_changed says which):
  generr    ifInOctets.2 `:error` genError     - the interface walk fails mid-table with an error status
  noaccess  sysUpTime.0 `:error` noAccess      - the agent refuses what the credential should see
  stall     ifInOctets.2 `:delay` wait=100000  - snmpsim drops the answer: the agent stops mid-walk
  wrongtype sysUpTime.0, ifInOctets.2 as OCTET STRINGs
  late      sysUpTime.0 `:delay` wait=400      - within the 1.5 s timeout: still a success
  slow      sysUpTime.0 `:delay` wait=2500     - beyond its 1 s timeout: a timeout
snmpsim's delay sleeps in its only thread, so `late` and `slow` each get their own responder (else
they would delay every other target: that would test snmpsim, not us); the rest share one responder
on several UDP ports, one per target.
"""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from probe.config import Config, Secret, SnmpConfig, SnmpCredential, SnmpTarget
from probe.config.schema import Duration
from probe.exposition.snmp_poll_collector import SnmpPollCollector, data_collector
from probe.sources.snmp.modules import DeviceMemory, poll_device
from probe.sources.snmp.poller import SnmpPoller
from probe.sources.snmp.snmprec import SnmprecClient
from tests.snmpsim_lab import Snmpsim, SnmpsimUnavailable

pytestmark = pytest.mark.peer

DATA = Path(__file__).resolve().parent.parent / "data" / "snmp" / "misbehaving"
REAL = "edgeswitch_usw-5-flex-v2"
SHARED = ("generr", "noaccess", "stall", "wrongtype")   # one responder, a port each
ALONE = ("late", "slow")                                # a responder each
TIMEOUT = 1.5


def rec(name: str) -> Path:
    return DATA / f"edgeswitch-{name}.snmprec"


@pytest.fixture(scope="module")
def real_recording(shared_data) -> Path:
    path = shared_data / "snmp" / "librenms" / "snmprec" / f"{REAL}.snmprec"
    if not path.exists():
        pytest.skip(f"{path} missing")
    return path


def test_recordings_are_the_real_one_with_a_few_lines_changed(real_recording):
    real = real_recording.read_text().splitlines()
    changed = {}
    for name in SHARED + ALONE:
        ours = rec(name).read_text().splitlines()
        assert [line.split("|")[0] for line in ours] == [line.split("|")[0] for line in real], name
        changed[name] = sorted(o.split("|", 1)[0] for o, r in zip(ours, real) if o != r)
    up, ifin2 = "1.3.6.1.2.1.1.3.0", "1.3.6.1.2.1.2.2.1.10.2"
    assert changed == {"generr": [ifin2], "noaccess": [up], "stall": [ifin2], "wrongtype": [up, ifin2],
                       "late": [up], "slow": [up]}
    assert "|65:error|op=get,status=genError" in rec("generr").read_text()
    assert "|67:delay|value=892281092,wait=400" in rec("late").read_text()


@pytest.fixture(scope="module")
def polled(real_recording):
    sims = [Snmpsim([real_recording] + [rec(n) for n in SHARED], extra_ports=len(SHARED))]
    sims += [Snmpsim([rec(n)]) for n in ALONE]
    try:
        for s in sims:
            s.start()
    except SnmpsimUnavailable as exc:
        for s in sims:
            s.stop()
        pytest.skip(f"snmpsim unavailable: {exc}")
    try:
        main = sims[0]
        ports = {REAL: main.port, **dict(zip(SHARED, main.extra_ports)), **{n: s.port for n, s in zip(ALONE, sims[1:])}}
        communities = {REAL: REAL, **{n: f"edgeswitch-{n}" for n in SHARED + ALONE}}
        creds = tuple(SnmpCredential(name=n, version="2c", community=Secret(c)) for n, c in communities.items())
        targets = tuple(
            SnmpTarget(address="127.0.0.1", port=ports[n], credentials=(n,),
                       **({"timeout": Duration(1), "retries": 0} if n == "slow" else {}))
            for n in communities)
        cfg = Config(snmp=SnmpConfig(credentials=creds, targets=targets, timeout=Duration(TIMEOUT), retries=1,
                                     poll_discovered=False))
        yield asyncio.run(_poll_and_scrape(cfg)), {n: f"127.0.0.1:{p}" for n, p in ports.items()}
    finally:
        for s in sims:
            s.stop()


async def _poll_and_scrape(cfg):
    poller = SnmpPoller(cfg)
    reg = CollectorRegistry()
    reg.register(SnmpPollCollector(poller.devices))
    reg.register(data_collector(poller.devices))
    scrapes = []  # (seconds the scrape took, targets still being polled)
    try:
        round_ = asyncio.ensure_future(poller.poll_round())
        while not round_.done():
            await asyncio.sleep(0.25)
            busy = sum(d.lock.locked() for d in poller.devices())
            t = time.monotonic()
            generate_latest(reg)  # raises if any device's state breaks the exposition
            scrapes.append((time.monotonic() - t, busy))
        await round_
        text = generate_latest(reg).decode()
        devices = {d.target: d for d in poller.devices()}
        # A second round: the poller keeps serving every target after the misbehaviour.
        await poller.poll_round()
        second = {d.target: {n: st.result.ok for n, st in d.modules.items()} for d in poller.devices()}
        return text, devices, scrapes, second
    finally:
        await poller.stop()
        poller.engine.close()


def samples(text: str) -> dict:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def metric(m, name, target, module, **extra):
    return m.get((name, tuple(sorted({"target": target, "module": module, **extra}.items()))))


def error_classes(m, target) -> dict:
    return {dict(k[1])["module"]: dict(k[1])["class"] for k, v in m.items()
            if k[0] == "sitevigil_snmp_poll_error_info" and dict(k[1])["target"] == target and v == 1}


@pytest.mark.timeout(180)
def test_each_misbehaving_agent_is_classified_per_target(polled):
    (text, devices, _, _), t = polled
    m = samples(text)
    up = lambda name, module: metric(m, "sitevigil_snmp_up", t[name], module)  # noqa: E731

    # The healthy agent: every module up, no error class.
    assert up(REAL, "system") == 1 and up(REAL, "interfaces") == 1 and not error_classes(m, t[REAL])

    # genErr in the middle of ifTable: only the interface module fails, as a protocol error.
    assert up("generr", "system") == 1 and error_classes(m, t["generr"]) == {"interfaces": "protocol"}
    assert "agent answered genErr" in devices[t["generr"]].modules["interfaces"].result.error

    # noAccess on sysUpTime.0: an access refusal (auth), and the modules behind system are skipped.
    cls = error_classes(m, t["noaccess"])
    assert cls.pop("system") == "auth" and cls and set(cls.values()) == {"skipped"}
    assert "agent answered noAccess" in devices[t["noaccess"]].modules["system"].result.error

    # Stops answering mid-walk: the interface walk times out (after its retry), the rest is fine.
    assert up("stall", "system") == 1 and error_classes(m, t["stall"]) == {"interfaces": "timeout"}
    assert metric(m, "sitevigil_snmp_timeouts_total", t["stall"], "interfaces") >= 2

    # Wrong types: polled, and the unusable values are counted as module problems, located.
    assert up("wrongtype", "system") == 1 and up("wrongtype", "interfaces") == 1
    dev = devices[t["wrongtype"]]
    problems = {n: st.result.problems for n, st in dev.modules.items() if st.result.problems}
    assert any("sysUpTime" in p for p in problems.get("system", [])), problems
    assert any("ifInOctets.2" in p for p in problems.get("interfaces", [])), problems
    assert metric(m, "sitevigil_snmp_module_problems", t["wrongtype"], "interfaces") >= 1

    # Late within the timeout: a success that took the agent's 0.4 s, no timeout counted.
    assert up("late", "system") == 1 and not error_classes(m, t["late"])
    assert 0.4 <= metric(m, "sitevigil_snmp_poll_duration_seconds", t["late"], "system") < TIMEOUT
    assert metric(m, "sitevigil_snmp_timeouts_total", t["late"], "system") == 0

    # Later than its 1 s timeout: a timeout, counted.
    assert error_classes(m, t["slow"]).get("system") == "timeout"
    assert metric(m, "sitevigil_snmp_timeouts_total", t["slow"], "system") >= 1


@pytest.mark.timeout(180)
def test_other_targets_get_what_they_get_alone(polled, real_recording):
    (_, devices, _, second), t = polled
    alone = asyncio.run(poll_device(SnmprecClient.from_file(real_recording), DeviceMemory(), target="alone"))
    keep = ("index", "name", "descr", "speed_bps", "in_octets", "out_octets", "oper_status")
    want = [{k: i.get(k) for k in keep} for i in alone.data()["interfaces"]]
    assert want
    for name in (REAL, "late"):  # late: same recording but for the delay on sysUpTime.0
        got = devices[t[name]].data()
        assert [{k: i.get(k) for k in keep} for i in got["interfaces"]] == want, name
    # The failures are the misbehaving devices' own: the second round classifies them the same way
    # and the healthy targets stay up.
    assert all(second[t[REAL]].values()) and all(second[t["late"]].values())
    assert second[t["generr"]]["system"] and not second[t["generr"]]["interfaces"]
    assert not second[t["slow"]]["system"]


@pytest.mark.timeout(180)
def test_metrics_keep_answering_while_a_device_is_slow(polled):
    (_, _, scrapes, _), _ = polled
    during = [s for s, busy in scrapes if busy]
    assert during, scrapes  # scraped while devices were still being polled (the stalled walk takes ~6 s)
    assert max(during) < 0.5, scrapes

