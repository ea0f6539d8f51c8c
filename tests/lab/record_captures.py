"""Record the lab captures under tests/data/pcap/ (how they were made; run as root to remake them).

    python -m tests.lab.record_captures loop OUT.pcap      # a switching loop circulating one ARP request
    python -m tests.lab.record_captures retrans OUT.pcap   # a TCP transfer, clean, then 10% loss on the switch
    python -m tests.lab.record_captures duplicate_ip OUT.pcap  # h0 takes h1's address as a second one
    python -m tests.lab.record_captures arpspoof OUT.pcap  # dsniff arpspoof poisons h1's entry for the gateway

Each builds a tests.lab.netns.Lab, captures the probe's mirror port with tcpdump (bounded by a frame
count and a time limit) while real tools make the trouble, and tears everything down.
"""
from __future__ import annotations

import subprocess
import sys
import time

from tests.lab.netns import Lab

SNAPLEN = "96"  # headers only: the TCP payload length is read from the IP header, not from what was captured


def arping_argv(lab: Lab, host, target: str, count: int = 1, *, source: str | None = None,
                unsolicited: bool = False) -> list[str]:
    """argv for whichever arping is installed: Debian's `arping` package is Thomas Habets' (-i IFACE,
    -S source IP, -s would be a source MAC), iputils-arping takes -I IFACE and -s source IP. `unsolicited`
    (-U): announce `source` (sender = target address), as a host coming up does."""
    r = lab.run(host, ["arping", "--help"], check=False)
    habets = "Habets" in r.stdout + r.stderr
    argv = ["arping", "-c", str(count), "-w", str(count + 2 if count > 1 else 1), "-i" if habets else "-I", "eth0"]
    if source is not None:
        argv += ["-S" if habets else "-s", source]
    if unsolicited:
        argv.append("-U")
    return argv + [target]


def duplicate_address(lab: Lab, owner, thief) -> None:
    """`thief` takes `owner`'s address as a second one (ip addr add: a typo, a cloned config), announces
    it three times, and both then answer the gateway's who-has for it; the address is removed after."""
    lab.run(thief, ["ip", "addr", "add", f"{owner.ip}/32", "dev", "eth0"])
    try:
        r = lab.run(thief, arping_argv(lab, thief, str(owner.ip), 3, source=str(owner.ip), unsolicited=True),
                    check=False)
        if "arping:" in r.stderr:
            raise RuntimeError(f"arping did not send its announcements: {r.stderr}")
        lab.run(owner, arping_argv(lab, owner, str(lab.gateway.ip), 2), check=False)  # the owner keeps using it
        lab.run(lab.gateway, arping_argv(lab, lab.gateway, str(owner.ip), 2), check=False)
    finally:
        lab.run(thief, ["ip", "addr", "del", f"{owner.ip}/32", "dev", "eth0"], check=False)


def storm(lab: Lab, seconds: float, rate: str = "4mbit") -> None:
    """A loop on the lab switch for `seconds`, started by one broadcast ARP request from hosts[0] for an
    address nobody holds (so no replies join the storm); the loop is unplugged in a finally."""
    nobody = str(lab.subnet.network_address + 250)
    loop = lab.add_loop(rate)
    try:
        lab.run(lab.hosts[0], arping_argv(lab, lab.hosts[0], nobody), check=False, timeout=10)
        time.sleep(seconds)
    finally:
        lab.remove_loop(loop)


def bulk_sender(lab: Lab, receiver, port: int, seconds: float) -> list[str]:
    """argv of a Python TCP sender: writes 1400-byte chunks to receiver:port for `seconds`, then stops."""
    script = ("import socket, time\n"
              f"s = socket.create_connection(({str(receiver.ip)!r}, {port}), timeout=5)\n"
              "s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)\n"
              "buf = b'x' * 1400\n"
              f"end = time.monotonic() + {seconds}\n"
              "while time.monotonic() < end:\n"
              "    s.sendall(buf)\n"
              "    time.sleep(0.004)\n"
              "s.close()\n")
    return [sys.executable, "-c", script]


def sink(receiver, port: int, seconds: float) -> list[str]:
    """argv of a Python TCP receiver that reads and discards for at most `seconds`."""
    script = ("import socket, time\n"
              "srv = socket.socket()\n"
              "srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
              f"srv.bind(({str(receiver.ip)!r}, {port}))\n"
              "srv.listen(4)\n"
              f"srv.settimeout({seconds})\n"
              f"end = time.monotonic() + {seconds}\n"
              "while time.monotonic() < end:\n"
              "    try:\n"
              "        c, _ = srv.accept()\n"
              "    except OSError:\n"
              "        break\n"
              "    c.settimeout(max(0.1, end - time.monotonic()))\n"
              "    try:\n"
              "        while c.recv(65536):\n"
              "            pass\n"
              "    except OSError:\n"
              "        pass\n"
              "    c.close()\n")
    return [sys.executable, "-c", script]


def wait_listening(lab: Lab, host, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lab.run(host, ["ss", "-ltnH", f"sport = :{port}"], check=False).stdout.strip():
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {host}:{port}")


def lossy_transfer(lab: Lab, sender, receiver, *, clean: float, lossy: float, loss: int = 10, port: int = 5001,
                   connections: int = 1):
    """Bulk transfers from sender to receiver, one per port from `port` on: `clean` seconds, then
    `lossy` seconds while the switch drops `loss`% of the sender's frames (Lab.add_loss; a bad cable or
    port hits every connection of the host); the loss is removed in a finally."""
    ports = range(port, port + connections)
    procs = []
    try:
        for p in ports:
            procs.append(lab.popen(receiver, sink(receiver, p, clean + lossy + 10), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL))
            wait_listening(lab, receiver, p)
        senders = [lab.popen(sender, bulk_sender(lab, receiver, p, clean + lossy), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL) for p in ports]
        procs += senders
        time.sleep(clean)
        table = lab.add_loss(sender, loss) if lossy > 0 and loss > 0 else None
        try:
            for tx in senders:
                tx.wait(timeout=lossy + 15)
        finally:
            if table is not None:
                lab.remove_loss(table)
    finally:
        for proc in reversed(procs):
            lab.stop(proc)


def record(kind: str, out: str) -> None:
    with Lab(hosts=2) as lab:
        cap = lab.popen(lab.probe, ["timeout", "40", "tcpdump", "-i", "mirror0", "-n", "-U", "-s", SNAPLEN,
                                    "-c", "2000" if kind == "loop" else "9000", "-w", out],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.5)
        for h in lab.hosts:  # ordinary traffic first
            lab.run(h, ["ping", "-c", "2", "-i", "0.2", "-W", "1", str(lab.gateway.ip)], check=False)
        if kind == "loop":
            storm(lab, 2.0)
        elif kind == "duplicate_ip":
            duplicate_address(lab, lab.hosts[1], lab.hosts[0])
        elif kind == "arpspoof":
            lab.run(lab.hosts[0], ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
            spoof = lab.popen(lab.hosts[0], ["timeout", "12", "arpspoof", "-i", "eth0", "-t", str(lab.hosts[1].ip),
                                             str(lab.gateway.ip)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            ping = lab.popen(lab.hosts[1], ["ping", "-c", "40", "-i", "0.25", str(lab.gateway.ip)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                time.sleep(11)
            finally:
                lab.stop(ping)
                lab.stop(spoof)
        else:
            lossy_transfer(lab, lab.hosts[0], lab.hosts[1], clean=3, lossy=8)
        time.sleep(1)
        lab.stop(cap)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("loop", "retrans", "duplicate_ip", "arpspoof"):
        sys.exit(__doc__)
    record(sys.argv[1], sys.argv[2])
