"""`sitevigil replay` on the shared captures: problems raise their findings, benign traffic raises no attack."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from probe.findings.lan import ATTACK_KINDS, HEALTH_KINDS
from probe.sources.capfile import read_batches, write_pcap

# capture -> finding kinds it must raise (what each capture shows: ../shared/data/pcap/README.txt)
PROBLEMS = {
    "portscan_nmap_syn_1000ports.pcapng": {"port_scan"},
    "portscan_syn_29ports_slow.pcap": {"port_scan"},
    "nmap_arp_sweep_and_version_scan.pcap": {"host_sweep"},
    "synflood_single_source_200.pcap": {"syn_flood"},
    "synflood_spoofed_random.pcap": {"syn_flood"},
    "dhcp_flood_500.pcap": {"dhcp_flood"},
    "arp_poison_mitm.pcapng": {"arp_spoofing"},
    # one query retried to two servers, neither answering: two transactions, every one unanswered
    "dns_timeout_no_response.pcapng": {"dns_failure"},
}
# one flow or a handful of packets: a problem for that flow, no finding (issue 12: no single flow raises
# one); tests/integration/test_benign_captures.py holds them to that, and shows the same across several
# flows raising it
SINGLE_FLOW = ["dns_nxdomain.pcapng", "dns_servfail_internal.pcapng", "icmp_host_unreachable.pcap",
               "tcp_syn_rst_refused.pcapng", "tcp_fast_retransmit.pcap", "tcp_rto_retransmissions.pcapng"]
# ordinary traffic: must raise none of the attack kinds (health findings such as one refused
# connection may appear, they are not attacks)
BENIGN = [
    "arp_who_has_baseline.pcap", "arp_gratuitous.pcapng", "arp_malformed_len255.pcap", "dhcp_dora.pcap",
    "dhcp_dora_lan_192-168-1.pcapng", "lldp.pcap", "cdp_v1.pcap", "mdns.pcap", "llmnr.pcap", "ssdp_notify.pcap",
    "igmp_mdns_home.pcap", "udp_broadcast_255.pcap", "snmp_walk_400.pcap", "snmp_v1_trap.pcap",
    "snmp_v2c_get_lldp_mib.pcap", "smb2_net_user.pcap", "tcpreplay_mixed_test.pcap", "tcp_zero_window.pcapng",
    "icmp_port_unreachable.pcap", "icmp_traceroute_ttl_exceeded.pcapng",
]


def replay(cmd, env, path, *extra, expect_rc=0):
    p = subprocess.run([*cmd, "replay", str(path), *extra], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == expect_rc, p.stderr
    return p


def replay_json(cmd, env, path, *extra, expect_rc=0):
    return json.loads(replay(cmd, env, path, "--format", "json", *extra, expect_rc=expect_rc).stdout)


def kinds(report):
    return {f["kind"] for f in report["findings"]}


@pytest.fixture(scope="module")
def pcaps(shared_data):
    return shared_data / "pcap"


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_problem_captures_raise_their_finding(pcaps, sitevigil_cmd, sitevigil_env, name):
    report = replay_json(sitevigil_cmd, sitevigil_env, pcaps / name)
    got = kinds(report)
    assert PROBLEMS[name] <= got, f"{name}: expected {PROBLEMS[name]}, got {report['findings']}"
    unexpected_attacks = (got & set(ATTACK_KINDS)) - PROBLEMS[name]
    assert not unexpected_attacks, f"{name}: also raised {unexpected_attacks}"
    for f in report["findings"]:
        assert f["severity"] in ("info", "warning", "critical") and f["device"] and isinstance(f["evidence"], dict)
        assert f["first_seen"] <= f["last_seen"]


def test_benign_captures_raise_no_attack(pcaps, sitevigil_cmd, sitevigil_env):
    for name in BENIGN + SINGLE_FLOW:
        report = replay_json(sitevigil_cmd, sitevigil_env, pcaps / name)
        assert not kinds(report) & set(ATTACK_KINDS), f"{name}: {report['findings']}"
        assert kinds(report) <= set(HEALTH_KINDS)


def test_report_fields_and_devices(pcaps, sitevigil_cmd, sitevigil_env):
    r = replay_json(sitevigil_cmd, sitevigil_env, pcaps / "portscan_nmap_syn_1000ports.pcapng")
    assert (r["frames"], r["bytes"], r["malformed"], r["error"]) == (2011, 116672, 0, None)
    assert r["events"]["tcp_syn"] == 1994 and r["events"]["tcp_synack"] == 12 and r["events"]["tcp_rst"] == 5
    scanner = r["devices"]["00:25:b3:bf:91:ee"]
    assert scanner["ipv4"] == "172.16.0.8" and scanner["tcp_syn"] == 1994
    assert 850 <= scanner["distinct_dst_ports"] <= 1150  # 1000 ports, HyperLogLog estimate
    assert r["hosts"]["172.16.0.8"]["mac"] == "00:25:b3:bf:91:ee"
    m = replay_json(sitevigil_cmd, sitevigil_env, pcaps / "arp_malformed_len255.pcap")
    assert m["frames"] == 6 and m["malformed"] == 6


def test_rogue_dhcp_server(pcaps, sitevigil_cmd, sitevigil_env, tmp_path):
    # the LAN's server (192.168.1.5) answers first; later a second server (128.2.6.152) offers leases
    first = list(read_batches(str(pcaps / "dhcp_dora_lan_192-168-1.pcapng")))
    second = list(read_batches(str(pcaps / "dhcp_dora.pcap")))
    t_end = max(int(b.ts_ns.max()) for b in first)
    shift = t_end + 60 * 10**9 - min(int(b.ts_ns.min()) for b in second)
    for b in second:
        b.ts_ns = b.ts_ns + shift
    merged = tmp_path / "two_dhcp_servers.pcap"
    write_pcap(str(merged), first + second, nanosecond=True)
    r = replay_json(sitevigil_cmd, sitevigil_env, merged)
    rogue = [f for f in r["findings"] if f["kind"] == "rogue_dhcp"]
    assert len(rogue) == 1 and rogue[0]["device"] == "00:0c:29:40:0e:ef"
    assert rogue[0]["evidence"]["server_id"] == "128.2.6.152" and rogue[0]["evidence"]["allowed"] == ["192.168.1.5"]
    # with an allowed list, the configured server is fine and any other is rogue
    r = replay_json(sitevigil_cmd, sitevigil_env, pcaps / "dhcp_dora.pcap", "--allowed-dhcp-server", "128.2.6.152")
    assert "rogue_dhcp" not in kinds(r)
    r = replay_json(sitevigil_cmd, sitevigil_env, pcaps / "dhcp_dora.pcap", "--allowed-dhcp-server", "192.168.1.5")
    assert [f["device"] for f in r["findings"] if f["kind"] == "rogue_dhcp"] == ["00:0c:29:40:0e:ef"]


def test_truncated_file_reports_after_processing(pcaps, sitevigil_cmd, sitevigil_env, tmp_path):
    data = (pcaps / "portscan_nmap_syn_1000ports.pcapng").read_bytes()
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(data[:len(data) * 2 // 3])
    p = replay(sitevigil_cmd, sitevigil_env, cut, "--format", "json", expect_rc=1)
    r = json.loads(p.stdout)
    assert 1000 < r["frames"] < 2011 and "port_scan" in kinds(r)
    assert str(cut) in p.stderr and "byte " in p.stderr and "truncated block" in p.stderr
    assert r["error"] and str(cut) in r["error"]


def test_prom_format(pcaps, sitevigil_cmd, sitevigil_env, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    out = replay(sitevigil_cmd, sitevigil_env, pcaps / "synflood_spoofed_random.pcap", "--format", "prom").stdout
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(out) for s in fam.samples}
    assert samples[("sitevigil_capture_frames_total", ())] == 100
    assert samples[("sitevigil_capture_events_total", (("event", "tcp_syn"),))] == 100
    assert samples[("sitevigil_findings_raised_total", (("kind", "syn_flood"), ("severity", "critical")))] == 1
    assert samples[("sitevigil_capture_devices", (("table", "mac"),))] == 100
    top = [k for k in samples if k[0] == "sitevigil_capture_top_device_frames"]
    assert len(top) == 10  # bounded: only the top talkers get a series
    if shutil.which("promtool"):
        lint = subprocess.run(["promtool", "check", "metrics"], input=out, capture_output=True, text=True, timeout=60)
        assert lint.returncode == 0, lint.stdout + lint.stderr


def test_bad_arguments(pcaps, sitevigil_cmd, sitevigil_env, tmp_path):
    p = replay(sitevigil_cmd, sitevigil_env, pcaps / "lldp.pcap", "--allowed-dhcp-server", "nope", expect_rc=2)
    assert "not an IP address" in p.stderr
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture at all")
    p = replay(sitevigil_cmd, sitevigil_env, junk, expect_rc=1)
    assert f"{junk}: byte 0: not a pcap or pcapng file" in p.stderr


def test_mixed_interface_pcapng_replays_what_it_can_and_reports_what_it_skipped(pcaps, sitevigil_cmd, sitevigil_env,
                                                                               tmp_path):
    # as `dumpcap -i eth0 -i usbmon0` writes it: Ethernet frames interleaved with USB ones (link type 220)
    import struct

    def block(btype, body):
        body += bytes(-len(body) % 4)
        return struct.pack("<II", btype, len(body) + 12) + body + struct.pack("<I", len(body) + 12)

    def idb(linktype, name):
        nm = name.encode()
        return block(1, struct.pack("<HHI", linktype, 0, 0) + struct.pack("<HH", 2, len(nm)) + nm
                     + bytes(-len(nm) % 4) + bytes(4))

    out = [block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)), idb(1, "eth0"), idb(220, "usbmon0")]
    frames = 0
    for batch in read_batches(str(pcaps / "dhcp_dora.pcap")):
        for i in range(len(batch)):
            f, ts = batch.frame(i), int(batch.ts_ns[i]) // 1000
            for iface, data in ((0, f), (1, bytes(64))):
                out.append(block(6, struct.pack("<IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, len(data), len(data)) + data))
            frames += 1
    mixed = tmp_path / "mixed.pcapng"
    mixed.write_bytes(b"".join(out))
    p = replay(sitevigil_cmd, sitevigil_env, mixed, "--format", "json")
    r = json.loads(p.stdout)
    alone = replay_json(sitevigil_cmd, sitevigil_env, pcaps / "dhcp_dora.pcap")
    assert r["frames"] == alone["frames"] == frames and r["error"] is None
    assert r["devices"] == alone["devices"] and r["discovery"] == alone["discovery"]
    assert r["skipped_frames"] == {"link type 220: not supported": frames}
    assert alone["skipped_frames"] == {} and alone["timestamps_out_of_range"] == 0
    assert p.stderr.count("warning:") == 1 and "interface 1 (usbmon0): link type 220 is not supported" in p.stderr
