"""The SNMP notification receiver: decoding (v1 traps, v2c traps and informs, and everything malformed),
the inform acknowledgement, the listener's bounds (rate limit per source, bounded sources, bounded queue,
unknown communities), the trap rules and the subsystem that turns notifications into findings and
confirming polls. Encodings come from pysnmp's codec and the shared capture, never from our own encoder
alone; Net-SNMP's snmptrap/snmpinform are in tests/integration/test_snmp_traps_netsnmp.py."""
from __future__ import annotations

import asyncio
import shutil
import subprocess

import pytest

from probe.config import load_text
from probe.findings.ledger import Ledger
from probe.findings.model import Cleared
from probe.findings.trap_rules import DeviceView, TrapRules, oid_name, trap_name
from probe.sources.snmp import ber
from probe.sources.snmp import mibtables as T
from probe.sources.snmp.traps import (
    DROP_REASONS, Notification, RateLimiter, Received, TrapDropped, TrapListener, decode_notification,
    inform_response, v1_trap_oid,
)

from pysnmp.proto.api import v2c  # noqa: E402
from pyasn1.codec.ber import decoder as pyasn1_decoder  # noqa: E402
from pyasn1.codec.ber import encoder as pyasn1_encoder  # noqa: E402

LINK_DOWN = T.NOTIFY["linkDown"]
IF_INDEX = T.OID["ifIndex"]


def v2_message(pdu_cls, community: bytes, request_id: int, varbinds) -> bytes:
    """A v2c notification encoded by pysnmp (an independent encoder)."""
    pdu = pdu_cls()
    v2c.apiPDU.set_defaults(pdu)
    v2c.apiPDU.set_request_id(pdu, request_id)
    v2c.apiPDU.set_varbinds(pdu, varbinds)
    msg = v2c.Message()
    v2c.apiMessage.set_defaults(msg)
    v2c.apiMessage.set_community(msg, community)
    v2c.apiMessage.set_pdu(msg, pdu)
    return pyasn1_encoder.encode(msg)


def link_down(community=b"public", request_id=7, idx=3, inform=False, uptime=12345) -> bytes:
    return v2_message(v2c.InformRequestPDU if inform else v2c.SNMPv2TrapPDU, community, request_id, [
        ((1, 3, 6, 1, 2, 1, 1, 3, 0), v2c.TimeTicks(uptime)),
        ((1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0), v2c.ObjectIdentifier(LINK_DOWN)),
        (IF_INDEX + (idx,), v2c.Integer(idx)),
        (T.OID["ifAdminStatus"] + (idx,), v2c.Integer(1)),
        (T.OID["ifOperStatus"] + (idx,), v2c.Integer(2)),
    ])


# -- decoding -------------------------------------------------------------------------------------------

def _udp_payloads(path):
    import scapy.all as scapy
    return [(p[scapy.IP].src, bytes(p[scapy.UDP].payload)) for p in scapy.rdpcap(str(path)) if scapy.UDP in p]


def test_the_shared_v1_capture_is_a_cold_start_from_its_agent(shared_data):
    path = shared_data / "pcap" / "snmp_v1_trap.pcap"
    [(src, payload)] = _udp_payloads(path)
    note = decode_notification(payload)
    assert isinstance(note, Notification), note
    assert note.version == ber.V1 and note.community == b"public" and note.pdu_type == ber.TRAP_V1
    assert trap_name(note.trap_oid) == "SNMPv2-MIB::coldStart"
    assert note.generic_trap == 0 and note.enterprise == (1, 3, 6, 1, 4, 1, 31337, 0)
    assert note.agent_addr == "127.0.0.1" and note.uptime_ticks == 0
    assert [(oid_name(v.oid), v.value) for v in note.varbinds] == [("IF-MIB::ifNumber.0", 33)]
    if shutil.which("tshark"):  # the reference decoder agrees field by field
        out = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-e", "snmp.agent_addr", "-e",
                              "snmp.generic_trap", "-e", "snmp.enterprise", "-e", "snmp.community"],
                             capture_output=True, text=True, check=True).stdout.split()
        assert out == [note.agent_addr, str(note.generic_trap), "1.3.6.1.4.1.31337.0", "public"]


def test_v1_generic_and_enterprise_traps_translate_as_rfc3584_says():
    ent = (1, 3, 6, 1, 4, 1, 9)
    assert [trap_name(v1_trap_oid(ent, g, 0)) for g in range(5)] == [
        "SNMPv2-MIB::coldStart", "SNMPv2-MIB::warmStart", "IF-MIB::linkDown", "IF-MIB::linkUp",
        "SNMPv2-MIB::authenticationFailure"]
    assert v1_trap_oid(ent, 6, 17) == ent + (0, 17)


def test_v2c_trap_and_inform_from_pysnmp():
    note = decode_notification(link_down())
    assert isinstance(note, Notification) and note.pdu_type == ber.TRAP_V2 and not note.is_inform
    assert note.trap_oid == LINK_DOWN and note.uptime_ticks == 12345 and note.request_id == 7
    assert [oid_name(v.oid) for v in note.varbinds] == ["IF-MIB::ifIndex.3", "IF-MIB::ifAdminStatus.3",
                                                       "IF-MIB::ifOperStatus.3"]
    inform = decode_notification(link_down(inform=True, request_id=0x7FFFFFFF))
    assert inform.is_inform and inform.request_id == 0x7FFFFFFF


def test_the_inform_response_pysnmp_reads_carries_the_request_id_and_varbinds():
    raw = link_down(inform=True, request_id=4242)
    reply = inform_response(decode_notification(raw))
    msg, rest = pyasn1_decoder.decode(reply, asn1Spec=v2c.Message())
    assert rest == b""
    pdu = v2c.apiMessage.get_pdu(msg)
    assert pdu.isSameTypeWith(v2c.ResponsePDU()) and int(v2c.apiPDU.get_request_id(pdu)) == 4242
    assert int(v2c.apiPDU.get_error_status(pdu)) == 0
    assert str(v2c.apiMessage.get_community(msg)) == "public"
    sent = v2c.apiPDU.get_varbinds(v2c.apiMessage.get_pdu(pyasn1_decoder.decode(raw, asn1Spec=v2c.Message())[0]))
    got = v2c.apiPDU.get_varbinds(pdu)
    assert [(tuple(o), v.prettyPrint()) for o, v in got] == [(tuple(o), v.prettyPrint()) for o, v in sent]
    with pytest.raises(ValueError):
        inform_response(decode_notification(link_down()))  # a trap is never answered


def test_every_truncation_and_garbage_is_a_counted_drop_never_an_exception():
    good = link_down(inform=True)
    for n in range(len(good)):
        got = decode_notification(good[:n])
        assert isinstance(got, TrapDropped) and got.reason == "malformed", (n, got)
        assert got.detail
    assert decode_notification(good + b"\x00").reason == "malformed"
    import random
    rnd = random.Random(15)
    for _ in range(3000):  # bytes flipped at random: a notification or a reasoned drop, nothing else
        b = bytearray(good)
        for _ in range(rnd.randint(1, 4)):
            b[rnd.randrange(len(b))] = rnd.randrange(256)
        got = decode_notification(bytes(b))
        assert isinstance(got, (Notification, TrapDropped))
        if isinstance(got, TrapDropped):
            assert got.reason in DROP_REASONS


def test_drops_say_what_was_wrong():
    get = ber.encode_request(ber.V2C, b"public", ber.GET, 1, [(1, 3, 6, 1, 2, 1, 1, 3, 0)])
    got = decode_notification(get)
    assert got.reason == "not_a_notification" and "0xa0" in got.detail
    v3 = decode_notification(ber.encode_v3_discovery(1, 2))  # no v3 receiver given: no user is known
    assert v3.reason == "unknown_user" and "given no v3 users" in v3.detail
    v5 = bytearray(get)
    v5[4] = 5  # the version INTEGER's value byte
    assert decode_notification(bytes(v5)).reason == "unsupported_version"
    no_trap_oid = v2_message(v2c.SNMPv2TrapPDU, b"public", 1, [((1, 3, 6, 1, 2, 1, 1, 3, 0), v2c.TimeTicks(1))])
    got = decode_notification(no_trap_oid)
    assert got.reason == "malformed" and "snmpTrapOID.0" in got.detail
    assert decode_notification(b"").detail == "empty datagram"
    assert "tag 0x47" in decode_notification(b"GET / HTTP/1.0\r\n\r\n").detail


# -- the listener ---------------------------------------------------------------------------------------

class FakeTransport:
    def __init__(self):
        self.sent = []

    def sendto(self, data, addr):
        self.sent.append((data, addr))


class Clock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t


def _listener(**kw):
    mono = Clock()
    ln = TrapListener(["public", "other"], monotonic=mono, **kw)
    ln.connection_made(FakeTransport())
    return ln, mono


def test_unknown_community_is_counted_dropped_and_not_acknowledged():
    ln, _ = _listener()
    got = ln.receive(link_down(community=b"guess", inform=True), ("10.0.0.9", 1234))
    assert got.reason == "unknown_community" and ln.dropped_total["unknown_community"] == 1
    assert ln.queue.empty() and ln.transport.sent == [] and ln.informs_acknowledged_total == 0
    assert b"guess" not in repr(ln.last_drops).encode()  # the community is a secret, even a wrong one
    ln.receive(link_down(community=b"other", inform=True), ("10.0.0.9", 1234))
    assert ln.queue.qsize() == 1 and len(ln.transport.sent) == 1


def test_a_flood_from_one_source_is_rate_limited_and_others_still_get_through():
    ln, mono = _listener(rate=10, burst=20, queue_size=10_000)
    trap = link_down()
    results = [ln.receive(trap, ("10.0.0.66", 40000)) for _ in range(1000)]
    assert sum(isinstance(r, Notification) for r in results) == 20  # the burst, no more
    assert ln.dropped_total["rate_limited"] == 980
    assert isinstance(ln.receive(trap, ("10.0.0.2", 40000)), Notification)  # another device is not held back
    mono.t += 1.0  # a second later the flood has earned 10 more
    results = [ln.receive(trap, ("10.0.0.66", 40000)) for _ in range(100)]
    assert sum(isinstance(r, Notification) for r in results) == 10
    assert ln.queue.qsize() == 31


def test_the_queue_is_bounded_and_an_inform_that_finds_it_full_is_not_acknowledged():
    ln, _ = _listener(queue_size=5)
    for i in range(8):
        ln.receive(link_down(request_id=i), ("10.0.0.1", 5000))
    assert ln.queue.qsize() == 5 and ln.dropped_total["queue_full"] == 3
    got = ln.receive(link_down(inform=True, request_id=99), ("10.0.0.1", 5000))
    assert got.reason == "queue_full" and ln.transport.sent == []
    assert ln.last_drops[-1]["detail"].endswith("not acknowledged, the sender retries")


def test_the_sources_tracked_are_bounded():
    lim = RateLimiter(rate=1, burst=1, max_sources=3, clock=Clock())
    assert all(lim.allow(f"10.0.0.{i}") for i in range(10))
    assert len(lim) == 3 and lim.evicted_total == 7
    assert not lim.allow("10.0.0.9")  # still tracked: its bucket is empty


def test_a_retransmitted_inform_is_acknowledged_again_but_queued_once():
    ln, mono = _listener()
    raw = link_down(inform=True, request_id=555)
    ln.receive(raw, ("10.0.0.1", 5000))
    ln.receive(raw, ("10.0.0.1", 5000))
    assert ln.queue.qsize() == 1 and len(ln.transport.sent) == 2 and ln.informs_duplicate_total == 1
    mono.t += 60  # past the dedup window: a new inform with a reused id
    ln.receive(raw, ("10.0.0.1", 5000))
    assert ln.queue.qsize() == 2


# -- the rules ------------------------------------------------------------------------------------------

def note(trap_oid, varbinds=(), uptime=100, version=ber.V2C, inform=False):
    from probe.sources.snmp.client import Varbind
    return Notification(version, b"public", ber.INFORM if inform else ber.TRAP_V2, trap_oid, uptime,
                        tuple(Varbind(o, t, v) for o, t, v in varbinds))


def link(kind, idx, *extra):
    return note(T.NOTIFY[kind], [(IF_INDEX + (idx,), "Integer32", idx), *extra])


def view(interfaces=(), **kw):
    return DeviceView(interfaces={r["index"]: r for r in interfaces}, polled=True, **kw)


UPLINK = {"index": 3, "name": "Gi0/3", "alias": "Uplink to core-sw", "oper_status": "down"}
ACCESS = {"index": 7, "name": "Gi0/7", "alias": "reception desk", "oper_status": "down"}


def test_link_down_on_an_uplink_raises_and_link_up_closes_the_same_episode():
    rules = TrapRules()
    [f] = rules.observe("10.0.0.1", link("linkDown", 3), view([UPLINK, ACCESS]), 10.0)
    assert (f.kind, f.severity, f.subject) == ("uplink_down", "critical", "ifIndex 3 (Gi0/3)")
    assert f.evidence["uplink"] == "ifAlias 'Uplink to core-sw'" and f.evidence["trap"] == "IF-MIB::linkDown"
    assert rules.observe("10.0.0.1", link("linkDown", 7), view([UPLINK, ACCESS]), 11.0) == []  # an access port
    [c] = rules.observe("10.0.0.1", link("linkUp", 3), view([UPLINK, ACCESS]), 20.0)
    assert isinstance(c, Cleared) and c.key == f.key


def test_uplinks_by_config_and_by_lldp_neighbour():
    rules = TrapRules(uplinks={"10.0.0.1": frozenset({"Gi0/7"})}, uplink_alias=None)
    assert rules.observe("10.0.0.1", link("linkDown", 7), view([ACCESS]), 1.0)[0].evidence["uplink"] == \
        "configured uplink"
    lldp = DeviceView(interfaces={9: {"index": 9, "name": "Te1/1"}}, lldp_ports={9: "core-sw"}, polled=True)
    assert rules.observe("10.0.0.2", link("linkDown", 9), lldp, 1.0)[0].evidence["uplink"] == "LLDP neighbour core-sw"


def test_a_link_down_the_poller_cannot_place_yet_waits_for_the_confirming_poll():
    rules = TrapRules()
    assert rules.observe("10.0.0.1", link("linkDown", 3), DeviceView(), 1.0) == []  # never polled
    [f] = rules.confirm("10.0.0.1", view([UPLINK]), 2.0)  # the poll: an uplink, and down
    assert f.kind == "uplink_down" and f.evidence["confirmed_by_poll"] and f.subject == "ifIndex 3 (?)"
    [again] = rules.confirm("10.0.0.1", view([UPLINK]), 3.0)  # still down: the episode goes on
    assert again.key == f.key
    [c] = rules.confirm("10.0.0.1", view([{**UPLINK, "oper_status": "up"}]), 4.0)  # linkUp lost: the poll sees it
    assert isinstance(c, Cleared) and c.key == f.key and rules.held() == []


def test_ups_on_battery_from_a_trap_closes_when_polls_say_mains_again():
    rules = TrapRules(clear_polls=2)
    [f] = rules.observe("ups1", note(T.NOTIFY["upsTrapOnBattery"], [
        (T.OID["upsEstimatedMinutesRemaining"] + (0,), "Integer32", 25)]), DeviceView(), 1.0)
    assert (f.kind, f.subject, f.evidence["minutes_remaining"]) == ("ups_on_battery", "ups", 25)
    assert len(rules.confirm("ups1", view(ups={"on_battery": True}), 2.0)) == 1
    assert rules.confirm("ups1", view(ups={"on_battery": False}), 3.0) == []
    [c] = rules.confirm("ups1", view(ups={"on_battery": False}), 4.0)
    assert isinstance(c, Cleared) and c.key == ("ups_on_battery", "ups1", "ups")


def test_ups_alarm_added_and_removed():
    rules = TrapRules()
    on_batt = [(T.OID["upsAlarmId"] + (1,), "Integer32", 1),
               (T.OID["upsAlarmDescr"] + (1,), "ObjectIdentifier", T.OID["upsAlarmOnBattery"])]
    [f] = rules.observe("ups1", note(T.NOTIFY["upsTrapAlarmEntryAdded"], on_batt), DeviceView(), 1.0)
    assert f.kind == "ups_on_battery" and f.evidence["alarm"] == "upsAlarmOnBattery"
    [c] = rules.observe("ups1", note(T.NOTIFY["upsTrapAlarmEntryRemoved"], on_batt), DeviceView(), 2.0)
    assert isinstance(c, Cleared) and c.key == f.key
    fan = [(T.OID["upsAlarmDescr"] + (2,), "ObjectIdentifier", T.OID["upsAlarmFanFailure"])]
    [g] = rules.observe("ups1", note(T.NOTIFY["upsTrapAlarmEntryAdded"], fan), DeviceView(), 3.0)
    assert (g.kind, g.subject) == ("ups_alarm", "upsAlarmFanFailure")


def test_a_cold_start_is_the_restart_the_poller_counts():
    rules = TrapRules()
    cold = note(T.NOTIFY["coldStart"], uptime=500)  # booted 5 s before it sent this
    [f] = rules.observe("sw1", cold, DeviceView(restarts=2, boot_at=100.0), 10_000.0)
    assert (f.kind, f.subject) == ("device_rebooted", "restart 3")  # the poll will count this boot as the 3rd
    [g] = rules.observe("sw2", cold, DeviceView(restarts=2, boot_at=9995.0), 10_000.0)
    assert g.subject == "restart 2"  # the poller's last reading already saw this boot
    assert rules.held() == []  # the poll rules own a restart once a poll sees sysUpTime go back


def test_a_cold_start_trap_and_the_poll_that_follows_are_one_episode():
    from probe.findings.snmp_rules import SnmpRules
    ledger = Ledger.in_memory(clock=lambda: 10_000.0)
    [f] = TrapRules().observe("sw1", note(T.NOTIFY["coldStart"], uptime=500), DeviceView(restarts=2, boot_at=100.0),
                              10_000.0)
    ledger.submit([f.to_finding()])

    class Result:  # the confirming poll: sysUpTime went back, the poller counted restart 3
        target, up, modules = "sw1", True, {}

        def data(self):
            return {"sys": {"rebooted": True, "restarts": 3, "uptime_seconds": 7.0}}
    ledger.submit([r.to_finding() for r in SnmpRules().observe(Result(), 10_001.0)])
    [ep] = ledger.open_episodes()
    assert ep.finding.subject == "restart 3" and ep.occurrences == 2


def test_authentication_failure_the_probe_caused_is_only_info():
    rules = TrapRules()
    auth = note(T.NOTIFY["authenticationFailure"])
    assert rules.observe("sw1", auth, DeviceView(), 1000.0)[0].severity == "warning"
    [f] = rules.observe("sw1", auth, DeviceView(refused_at=990.0), 1000.0)
    assert f.severity == "info" and f.evidence["probe_refused_recently"]


def test_printer_alerts_and_a_closed_cover_ends_the_open_one():
    rules = TrapRules()

    def alert(code, group=6, level=4, gidx=1):
        return note(T.NOTIFY["printerV2Alert"], [
            (T.OID["prtAlertSeverityLevel"] + (1, 5), "Integer32", level),
            (T.OID["prtAlertGroup"] + (1, 5), "Integer32", group),
            (T.OID["prtAlertGroupIndex"] + (1, 5), "Integer32", gidx),
            (T.OID["prtAlertCode"] + (1, 5), "Integer32", code)])
    [f] = rules.observe("prn1", alert(3), DeviceView(), 1.0)  # coverOpen
    assert (f.kind, f.subject, f.severity) == ("printer_alert", "cover 1: coverOpen", "warning")
    [c] = rules.observe("prn1", alert(4), DeviceView(), 2.0)  # coverClosed
    assert isinstance(c, Cleared) and c.key == f.key
    [jam] = rules.observe("prn1", alert(8, group=13, level=3), DeviceView(), 3.0)
    assert (jam.subject, jam.severity) == ("mediaPath 1: jam", "critical")


def test_names_of_vendor_and_unknown_oids():
    assert oid_name((1, 3, 6, 1, 4, 1, 318, 0, 5)) == "PowerNet-MIB::enterprises.318.0.5"
    assert oid_name((1, 3, 6, 1, 4, 1, 99999, 1)) == "1.3.6.1.4.1.99999.1"
    assert oid_name(T.OID["upsAlarmOnBattery"]) == "UPS-MIB::upsAlarmOnBattery"
    assert trap_name(T.NOTIFY["printerV2Alert"]) == "Printer-MIB::printerV2Alert"


# -- the subsystem --------------------------------------------------------------------------------------

class FakePoller:
    """The SNMP poller as the trap receiver uses it: devices(), observers, add_target, poll."""

    def __init__(self, devices):
        self._devices = list(devices)
        self.observers = []
        self.polls = []
        self.gate = asyncio.Event()
        self.gate.set()

    def devices(self):
        return list(self._devices)

    def add_target(self, address, port=161):
        return False

    async def poll(self, dev, modules=None, *, kind="fast"):
        self.polls.append(dev.target)
        await self.gate.wait()
        for o in self.observers:
            o(dev, type("R", (), {"started_at": 100.0})())


def polled_device(address, interfaces=()):
    from probe.sources.snmp.poller import Device, ModuleState
    dev = Device(address)
    dev.modules["interfaces"] = ModuleState(data={"interfaces": list(interfaces)})
    return dev


def _subsystem(devices, text="snmp:\n  traps: {listen_address: '127.0.0.1:1162'}\n"):
    from probe.subsystems.base import Context
    from probe.subsystems.snmp_traps import SnmpTrapsSubsystem
    ctx = Context(store=None, ledger=Ledger.in_memory(clock=lambda: 100.0), clock=lambda: 100.0)
    ctx.snmp_poller = FakePoller(devices)
    return SnmpTrapsSubsystem(load_text(text), ctx), ctx


def test_a_known_device_trap_raises_through_the_ledger_and_polls_once_per_burst():
    async def run():
        sub, ctx = _subsystem([polled_device("10.0.0.1", [UPLINK])])
        ctx.snmp_poller.observers.append(sub.after_poll)
        ctx.snmp_poller.gate.clear()  # the first confirming poll takes a while
        trap = decode_notification(link_down())
        for _ in range(3):  # before the confirming poll starts: that one poll covers them
            sub.handle(Received("10.0.0.1", 5000, 100.0, trap))
        await asyncio.sleep(0)
        assert ctx.snmp_poller.polls == ["10.0.0.1"]
        for _ in range(2):  # while it is in flight: one more poll after it, not one each
            sub.handle(Received("10.0.0.1", 5000, 100.0, trap))
        ctx.snmp_poller.gate.set()
        for _ in range(10):
            await asyncio.sleep(0)
        assert ctx.snmp_poller.polls == ["10.0.0.1", "10.0.0.1"]
        assert sub.metrics()["confirm_polls"] == 2
        assert sub.metrics()["received"] == {("10.0.0.1", "IF-MIB::linkDown"): 5}
        [ep] = ctx.ledger.open_episodes()  # five traps and two polls that saw it still down: one episode
        assert (ep.finding.kind, ep.finding.device, ep.finding.subject) == ("uplink_down", "10.0.0.1", "ifIndex 3 (Gi0/3)")
        assert ep.occurrences == 7 and ep.finding.evidence["confirmed_by_poll"]
    asyncio.run(run())


def test_a_trap_from_an_unknown_source_is_counted_and_raises_a_finding():
    sub, ctx = _subsystem([polled_device("10.0.0.1")])
    sub.handle(Received("10.0.0.77", 5000, 100.0, decode_notification(link_down())))
    [ep] = ctx.ledger.open_episodes()
    assert (ep.finding.kind, ep.finding.device, ep.finding.severity) == ("snmp_trap_unknown_source", "10.0.0.77",
                                                                        "warning")
    assert sub.unknown_source_total == 1 and ctx.snmp_poller.polls == []


def test_v1_agent_addr_names_the_device_behind_a_relay():
    sub, ctx = _subsystem([polled_device("10.0.0.5")])
    import dataclasses
    trap = dataclasses.replace(decode_notification(link_down()), agent_addr="10.0.0.5")
    assert sub._known(Received("10.9.9.9", 162, 1.0, trap)).address == "10.0.0.5"


def test_received_labels_are_bounded():
    sub, _ = _subsystem([], text="snmp:\n  traps: {metric_sources_max: 3, metric_traps_max: 2}\n")
    for i in range(10):
        sub.handle(Received(f"10.0.1.{i}", 5000, 1.0, note((1, 3, 6, 1, 4, 1, 9, 0, i))))
    labels = set(sub.metrics()["received"])
    assert {s for s, _ in labels} == {"10.0.1.0", "10.0.1.1", "10.0.1.2", "other"}
    assert {t for _, t in labels} == {"1.3.6.1.4.1.9.0.0", "1.3.6.1.4.1.9.0.1", "other"}
    assert sum(sub.metrics()["received"].values()) == 10


def test_the_collector_exposes_the_counters():
    from prometheus_client.registry import CollectorRegistry
    sub, _ = _subsystem([polled_device("10.0.0.1")], text="snmp:\n  traps: {confirm_poll: false}\n")
    sub.listener.connection_made(FakeTransport())
    sub.listener.receive(link_down(community=b"nope"), ("10.0.0.1", 1))
    sub.listener.receive(link_down(inform=True), ("10.0.0.1", 1))
    sub.handle(sub.listener.queue.get_nowait())
    reg = CollectorRegistry()
    for c in sub.collectors():
        reg.register(c)
    assert reg.get_sample_value("sitevigil_snmp_traps_dropped_total", {"reason": "unknown_community"}) == 1
    assert reg.get_sample_value("sitevigil_snmp_informs_acknowledged_total") == 1
    assert reg.get_sample_value("sitevigil_snmp_traps_received_total",
                                {"source": "10.0.0.1", "trap": "IF-MIB::linkDown"}) == 1
    assert reg.get_sample_value("sitevigil_snmp_trap_listener_up") == 0


def test_a_port_it_cannot_bind_fails_the_subsystem_with_the_reason():
    import socket
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    try:
        sub, _ = _subsystem([], text=f"snmp:\n  traps: {{listen_address: '127.0.0.1:{port}'}}\n")
        asyncio.run(sub.start())
        assert sub.status.health.value == "failed"
        assert f"cannot listen for SNMP notifications on 127.0.0.1:{port}" in sub.status.reason
    finally:
        s.close()


def test_the_receiver_polls_through_the_snmp_subsystems_poller_and_reload_takes_new_communities():
    from probe.subsystems import SUBSYSTEMS, build
    from probe.subsystems.base import Context
    names = [n for n, _ in SUBSYSTEMS]
    assert names.index("snmp") < names.index("snmp_traps")  # built after the poller it uses
    cfg = load_text("snmp:\n  credentials: [{name: a, community: old-one}]\n")
    ctx = Context(store=None)
    snmp, traps = build("snmp", cfg, ctx), build("snmp_traps", cfg, ctx)
    assert traps.poller is snmp.poller
    assert traps.listener.communities == {b"old-one"}
    new = load_text("snmp:\n  credentials: [{name: a, community: new-one}]\n  traps: {enabled: false}\n")
    asyncio.run(traps.reload(new))
    assert traps.listener.communities == {b"new-one"} and traps.status.health.value == "disabled"
    assert "sitevigil_snmp_trap_listener_up" not in {f.name for c in traps.collectors() for f in c.collect()}


def test_a_trap_updates_the_inventory_device_of_that_address_not_a_new_one():
    async def run():
        sub, ctx = _subsystem([polled_device("10.0.0.1", [UPLINK])], text="snmp:\n  traps: {confirm_poll: false}\n")
        ctx.devices.observe("00:11:22:33:44:55", "10.0.0.1", source="arp", ts=50.0)
        sub.handle(Received("10.0.0.1", 5000, 100.0, decode_notification(link_down())))
        [dev] = ctx.devices.inventory.snapshot()
        assert dev.mac == "00:11:22:33:44:55" and dev.last_seen == 100.0
        assert dev.facts["snmp_last_trap"] == "IF-MIB::linkDown" and "snmp_trap" in dev.sources
    asyncio.run(run())
