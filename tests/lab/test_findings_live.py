"""Real tools make real trouble on a lab LAN; the live probe, listening on its mirror port, raises the
matching finding within a minute. A quiet run with ordinary traffic raises none.

Every tool runs inside the lab's own namespaces, bounded in count and time, against lab addresses only.
"""
from __future__ import annotations

import contextlib
import shutil
import time

import pytest

from tests.lab.daemon import probe_daemon
from tests.lab.record_captures import duplicate_address, lossy_transfer, storm

pytestmark = [pytest.mark.lab, pytest.mark.peer]


def _config(lab, fanout: int = 1, **detection) -> str:
    det = ", ".join(f"{k}: {v}" for k, v in detection.items())
    return f"""\
subnets: [{{cidr: {lab.subnet}}}]
snmp: {{enabled: false}}
sweep: {{enabled: false}}
capture: {{interface: mirror0, window: 2s, fanout: {fanout}}}
detection: {{{det}}}
"""


def _need(*tools):
    for t in tools:
        if shutil.which(t) is None:
            pytest.skip(f"needs {t}")


def _who(host) -> set[str]:
    return {host.mac, str(host.ip)}


def _warm_up(lab):
    """Ordinary traffic first, so the probe knows who is who (the gateway's real MAC above all)."""
    for h in lab.hosts:
        lab.run(h, ["ping", "-c", "1", "-W", "1", str(lab.gateway.ip)], check=False)


@contextlib.contextmanager
def _watching(lab, tmp_path, *, warm_up: bool = True, **config):
    """The probe daemon on the lab's mirror port (configured by _config), after ordinary traffic."""
    with probe_daemon(lab, tmp_path, _config(lab, **config)) as probe:
        if warm_up:
            _warm_up(lab)
        yield probe


def _attack(lab, host, argv: list[str], seconds: int = 10) -> None:
    """Run a tool in `host`'s namespace, cut off after `seconds` (its own packet count bounds it first)."""
    lab.run(host, ["timeout", str(seconds), *argv], check=False, timeout=seconds + 10)


@pytest.mark.parametrize("fanout", [1, 2], ids=["one-ring", "fanout-2"])
def test_nmap_port_scan(lab_factory, tmp_path, fanout):
    """With fanout 2 the kernel splits the flows between two processes; their windows are merged."""
    _need("nmap", "curl")
    lab = lab_factory(hosts=2)
    scanner, victim = lab.hosts
    with _watching(lab, tmp_path, fanout=fanout) as probe:
        lab.run(scanner, ["nmap", "-n", "-Pn", "--disable-arp-ping", "-sS", "-p", "1-1000", "-T4",
                          "--max-retries", "0", "--host-timeout", "30s", str(victim.ip)], timeout=60)
        f = probe.wait_finding({"port_scan"}, timeout=60)
        assert f["device"] in _who(scanner), f


def test_nmap_host_sweep(lab_factory, tmp_path):
    _need("nmap", "curl")
    lab = lab_factory(hosts=2)
    scanner = lab.hosts[0]
    with _watching(lab, tmp_path) as probe:
        # An IP ping sweep of the lab /24 (ICMP echo + TCP 80/443 probes), not ARP.
        lab.run(scanner, ["nmap", "-n", "-sn", "--disable-arp-ping", "-T4", "--max-retries", "0",
                          "--host-timeout", "5s", str(lab.subnet)], timeout=90)
        f = probe.wait_finding({"host_sweep"}, timeout=60)
        assert f["device"] in _who(scanner), f


def test_arpspoof_poisoning_the_gateway(lab_factory, tmp_path):
    _need("arpspoof", "curl")
    lab = lab_factory(hosts=2)
    attacker, victim = lab.hosts
    with _watching(lab, tmp_path) as probe:
        time.sleep(3)  # a window with the true bindings
        lab.run(attacker, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        spoof = lab.popen(attacker, ["timeout", "20", "arpspoof", "-i", "eth0", "-t", str(victim.ip),
                                     str(lab.gateway.ip)])
        try:
            f = probe.wait_finding({"arp_spoofing"}, timeout=60)
        finally:
            lab.stop(spoof)
        assert f["device"] in _who(attacker) | {str(lab.gateway.ip)}, f


def test_second_dhcp_server_is_rogue(lab_factory, tmp_path):
    _need("dnsmasq", "curl")
    lab = lab_factory(hosts=3)
    rogue, client = lab.hosts[0], lab.hosts[1]
    base = lab.subnet.network_address
    with _watching(lab, tmp_path, warm_up=False, allowed_dhcp_servers=f"[{lab.gateway.ip}]") as probe:
        dnsmasq = lab.popen(rogue, ["dnsmasq", "--no-daemon", "--port=0", "--interface=eth0", "--bind-interfaces",
                                    f"--dhcp-range={base + 100},{base + 150},255.255.255.0,5m",
                                    f"--dhcp-leasefile={tmp_path / 'leases'}", "--no-resolv", "--no-hosts"])
        try:
            time.sleep(1)
            _dhcp_discover(lab, client, count=3)
            f = probe.wait_finding({"rogue_dhcp"}, timeout=60)
        finally:
            lab.stop(dnsmasq)
        assert f["device"] in _who(rogue), f


def _dhcp_discover(lab, host, count: int) -> None:
    """A real client's DISCOVER, sent by scapy in the host's namespace (no DHCP client is installed)."""
    script = (
        "from scapy.all import Ether, IP, UDP, BOOTP, DHCP, sendp, mac2str\n"
        f"mac = '{host.mac}'\n"
        f"for i in range({count}):\n"
        "    p = (Ether(src=mac, dst='ff:ff:ff:ff:ff:ff') / IP(src='0.0.0.0', dst='255.255.255.255') /"
        " UDP(sport=68, dport=67) / BOOTP(chaddr=mac2str(mac), xid=0x1000 + i) /"
        " DHCP(options=[('message-type', 'discover'), ('param_req_list', [1, 3, 6, 15]), 'end']))\n"
        "    sendp(p, iface='eth0', verbose=False)\n"
    )
    import sys
    lab.run(host, [sys.executable, "-c", script], timeout=30)


def _wait_listening(lab, client, ip, port, timeout=10.0):
    """Wait until the server listens, checking from its own namespace (no probe traffic on the LAN)."""
    server = next(h for h in lab.hosts if h.ip == ip)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = lab.run(server, ["ss", "-ltnH", f"sport = :{port}"], check=False)
        if r.stdout.strip():
            return
        time.sleep(0.1)
    raise AssertionError(f"nothing listening on {ip}:{port}")


def _web_server(ip, port: int, root) -> list[str]:
    """A plain HTTP server. Not `python3 -m http.server`: its HTTPServer looks its own address up in
    DNS (socket.getfqdn) before serving, and in a lab namespace that query waits on an unreachable
    resolver (and puts unanswered DNS on the quiet LAN)."""
    import sys
    script = ("import functools, http.server, socketserver\n"
              "class S(socketserver.ThreadingTCPServer):\n"
              "    allow_reuse_address = True\n"
              "    daemon_threads = True\n"
              f"S(({str(ip)!r}, {port}), functools.partial(http.server.SimpleHTTPRequestHandler,"
              f" directory={str(root)!r})).serve_forever()\n")
    return [sys.executable, "-c", script]


def test_hping3_syn_flood(lab_factory, tmp_path):
    _need("hping3", "curl")
    lab = lab_factory(hosts=2)
    attacker, victim = lab.hosts
    with _watching(lab, tmp_path) as probe:
        # 5,000 SYNs at ~5k/s to one port, from spoofed random sources: bounded by count and time.
        _attack(lab, attacker, ["hping3", "-q", "-S", "-p", "80", "-i", "u200", "-c", "5000", "--rand-source",
                                str(victim.ip)])
        f = probe.wait_finding({"syn_flood"}, timeout=60)
        assert f["device"] in _who(victim) | _who(attacker) | {"lan"}, f


def test_host_taking_another_ones_ip(lab_factory, tmp_path):
    _need("arping", "curl")
    lab = lab_factory(hosts=2)
    owner, thief = lab.hosts
    with _watching(lab, tmp_path) as probe:
        time.sleep(3)
        duplicate_address(lab, owner, thief)
        f = probe.wait_finding({"duplicate_ip", "arp_spoofing"}, timeout=60)
        found = probe.findings()
    # a misconfiguration, not an attacker: a warning on the address, naming both MACs
    assert f["kind"] == "duplicate_ip" and f["severity"] == "warning", f
    assert f["device"] == str(owner.ip) and f["evidence"]["macs"] == sorted([owner.mac, thief.mac]), f
    assert not [x for x in found if x["kind"] == "arp_spoofing"], found


def test_quiet_lan_raises_nothing(lab_factory, tmp_path):
    _need("dnsmasq", "curl")
    lab = lab_factory(hosts=3)
    base = lab.subnet.network_address
    with _watching(lab, tmp_path, warm_up=False, allowed_dhcp_servers=f"[{lab.gateway.ip}]") as probe:
        # The gateway is the LAN's DHCP and DNS server, as on a small office network.
        dns = lab.popen(lab.gateway, ["dnsmasq", "--no-daemon", "--interface=eth0", "--bind-interfaces",
                                      f"--dhcp-range={base + 100},{base + 150},255.255.255.0,5m",
                                      f"--dhcp-leasefile={tmp_path / 'leases'}", "--no-resolv", "--no-hosts",
                                      f"--address=/printer.office.lan/{lab.hosts[2].ip}"])
        web = lab.popen(lab.hosts[2], _web_server(lab.hosts[2].ip, 8080, tmp_path))
        try:
            _wait_listening(lab, lab.hosts[0], lab.hosts[2].ip, 8080)  # no refused connection on a quiet LAN
            _dhcp_discover(lab, lab.hosts[0], count=1)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                for h in lab.hosts[:2]:
                    lab.run(h, ["ping", "-c", "1", "-W", "1", str(lab.gateway.ip)], check=False)
                    lab.run(h, ["curl", "-s", "-o", "/dev/null", "--max-time", "2",
                                f"http://{lab.hosts[2].ip}:8080/"], check=False)
                time.sleep(0.5)
            time.sleep(5)  # let the last windows close
            found = probe.findings()
        finally:
            lab.stop(dns)
            lab.stop(web)
        assert found == [], found


def test_switching_loop_is_a_forwarding_loop(lab_factory, tmp_path):
    """A real loop on the lab switch (tests.lab.netns.Lab.add_loop: a veth pair with both ends on the
    bridge, STP off, throttled by tc tbf), started by one broadcast; unplugged after ~3 s of storm."""
    _need("arping", "curl")
    lab = lab_factory(hosts=2)
    with _watching(lab, tmp_path) as probe:
        time.sleep(2)
        storm(lab, 3.0)  # the loop is removed in a finally inside
        f = probe.wait_finding({"forwarding_loop"}, timeout=60)
    assert f["severity"] == "critical" and f["device"] == "lan", f
    ev = f["evidence"]
    assert ev["copies"] >= 20 and ev["duplicate_frames_per_second"] >= 10, ev
    lab_macs = {h.mac for h in (*lab.hosts, lab.gateway, lab.probe)}
    # the ARP request of hosts[0], or an IPv6 multicast report of a host that the loop also carries
    assert ev["src_mac"] == lab.hosts[0].mac or (ev["protocol"] == "icmp" and ev["ethertype"] == "0x86dd"), ev
    assert ev["src_mac"] in lab_macs or ev["protocol"] == "icmp", ev


def test_packet_loss_raises_tcp_retransmissions_for_the_sender(lab_factory, tmp_path):
    """Four TCP transfers between two lab hosts, clean for several windows (the sender's baseline), then
    the switch drops 10% of the sender's frames (Lab.add_loss; the kernel here has no sch_netem). Loss
    on a link hits every connection of the host; one connection alone is not judged (a single flow
    retransmitting is no evidence about the host, tcp_retrans_min_flows)."""
    _need("nft", "curl")
    lab = lab_factory(hosts=2)
    sender, receiver = lab.hosts
    with _watching(lab, tmp_path, warm_up=False) as probe:
        lossy_transfer(lab, sender, receiver, clean=14, lossy=10, connections=4)
        f = probe.wait_finding({"tcp_retransmissions"}, timeout=60)
        others = [x for x in probe.findings() if x["kind"] == "tcp_retransmissions" and x["device"] != str(sender.ip)]
    assert f["device"] == str(sender.ip), f
    ev = f["evidence"]
    # above its own clean baseline (the first window may straddle the start of the loss: a few % only)
    assert ev["baseline_learned"] and ev["retransmission_ratio"] >= ev["limit_ratio"] >= 0.02, ev
    assert ev["tcp_retransmissions"] >= 3 and ev["retransmitting_connections"] >= 3, ev
    assert others == []


def test_clean_transfer_raises_no_retransmissions(lab_factory, tmp_path):
    _need("curl")
    lab = lab_factory(hosts=2)
    sender, receiver = lab.hosts
    with _watching(lab, tmp_path, warm_up=False) as probe:
        lossy_transfer(lab, sender, receiver, clean=12, lossy=0)
        time.sleep(5)  # let the last windows close
        found = [f for f in probe.findings() if f["kind"] in ("tcp_retransmissions", "forwarding_loop")]
    assert found == []
