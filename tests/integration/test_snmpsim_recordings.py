"""Every LibreNMS recording served by snmpsim (the real peer) on loopback and polled through a real
pysnmp client: what the modules report matches LibreNMS's discovery wherever the recording holds it
(same generic comparison as the fake-client unit test, tests/snmp_expected.py)."""
from __future__ import annotations

import asyncio

import pytest

from probe.sources.snmp.modules import DeviceMemory, poll_device
from probe.sources.snmp.snmprec import SnmprecClient
from tests.conftest import shared_data_dir
from tests.snmp_expected import compare, load_expected, required_areas
from tests.snmpsim_lab import Snmpsim, SnmpsimUnavailable

RECORDINGS = sorted((shared_data_dir() / "snmp" / "librenms" / "snmprec").glob("*.snmprec"))

pytestmark = pytest.mark.peer


class Clients:
    """The real client under test: the project's engine (probe/sources/snmp/engine.py) when it is
    there, else the minimal pysnmp client in tests/ (one SnmpEngine per event loop either way)."""

    def __init__(self):
        try:
            from probe.sources.snmp.engine import Engine
        except ImportError:
            Engine = None
        self.kind = "engine" if Engine is not None else "pysnmp-test-client"
        if Engine is not None:
            self.engine = Engine.for_running_loop()
        else:
            from pysnmp.hlapi.v3arch.asyncio import SnmpEngine
            self.engine = SnmpEngine()

    async def client(self, port: int, community: str, *, timeout: float = 2.0, retries: int = 1):
        if self.kind == "engine":
            from probe.config.schema import Secret
            from probe.config.snmp import SnmpCredential

            cred = SnmpCredential(name="test", version="2c", community=Secret(community, "test"))
            return await self.engine.session("127.0.0.1", cred, port=port, timeout=timeout, retries=retries,
                                             max_repetitions=25)
        from tests.snmp_pysnmp_client import PysnmpTestClient

        return PysnmpTestClient(self.engine, "127.0.0.1", port, community, timeout=timeout, retries=retries,
                                max_repetitions=25)

    def close(self):
        if self.kind == "engine":
            self.engine.close()
        else:
            self.engine.close_dispatcher()


@pytest.fixture(scope="module")
def snmpsim(shared_data):
    if not RECORDINGS:
        pytest.skip("no recordings")
    sim = Snmpsim(RECORDINGS)
    try:
        sim.start()
    except SnmpsimUnavailable as exc:
        sim.stop()
        pytest.skip(f"snmpsim unavailable: {exc}")
    yield sim
    sim.stop()


@pytest.mark.timeout(120)
def test_every_recording_through_snmpsim_matches_librenms(snmpsim):
    async def poll_all():
        clients = Clients()
        sem = asyncio.Semaphore(8)

        async def one(rec):
            async with sem:
                client = await clients.client(snmpsim.port, rec.stem)
                return rec, client, await poll_device(client, DeviceMemory(), target=rec.stem)
        try:
            return await asyncio.gather(*(one(r) for r in RECORDINGS))
        finally:
            clients.close()

    failures = []
    for rec, client, result in asyncio.run(poll_all()):
        data = result.data()
        if "errors" in data:
            failures.append(f"{rec.stem}: module errors {data['errors']}")
            continue
        fake = SnmprecClient.from_file(rec)  # what the recording holds, to skip areas it lacks
        exp = load_expected(rec.parent.parent / "expected" / (rec.stem + ".json"))
        cmp = compare(rec.stem, data, exp, rec=fake)
        failures += cmp.mismatches
        unchecked = sorted(a for a in required_areas(exp, rec=fake) if not cmp.checked.get(a))
        if unchecked:
            failures.append(f"{rec.stem}: nothing compared for {unchecked}")
        assert result.modules["system"].pdus >= 1 and client.stats.pdus >= 2
    assert not failures, "\n".join(failures[:40])


def test_wrong_community_is_a_clean_timeout_per_device(snmpsim):
    async def go():
        clients = Clients()
        try:
            client = await clients.client(snmpsim.port, "no-such-device", timeout=0.3, retries=0)
            return await poll_device(client, DeviceMemory(), target="x")
        finally:
            clients.close()

    r = asyncio.run(go())
    assert not r.up
    # A wrong community is silence on the wire; the engine may tell it apart as "auth" (v3 probe).
    assert r.modules["system"].error_class in ("timeout", "auth")
    assert all(m.error_class == "skipped" for n, m in r.modules.items() if n != "system")


def test_second_poll_over_the_wire_uses_cached_labels_and_gets_by_index(snmpsim):
    rec = next((r for r in RECORDINGS if r.stem == "procurve_2520"), RECORDINGS[0])

    async def go():
        clients = Clients()
        try:
            client = await clients.client(snmpsim.port, rec.stem)
            mem = DeviceMemory()
            first = await poll_device(client, mem, target=rec.stem, modules=["system", "interfaces"])
            second = await poll_device(client, mem, target=rec.stem, modules=["system", "interfaces"])
            return first, second
        finally:
            clients.close()

    first, second = asyncio.run(go())
    assert first.modules["interfaces"].ok and second.modules["interfaces"].ok
    a, b = first.data(), second.data()
    assert b["interfaces_poll"]["labels"] == "cached" and not b["sys"]["rebooted"]
    keep = ("index", "name", "descr", "alias", "speed_bps", "in_octets", "out_octets", "oper_status")
    assert [{k: i[k] for k in keep} for i in a["interfaces"]] == [{k: i[k] for k in keep} for i in b["interfaces"]]
    if a["interfaces"]:
        # GETs by index (one varbind per known column) take fewer PDUs than the walks did.
        assert second.modules["interfaces"].pdus < first.modules["interfaces"].pdus
