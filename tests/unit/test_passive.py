"""Passive learning from real captures: names, addresses, neighbours, DHCP fingerprints."""
import pytest

from probe.subsystems import devices
from probe.state.passive import is_discovery_frame, observations
from probe.state.inventory import Inventory
from probe.state.oui import OuiTable


def frames(path):
    from scapy.utils import rdpcap

    return [(bytes(p), float(p.time)) for p in rdpcap(str(path))]


@pytest.fixture
def pcaps(shared_data):
    return shared_data / "pcap"


def learn(*paths):
    inv = Inventory(None, oui=OuiTable.load())
    for path in paths:
        devices.learn(inv, [o for f, ts in frames(path) for o in observations(f, ts)])
    return inv


def test_dhcp_gives_hostname_address_fingerprint_and_server(pcaps):
    inv = learn(pcaps / "dhcp_dora_lan_192-168-1.pcapng", pcaps / "dhcp_dora.pcap")
    client = inv.get("00:0c:29:59:fd:21")
    assert client.name == "ubuntu2" and client.ip == "192.168.1.10"
    assert client.facts["dhcp_params"] == [1, 28, 2, 3, 15, 6, 119, 12, 44, 47, 26, 121, 42]
    assert client.vendor == "VMware, Inc." and "dhcp" in client.sources
    server = inv.get("00:0c:29:c0:60:a4")
    assert server.ip == "192.168.1.5" and server.facts.get("dhcp_server") is True
    other = inv.get("90:b1:1c:99:49:29")
    assert other.name == "btest.is.cool" and other.ip == "128.2.6.189"  # the address the ACK granted


def test_mdns_and_llmnr_names(pcaps):
    inv = learn(pcaps / "mdns.pcap", pcaps / "llmnr.pcap")
    vm = inv.get("8a:3c:d6:e1:4d:c4")
    assert vm.names["mdns"] == "johanna-QEMU-Virtual-Machine" and vm.ip == "10.0.2.7"
    responder = inv.get("00:25:90:34:ee:54")
    assert responder.names["llmnr"] == "HS2011" and responder.ip == "192.168.10.101"
    assert inv.get("192.168.10.233") is None  # the asker is not named by its own question


def test_lldp_and_cdp_neighbours(pcaps):
    inv = learn(pcaps / "lldp.pcap", pcaps / "cdp_v1.pcap")
    sw = inv.get("00:22:2d:81:db:10")
    assert sw.name == "SMCGS8P-Smart" and sw.ip == "192.168.2.10"
    assert sw.facts["neighbor"]["capabilities"] == ["bridge"] and sw.facts["neighbor"]["port_id"] == "1"
    assert sw.type == "switch" and sw.type_evidence["rule"] == "lldp_cdp.capabilities"
    r1 = inv.get("00:e0:1e:d5:d5:15")
    assert r1.name == "R1" and r1.ip == "192.168.10.1" and r1.type == "router"
    assert r1.facts["neighbor"]["platform"] == "cisco 1601"


def test_arp_and_nothing_from_other_traffic(pcaps):
    inv = learn(pcaps / "arp_who_has_baseline.pcap", pcaps / "tcp_fast_retransmit.pcap", pcaps / "smb2_net_user.pcap")
    assert {d.ip for d in inv.snapshot()} == {"10.0.0.1", "10.0.0.2"}


def test_malformed_frames_are_skipped(pcaps):
    for f, ts in frames(pcaps / "arp_malformed_len255.pcap"):
        observations(f, ts)  # must not raise
    assert isinstance(observations(b"\x01\x80\xc2\x00\x00\x0e" + b"\0" * 6 + b"\x88\xcc" + b"\xff" * 10), list)
    assert observations(b"") == [] and is_discovery_frame(b"\0" * 13) is None


# Dicts as the capture path's decoder (probe.fastpath.rare, parse branch) gives them for the same shared
# captures; they must teach the inventory what decoding the frames themselves (above) teaches it.
RARE_DHCP_REQUEST = {"src_mac": "00:0c:29:59:fd:21", "ts": 1476375984.775177, "protocol": "dhcp", "op": "request",
                     "xid": 1768807526, "client_mac": "00:0c:29:59:fd:21", "message_type": "request",
                     "server_id": "192.168.1.5", "requested_ip": "192.168.1.10", "hostname": "ubuntu2",
                     "parameter_request_list": [1, 28, 2, 3, 15, 6, 119, 12, 44, 47, 26, 121, 42]}
RARE_DHCP_ACK = {"src_mac": "00:0c:29:c0:60:a4", "ts": 1476375984.77744, "protocol": "dhcp", "op": "reply",
                 "xid": 1768807526, "yiaddr": "192.168.1.10", "siaddr": "192.168.1.5",
                 "client_mac": "00:0c:29:59:fd:21", "message_type": "ack", "server_id": "192.168.1.5",
                 "lease_seconds": 600}
RARE_LLMNR = {"src_mac": "00:25:90:34:ee:54", "ts": 1403668572.2758248, "protocol": "llmnr", "response": True,
              "questions": [{"name": "hs2011", "type": "A"}],
              "records": [{"name": "HS2011", "type": "A", "address": "192.168.10.101"}]}
RARE_LLDP = {"src_mac": "00:22:2d:81:db:10", "ts": 1258531220.09341, "protocol": "lldp",
             "chassis_id": "00:22:2d:81:db:10", "port_id": "1", "ttl": 120, "port_description": "Port #1",
             "system_name": "SMCGS8P-Smart", "system_description": "SMCGS8P-Smart - SMCGS8P-Smart v3.20",
             "capabilities": ["bridge"], "management_addresses": ["192.168.2.10"]}
RARE_CDP = {"src_mac": "00:e0:1e:d5:d5:15", "ts": 1164034146.739806, "protocol": "cdp", "version": 1, "ttl": 180,
            "device_id": "R1", "addresses": ["192.168.10.1"], "port_id": "Ethernet0",
            "software_version": "Cisco Internetwork Operating System Software \nIOS (tm) 1600 Software", "platform": "cisco 1601"}


def test_capture_decoder_dicts_teach_the_same_as_the_frames(pcaps):
    from probe.state.passive import from_decoded

    via_rare = Inventory(None, oui=OuiTable.load())
    for info in (RARE_DHCP_REQUEST, RARE_DHCP_ACK, RARE_LLMNR, RARE_LLDP, RARE_CDP,
                 {"protocol": "lldp", "malformed": "LLDP TLV 5: needs 13 bytes"}):
        devices.learn(via_rare, from_decoded(info))
    via_frames = learn(pcaps / "dhcp_dora_lan_192-168-1.pcapng", pcaps / "llmnr.pcap", pcaps / "lldp.pcap",
                      pcaps / "cdp_v1.pcap")
    for mac in ("00:0c:29:59:fd:21", "00:0c:29:c0:60:a4", "00:25:90:34:ee:54", "00:22:2d:81:db:10", "00:e0:1e:d5:d5:15"):
        a, b = via_rare.get(mac), via_frames.get(mac)
        assert (a.ip, a.name) == (b.ip, b.name), mac
        if mac != "00:e0:1e:d5:d5:15":  # rare.py leaves out CDP's capabilities TLV: no "router" vote from it
            assert a.type == b.type, mac
    assert via_rare.get("00:0c:29:59:fd:21").facts["dhcp_params"] == RARE_DHCP_REQUEST["parameter_request_list"]
    assert via_rare.get("00:22:2d:81:db:10").facts["neighbor"]["capabilities"] == ["bridge"]
    assert len(via_rare) == 5
    devices.learn(via_rare, from_decoded({**RARE_CDP, "capabilities": 0x01}))
    assert via_rare.get("00:e0:1e:d5:d5:15").type == "router"


def test_the_daemons_devices_learn_from_frames_and_decoded_dicts(pcaps, tmp_path):
    from probe.state.store import Store
    from probe.subsystems.base import Context

    store = Store(str(tmp_path))
    ctx = Context(store=store)
    ctx.devices.learn([o for f, ts in frames(pcaps / "lldp.pcap") + frames(pcaps / "tcp_fast_retransmit.pcap")
                       for o in observations(f, ts)])
    ctx.devices.learn_decoded([RARE_LLMNR])
    assert ctx.devices.inventory.get("00:22:2d:81:db:10").name == "SMCGS8P-Smart"
    assert ctx.devices.inventory.get("00:25:90:34:ee:54").name == "HS2011"
    assert not [e for e in ctx.ledger.open_episodes() if e.finding.kind == "device_new"]  # no baseline yet
    store.close()
