"""The SNMPv3 side of the notification receiver against Net-SNMP's own senders: `snmptrap -v3` (the sender
authoritative, its engine ID given with -e) and `snmpinform -v3` (the receiver authoritative: snmpinform
discovers our engine ID and clock through the Reports we send, then must get our Response) sending to
the receiver subsystem on 127.0.0.1 at a high port. Loopback only, bounded waits. A wrong key is never
accepted, and an inform with one is never acknowledged (snmpinform times out)."""
from __future__ import annotations

import asyncio

import pytest

from probe.sources.snmp import mibtables as T
from tests.integration.test_snmp_traps_netsnmp import SNMPINFORM, SNMPTRAP, UPLINK, _listener, _run, _settle, \
    needs_netsnmp
from tests.helpers import wait_for_async
from tests.unit.test_snmp_traps import polled_device

pytestmark = pytest.mark.peer

USERS = """  credentials:
    - {name: v3-strong, version: "3", username: ops256, auth_protocol: SHA256, auth_key: auth-key-256,
       priv_protocol: AES256, priv_key: priv-key-256}
    - {name: v3-legacy, version: "3", username: opsmd5, auth_protocol: MD5, auth_key: auth-key-md5,
       priv_protocol: DES, priv_key: priv-key-des}
    - {name: v3-sha, version: "3", username: opssha, auth_protocol: SHA, auth_key: auth-key-sha,
       priv_protocol: AES, priv_key: priv-key-aes}
"""
LINK_DOWN, LINK_UP = "1.3.6.1.6.3.1.1.5.3", "1.3.6.1.6.3.1.1.5.4"
# Net-SNMP's names of our protocols
NETSNMP_AUTH = {"SHA256": "SHA-256", "MD5": "MD5", "SHA": "SHA"}
NETSNMP_PRIV = {"AES256": "AES-256", "DES": "DES", "AES": "AES"}
USER_ARGS = {
    "ops256": ("SHA256", "auth-key-256", "AES256", "priv-key-256"),
    "opsmd5": ("MD5", "auth-key-md5", "DES", "priv-key-des"),
    "opssha": ("SHA", "auth-key-sha", "AES", "priv-key-aes"),
}


def _v3(user: str, *, auth_key: str | None = None) -> list[str]:
    auth, akey, priv, pkey = USER_ARGS[user]
    return ["-v3", "-u", user, "-l", "authPriv", "-a", NETSNMP_AUTH[auth], "-A", auth_key or akey,
            "-x", NETSNMP_PRIV[priv], "-X", pkey]


def _link_vbs(state: str) -> list[str]:
    link = [T.OID["ifIndex"], T.OID["ifAdminStatus"], T.OID["ifOperStatus"]]
    return [x for o, v in zip(link, ("3", "1", state)) for x in (".".join(map(str, o)) + ".3", "i", v)]


@needs_netsnmp
def test_snmptrap_v3_authpriv_reaches_the_ledger_and_a_wrong_key_does_not(tmp_path):
    sub, ctx, dest = _listener("", polled_device("127.0.0.1", [UPLINK]), USERS)

    async def run():
        await sub.start()
        assert sub.status.health.value == "ok", sub.status.reason
        try:
            for i, user in enumerate(("ops256", "opsmd5", "opssha")):
                engine = f"8000000005{i + 1:02x}aabbccddeeff"  # each sender its own authoritative engine
                assert await _run(SNMPTRAP, *_v3(user), "-e", engine, dest, "", LINK_DOWN, *_link_vbs("2"),
                                  tmp=tmp_path) == 0
                await _settle(sub, i + 1)
            assert sub.handled_total == 3 and sum(sub.metrics()["dropped"].values()) == 0, sub.describe()
            [ep] = ctx.ledger.open_episodes()
            assert (ep.finding.kind, ep.finding.subject) == ("uplink_down", "ifIndex 3 (Gi0/3)")
            assert ep.finding.evidence["snmp_version"] == "3"
            # the same user with another auth key: counted as wrong_digest, nothing handled
            assert await _run(SNMPTRAP, *_v3("ops256", auth_key="not-the-key"), "-e", "80000000050faabbccddeeff",
                              dest, "", LINK_UP, tmp=tmp_path) == 0
            await wait_for_async(lambda: sub.metrics()["dropped"]["wrong_digest"] == 1, 5, "the wrong-key trap dropped")
            assert sub.handled_total == 3
        finally:
            await sub.stop()

    asyncio.run(run())


@needs_netsnmp
def test_snmpinform_v3_is_acknowledged_and_a_wrong_key_is_not(tmp_path):
    sub, ctx, dest = _listener(", confirm_poll: false", polled_device("127.0.0.1", [UPLINK]), USERS)

    async def run():
        await sub.start()
        try:
            # discovery (a Report with our engine ID), clock sync (a signed notInTimeWindows Report), then
            # the inform: snmpinform exits 0 only on our Response
            for n, user in enumerate(("ops256", "opsmd5"), start=1):
                assert await _run(SNMPINFORM, *_v3(user), "-t", "2", "-r", "1", dest, "", LINK_DOWN,
                                  *_link_vbs("2"), tmp=tmp_path) == 0
                await _settle(sub, n)
            assert sub.metrics()["informs_acknowledged"] == 2
            [ep] = ctx.ledger.open_episodes()
            assert ep.finding.kind == "uplink_down"
            v3 = sub.describe()
            assert v3["usm_stats"]["unknownEngineIDs"] >= 2 and v3["v3_reports_sent"] >= 2
            # a wrong auth key: the Report says wrongDigests, no Response, snmpinform gives up
            assert await _run(SNMPINFORM, *_v3("ops256", auth_key="not-the-key"), "-t", "1", "-r", "0", dest, "",
                              LINK_UP, tmp=tmp_path) != 0
            m = sub.metrics()
            assert m["dropped"]["wrong_digest"] >= 1 and m["informs_acknowledged"] == 2
            assert sub.handled_total == 2
        finally:
            await sub.stop()

    asyncio.run(run())
