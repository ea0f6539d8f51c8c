"""The sweep's parts that need no network: pacing, frames, planning, the subsystem and its metrics."""
import asyncio
import ipaddress

import pytest
from prometheus_client.registry import CollectorRegistry

from tests.helpers import recording_ledger
from probe.config import Secret, SnmpCredential, SubnetConfig, default_config
from probe.subsystems.devices import record_sweep
from probe.subsystems.sweep import SweepSubsystem, plan
from probe.sources import sweep as sw
from probe.sources.interfaces import LocalInterface
from probe.state.inventory import Inventory
from probe.state.oui import OuiTable
from probe.state.store import Store
from probe.subsystems.base import Context, Health


class FakeClock:
    def __init__(self):
        self.t = 0.0
        self.sleeps = []

    def __call__(self):
        return self.t

    def sleep(self, s):
        self.sleeps.append(s)
        self.t += s


@pytest.mark.parametrize("rate", [1, 50, 200, 1000, 5000])
def test_pacer_never_exceeds_its_rate(rate):
    clock = FakeClock()
    pacer = sw.Pacer(rate, clock=clock, sleep=clock.sleep)
    sent = 0
    while sent < 3 * rate:
        sent += pacer.take(3 * rate - sent)
    # 3*rate packets need at least ~3 s (the first small burst goes at once)
    assert clock.t >= 3.0 - pacer.burst / rate - 1e-6
    assert clock.t <= 3.2


def test_pacer_sends_in_small_batches():
    clock = FakeClock()
    pacer = sw.Pacer(1000, clock=clock, sleep=clock.sleep)
    batches = [pacer.take(1000) for _ in range(50)]
    assert max(batches) <= 10  # ~10 ms worth at a time, never the whole list


def test_arp_template_and_reply_parsing():
    from scapy.layers.l2 import ARP, Ether

    t = bytearray(sw.arp_request_template("02:00:00:00:00:01", "10.1.2.3"))
    t[38:42] = bytes([10, 1, 2, 77])
    pkt = Ether(bytes(t))
    assert len(t) == 60 and pkt.dst == "ff:ff:ff:ff:ff:ff"
    assert (pkt[ARP].op, pkt[ARP].psrc, pkt[ARP].pdst, pkt[ARP].hwsrc) == (1, "10.1.2.3", "10.1.2.77", "02:00:00:00:00:01")
    reply = bytes(Ether(src="00:11:22:33:44:55") / ARP(op=2, hwsrc="00:11:22:33:44:55", psrc="10.1.2.77",
                                                         hwdst="02:00:00:00:00:01", pdst="10.1.2.3"))
    assert sw.parse_arp_reply(reply) == ("10.1.2.77", "00:11:22:33:44:55")
    assert sw.parse_arp_reply(bytes(pkt)) is None  # a request is not an answer
    assert sw.parse_arp_reply(reply[:30]) is None


def test_icmp_echo_matches_scapy():
    from scapy.layers.inet import ICMP

    raw = sw.icmp_echo_request(0x1234, 7, b"abc")
    pkt = ICMP(raw)
    assert (pkt.type, pkt.id, pkt.seq) == (8, 0x1234, 7)
    assert pkt.chksum == ICMP(bytes(ICMP(type=8, id=0x1234, seq=7) / b"abc")).chksum


def test_plan_uses_arp_on_local_links_and_icmp_beyond():
    local = [LocalInterface("eth0", "02:00:00:00:00:02", (ipaddress.ip_interface("10.5.0.2/24"),))]
    cred = SnmpCredential(name="c1", version="2c", community=Secret("x"))
    targets = sw.plan_sweep([(ipaddress.ip_network("10.5.0.0/24"), (cred,)),
                             (ipaddress.ip_network("10.5.0.128/25"), ()),
                             (ipaddress.ip_network("10.6.0.0/28"), ())], local=local)
    assert [t.method for t in targets] == ["arp", "arp", "icmp"]
    assert targets[0].interface == "eth0" and str(targets[0].src_ip) == "10.5.0.2"
    addrs = targets[0].addresses(10_000)
    assert len(addrs) == 253 and ipaddress.ip_address("10.5.0.2") not in addrs  # not ourselves
    assert len(targets[2].addresses(10_000)) == 14
    wide = sw.plan_sweep([(ipaddress.ip_network("10.5.0.0/22"), ())], local=local)
    assert [(str(t.network), t.method) for t in wide] == [("10.5.0.0/24", "arp"), ("10.5.1.0/24", "icmp"),
                                                          ("10.5.2.0/23", "icmp")]
    with pytest.raises(sw.SweepError, match="no interface"):
        sw.plan_sweep([(ipaddress.ip_network("10.6.0.0/28"), ())], method="arp", local=local)
    with pytest.raises(sw.SweepError, match="IPv4"):
        sw.plan_sweep([(ipaddress.ip_network("fd00::/120"), ())], local=local)


def test_plan_from_config_takes_each_subnets_credentials():
    cfg = default_config()
    c2 = SnmpCredential(name="site", version="2c", community=Secret("s"))
    cfg = cfg.replace(snmp=cfg.snmp.__class__(credentials=cfg.snmp.credentials + (c2,)),
                      subnets=(SubnetConfig(ipaddress.ip_network("10.5.0.0/24"), credentials=("site",)),
                               SubnetConfig(ipaddress.ip_network("10.7.0.0/24"), sweep=False)))
    local = [LocalInterface("eth0", "02:00:00:00:00:02", (ipaddress.ip_interface("10.5.0.2/24"),))]
    targets = plan(cfg, local=local)
    assert [str(t.network) for t in targets] == ["10.5.0.0/24"]
    assert [c.name for c in targets[0].credentials] == ["site"]


def _result(hosts, complete=True):
    return sw.SweepResult(started=0, duration=1.5, hosts=hosts, targets=[], sent=500, addresses=253,
                          complete=complete)


def _host(n, snmp=False):
    ident = sw.SnmpIdentity(f"10.5.0.{n}", "public", {"sys_descr": "Canon LBP6670", "sys_name": f"prn{n}",
                                                         "sys_object_id": "1.3.6.1.4.1.1602.4.2"}) if snmp else None
    return sw.LiveHost(f"10.5.0.{n}", f"00:1b:21:00:00:{n:02x}", "arp", 0.001, snmp=ident)


def test_subsystem_sweeps_records_emits_findings_and_exposes_metrics(tmp_path):
    runs = [[_host(3, snmp=True), _host(4)], [_host(3, snmp=True), _host(4), _host(5)], [_host(3, snmp=True)]]
    clock = [1000.0]
    emitted = []
    store = Store(str(tmp_path))
    cfg = default_config()
    cfg = cfg.replace(sweep=cfg.sweep.__class__(device_gone_after=10, device_info_limit=2))
    ctx = Context(store=store, clock=lambda: clock[0], ledger=recording_ledger(emitted, lambda: clock[0]))
    sub = SweepSubsystem(cfg, ctx, sweep_fn=lambda c, stop: _result(runs.pop(0)))
    sub.inventory._oui = OuiTable({"001b21": "Intel Corporate"})

    async def go():
        await sub.sweep_now()
        assert emitted == [] and sub.inventory.baselined  # the first sweep is the baseline
        clock[0] += 5
        await sub.sweep_now()
        assert [(f.kind, f.evidence["ip"]) for f in emitted] == [("device_new", "10.5.0.5")]
        clock[0] += 11
        await sub.sweep_now()
        assert sorted((f.kind, f.evidence["ip"]) for f in emitted[1:]) == [("device_gone", "10.5.0.4"),
                                                                           ("device_gone", "10.5.0.5")]
        await sub.stop()
    asyncio.run(go())

    found = sub.devices.discovered()
    assert [(h.ip, h.credential, h.sys_name) for h in found] == [("10.5.0.3", "public", "prn3")]
    assert sub.inventory.get("10.5.0.3") is None and sub.inventory.get("00:1b:21:00:00:03").type == "printer"

    reg = CollectorRegistry()
    for c in sub.collectors():
        reg.register(c)
    v = reg.get_sample_value
    assert v("sitevigil_devices", {"type": "printer", "state": "present"}) == 1
    assert v("sitevigil_devices", {"type": "workstation", "state": "gone"}) == 2  # Intel vendor hint
    assert v("sitevigil_sweep_hosts_found") == 1 and v("sitevigil_sweep_hosts_snmp") == 1
    assert v("sitevigil_sweep_duration_seconds") == 1.5
    assert v("sitevigil_sweep_last_success_timestamp_seconds") == 1016.0
    assert v("sitevigil_sweeps_total", {"result": "ok"}) == 3
    assert v("sitevigil_device_info", {"mac": "00:1b:21:00:00:03", "ip": "10.5.0.3", "vendor": "Intel Corporate",
                                       "type": "printer", "name": "prn3"}) == 1
    series = [s for m in reg.collect() if m.name == "sitevigil_device_info" for s in m.samples]
    assert len(series) == 2 and v("sitevigil_device_info_omitted") == 1  # bounded by device_info_limit
    store.close()


def test_subsystem_survives_a_failing_sweep(tmp_path):
    def boom(cfg, stop):
        raise sw.SweepError("ARP sweep needs root or CAP_NET_RAW (raw packet socket)")

    store = Store(str(tmp_path))
    sub = SweepSubsystem(default_config(), Context(store=store), sweep_fn=boom)
    assert asyncio.run(sub.sweep_now()) == []
    assert sub.status.health == Health.FAILED and "CAP_NET_RAW" in sub.status.reason
    assert sub.stats.results["failed"] == 1
    store.close()


def test_record_sweep_keeps_address_conflicts():
    inv = Inventory(None, oui=OuiTable())
    h = _host(9)
    h.other_macs = ["00:1b:21:00:00:99"]
    record_sweep(inv, _result([h]))
    assert {d.mac for d in inv.snapshot()} == {"00:1b:21:00:00:09", "00:1b:21:00:00:99"}


def _fake_wire(answer):
    """A socketpair standing in for the raw socket: send_one 'transmits' by writing the reply, if any."""
    import socket

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    calls = []

    def send_one(addr):
        calls.append(addr)
        reply = answer(addr, calls.count(addr))
        if reply is not None:
            theirs.send(reply)

    def parse(data):
        ip, _, mac = data.decode().partition("=")
        return ip, mac
    return ours, theirs, send_one, parse, calls


def test_probe_loop_retries_the_silent_once_and_collects_late_replies():
    import time as _t

    addrs = [f"10.0.0.{i}" for i in range(1, 41)]
    # even hosts answer; 10.0.0.8 only answers its second request; nobody else exists
    def answer(addr, attempt):
        n = int(addr.rsplit(".", 1)[1])
        if n % 2 or (n == 8 and attempt == 1):
            return None
        return f"{addr}=mac{n}".encode()

    ours, theirs, send_one, parse, calls = _fake_wire(answer)
    t0 = _t.monotonic()
    answers, sent_at, sent, complete = sw._run_probe(send_one, ours, parse, addrs, pacer=sw.Pacer(400), attempts=2,
                                                     retry_after=0.05, wait=0.1, deadline=t0 + 10, phase="t",
                                                     progress=None)
    ours.close(), theirs.close()
    assert complete and set(answers) == {a for a in addrs if int(a.rsplit(".", 1)[1]) % 2 == 0}
    assert answers["10.0.0.8"][0][0] == "mac8"
    assert sent == len(addrs) + 21 and calls.count("10.0.0.8") == 2 and calls.count("10.0.0.2") == 1
    assert _t.monotonic() - t0 < 2.0


def test_probe_loop_stops_at_its_deadline_and_on_request():
    import threading
    import time as _t

    ours, theirs, send_one, parse, calls = _fake_wire(lambda a, n: None)
    addrs = [f"10.1.{i // 250}.{i % 250 + 1}" for i in range(1000)]
    t0 = _t.monotonic()
    _, _, sent, complete = sw._run_probe(send_one, ours, parse, addrs, pacer=sw.Pacer(100), attempts=2,
                                         retry_after=0.5, wait=0.5, deadline=t0 + 0.3, phase="t", progress=None)
    assert not complete and sent <= 0.3 * 100 + 3 and _t.monotonic() - t0 < 1.5
    stop = threading.Event()
    stop.set()
    _, _, sent, complete = sw._run_probe(send_one, ours, parse, addrs, pacer=sw.Pacer(100), attempts=2,
                                         retry_after=0.5, wait=0.5, deadline=_t.monotonic() + 10, phase="t",
                                         progress=None, stop=stop)
    assert not complete and sent == 0
    ours.close(), theirs.close()


def test_snmp_tables_and_passive_observations_feed_the_inventory(tmp_path):
    from probe.state.passive import Observation

    store = Store(str(tmp_path))
    emitted = []
    sub = SweepSubsystem(default_config(), Context(store=store, ledger=recording_ledger(emitted)))
    sub.inventory.mark_baselined()
    sub.devices.observe_table([("00:1b:21:00:00:01", "10.5.0.7"), ("00:1b:21:00:00:02", None), ("bad", "10.5.0.9")],
                      "snmp_arp", ts=5)
    sub.devices.learn([Observation("00:1b:21:00:00:02", "10.5.0.8", "pc-2", "dhcp", 6)])
    assert [(f.kind, f.device) for f in emitted] == [("device_new", "00:1b:21:00:00:01"),
                                                    ("device_new", "00:1b:21:00:00:02")]
    d = sub.inventory.get("00:1b:21:00:00:02")
    assert (d.ip, d.name, set(d.sources)) == ("10.5.0.8", "pc-2", {"snmp_arp", "dhcp"})
    store.close()


def test_snmp_probe_is_paced_and_tries_credentials_in_order():
    import time as _t

    creds = (SnmpCredential(name="a", version="2c", community=Secret("a")),
             SnmpCredential(name="b", version="2c", community=Secret("b")))
    starts = []

    class FakeGetter:
        async def get(self, address, cred, oids):
            starts.append((_t.monotonic(), address, cred.name))
            if cred.name == "b" and address.endswith(".3"):
                from probe.sources.snmp.client import Varbind
                return [Varbind((1, 3, 6, 1, 2, 1, 1, 5, 0), "OctetString", b"sw1"),
                        Varbind((1, 3, 6, 1, 2, 1, 1, 1, 0), "OctetString", b"Switch\x00"),
                        Varbind((1, 3, 6, 1, 2, 1, 43, 5, 1, 1, 16, 1), "noSuchInstance", None)]
            return None

    hosts = [sw.LiveHost(f"10.0.0.{i}", None, "icmp") for i in range(1, 11)]
    asyncio.run(sw.snmp_probe(hosts, lambda a: creds, timeout=1, retries=0, getter=FakeGetter(), rate_pps=100))
    assert len(starts) == 20
    span = max(t for t, *_ in starts) - min(t for t, *_ in starts)
    assert span >= 19 / 100 * 0.9  # 20 request starts at 100 per second
    ident = hosts[2].snmp
    assert ident.credential == "b" and ident.values == {"sys_name": "sw1", "sys_descr": "Switch"}  # NUL-padded text trimmed
    assert all(h.snmp is None for h in hosts if h is not hosts[2])
    assert [c for _, a, c in starts if a == "10.0.0.3"] == ["a", "b"]


def test_without_raw_socket_rights_the_error_says_what_to_do(monkeypatch):
    import socket

    def denied(*a, **kw):
        raise PermissionError(1, "Operation not permitted")
    monkeypatch.setattr(socket, "socket", denied)
    with pytest.raises(sw.SweepError, match="needs root or CAP_NET_RAW"):
        sw.arp_sweep("eth0", "02:00:00:00:00:01", "10.0.0.2", ["10.0.0.3"], rate_pps=10)
    with pytest.raises(sw.SweepError, match="needs root or CAP_NET_RAW"):
        sw.icmp_sweep(["10.0.0.3"], rate_pps=10)


def test_an_empty_or_partial_sweep_is_no_baseline():
    inv = Inventory(None, oui=OuiTable())
    empty = _result([])
    empty.addresses = 0
    record_sweep(inv, empty)
    assert not inv.baselined
    record_sweep(inv, _result([_host(3)], complete=False))
    assert not inv.baselined
    record_sweep(inv, _result([_host(3)]))
    assert inv.baselined
