"""Record the attack captures in this folder from real tools on a namespace lab LAN (root; the tools installed).

    /work/main/.venv/bin/python tests/data/pcap/record.py [NAME...]     # from the repository root

The lab (tests/lab/netns.py) is a bridge with a gateway, the probe's mirror port and hosts h0 (attacker)
and h1 (victim, listening on TCP 22/80/443); tcpdump on the mirror port writes NAME.pcap. Every tool is
bounded by a packet count and a timeout and sends only to the lab's own addresses.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from tests.lab.netns import Lab  # noqa: E402

LISTEN = ("import socket, time\ns = []\nfor p in (22, 80, 443):\n    x = socket.socket()\n"
          "    x.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n    x.bind(('0.0.0.0', p))\n"
          "    x.listen(50)\n    s.append(x)\ntime.sleep(120)\n")


def scenarios(victim, victim_mac):
    v = str(victim)
    nmap = ["nmap", "-n", "-Pn", "--disable-arp-ping", "-p1-300", "-T4", "--max-retries", "0"]
    return {
        "nmap_fin_scan": [*nmap, "-sF", v],
        "nmap_xmas_scan": [*nmap, "-sX", v],
        "nmap_null_scan": [*nmap, "-sN", v],
        "nmap_ack_scan": [*nmap, "-sA", v],
        "nmap_window_scan": [*nmap, "-sW", v],
        "nmap_maimon_scan": [*nmap, "-sM", v],
        "masscan_syn_scan": ["masscan", "-e", "eth0", "-p1-400", "--rate", "2000", "--router-mac", victim_mac,
                             "--wait", "1", v],
        "macof_mac_flood": ["timeout", "5", "macof", "-i", "eth0", "-n", "1500"],
        "mausezahn_mac_flood": ["timeout", "5", "mausezahn", "eth0", "-c", "1500", "-d", "200u", "-a", "rand",
                                "-b", "rand", "-p", "46", "-q"],
        "hping3_syn_flood_open_port": ["timeout", "5", "hping3", "-q", "-S", "-p", "80", "-i", "u300", "-c", "1000", v],
        "hping3_icmp_flood": ["timeout", "5", "hping3", "-q", "-1", "-i", "u300", "-c", "1500", v],
        "hping3_udp_flood": ["timeout", "5", "hping3", "-q", "-2", "-p", "5000", "-i", "u300", "-c", "1500", v],
        "mausezahn_udp_flood_spoofed": ["timeout", "5", "mausezahn", "eth0", "-c", "1500", "-d", "300u", "-A", "rand",
                                        "-B", v, "-t", "udp", "dp=5000", "-q"],
    }


def main(names: list[str]) -> int:
    lab = Lab(hosts=2)
    try:
        attacker, victim = lab.hosts
        lab.popen(victim, [sys.executable, "-c", LISTEN])
        for h in lab.hosts:  # ordinary traffic first: the lab's devices talk and are known
            lab.run(h, ["ping", "-c", "1", "-W", "1", str(lab.gateway.ip)], check=False)
        scen = scenarios(victim.ip, victim.mac)
        for name in names or list(scen):
            out = HERE / f"{name}.pcap"
            td = lab.popen(lab.probe, ["tcpdump", "-i", "mirror0", "-n", "-U", "-s", "256", "-w", str(out)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
            lab.run(attacker, ["ping", "-c", "1", "-W", "1", str(victim.ip)], check=False)
            r = lab.run(attacker, scen[name], check=False, timeout=60)
            time.sleep(1.0)
            lab.stop(td)
            os.chmod(out, 0o644)
            print(f"{name}: rc {r.returncode}, {out.stat().st_size:,} bytes", flush=True)
    finally:
        lab.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
