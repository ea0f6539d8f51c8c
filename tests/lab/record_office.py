"""Record an hour of ordinary office traffic on a lab LAN (how tests/data/pcap/benign_office_hour.pcap
was made; run as root from the repository root):

    python -m tests.lab.record_office OUT.pcap [--seconds 3600] [--seed 7]

A tests.lab.netns.Lab with four hosts. The gateway runs dnsmasq as the office's DNS server (the zone
office.lan: a few names, every other name in it NXDOMAIN, as a typo gets); h0 serves the intranet web
page, h1 a file share stand-in (HTTP too) and a real Net-SNMP agent the probe polls each minute.
Each host, at random intervals (exponential, mean `--think` seconds), does what an office PC does:
looks up a name (one in ten a typo: NXDOMAIN), fetches a page with curl, pings the gateway, and now
and then connects to a port nobody listens on (one SYN, one RST: a refused connection). tcpdump on the
probe's mirror port, headers only (-s 128), bounded by a frame count and the duration. Nothing leaves
the lab's namespaces; the lab is torn down in a finally.
"""
from __future__ import annotations

import argparse
import random
import struct
import subprocess
import sys
import time

from tests.lab.netns import Lab

NAMES = ("intranet", "files", "printer", "gw", "wiki")
TYPOS = ("intrante", "fiels", "printr", "wikki", "intranet2")


def dns_query_argv(server: str, name: str, qid: int) -> list[str]:
    """argv of a Python one-shot DNS A query over UDP (what a stub resolver sends), 2 s timeout."""
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    query = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + struct.pack("!HH", 1, 1)
    script = ("import socket\n"
              "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
              "s.settimeout(2)\n"
              f"s.sendto({query!r}, ({server!r}, 53))\n"
              "try:\n"
              "    s.recv(512)\n"
              "except OSError:\n"
              "    pass\n")
    return [sys.executable, "-c", script]


def http_server_argv(ip: str, port: int, seconds: float) -> list[str]:
    return ["timeout", str(int(seconds)), sys.executable, "-m", "http.server", "--bind", ip, str(port),
            "--directory", "/usr/share/doc/tcpdump"]


def record(out: str, seconds: float, seed: int, think: float) -> None:
    rng = random.Random(seed)
    with Lab(hosts=4) as lab:
        gw, (h0, h1, h2, h3) = lab.gateway, lab.hosts
        zone = {"intranet": h0.ip, "files": h1.ip, "printer": h2.ip, "gw": gw.ip, "wiki": h0.ip}
        dnsmasq = ["timeout", str(int(seconds + 30)), "dnsmasq", "--no-daemon", "-C", "/dev/null",
                   "--no-resolv", "--no-hosts", "--bind-interfaces", f"--listen-address={gw.ip}",
                   "--local=/office.lan/", "--pid-file", "--user=root"]
        dnsmasq += [f"--host-record={n}.office.lan,{ip}" for n, ip in zone.items()]
        lab.popen(gw, dnsmasq, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        lab.popen(h0, http_server_argv(str(h0.ip), 80, seconds + 30), stdout=subprocess.DEVNULL,
                  stderr=subprocess.DEVNULL)
        lab.popen(h1, http_server_argv(str(h1.ip), 80, seconds + 30), stdout=subprocess.DEVNULL,
                  stderr=subprocess.DEVNULL)
        agent = lab.start_snmpd(h1)
        cap = lab.popen(lab.probe, ["timeout", str(int(seconds + 20)), "tcpdump", "-i", "mirror0", "-n", "-U",
                                    "-s", "128", "-c", "400000", "-w", out],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(2)
        clients = [h0, h1, h2, h3]
        due = {h.name: rng.expovariate(1 / think) for h in clients}
        next_poll, start, actions = 0.0, time.monotonic(), 0
        while (now := time.monotonic() - start) < seconds and actions < 100000:
            if now >= next_poll:  # the probe's own SNMP poll of the agent, each minute
                lab.run(lab.probe, ["snmpbulkwalk", "-v2c", "-c", agent.community, "-t", "2", "-r", "1",
                                    f"{h1.ip}:{agent.port}", "1.3.6.1.2.1.1"], check=False, timeout=20)
                next_poll = now + 60
            host = min(clients, key=lambda h: due[h.name])
            wait = due[host.name] - now
            if wait > 0:
                time.sleep(min(wait, max(0.0, next_poll - now), 5.0))
                continue
            due[host.name] = now + rng.expovariate(1 / think)
            actions += 1
            roll = rng.random()
            if roll < 0.45:
                typo = rng.random() < 0.1
                name = rng.choice(TYPOS if typo else NAMES) + ".office.lan"
                lab.run(host, dns_query_argv(str(gw.ip), name, rng.randrange(65536)), check=False, timeout=10)
            elif roll < 0.85:
                server = rng.choice((h0, h1))
                lab.run(host, dns_query_argv(str(gw.ip), "intranet.office.lan" if server is h0 else
                                             "files.office.lan", rng.randrange(65536)), check=False, timeout=10)
                lab.run(host, ["curl", "-s", "-o", "/dev/null", "-m", "5", f"http://{server.ip}/"], check=False,
                        timeout=10)
            elif roll < 0.98:
                lab.run(host, ["ping", "-c", "1", "-W", "1", str(gw.ip)], check=False, timeout=5)
            else:  # a refused connection: a program trying a service that is not there
                lab.run(host, ["curl", "-s", "-o", "/dev/null", "-m", "3", f"http://{h2.ip}:8080/"], check=False,
                        timeout=10)
        time.sleep(2)
        lab.stop(cap)
        print(f"{actions} actions in {time.monotonic() - start:.0f} s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--seconds", type=float, default=3600)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--think", type=float, default=12.0, help="mean seconds between one host's actions")
    a = p.parse_args()
    record(a.out, a.seconds, a.seed, a.think)


if __name__ == "__main__":
    main()
