"""The notification receiver against Net-SNMP's own senders: `snmptrap` (v1 and v2c) and `snmpinform` (v2c)
sending to the receiver subsystem listening on 127.0.0.1 at a high port. Loopback only, nothing leaves
the machine. An inform must be acknowledged (snmpinform exits 0 only when our Response matches its
request); one with a community we do not know must not be (snmpinform times out)."""
from __future__ import annotations

import asyncio
import os
import shutil
import socket

import pytest

from probe.config import load_text
from probe.findings.ledger import Ledger
from probe.sources.snmp import mibtables as T
from probe.subsystems.base import Context
from probe.subsystems.snmp_traps import SnmpTrapsSubsystem
from tests.helpers import wait_for_async
from tests.unit.test_snmp_traps import FakePoller, polled_device

pytestmark = pytest.mark.peer

SNMPTRAP, SNMPINFORM = shutil.which("snmptrap"), shutil.which("snmpinform")
needs_netsnmp = pytest.mark.skipif(not (SNMPTRAP and SNMPINFORM),
                                   reason="needs Net-SNMP's snmptrap and snmpinform (Debian package snmp)")
UPLINK = {"index": 3, "name": "Gi0/3", "alias": "uplink core", "oper_status": "down"}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _run(tool: str, *args: str, tmp) -> int:
    # Net-SNMP reads and writes its persistent state and config: keep both in the test's directory, load no MIBs
    env = dict(os.environ, SNMP_PERSISTENT_DIR=str(tmp), SNMPCONFPATH=str(tmp), MIBS="", MIBDIRS=str(tmp))
    p = await asyncio.create_subprocess_exec(tool, *args, env=env, stdout=asyncio.subprocess.PIPE,
                                             stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(p.communicate(), 30)
    return p.returncode


async def _settle(sub, n: int) -> None:
    await wait_for_async(lambda: sub.handled_total >= n, 5, f"{n} notifications handled (have {sub.handled_total})")


def _listener(traps: str, device, credentials: str = "") -> tuple[SnmpTrapsSubsystem, Context, str]:
    """The trap subsystem on a free loopback port (`traps`: the rest of its YAML mapping), with a ledger
    and a fake poller that knows `device`; returns it, its context and the address to send to."""
    port = _free_port()
    cfg = load_text(f"snmp:\n{credentials}  traps: {{listen_address: '127.0.0.1:{port}'{traps}}}\n")
    ctx = Context(store=None, ledger=Ledger.in_memory())
    ctx.snmp_poller = FakePoller([device])
    return SnmpTrapsSubsystem(cfg, ctx), ctx, f"127.0.0.1:{port}"


@needs_netsnmp
def test_snmptrap_v1_v2c_and_snmpinform_reach_the_ledger(tmp_path):
    sub, ctx, dest = _listener("", polled_device("127.0.0.1", [UPLINK]),
                               "  credentials: [{name: site, version: 2c, community: s1te-c0mm}]\n")
    link = [T.OID["ifIndex"], T.OID["ifAdminStatus"], T.OID["ifOperStatus"]]
    vbs = [x for o, v in zip(link, ("3", "1", "2")) for x in (".".join(map(str, o)) + ".3", "i", v)]

    async def run():
        await sub.start()
        assert sub.status.health.value == "ok", sub.status.reason
        try:
            # v1 coldStart (generic 0) from an enterprise agent
            assert await _run(SNMPTRAP, "-v1", "-c", "s1te-c0mm", dest, "1.3.6.1.4.1.8072.3.2.10", "127.0.0.1", "0",
                              "0", "", tmp=tmp_path) == 0
            # v2c linkDown on the uplink
            assert await _run(SNMPTRAP, "-v2c", "-c", "s1te-c0mm", dest, "", "1.3.6.1.6.3.1.1.5.3", *vbs,
                              tmp=tmp_path) == 0
            await _settle(sub, 2)
            kinds = {(e.finding.kind, e.finding.subject) for e in ctx.ledger.open_episodes()}
            assert kinds == {("device_rebooted", "restart 1"), ("uplink_down", "ifIndex 3 (Gi0/3)")}
            # v2c inform linkUp: acknowledged (snmpinform exits 0), and it closes the episode
            assert await _run(SNMPINFORM, "-v2c", "-c", "s1te-c0mm", "-t", "2", "-r", "1", dest, "",
                              "1.3.6.1.6.3.1.1.5.4", *vbs[:3], tmp=tmp_path) == 0
            await _settle(sub, 3)
            assert {e.finding.kind for e in ctx.ledger.open_episodes()} == {"device_rebooted"}
            # an inform with a community nobody configured: dropped, never acknowledged
            assert await _run(SNMPINFORM, "-v2c", "-c", "guessed", "-t", "0.5", "-r", "0", dest, "",
                              "1.3.6.1.6.3.1.1.5.4", tmp=tmp_path) != 0
            m = sub.metrics()
            assert m["informs_acknowledged"] == 1 and m["dropped"]["unknown_community"] == 1
            assert m["received"] == {("127.0.0.1", "SNMPv2-MIB::coldStart"): 1, ("127.0.0.1", "IF-MIB::linkDown"): 1,
                                     ("127.0.0.1", "IF-MIB::linkUp"): 1}
            assert ctx.snmp_poller.polls and set(ctx.snmp_poller.polls) == {"127.0.0.1"}
        finally:
            await sub.stop()
        assert sub.metrics()["listening"] is False

    asyncio.run(run())


@needs_netsnmp
def test_a_flood_of_snmptrap_from_one_source_is_rate_limited(tmp_path):
    sub, _, dest = _listener(", rate_per_source: 1, burst_per_source: 3, confirm_poll: false",
                             polled_device("127.0.0.1"))

    async def run():
        await sub.start()
        try:
            await asyncio.gather(*(_run(SNMPTRAP, "-v2c", "-c", "public", dest, "",
                                        "1.3.6.1.6.3.1.1.5.1", tmp=tmp_path) for _ in range(12)))
            await wait_for_async(lambda: sub.handled_total + sub.metrics()["dropped"]["rate_limited"] >= 12, 2,
                                 "all 12 traps handled or dropped")
            m = sub.metrics()
            assert m["dropped"]["rate_limited"] >= 12 - 3 - 2  # the burst, and at most ~2 s of refill
            assert sub.handled_total + m["dropped"]["rate_limited"] == 12
        finally:
            await sub.stop()

    asyncio.run(run())
