"""A flood of 1,000,000 spoofed sources on the mirror port: the daemon's memory, its series, its finding.

In a lab LAN (tests/lab/netns.py, as root), the daemon runs on the mirror port on its defaults but for
the sweep and SNMP (off). Two real hosts ping the gateway, so they are known devices with series; then
netsniff-ng's mausezahn sends 1,000,000 frames from random source MACs and random source IPs (`-a rand
-A rand`, UDP to one host) as fast as it can, after the same number of frames from one real host (so
the capture ring's and the tables' pages are already resident). Printed, beside issue 12's bound (RSS
growth < 50 MB): the daemon's RSS (process and children, /proc VmRSS) idle, before and after, the samples on /metrics and its
largest label sets before and after (bounded: they must not grow with the flood), the frames the daemon
counted, the finding the flood raised, and whether the real hosts' devices and anomaly series survived
(the flood's sources must not evict them: the anomaly series it evicted are printed).
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from probe.commands.bench import report  # noqa: E402

BOUND_MB = 50.0
CONFIG = """\
subnets: [{{cidr: {subnet}}}]
snmp: {{enabled: false}}
sweep: {{enabled: false}}
capture: {{interface: mirror0, window: 2s}}
"""


def rss_bytes(pid: int) -> int:
    """VmRSS of `pid` and all its descendants (fanout workers)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as fh:
                total += next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmRSS:"))
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo += [int(c) for c in fh.read().split()]
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            continue
    return total


def series(body: str) -> tuple[int, Counter]:
    from tests.helpers import samples
    all_samples = samples(body)
    return len(all_samples), Counter(s.name for s in all_samples)


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    if os.geteuid() != 0:
        print("bench flood: needs root (network namespaces)", file=sys.stderr)
        return 2
    if shutil.which("mausezahn") is None:
        print("bench flood: needs mausezahn (Debian netsniff-ng)", file=sys.stderr)
        return 2
    from tests.helpers import sample, samples, wait_for
    from tests.lab.daemon import probe_daemon
    from tests.lab.netns import Lab

    count = 100_000 if quick else 1_000_000
    tmp = Path(tempfile.mkdtemp(prefix="bench-flood-"))
    try:
        with Lab(hosts=2) as lab, probe_daemon(lab, tmp, CONFIG.format(subnet=lab.subnet)) as d:
            h0, h1 = lab.hosts
            report().progress("real hosts talk to the gateway")
            for h in lab.hosts:
                lab.run(h, ["ping", "-c", "3", "-i", "0.3", "-W", "1", str(lab.gateway.ip)], check=False)
            real = {h.mac for h in lab.hosts}
            known = lambda body: {s.labels.get("mac") for s in samples(body, "sitevigil_device_info")}  # noqa: E731
            scored = lambda body: {s.labels.get("device") for s in samples(body, "sitevigil_anomaly_device_score_max")}  # noqa: E731

            def all_known():
                b = d.get("/metrics")
                return b if real <= known(b) else None

            wait_for(all_known, 30, "the real hosts to be known devices", context=lambda: d.log()[-2000:])
            time.sleep(3)
            rss_idle = rss_bytes(d.proc.pid)
            # The same number of frames from one real host first: the capture ring and the tables' pages
            # are touched once, so what the flood adds is what its spoofed sources cost.
            report().progress(f"the same volume from one real host: {count:,} frames")
            lab.run(h0, ["mausezahn", "eth0", "-q", "-c", str(count), "-d", "0", "-b", h1.mac, "-B", str(h1.ip),
                         "-t", "udp", "dp=5000"], timeout=600)
            time.sleep(6)
            body = d.get("/metrics")
            rss0, (n0, fam0) = rss_bytes(d.proc.pid), series(body)
            frames0 = sample(body, "sitevigil_capture_frames_total") or 0
            evicted0 = sample(body, "sitevigil_anomaly_series_evicted_total") or 0
            report().progress(f"flood: {count:,} frames from random MACs and IPs (mausezahn)")
            t0 = time.monotonic()
            lab.run(h0, ["mausezahn", "eth0", "-q", "-c", str(count), "-d", "0", "-a", "rand", "-b", h1.mac,
                         "-A", "rand", "-B", str(h1.ip), "-t", "udp", "dp=5000"], timeout=600)
            sent_s = time.monotonic() - t0
            time.sleep(6)  # the flood's last windows close and are judged
            for h in lab.hosts:  # the real hosts go on talking
                lab.run(h, ["ping", "-c", "2", "-i", "0.3", "-W", "1", str(lab.gateway.ip)], check=False)
            time.sleep(4)
            body = d.get("/metrics")
            rss1, (n1, fam1) = rss_bytes(d.proc.pid), series(body)
            frames = (sample(body, "sitevigil_capture_frames_total") or 0) - frames0
            drops = sample(body, "sitevigil_capture_kernel_drops_total") or 0
            found = d.findings()
            evicted = (sample(body, "sitevigil_anomaly_series_evicted_total") or 0) - evicted0
            survived = real <= known(body) and real <= scored(body)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    growth_mb = (rss1 - rss0) / 2**20
    print(f"flood of {count:,} frames from random source MACs and IPs, sent in {sent_s:.1f} s "
          f"({count / sent_s / 1e3:.0f}k pps); the daemon counted {frames:,.0f} frames, {drops:,.0f} kernel drops")
    print(f"  daemon RSS idle {rss_idle / 2**20:.1f} MiB; after the same volume from one real host "
          f"{rss0 / 2**20:.1f} MiB; after the flood {rss1 / 2**20:.1f} MiB")
    print(f"  growth the flood's spoofed sources caused: {growth_mb:.1f} MiB (bound {BOUND_MB:.0f} MB; growth / bound "
          f"{growth_mb / BOUND_MB:.2f}): {'MET' if growth_mb < BOUND_MB else 'NOT MET'}; "
          f"from idle: {(rss1 - rss_idle) / 2**20:.1f} MiB")
    print(f"  samples on /metrics before {n0:,}, after {n1:,}; largest families after:")
    for name, n in fam1.most_common(6):
        print(f"    {name:<52} {fam0.get(name, 0):>6} -> {n:>6}")
    kinds = sorted({(f["kind"], f["device"]) for f in found})
    print(f"  findings: {kinds}")
    print(f"  anomaly series evicted during the flood: {evicted:,.0f}; devices scored after it: "
          f"{len(scored(body))} (the real hosts among them: {len(real & scored(body))} of {len(real)})")
    print(f"  the real hosts' devices and series survived: {'yes' if survived else 'NO'}")
    report().figure("daemon RSS growth over the flood (after the same volume of ordinary frames)", growth_mb, "MiB",
                    peer=BOUND_MB, peer_name="issue 12's bound", ratio_meaning="ours / bound", target="< 50 MB",
                    met=growth_mb < BOUND_MB)
    report().figure("daemon RSS growth over the flood, from idle", (rss1 - rss_idle) / 2**20, "MiB", peer=BOUND_MB,
                    peer_name="issue 12's bound", ratio_meaning="ours / bound")
    report().figure("samples on /metrics after the flood", n1, "samples", peer=n0, peer_name="before the flood",
                    ratio_meaning="after / before (bounded: no growth with the flood)")
    flood_found = any(f["kind"] in ("mac_flood", "udp_flood") for f in found)
    report().figure("flood findings", sum(f["kind"] in ("mac_flood", "udp_flood") for f in found), "findings",
                    target=">= 1 (mac_flood or udp_flood)", met=flood_found)
    report().figure("real hosts still known", sum(1 for m in real if m in known(body)), "hosts", peer=len(real),
                    peer_name="real hosts", ratio_meaning="known / real", met=survived)
    return 0 if growth_mb < BOUND_MB and flood_found and survived else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
