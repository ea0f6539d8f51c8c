"""Sweep of a simulated client LAN: `sitevigil sweep` against Debian's arp-scan, hosts found and wall time.

Builds a lab LAN (network namespaces: 50 hosts with --quick, else 100, plus gateway and probe) and, in one
run, sweeps it from the probe's namespace with `arp-scan -I eth0 CIDR` and with `sitevigil sweep CIDR
--no-snmp` (ARP only: arp-scan does nothing else), each at its own default rate, then each at the other's
rate. The rate each tool really sent at is measured from a tcpdump capture of its ARP requests, not
taken from its settings (peak: the most requests in any 0.2 s). Each figure is the median of 3 runs (1 with --quick), after one warm-up
run of each program; sitevigil runs byte-compiled, as an installed package does. Reported per run: hosts found (of those present), wall time of the command,
packets sent, measured send rate; and the ratio of wall times (ours / arp-scan's; below 1 is faster).
A last line times the full sweep (ARP + SNMP identity probe of 5 agents), which arp-scan cannot do.
Needs root, iproute2, arp-scan, tcpdump and snmpd.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from probe.commands.bench import report  # noqa: E402


def _lab():
    sys.path.insert(0, REPO)
    from tests.lab.netns import Lab, lab_available

    return Lab, lab_available


def _capture(lab, path):
    proc = lab.popen(lab.probe, ["tcpdump", "-i", "eth0", "-n", "-U", "-w", path, "arp"],
                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # wait until tcpdump listens ("listening on" on stderr)
    deadline = time.monotonic() + 5
    line = b""
    while time.monotonic() < deadline and b"listening" not in line:
        line = proc.stderr.readline()
    return proc


def _send_rate(path, probe_mac, window=0.2):
    """Requests sent by the probe, and its peak rate: the most requests in any `window` seconds (what a
    rate limit bounds; pauses between passes and bursty pacing do not skew it)."""
    import bisect

    from scapy.layers.l2 import ARP
    from scapy.utils import rdpcap

    times = sorted(float(p.time) for p in rdpcap(path)
                   if p.haslayer(ARP) and p[ARP].op == 1 and p.src == probe_mac)
    peak = max((bisect.bisect_left(times, t + window) - i for i, t in enumerate(times)), default=0)
    return len(times), peak / window


def run_arp_scan(lab, interval_ms: float | None):
    argv = ["arp-scan", "-I", "eth0", "--quiet", "--plain"]
    if interval_ms is not None:
        argv.append(f"--interval={interval_ms:.3f}ms" if interval_ms < 1 else f"--interval={int(round(interval_ms))}")
    argv.append(str(lab.subnet))
    t0 = time.monotonic()
    r = lab.run(lab.probe, argv, timeout=120)
    wall = time.monotonic() - t0
    found = {}
    for line in r.stdout.splitlines():
        m = re.match(r"^(\d+\.\d+\.\d+\.\d+)\s+([0-9a-f:]{17})", line)
        if m:
            found[m.group(1)] = m.group(2)
    return found, wall


_PYCACHE = tempfile.mkdtemp(prefix="bench-sweep-pycache-")


def run_ours(lab, rate: int | None, snmp: bool = False):
    # As installed: byte-compiled modules (kept out of the checkout, in a temporary cache directory).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPATH=REPO, PYTHONPYCACHEPREFIX=_PYCACHE)
    argv = [sys.executable, "-m", "probe", "sweep", str(lab.subnet), "--format", "json", "--no-progress"]
    argv += ["--community", "lab-public"] if snmp else ["--no-snmp"]
    if rate is not None:
        argv += ["--rate", str(rate)]
    t0 = time.monotonic()
    r = lab.run(lab.probe, argv, timeout=180, env=env, cwd=REPO)
    wall = time.monotonic() - t0
    doc = json.loads(r.stdout)
    return {d["ip"]: d["mac"] for d in doc["devices"]}, wall, doc


def measure(lab, name, fn, tmp, repeat=1):
    """Run `fn` `repeat` times under tcpdump; the run with the median wall time is reported."""
    runs = []
    for i in range(repeat):
        pcap = os.path.join(tmp, f"{name}-{i}.pcap")
        cap = _capture(lab, pcap)
        try:
            found, wall, *rest = fn()
        finally:
            time.sleep(0.3)
            lab.stop(cap)
        sent, rate = _send_rate(pcap, lab.probe.mac)
        runs.append({"found": found, "wall": wall, "sent": sent, "rate": rate, "extra": rest,
                     "internal": rest[-1]["duration_seconds"] if rest else None})
    runs.sort(key=lambda r: r["wall"])
    return runs[len(runs) // 2]


def main(argv) -> int:
    quick = "--quick" in argv
    Lab, lab_available = _lab()
    why = lab_available()
    missing = [t for t in ("arp-scan", "tcpdump", "snmpd") if shutil.which(t) is None]
    if why or missing:
        print(f"bench_sweep: skipped: {why or 'needs ' + ', '.join(missing)}")
        return 0
    from probe.config import SweepConfig

    default_rate = SweepConfig().rate_pps
    n_hosts = 50 if quick else 100
    tmp = tempfile.mkdtemp(prefix="bench-sweep-")
    lab = Lab(hosts=n_hosts, snmp_hosts=5)
    try:
        truth = {str(h.ip): h.mac for h in [lab.gateway, *lab.hosts]}
        print(f"lab LAN {lab.subnet}: {len(truth)} hosts (gateway + {n_hosts}), 253 addresses to probe")
        rep = 1 if quick else 3
        run_arp_scan(lab, None)  # warm-ups: both programs and their data files in the page cache
        run_ours(lab, None)
        report().progress(f"arp-scan and our sweep of {lab.subnet}, {rep} each")
        arp_default = measure(lab, "arpscan-default", lambda: run_arp_scan(lab, None), tmp, rep)
        ours_default = measure(lab, "ours-default", lambda: run_ours(lab, None), tmp, rep)
        their_rate = max(1, int(round(arp_default["rate"])))
        ours_fast = measure(lab, "ours-at-arpscan-rate", lambda: run_ours(lab, their_rate), tmp, rep)
        arp_slow = measure(lab, "arpscan-at-our-rate", lambda: run_arp_scan(lab, 1000.0 / default_rate), tmp, rep)
        full = measure(lab, "ours-full", lambda: run_ours(lab, None, snmp=True), tmp, rep)
    finally:
        lab.destroy()
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(_PYCACHE, ignore_errors=True)

    def line(label, m):
        correct = sum(1 for ip, mac in m["found"].items() if truth.get(ip) == mac)
        inner = f"  (sweep itself {m['internal']:.2f}s)" if m.get("internal") is not None else ""
        return (f"{label:<34} found {correct:>3}/{len(truth)}  wall {m['wall']:6.2f}s  sent {m['sent']:>4}  "
                f"peak {m['rate']:5.0f} pps{inner}")

    print(line("arp-scan (default rate)", arp_default))
    print(line(f"sitevigil sweep (default {default_rate} pps)", ours_default))
    print(f"  ratio at each tool's default rate (ours/arp-scan wall time): "
          f"{ours_default['wall'] / arp_default['wall']:.2f}")
    print(line(f"sitevigil sweep --rate {their_rate}", ours_fast))
    print(line(f"arp-scan --interval at {default_rate} pps", arp_slow))
    print(f"  ratio at arp-scan's rate ({their_rate} pps): {ours_fast['wall'] / arp_default['wall']:.2f}")
    print(f"  ratio at our rate ({default_rate} pps):      {ours_default['wall'] / arp_slow['wall']:.2f}")
    for what, ours_m, peer_m, peer_name in (
            ("ARP sweep wall time, each tool at its default rate", ours_default, arp_default, "arp-scan"),
            (f"ARP sweep wall time at arp-scan's rate ({their_rate} pps)", ours_fast, arp_default, "arp-scan"),
            (f"ARP sweep wall time at our rate ({default_rate} pps)", ours_default, arp_slow, "arp-scan --interval")):
        report().figure(what, ours_m["wall"], "s", peer=peer_m["wall"], peer_name=peer_name,
                        ratio_meaning="ours / peer (below 1 is faster)")
    doc = full["extra"][-1]
    snmp = sum(1 for d in doc["devices"] if d["snmp"])
    print(line("sitevigil sweep + SNMP probe", full) + f"  SNMP agents identified {snmp}/5")
    ok = all(sum(1 for ip, mac in m["found"].items() if truth.get(ip) == mac) == len(truth)
             for m in (ours_default, ours_fast, full))
    if not ok:
        print("bench_sweep: sitevigil sweep MISSED hosts")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
