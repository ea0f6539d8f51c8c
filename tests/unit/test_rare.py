"""The off-hot-path decoder of rare frames: names from real LLDP/CDP/DHCP/mDNS frames, never an exception."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.dns import DNS, DNSRR
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from probe import fastpath
from probe.sources.capfile import read_batches
from probe.sources.frames import FrameBatch
from probe.fastpath.rare import decode_batch, decode_rare
from probe.state.aggregates import batch_columns


def decoded(path):
    out = []
    for b in read_batches(str(path)):
        recs, _ = fastpath.parse_frames(*batch_columns(b))
        out.extend(decode_batch(b, recs))
    return out


def test_shared_lldp_cdp_dhcp(shared_data):
    pcap = shared_data / "pcap"
    lldp, = decoded(pcap / "lldp.pcap")
    assert lldp["system_name"] == "SMCGS8P-Smart" and lldp["port_id"] == "1" and lldp["capabilities"] == ["bridge"]
    cdp, = decoded(pcap / "cdp_v1.pcap")
    assert (cdp["device_id"], cdp["port_id"], cdp["platform"], cdp["addresses"]) == ("R1", "Ethernet0", "cisco 1601", ["192.168.10.1"])
    assert cdp["capabilities"] == 0x01  # a router
    dhcp = decoded(pcap / "dhcp_dora_lan_192-168-1.pcapng")
    assert [d["message_type"] for d in dhcp] == ["discover", "offer", "request", "ack"]
    assert dhcp[0]["hostname"] == "ubuntu2" and dhcp[1]["server_id"] == "192.168.1.5" and dhcp[1]["yiaddr"] == "192.168.1.10"
    assert dhcp[0]["parameter_request_list"][:3] == [1, 28, 2]
    llmnr = decoded(pcap / "llmnr.pcap")
    assert llmnr[1]["records"] == [{"name": "HS2011", "type": "A", "address": "192.168.10.101"}]


def frame_batch(frames):
    b = FrameBatch.from_frames([bytes(f) for f in frames])
    return b, fastpath.parse_frames(*batch_columns(b))[0]


def test_mdns_names_and_compression():
    f = Ether() / IP(dst="224.0.0.251") / UDP(sport=5353, dport=5353) / DNS(qr=1, an=DNSRR(rrname="printer.local", type="A", rdata="10.0.0.9"))
    b, r = frame_batch([f])
    d, = decode_batch(b, r)
    assert d["protocol"] == "mdns" and d["records"][0] == {"name": "printer.local", "type": "A", "address": "10.0.0.9"}


def test_lying_lengths_are_reported_not_raised():
    f = bytearray(bytes(Ether() / IP() / UDP(sport=68, dport=67) / BOOTP() / DHCP(options=[("hostname", b"abcdef"), "end"])))
    i = f.index(b"abcdef")
    f[i - 1] = 200  # hostname option claims 200 bytes
    b, r = frame_batch([bytes(f)])
    d, = decode_batch(b, r)
    assert d["protocol"] == "dhcp" and "DHCP option 12" in d["malformed"]


TEMPLATES = None


def _templates(shared):
    frames = []
    for name in ("lldp.pcap", "cdp_v1.pcap", "dhcp_dora.pcap", "mdns.pcap", "llmnr.pcap"):
        for b in read_batches(str(shared / "pcap" / name)):
            frames.extend(b.frame(i) for i in range(len(b)))
    return frames


@pytest.fixture(scope="module")
def templates(shared_data):
    return _templates(shared_data)


def test_mutated_rare_frames_never_raise(templates):
    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(st.sampled_from(templates), st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), max_size=8),
           st.integers(0, 2000))
    def check(frame, edits, cut):
        f = bytearray(frame)
        for pos, val in edits:
            if pos < len(f):
                f[pos] = val
        f = bytes(f[:max(cut, 14)])
        b, r = frame_batch([f])
        for d in decode_batch(b, r):
            assert isinstance(d, dict) and "protocol" in d
        assert decode_rare(f, r[0]) is None or isinstance(decode_rare(f, r[0]), dict)
    check()
