"""Findings a technician can trust (issue 12): ordinary office traffic raises no finding above info, and no
single flow or handful of packets raises any finding at all, through both fast-path implementations.

Replays every benign capture there is: the shared ones declared below (each with why it is ordinary,
from ../shared/data/pcap/README.txt), every file under tests/data/pcap named benign_* (recorded in the lab
from ordinary traffic), and the shared captures that are one flow of trouble. Then crafted captures, written
to pcap files and read back: what must stay quiet, and the counter-cases that must still raise."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether

from probe.config import CaptureConfig, DetectionConfig
from probe.fastpath import layout as L
from probe.findings.pipeline import CapturePipeline
from probe.sources.capfile import read_batches, write_pcap
from probe.sources.frames import FrameBatch
from tests.conftest import shared_data_dir

LAB = Path(__file__).resolve().parent.parent / "data" / "pcap"
S = 10**9
T0 = 1_700_000_000 * S
HANDFUL = 10  # frames: any this many in a row of an ordinary capture raise nothing

# shared capture -> why it is ordinary traffic
SHARED_BENIGN = {
    "arp_who_has_baseline.pcap": "an ARP request and its reply",
    "arp_gratuitous.pcapng": "one gratuitous ARP: a host announcing its own address",
    "cdp_v1.pcap": "a Cisco switch announcing itself",
    "lldp.pcap": "a switch announcing itself",
    "dhcp_dora.pcap": "a lease: DISCOVER, OFFER, REQUEST, ACK (alone, its server is the LAN's)",
    "dhcp_dora_lan_192-168-1.pcapng": "a lease from the LAN's server",
    "dns_nxdomain.pcapng": "one lookup of a name that does not exist",
    "mdns.pcap": "mDNS queries and announcements",
    "llmnr.pcap": "an LLMNR query and its reply",
    "ssdp_notify.pcap": "a home router's SSDP NOTIFY",
    "igmp_mdns_home.pcap": "IGMPv3 membership and mDNS on a home LAN",
    "udp_broadcast_255.pcap": "one broadcast datagram",
    "smb2_net_user.pcap": "an SMB2 session running `net user`",
    "snmp_walk_400.pcap": "an snmpwalk: what the probe itself does to every device",
    "snmp_v1_trap.pcap": "a coldStart trap",
    "snmp_v2c_get_lldp_mib.pcap": "SNMP gets of the LLDP MIB",
    "tcp_syn_rst_refused.pcapng": "one connection to a closed port, refused",
    # one connection whose reader stalls (window 0, probes): that application's trouble, no network's
    "tcp_zero_window.pcapng": "one receiver advertising a zero window, and the sender's probes",
    "icmp_port_unreachable.pcap": "a client's port unreachable for a DNS answer that came after it gave up",
    "icmp_traceroute_ttl_exceeded.pcapng": "a traceroute: time-exceeded replies are what it asks for",
    "tcpreplay_mixed_test.pcap": "a small LAN's web, DNS (late answers drawing port unreachables) and pings",
}
# Left out: arp_malformed_len255 (broken frames for the parser, not traffic: tests/integration/test_replay.py),
# the attack captures (portscans, synfloods, arp_poison_mitm, dhcp_flood, nmap_arp_sweep) and
# dns_timeout_no_response (a client whose both DNS servers are silent: trouble that must raise), and the ones
# below: real trouble, but each one flow or a handful of packets, which must raise nothing either.
SHARED_SINGLE_FLOW = {
    "dns_servfail_internal.pcapng": "one query answered SERVFAIL",
    "icmp_host_unreachable.pcap": "pings to one absent host, the router saying so",
    "tcp_fast_retransmit.pcap": "one HTTP connection with a fast retransmit",
    "tcp_rto_retransmissions.pcapng": "one segment resent with back-off to a silent peer",
}


def _lab_benign():
    return sorted(p for p in LAB.glob("benign_*") if p.suffix in (".pcap", ".pcapng"))


BENIGN_FILES = [f"shared:{n}" for n in SHARED_BENIGN] + [f"lab:{p.name}" for p in _lab_benign()]
SINGLE_FLOW_FILES = [f"shared:{n}" for n in SHARED_SINGLE_FLOW]


def capture_path(ref: str) -> Path:
    where, name = ref.split(":", 1)
    path = (shared_data_dir() / "pcap" if where == "shared" else LAB) / name
    if not path.exists():
        pytest.skip(f"{path} not found (shared test data: set SITEVIGIL_SHARED_DATA)")
    return path


def pipeline(impl):
    return CapturePipeline(CaptureConfig(max_devices=4096), DetectionConfig(), kernels=impl)


def replay(impl, batches):
    pipe = pipeline(impl)
    for b in batches:
        pipe.add_batch(b)
    pipe.finish()
    return pipe.findings.all_findings()


def frames_of(path: Path):
    out = []
    for b in read_batches(str(path)):
        out += [(b.frame(i), int(b.ts_ns[i]), int(b.wirelen[i])) for i in range(len(b))]
    return out


def batch(frames):
    return FrameBatch.from_frames([f for f, _, _ in frames], ts_ns=[t for _, t, _ in frames],
                                  wirelen=[w for _, _, w in frames])


def flows(impl, frames):
    """The frames by flow: IP by protocol and the unordered (address, port) pair (ICMP errors go with the
    flow they quote), other frames by source MAC and EtherType."""
    recs = impl.parse_frames(*_columns(batch(frames)))[0]
    groups = defaultdict(list)
    for (f, t, w), r in zip(frames, recs):
        flags = int(r["flags"])
        if flags & (L.F_IPV4 | L.F_IPV6) and not flags & L.F_MALFORMED:
            src = (int(r["src_ip"]), int(r["src_ip6_hi"]), int(r["src_ip6_lo"]))
            dst = (int(r["dst_ip"]), int(r["dst_ip6_hi"]), int(r["dst_ip6_lo"]))
            proto, sport, dport = int(r["ip_proto"]), int(r["sport"]), int(r["dport"])
            if r["icmp_quote_proto"]:
                proto, sport, dport = int(r["icmp_quote_proto"]), int(r["icmp_quote_sport"]), int(r["icmp_quote_dport"])
            key = ("ip", proto, frozenset([(src, sport), (dst, dport)]))
        else:
            key = ("l2", int(r["src_mac"]), int(r["ethertype"]))
        groups[key].append((f, t, w))
    return list(groups.values())


def _columns(b):
    return b.data, b.offset, b.caplen, b.wirelen, b.ts_ns, b.vlan


def above_info(findings):
    return [f for f in findings if f.severity != "info"]


@pytest.mark.parametrize("ref", BENIGN_FILES)
def test_ordinary_traffic_raises_nothing_above_info(impl, ref):
    found = replay(impl, read_batches(str(capture_path(ref))))
    assert above_info(found) == [], found


@pytest.mark.parametrize("ref", BENIGN_FILES + SINGLE_FLOW_FILES)
def test_no_single_flow_or_handful_of_packets_raises_anything(impl, ref):
    frames = frames_of(capture_path(ref))
    assert frames, ref
    for flow in flows(impl, frames):
        found = replay(impl, [batch(flow)])
        assert found == [], (ref, len(flow), found)
    for i in range(0, len(frames), HANDFUL // 2):  # every run of HANDFUL frames, overlapping by half
        found = replay(impl, [batch(frames[i:i + HANDFUL])])
        assert found == [], (ref, i, found)


@pytest.mark.parametrize("ref", SINGLE_FLOW_FILES)
def test_one_flow_of_trouble_raises_nothing(impl, ref):
    assert replay(impl, read_batches(str(capture_path(ref)))) == []


def test_the_declared_benign_captures_are_all_there(shared_data):
    names = {p.name for p in (shared_data / "pcap").iterdir()}
    assert set(SHARED_BENIGN) | set(SHARED_SINGLE_FLOW) <= names


# --- crafted captures --------------------------------------------------------------------------------------

CLIENT, SERVER, DNS_SERVER, ROUTER = "10.1.0.20", "10.1.0.5", "10.1.0.53", "10.1.0.1"
MAC = {ip: f"02:00:00:00:{i // 256:02x}:{i % 256:02x}" for i, ip in enumerate(
    [CLIENT, SERVER, DNS_SERVER, ROUTER] + [f"10.1.1.{k}" for k in range(1, 255)])}


def eth(src_ip, dst_ip):
    return Ether(src=MAC[src_ip], dst=MAC[dst_ip]) / IP(src=src_ip, dst=dst_ip)


def written(tmp_path, name, frames_ts):
    """The frames written to a pcap file (probe.sources.capfile.write_pcap) and read back as batches."""
    frames_ts = sorted(frames_ts, key=lambda x: x[0])
    path = tmp_path / f"{name}.pcap"
    write_pcap(str(path), [FrameBatch.from_frames([bytes(f) for _, f in frames_ts], ts_ns=[t for t, _ in frames_ts])],
               nanosecond=True)
    return list(read_batches(str(path)))


def refused(t, client, server, sport, dport=80):
    return [(t, eth(client, server) / TCP(sport=sport, dport=dport, flags="S", seq=1)),
            (t + 300_000, eth(server, client) / TCP(sport=dport, dport=sport, flags="RA", ack=2))]


def query(t, client, qid, sport, name="host.example", rcode=0, server=DNS_SERVER, qtype="A"):
    return [(t, eth(client, server) / UDP(sport=sport, dport=53) / DNS(id=qid, qd=DNSQR(qname=name, qtype=qtype))),
            (t + 2_000_000, eth(server, client) / UDP(sport=53, dport=sport)
             / DNS(id=qid, qr=1, rcode=rcode, qd=DNSQR(qname=name, qtype=qtype)))]


def late_answer_unreachable(t, client, answer):
    """The client's port unreachable for a DNS answer that reached it after it gave up."""
    return [(t, eth(client, DNS_SERVER) / ICMP(type=3, code=3) / bytes(answer[IP])[:28 + 20])]


def kinds(found):
    return {(f.kind, f.device) for f in found}


def test_a_single_refused_connection_raises_nothing(impl, tmp_path):
    assert replay(impl, written(tmp_path, "refused", refused(T0, CLIENT, SERVER, 40000))) == []


def test_one_nxdomain_lookup_raises_nothing(impl, tmp_path):
    # a name that does not exist: the A and AAAA queries, both NXDOMAIN
    frames = query(T0, CLIENT, 7, 50000, rcode=3) + query(T0 + S // 100, CLIENT, 8, 50001, rcode=3, qtype="AAAA")
    assert replay(impl, written(tmp_path, "nxdomain", frames)) == []


def test_a_dns_server_receiving_late_answer_unreachables_from_many_clients_raises_nothing(impl, tmp_path):
    frames = []
    for k in range(1, 61):  # 60 clients each ask twice; 40 give up on the first answer before it arrives
        client = f"10.1.1.{k}"
        for n in range(2):
            t = T0 + (k * 2 + n) * S // 20
            q = query(t, client, k * 2 + n, 30000 + k * 2 + n, name=f"h{k}.example")
            frames += q
            if n == 0 and k <= 40:
                frames += late_answer_unreachable(q[1][0] + 50_000, client, q[1][1])
    found = replay(impl, written(tmp_path, "late_dns", frames))
    assert found == [], found


def test_a_host_scanning_closed_udp_ports_is_still_a_finding(impl, tmp_path):
    # 40 closed ports: a UDP port scan; 8: too few for a scan, but 8 services it was told are not there
    for ports, kind in ((40, "port_scan"), (8, "icmp_unreachable")):
        frames = []
        for p in range(ports):
            t = T0 + p * S // 10
            probe = eth(CLIENT, SERVER) / UDP(sport=45000, dport=1000 + p) / b"x"
            frames += [(t, probe), (t + 400_000, eth(SERVER, CLIENT) / ICMP(type=3, code=3) / bytes(probe[IP]))]
        found = replay(impl, written(tmp_path, f"udp_scan_{ports}", frames))
        assert (kind, CLIENT) in kinds(found), (ports, found)
        if kind == "icmp_unreachable":
            f = next(x for x in found if x.kind == kind)
            assert f.evidence["distinct_destinations"] >= 6 and "cannot be reached" in f.evidence["reason"]


def test_many_refused_connections_from_many_peers_are_a_finding(impl, tmp_path):
    frames = []
    for k in range(12):  # 12 servers refuse the client
        frames += refused(T0 + k * S // 2, CLIENT, f"10.1.1.{k + 1}", 41000 + k, dport=8443)
    found = replay(impl, written(tmp_path, "refused_many", frames))
    got = [f for f in found if f.kind == "tcp_reset"]
    assert [(f.device, f.severity) for f in got] == [(CLIENT, "warning")], found
    assert got[0].evidence["distinct_reset_connections"] >= 9 and "refused by a reset" in got[0].evidence["reason"]


def test_a_router_sending_host_unreachables_for_many_destinations_is_a_finding(impl, tmp_path):
    frames = []
    for k in range(12):  # the client tries 12 hosts behind the router, which has no route to any
        t = T0 + k * S // 4
        syn = IP(src=CLIENT, dst=f"192.0.2.{k + 1}") / TCP(sport=42000 + k, dport=443, flags="S")
        frames += [(t, Ether(src=MAC[CLIENT], dst=MAC[ROUTER]) / syn),
                   (t + 1_000_000, eth(ROUTER, CLIENT) / ICMP(type=3, code=1) / bytes(syn)[:28])]
    found = replay(impl, written(tmp_path, "host_unreachable", frames))
    got = [f for f in found if f.kind == "icmp_unreachable"]
    assert [(f.device, f.severity) for f in got] == [(CLIENT, "warning")], found
    assert got[0].evidence["distinct_destinations"] >= 9 and got[0].evidence["late_dns_answers_left_out"] == 0


def test_failing_lookups_of_many_names_are_a_finding(impl, tmp_path):
    frames = []
    for k in range(6):  # every lookup of six names SERVFAIL: the resolver is broken
        frames += query(T0 + k * S // 5, CLIENT, 100 + k, 50100 + k, name=f"n{k}.example", rcode=2)
    found = replay(impl, written(tmp_path, "servfail", frames))
    assert {(CLIENT, "client"), (DNS_SERVER, "resolver")} <= {
        (f.device, f.evidence["role"]) for f in found if f.kind == "dns_failure"}, found
    assert all("distinct queries" in f.evidence["reason"] for f in found if f.kind == "dns_failure")
