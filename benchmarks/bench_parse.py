"""Offline parse + aggregate from memory: compiled frames/s per core vs the pure-Python twin, and tcpdump/tshark.

A large capture is held in RAM: the shared test captures (../shared/data/pcap) mixed and replicated,
with source MACs and IPv4 addresses rewritten per copy so the device tables hold thousands of rows
(or scapy-built frames when the shared data is absent). It is cut into 8192-frame batches (what a ring
block walk hands over) and run through parse_frames + CaptureAggregator on one thread, so frames per
second is per core. The twin runs a slice of the same frames in the same run. When tcpdump/tshark are
installed, the same frames are written to a pcap file and each reads it (CPU seconds of the child).
Targets (issue 4): >= 1.5 M frames/s per core compiled, >= 50x the twin.
"""
from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from probe.commands.bench import report  # noqa: E402

BATCH = 8192


def _shared_frames() -> list[tuple[bytes, int]]:
    from probe.sources.capfile import read_batches
    base = Path(os.environ.get("SITEVIGIL_SHARED_DATA", REPO.parent / "shared" / "data")) / "pcap"
    frames = []
    for p in sorted(base.glob("*.pcap*")):
        for b in read_batches(str(p)):
            frames.extend((b.frame(i), int(b.wirelen[i])) for i in range(len(b)))
    return frames


def _generated_frames() -> list[tuple[bytes, int]]:
    from scapy.layers.dns import DNS, DNSQR
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import ARP, Ether
    out = []
    for k in range(2000):
        a, b = f"02:00:00:00:{k >> 8:02x}:{k & 255:02x}", "02:00:00:00:ff:01"
        for f in (Ether(src=a, dst=b) / IP(src=f"10.0.{k >> 8}.{k & 255}", dst="93.184.216.34") / TCP(sport=40000 + k, dport=443, flags="S"),
                  Ether(src=b, dst=a) / IP(dst=f"10.0.{k >> 8}.{k & 255}", src="93.184.216.34") / TCP(dport=40000 + k, sport=443, flags="SA"),
                  Ether(src=a, dst=b) / IP(src=f"10.0.{k >> 8}.{k & 255}", dst="10.0.0.53") / UDP(sport=5000 + k, dport=53) / DNS(qd=DNSQR(qname="example.com")),
                  Ether(src=a, dst="ff:ff:ff:ff:ff:ff") / ARP(hwsrc=a, psrc=f"10.0.{k >> 8}.{k & 255}", pdst="10.0.0.1")):
            raw = bytes(f)
            out.append((raw, max(len(raw), 60)))
    return out


def build(n_frames: int):
    """A FrameBatch of about n_frames frames, held in RAM, and where the frames came from."""
    from probe.sources.frames import FrameBatch
    base = _shared_frames()
    origin = "shared captures, replicated with rewritten addresses"
    if not base:
        base, origin = _generated_frames(), "scapy-built TCP/DNS/ARP frames"
    copies = max(1, n_frames // len(base))
    data = bytearray()
    offsets, caplens, wirelens = [], [], []
    for c in range(copies):
        tag = c.to_bytes(2, "big")
        for raw, wl in base:
            f = bytearray(raw)
            if len(f) >= 14:
                f[10:12] = tag                                   # source MAC: a new device per copy
                if len(f) >= 34 and f[12:14] == b"\x08\x00":
                    f[28:30] = tag                               # IPv4 source: likewise
            offsets.append(len(data))
            caplens.append(len(f))
            wirelens.append(max(wl, len(f)))
            data += f
    n = len(offsets)
    ts = 1_700_000_000 * 10**9 + np.arange(n, dtype=np.int64) * 1000  # 1 M frames per second of capture time
    batch = FrameBatch(np.frombuffer(bytes(data), np.uint8), np.asarray(offsets, np.int64),
                       np.asarray(caplens, np.uint32), np.asarray(wirelens, np.uint32), ts, np.full(n, -1, np.int32))
    return batch, origin


def run_impl(kernels, batch, n: int) -> tuple[float, int, int]:
    """Parse + aggregate the first n frames in BATCH-frame slices; returns (seconds, frames, devices)."""
    from probe.state.aggregates import CaptureAggregator
    agg = CaptureAggregator(max_devices=65536, window_s=10, kernels=kernels)
    devices = 0
    t0 = time.process_time()
    for s in range(0, n, BATCH):
        e = min(n, s + BATCH)
        recs, _bad = kernels.parse_frames(batch.data, batch.offset[s:e], batch.caplen[s:e], batch.wirelen[s:e],
                                          batch.ts_ns[s:e], batch.vlan[s:e])
        for w in agg.add(recs):
            devices = max(devices, len(w.macs))
    w = agg.flush()
    elapsed = time.process_time() - t0
    if w is not None:
        devices = max(devices, len(w.macs))
    return elapsed, n, devices


def peer_tool(cmd: list[str]) -> float | None:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=600)
    except (OSError, subprocess.SubprocessError):
        return None
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv=None) -> int:
    argv = list(argv or [])
    quick = "--quick" in argv
    import probe.fastpath.twin as twin
    try:
        import probe._fastpath as compiled
    except ImportError as exc:
        print(f"compiled fast path not built ({exc}); run setup.py build_ext --inplace first")
        return 1
    n_target = 200_000 if quick else 1_500_000
    batch, origin = build(n_target)
    n = len(batch)
    print(f"input: {n:,} frames, {batch.data.nbytes / 1e6:.0f} MB in RAM ({origin}); batches of {BATCH}")

    best = None
    for i in range(1 if quick else 3):
        report().progress(f"compiled parse+aggregate, round {i + 1} of {1 if quick else 3}")
        secs, frames, devices = run_impl(compiled, batch, n)
        best = secs if best is None else min(best, secs)
    ours = n / best
    print(f"ours (compiled parse+aggregate): {ours / 1e6:.2f} M frames/s per core "
          f"({n:,} frames in {best:.3f} s CPU, {devices} devices in the busiest window)")

    n_twin = 5_000 if quick else 20_000
    report().progress(f"pure-Python twin on {n_twin:,} frames")
    secs, frames, _ = run_impl(twin, batch, n_twin)
    peer = frames / secs
    print(f"peer (pure-Python twin, same code path): {peer / 1e3:.1f} k frames/s per core ({frames:,} frames in {secs:.2f} s)")
    print(f"ratio: {ours / peer:.0f}x the twin (target >= 50x); target >= 1.5 M frames/s per core: "
          f"{'met' if ours >= 1.5e6 else 'NOT met'}")
    report().figure("parse + aggregate, compiled", ours, "frames/s per core", peer=peer,
                    peer_name="pure-Python twin, same code path", target=">= 50x the twin and >= 1.5 M frames/s",
                    met=ours / peer >= 50 and ours >= 1.5e6)

    tools = [("tcpdump -n -r FILE (decode+print)", shutil.which("tcpdump"), ["-n", "-r"]),
             ("tshark -r FILE -q -z io,stat,0", shutil.which("tshark"), ["-r"])]
    if any(t[1] for t in tools):
        from probe.sources.capfile import write_pcap
        m = min(n, 300_000)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "bench.pcap")
            sub = type(batch)(batch.data, batch.offset[:m], batch.caplen[:m], batch.wirelen[:m], batch.ts_ns[:m], batch.vlan[:m])
            write_pcap(path, [sub])
            for label, exe, args in tools:
                if not exe:
                    continue
                cmd = [exe, *args, path] + (["-q", "-z", "io,stat,0"] if "tshark" in exe else [])
                report().progress(f"{label} on {m:,} frames")
                cpu = peer_tool(cmd)
                if cpu:
                    rate = m / cpu
                    print(f"peer ({label}): {rate / 1e6:.3f} M frames/s per core ({m:,} frames, {cpu:.2f} s CPU); "
                          f"ratio ours/peer: {ours / rate:.1f}x")
                    report().figure(f"parse + aggregate vs {label.split()[0]}", ours, "frames/s per core",
                                    peer=rate, peer_name=label)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
